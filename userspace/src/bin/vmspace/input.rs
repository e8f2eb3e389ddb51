//! What the user hands in: numbers (decimal or `0x` hex, `_` separators)
//! and files (or `-`, standard input).

use std::io::Read;
use std::path::Path;

/// A number as traces write them: decimal or `0x` hex, `_` allowed.
pub fn parse_number(s: &str) -> Result<usize, String> {
    let t = s.replace('_', "");
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => usize::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => format!("{s} is too large (at most {})", usize::MAX),
        _ => format!("{s:?} is not a number (decimal or 0x hex)"),
    })
}

/// Read a file (`-`: standard input) as bytes.
pub fn read(file: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading standard input: {e}"))?;
    } else {
        bytes = std::fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    }
    Ok(bytes)
}
