//! Standard output that a closed pipe ends quietly: `vmspace trace | head`
//! exits 0 when `head` has read enough, instead of panicking in `println!`.

use std::io::{self, Write};

/// `println!` to standard output; a closed pipe ends the program (exit 0),
/// any other write error ends it with exit 1.
macro_rules! outln {
    ($($t:tt)*) => { $crate::out::line(format_args!($($t)*)) };
}
pub(crate) use outln;

/// Write one line.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut o = io::stdout().lock();
    if let Err(e) = writeln!(o, "{args}") {
        gone(&e);
    }
}

/// Write `text` as it is.
pub fn text(text: &str) {
    let mut o = io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        gone(&e);
    }
}

/// Standard output failed: a reader that went away is no error.
pub fn gone(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("vmspace: writing standard output: {e}");
    std::process::exit(1);
}
