//! Round 58 (outside reviewer): `kdev::decode_arena` / `decode_vm` /
//! `describe` turn a device error record's message into a `&'static str`
//! through `intern` (userspace/src/kdev/error.rs), which `Box::leak`s every
//! message it has not seen before and keeps it in a global set forever.
//! The comment says messages "come from a small fixed set", but the record
//! is the device's (or any caller's: `decode_*` are public and take any
//! `WireError`), and `Cursor::other` interns `device code {code}: {msg}`
//! for every unknown code: up to 65536 codes times any 80-byte message. A
//! long-running client of a buggy or hostile device grows without bound.
//!
//! Was a DEFECT (fixed: `intern` keeps at most 1,024 messages). FAILED then: 20,000 distinct messages give 20,000 distinct leaked strings.
//! Fix: cap the interned set (e.g. 256 entries) and past it return a fixed
//! "(device message not kept)" string, or make the error types carry an
//! owned/inline message (`[u8; 80]` + len) instead of `&'static str`.

use std::collections::HashSet;

use vmspace::arena::ArenaError;
use vmspace_abi::error::{WireError, ARENA_INVALID_ARGUMENT, NONE};
use vmspace_user::kdev::{decode_arena, describe};

const N: usize = 20_000;
/// Any bound at all would do; the point is that there is none.
const BOUND: usize = 4096;

fn record(code: u16, msg: &str) -> WireError {
    let mut r = WireError::ZERO;
    r.chain = [code, NONE, NONE, NONE];
    r.set_message(msg);
    r
}

#[test]
fn distinct_device_messages_are_not_kept_without_bound() {
    let mut kept = HashSet::new();
    for i in 0..N {
        let r = record(ARENA_INVALID_ARGUMENT, &format!("msg {i:08}"));
        match decode_arena(&r) {
            ArenaError::InvalidArgument(s) => {
                kept.insert(s.as_ptr() as usize);
            }
            e => panic!("unexpected {e:?}"),
        }
    }
    assert!(
        kept.len() <= BOUND,
        "{} distinct messages were leaked as &'static str (intern has no bound)",
        kept.len()
    );
}

#[test]
fn unknown_codes_are_leaked_per_code_too() {
    let mut kept = HashSet::new();
    // 0x02xx codes the client does not know: `other()` interns
    // "device code {code:#06x}: {msg}", one leak per (code, message).
    for code in 0x0211u16..=0x02fe {
        for j in 0..40 {
            let r = record(code, &format!("m{j}"));
            if let ArenaError::InvalidArgument(s) = decode_arena(&r) {
                kept.insert(s.as_ptr() as usize);
            }
            // describe() goes through the same path and must not panic.
            let _ = describe(&r);
        }
    }
    assert!(kept.len() <= BOUND, "{} distinct leaked strings", kept.len());
}
