//! Round 62b (outside reviewer): CHANGELOG.md (Unreleased, Fixed): "`kdev`
//! kept every distinct device message for the process's life (now at most
//! 1,024)"; userspace/src/kdev/error.rs:60-63: "each distinct one is leaked
//! once, up to [`MAX_INTERNED`] of them; past that, messages not seen
//! before read as one fixed text". Through the public `decode_arena`, with
//! made-up records (no device needed). One test: the table is per process.

use vmspace::arena::ArenaError;
use vmspace_abi::error::{WireError, ARENA_INVALID_ARGUMENT, NONE};
use vmspace_user::kdev::decode_arena;

fn record(msg: &str) -> WireError {
    let mut r = WireError {
        chain: [ARENA_INVALID_ARGUMENT, NONE, NONE, NONE],
        op: 0,
        errno: 0,
        a: 0,
        b: 0,
        c: 0,
        flags: 0,
        msg_len: 0,
        msg: [0; 80],
    };
    r.set_message(msg);
    r
}

fn text(msg: &str) -> &'static str {
    match decode_arena(&record(msg)) {
        ArenaError::InvalidArgument(s) => s,
        e => panic!("{e:?}"),
    }
}

#[test]
fn at_most_1024_distinct_messages_are_kept() {
    const FIXED: &str = "(device message not kept: too many distinct messages)";
    let first = text("message 0");
    assert_eq!(first, "message 0");
    // The same text: the same leaked string, not a second one.
    assert!(std::ptr::eq(first, text("message 0")));
    for i in 1..1024 {
        assert_eq!(text(&format!("message {i}")), format!("message {i}"));
    }
    // The 1,025th distinct message and later ones read as the fixed text.
    assert_eq!(text("message 1024"), FIXED);
    assert_eq!(text("another one"), FIXED);
    // Messages kept before are still theirs.
    assert_eq!(text("message 7"), "message 7");
    assert_eq!(text("message 1023"), "message 1023");
    // Display of the decoded error carries it.
    assert_eq!(decode_arena(&record("message 5")).to_string(), "invalid argument: message 5");
}
