//! Fuzz the `vmspace` program's trace parser with arbitrary bytes: it never
//! panics; an error names a line of the input; a parsed trace's operations
//! come in line order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmspace_user::trace;

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count();
    match trace::parse_bytes(data) {
        Ok(t) => {
            assert!(t.ops.windows(2).all(|w| w[0].0 < w[1].0), "operations out of line order");
            assert!(t.ops.iter().all(|&(l, _)| l >= 1 && l <= lines));
            for (_, op) in &t.ops {
                let _ = op.to_string();
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines, "error at line {} of {lines}", e.line);
            let _ = e.to_string();
        }
    }
});
