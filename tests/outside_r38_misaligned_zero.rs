//! Outside review, round 38: `ArenaError::Misaligned`'s message for zero
//! on every path that returns it.
//!
//! Contracts (quoted): src/arena/error.rs:22-24 "A value is not a multiple
//! of the alignment the operation needs, or is zero where it needs a
//! non-zero multiple (a span's or an import's size)"; its message for zero
//! (src/arena/error.rs:120-121) "0 where a non-zero multiple of {align:#x}
//! is needed", and for any other value "is not a multiple of the quantum
//! or alignment".

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, SliceStore, Source};
use vmspace::sync::{NoWait, SpinLock, SyncArena};
use vmspace::{Addr, Size};

const Q: usize = 16;

fn zero_message(e: ArenaError, align: usize) {
    assert_eq!(e, ArenaError::Misaligned { value: 0, align }, "{e:?}");
    assert_eq!(e.to_string(), format!("0 where a non-zero multiple of {align:#x} is needed"));
}

fn nonzero_message(e: ArenaError, value: usize, align: usize) {
    assert_eq!(e, ArenaError::Misaligned { value, align }, "{e:?}");
    let s = e.to_string();
    assert!(s.starts_with(&format!("{value:#x} is not a multiple")), "{s}");
    assert!(!s.starts_with("0 where"), "{s}");
}

/// An import of zero bytes from an `Arena` source and from a `&SyncArena`:
/// `Misaligned { value: 0 }` with the zero message, the arena unchanged;
/// a non-multiple (quantum + 1, the largest `usize`) the other message.
#[test]
fn zero_imports_from_arena_and_sync_arena_sources() {
    let (mut t, mut h) = (vec![0u8; 1 << 14], vec![0u8; 1 << 14]);
    let mut a =
        Arena::new("r38-src", Size(Q), SliceStore::new(&mut t), SliceStore::new(&mut h), NoSource)
            .unwrap();
    a.add(Addr(1 << 20), Size(1 << 16)).unwrap();
    zero_message(Source::import(&mut a, Size(0), Size(Q)).unwrap_err(), Q);
    nonzero_message(Source::import(&mut a, Size(Q + 1), Size(Q)).unwrap_err(), Q + 1, Q);
    nonzero_message(Source::import(&mut a, Size(usize::MAX), Size(Q)).unwrap_err(), usize::MAX, Q);
    assert_eq!(a.sizes().allocated, Size(0));
    a.check().unwrap();
    let s: SyncArena<SpinLock, NoWait, _, _> = SyncArena::new(a);
    let mut src = &s;
    zero_message(Source::import(&mut src, Size(0), Size(Q)).unwrap_err(), Q);
    nonzero_message(Source::import(&mut src, Size(3), Size(Q)).unwrap_err(), 3, Q);
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
    s.check().unwrap();
}

/// The other paths give a non-zero value, and the non-zero message: a
/// span's base and size, a phase, a nocross below the quantum, an exact
/// address (never `0 where ...`, which would say a zero was given).
#[test]
fn other_paths_name_their_nonzero_value() {
    let (mut t, mut h) = (vec![0u8; 1 << 14], vec![0u8; 1 << 14]);
    let mut a = Arena::new(
        "r38-paths",
        Size(Q),
        SliceStore::new(&mut t),
        SliceStore::new(&mut h),
        NoSource,
    )
    .unwrap();
    nonzero_message(a.add(Addr(8), Size(Q)).unwrap_err(), 8, Q);
    nonzero_message(a.add(Addr(0), Size(Q + 8)).unwrap_err(), Q + 8, Q);
    a.add(Addr(0), Size(1 << 16)).unwrap();
    let c = Constraints::new(Size(Q)).align(Size(64)).phase(Size(8));
    nonzero_message(a.xalloc(&c).unwrap_err(), 8, Q);
    let c = Constraints::new(Size(Q)).nocross(Size(8));
    nonzero_message(a.xalloc(&c).unwrap_err(), 8, Q);
    let c = Constraints::new(Size(Q)).exact(Addr(usize::MAX));
    nonzero_message(a.xalloc(&c).unwrap_err(), usize::MAX, Q);
    // Address 0 is a multiple of every quantum: an exact allocation there
    // is no misalignment.
    let x = a.xalloc(&Constraints::new(Size(Q)).exact(Addr(0))).unwrap();
    assert_eq!(x, Addr(0));
    a.free(x, Size(Q)).unwrap();
    a.check().unwrap();
    assert_eq!(a.sizes().allocated, Size(0));
}

/// src/arena/error.rs (`Misaligned`, corrected after this round: it said
/// a span's size of zero was `Misaligned` too): "or is zero where it needs
/// a non-zero multiple (an import's size; a span's size of zero is
/// [`InvalidArgument`](Self::InvalidArgument))". `add` and `extend` of
/// zero bytes are `InvalidArgument`, the arena unchanged.
#[test]
fn a_zero_span_size_is_an_invalid_argument_as_documented() {
    let (mut t, mut h) = (vec![0u8; 1 << 14], vec![0u8; 1 << 14]);
    let mut a = Arena::new(
        "r38-span0",
        Size(Q),
        SliceStore::new(&mut t),
        SliceStore::new(&mut h),
        NoSource,
    )
    .unwrap();
    let e = a.add(Addr(1 << 20), Size(0)).unwrap_err();
    assert_eq!(a.sizes().total, Size(0));
    a.add(Addr(1 << 20), Size(1 << 12)).unwrap();
    let e2 = a.extend(Addr((1 << 20) + (1 << 12)), Size(0)).unwrap_err();
    assert_eq!(a.sizes().total, Size(1 << 12));
    a.check().unwrap();
    assert!(matches!(e, ArenaError::InvalidArgument(_)), "{e:?}");
    assert!(matches!(e2, ArenaError::InvalidArgument(_)), "{e2:?}");
}
