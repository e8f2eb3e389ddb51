//! Outside review, round 38: `Arena::new` over stores that say they hold
//! more than `MAX_TAGS` tags.
//!
//! Contract (quoted): src/arena/mod.rs:203-204 (`Arena::new`): "It uses
//! room for [`MAX_TAGS`] tags at most, however large the store."; and
//! src/arena/mod.rs:135-137 (`MAX_TAGS`): "a larger store holds no more".
//! A store's `grow` may fail (src/arena/store.rs:30-31 "when it fails
//! `committed` is unchanged"): the arena reports it and stays consistent.

use vmspace::arena::{Arena, ArenaError, NoSource, Policy, Store, MAX_TAGS, TAG_BYTES};
use vmspace::{Addr, Size};

/// A store over a buffer that says it could hold `cap` bytes, and commits
/// up to the buffer's length.
struct Big {
    buf: Vec<u64>,
    committed: usize,
    cap: usize,
}

impl Big {
    fn new(bytes: usize, cap: usize) -> Self {
        Big { buf: vec![0u64; bytes / 8], committed: 0, cap }
    }
}

// SAFETY: the base is the Vec's (never reallocated, 8-aligned, non-null);
// committed bytes are inside the buffer, initialized; `grow` only raises
// `committed`, and fails leaving it unchanged.
unsafe impl Store for Big {
    fn base(&self) -> *mut u8 {
        self.buf.as_ptr().cast_mut().cast()
    }
    fn committed(&self) -> usize {
        self.committed
    }
    fn grow(&mut self, bytes: usize) -> Result<(), ArenaError> {
        if bytes > self.buf.len() * 8 {
            return Err(ArenaError::InvalidArgument("test store full"));
        }
        self.committed = self.committed.max(bytes);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.cap
    }
}

/// Stores of `MAX_TAGS` tags exactly, one more, and `usize::MAX` bytes:
/// the arena is made, allocates single quanta until the real buffer runs
/// out (an error, no panic), stays consistent, and frees all.
#[test]
fn stores_larger_than_max_tags_are_used_up_to_their_memory() {
    for cap in [MAX_TAGS * TAG_BYTES, (MAX_TAGS + 1) * TAG_BYTES, usize::MAX, usize::MAX / 2 + 1] {
        let mut a = Arena::new(
            "r38-big",
            Size(1),
            Big::new(1 << 14, cap),
            Big::new(1 << 14, cap),
            NoSource,
        )
        .unwrap_or_else(|e| panic!("cap {cap:#x}: {e:?}"));
        a.add(Addr(1 << 20), Size(1 << 20)).unwrap();
        let mut live = Vec::new();
        let err = loop {
            match a.alloc(Size(1), Policy::InstantFit) {
                Ok(x) => live.push(x),
                Err(e) => break e,
            }
            if live.len() > 1 << 14 {
                panic!("cap {cap:#x}: more allocations than the buffers hold tags");
            }
        };
        assert!(!matches!(err, ArenaError::NoSpace { .. }), "cap {cap:#x}: {err:?}");
        a.check().unwrap();
        assert_eq!(a.sizes().allocated, Size(live.len()));
        for x in live.drain(..) {
            a.free(x, Size(1)).unwrap();
        }
        a.check().unwrap();
        assert_eq!(a.sizes().allocated, Size(0));
    }
}
