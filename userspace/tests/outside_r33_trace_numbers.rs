//! Outside review, round 33: trace numbers, "digits only" (round 32's
//! change to `parse_number`).
//!
//! Contract (userspace/src/trace.rs:22-23, `parse_number`): "A number as
//! traces write them: decimal or `0x` hex digits, `_` allowed between
//! them; no sign (Rust's own parsers take a leading `+`)." The CLI's help
//! (userspace/src/cli/help.rs:22-23) says only "numbers are decimal or 0x
//! hex (_ allowed)", so this is the rustdoc's stricter word held to the
//! code: an underscore before the first digit, after the last, or inside
//! the `0x` prefix is not "between" digits. (A doc ambiguity more than a
//! defect: which of the two texts is meant?)

use vmspace_user::trace::parse_number;

/// Held: what round 32 meant to refuse, and what it keeps.
#[test]
fn signs_and_empty_digits_are_refused() {
    for bad in ["+1", "-1", "0x+1", "0x-1", "", "_", "0x", "0x_", "1 ", "٣", "0b1"] {
        assert!(parse_number(bad).is_err(), "{bad:?} was taken: {:?}", parse_number(bad));
    }
    assert_eq!(parse_number("1_000"), Ok(1000));
    assert_eq!(parse_number("0xdead_beef"), Ok(0xdead_beef));
}

/// Found: underscores that are not between digits are taken.
#[test]
fn underscores_only_between_digits() {
    for bad in ["_1", "1_", "0_x10", "_0x10", "0x_10"] {
        assert!(parse_number(bad).is_err(), "{bad:?} was taken: {:?}", parse_number(bad));
    }
}
