//! The caller's input as messages show it: quoted and cut short, or
//! escaped where it could drive a terminal.

/// A token of the caller's input, quoted for an error message: cut to its
/// first 32 characters when longer, so that an error stays one short line.
pub fn quoted(s: &str) -> String {
    const SHOWN: usize = 32;
    match s.char_indices().nth(SHOWN) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &s[..cut], s.len()),
    }
}

/// Whether `c` may reach a terminal raw: not a control character, nor one
/// of the invisible format characters that reorder or hide text (bidi
/// controls, zero-width characters, the byte-order mark).
fn shows_as_itself(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Text from the caller's input (a file name) as messages show it: as it
/// is when every character shows as itself (no control character, no
/// invisible format character: bidi controls, zero-width ones), else quoted
/// with Rust's escapes, so that it cannot drive the terminal.
pub fn shown_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().all(shows_as_itself) {
        s.into()
    } else {
        format!("{s:?}").into()
    }
}

/// A trace name as messages show it: as it is when it is short and every
/// character shows as itself, else [`quoted`], so that a hostile trace's
/// name can neither flood an error line nor drive the terminal.
pub fn shown_id(id: &str) -> std::borrow::Cow<'_, str> {
    if id.chars().nth(32).is_none() && id.chars().all(shows_as_itself) {
        id.into()
    } else {
        quoted(id).into()
    }
}
