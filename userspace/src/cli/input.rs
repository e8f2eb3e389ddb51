//! What the user hands in: numbers (decimal or `0x` hex, `_` separators, as
//! traces write them) and files (or `-`, standard input).

use std::io::Read;
use std::path::Path;

pub use vmspace_user::trace::parse_number;
use vmspace_user::trace::shown_text;

/// A path as messages show it: as it is, or quoted with escapes when it
/// holds a character that would drive the terminal.
pub fn shown(path: &Path) -> String {
    shown_text(&path.display().to_string()).into_owned()
}

/// Read a file (`-`: standard input) as bytes.
pub fn read(file: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading standard input: {e}"))?;
    } else {
        bytes = std::fs::read(file).map_err(|e| format!("reading {}: {e}", shown(file)))?;
    }
    Ok(bytes)
}
