//! Written from the documented contracts by a reviewer outside the project,
//! to break them: `free_part` and `resize` at their edges (first, last and
//! middle pieces, empty pieces, pieces past the size asked, the same size,
//! the same quantum, zero, growing into exactly the free room or one quantum
//! more, into an unflushed or allocated neighbour or an adjacent span, at
//! the top of the address space), what their failures count, and the
//! next-fit rotor across them; every refused call is checked to change
//! nothing (the whole walk, sizes, histogram, largest free, fragmentation,
//! tags and the counters other than the one the docs name).

use vmspace::arena::{ArenaError, Constraints, Policy};
use vmspace::{Addr, Size};

mod outside_snap;
use outside_snap::*;

#[test]
/// `free_part` docs (src/arena/resize.rs:26-39): the piece must lie inside
/// the size asked for, start at a multiple of the quantum and end at one or
/// at the end of the allocation, else `BadFree` changing nothing but the
/// bad-free counter; what stays becomes `[alloc, alloc + offset)` (asked
/// `offset`) and the rest (asked: what was asked beyond the piece); a
/// partial free counts no free, a whole one counts one.
fn free_part_pieces_and_refusals() {
    with_arena(16, |a| {
        a.add(Addr(0x1000), Size(0x1000)).unwrap();
        let x = a.alloc(Size(100), Policy::FirstFit).unwrap().0; // 112 rounded
        assert_eq!(x, 0x1000);
        let c0 = a.counters();
        // Refusals.
        for (off, len) in [
            (0, 0),                // empty
            (16, 0),               // empty, inside
            (112, 0),              // empty, at the rounded end
            (96, 16),              // past the size asked (inside the rounding)
            (0, 112),              // the whole rounded allocation, more than asked
            (16, 5),               // ends at neither a quantum nor the end
            (8, 16),               // misaligned start
            (112, 16),             // outside
            (0, 101),              // one past the size asked
            (16, usize::MAX),      // wraps
            (usize::MAX - 15, 32), // wraps
        ] {
            refused(
                a,
                &format!("free_part({off}, {len})"),
                true,
                |a| a.free_part(Addr(x), Size(off), Size(len)),
                is_bad_free,
            );
        }
        refused(
            a,
            "free_part not at an allocation",
            true,
            |a| a.free_part(Addr(x + 16), Size(0), Size(16)),
            is_bad_free,
        );
        // Last piece, ending at the end of the allocation (asked 100).
        a.free_part(Addr(x), Size(96), Size(4)).unwrap();
        assert_eq!(segs(a), vec![(Al, x, x + 96, 96), (Fr, x + 96, 0x2000, 0x2000 - x - 96)]);
        // First piece.
        a.free_part(Addr(x), Size(0), Size(16)).unwrap();
        assert_eq!(a.lookup(Addr(x)), None);
        assert_eq!(a.lookup(Addr(x + 16)).map(|r| (r.0.size().0, r.1 .0)), Some((80, 80)));
        // Middle piece of what is left: [x+16, x+96) asked 80 -> 16 + 32 + 32.
        a.free_part(Addr(x + 16), Size(16), Size(32)).unwrap();
        assert_eq!(
            segs(a),
            vec![
                (Fr, x, x + 16, 16),
                (Al, x + 16, x + 32, 16),
                (Fr, x + 32, x + 64, 32),
                (Al, x + 64, x + 96, 32),
                (Fr, x + 96, 0x2000, 0x2000 - x - 96),
            ]
        );
        let c = a.counters();
        assert_eq!((c.allocs, c.frees), (c0.allocs, c0.frees), "partial frees count none");
        // A whole allocation by free_part counts as one free.
        a.free_part(Addr(x + 64), Size(0), Size(32)).unwrap();
        assert_eq!(a.counters().frees, c0.frees + 1);
        a.free(Addr(x + 16), Size(16)).unwrap();
        assert_eq!(a.counters().frees, c0.frees + 2);
        assert_eq!(a.counters().allocs, c0.allocs);
        assert_eq!(segs(a), vec![(Fr, 0x1000, 0x2000, 0x1000)]);
        assert_eq!(a.counters().bad_frees, 12);
    });
}

#[test]
/// `free_part` of an asked size that is not a multiple of the quantum: a
/// piece ending at a quantum boundary leaves a tail whose asked size is
/// "what was asked beyond the piece", freed with exactly that; the tail of
/// a part freed deferred stays unflushed.
fn free_part_tail_keeps_the_sub_quantum_ask() {
    with_arena(16, |a| {
        a.add(Addr(0x1000), Size(0x1000)).unwrap();
        let x = a.alloc(Size(70), Policy::FirstFit).unwrap().0; // 80 rounded
        a.free_part(Addr(x), Size(0), Size(32)).unwrap();
        assert_eq!(a.lookup(Addr(x + 32)).map(|r| (r.0.size().0, r.1 .0)), Some((48, 38)));
        refused(
            a,
            "free the tail with its rounded size",
            true,
            |a| a.free(Addr(x + 32), Size(48)),
            is_bad_free,
        );
        refused(
            a,
            "free the tail with the old ask",
            true,
            |a| a.free(Addr(x + 32), Size(70)),
            is_bad_free,
        );
        a.free_deferred(Addr(x + 32), Size(38)).unwrap();
        assert_eq!(segs(a)[..2], [(Fr, x, x + 32, 32), (Un, x + 32, x + 80, 48)]);
        refused(
            a,
            "free_part of an unflushed range",
            true,
            |a| a.free_part(Addr(x + 32), Size(0), Size(16)),
            is_bad_free,
        );
        refused(
            a,
            "resize of an unflushed range",
            true,
            |a| a.resize(Addr(x + 32), Size(38), Size(16)),
            is_bad_free,
        );
        assert_eq!(a.flushed(), Size(48));
        assert_eq!(segs(a), vec![(Fr, 0x1000, 0x2000, 0x1000)]);
    });
}

#[test]
/// `resize` docs (src/arena/resize.rs:118-132): in place, shrinking gives
/// the end back, growing takes room from the free segment right after in
/// the same span, else `NoSpace` changing nothing; a wrong old size is
/// `BadFree`; zero is an invalid argument; afterwards the allocation is
/// freed with the new size.
fn resize_edges() {
    with_arena(16, |a| {
        a.add(Addr(0x1000), Size(0x100)).unwrap();
        a.add(Addr(0x1100), Size(0x100)).unwrap(); // adjacent, separate span
        let x = a.xalloc(&Constraints::new(Size(40)).exact(Addr(0x1000))).unwrap().0;
        let y = a.xalloc(&Constraints::new(Size(16)).exact(Addr(0x1080))).unwrap().0;
        // [x, x+48) alloc, [x+48, 0x1080) free (80), y [0x1080, 0x1090), free to 0x1100.
        let before = snap(a);
        a.resize(Addr(x), Size(40), Size(40)).unwrap();
        assert_eq!(snap(a).walk, before.walk, "same size: nothing moves");
        a.resize(Addr(x), Size(40), Size(48)).unwrap(); // same quantum, new ask
        assert_eq!(a.lookup(Addr(x)).map(|r| (r.0.size().0, r.1 .0)), Some((48, 48)));
        refused(
            a,
            "old ask after a resize",
            true,
            |a| a.resize(Addr(x), Size(40), Size(8)),
            is_bad_free,
        );
        refused(
            a,
            "zero",
            false,
            |a| a.resize(Addr(x), Size(48), Size(0)),
            |e| matches!(e, ArenaError::InvalidArgument(_)),
        );
        refused(
            a,
            "one quantum past the free room",
            false,
            |a| a.resize(Addr(x), Size(48), Size(0x80 + 1)),
            |e| matches!(e, ArenaError::NoSpace { .. }),
        );
        // Exactly the free room: the free segment disappears.
        let tags = a.tags_in_use().0;
        a.resize(Addr(x), Size(48), Size(0x80)).unwrap();
        assert_eq!(a.tags_in_use().0, tags - 1);
        assert_eq!(segs(a)[..2], [(Al, x, x + 0x80, 0x80), (Al, y, y + 16, 16)]);
        refused(
            a,
            "next is allocated",
            false,
            |a| a.resize(Addr(x), Size(0x80), Size(0x81)),
            |e| matches!(e, ArenaError::NoSpace { .. }),
        );
        // y grows to its span's end, not into the adjacent span's free room.
        a.resize(Addr(y), Size(16), Size(0x80)).unwrap();
        refused(
            a,
            "into the adjacent span",
            false,
            |a| a.resize(Addr(y), Size(0x80), Size(0x90)),
            |e| matches!(e, ArenaError::NoSpace { .. }),
        );
        // Shrink: the end coalesces with nothing (y follows) then with y's freed room.
        a.resize(Addr(x), Size(0x80), Size(1)).unwrap();
        assert_eq!(
            segs(a)[..3],
            [(Al, x, x + 16, 1), (Fr, x + 16, y, y - x - 16), (Al, y, y + 0x80, 0x80)]
        );
        a.free(Addr(y), Size(0x80)).unwrap();
        assert_eq!(segs(a)[..2], [(Al, x, x + 16, 1), (Fr, x + 16, 0x1100, 0x1100 - x - 16)]);
        // Next is unflushed: not allocatable, so not room to grow into.
        let z = a.xalloc(&Constraints::new(Size(16)).exact(Addr(x + 16))).unwrap().0;
        a.free_deferred(Addr(z), Size(16)).unwrap();
        refused(
            a,
            "into an unflushed neighbour",
            false,
            |a| a.resize(Addr(x), Size(1), Size(17)),
            |e| matches!(e, ArenaError::NoSpace { .. }),
        );
        a.flushed();
        a.resize(Addr(x), Size(1), Size(0x100)).unwrap(); // the whole span
        assert_eq!(a.largest_free(), Size(0x100));
        a.free(Addr(x), Size(0x100)).unwrap();
        assert_eq!(a.sizes().allocated, Size(0));
    });
}

#[test]
/// `resize` at the top of the address space: growing an allocation that
/// ends at the span's end (the highest limit a span can have) finds no
/// free segment after it, which the docs say is `NoSpace` ("when that
/// segment is missing or too small the call fails with NoSpace").
fn resize_at_the_top_of_the_address_space_is_no_space() {
    for q in [1usize, 16, 4096] {
        with_arena(q, |a| {
            let top = usize::MAX - (q - 1); // the highest quantum-aligned limit
            a.add(Addr(top - 4 * q), Size(4 * q)).unwrap();
            let x = a.xalloc(&Constraints::new(Size(q)).from_top(true)).unwrap().0;
            assert_eq!(x, top - q);
            refused(
                a,
                &format!("q {q}: grow by one quantum at the top"),
                false,
                |a| a.resize(Addr(x), Size(q), Size(2 * q)),
                |e| matches!(e, ArenaError::NoSpace { .. }),
            );
        });
    }
}

#[test]
/// `Counters::failures` (src/arena/stats.rs): "Failed alloc, xalloc, add,
/// extend, resize and free_part calls (a resize that cannot grow in place
/// included). A bad claim ... counts in `bad_frees` instead." (As first
/// written, the docs listed only alloc, xalloc, add and extend, while
/// resize counted and free_part did not: this test found it.)
fn resize_and_free_part_failures_are_counted_bad_claims_are_not() {
    with_arena(16, |a| {
        a.add(Addr(0x1000), Size(0x100)).unwrap();
        let x = a.alloc(Size(0x100), Policy::FirstFit).unwrap();
        let c = a.counters();
        assert!(matches!(a.resize(x, Size(0x100), Size(0x200)), Err(ArenaError::NoSpace { .. })));
        assert!(matches!(a.resize(x, Size(0x100), Size(0)), Err(ArenaError::InvalidArgument(_))));
        assert_eq!(a.resize(x, Size(0x100), Size(usize::MAX)), Err(ArenaError::Overflow));
        assert_eq!(a.counters().failures, c.failures + 3, "failed resizes");
        assert_eq!(a.counters().bad_frees, c.bad_frees);
        // Bad claims: bad_frees, not failures.
        assert!(matches!(a.resize(x, Size(0xff), Size(0x10)), Err(ArenaError::BadFree { .. })));
        assert!(matches!(a.free_part(x, Size(8), Size(0x10)), Err(ArenaError::BadFree { .. })));
        assert_eq!(a.counters().failures, c.failures + 3, "bad claims");
        assert_eq!(a.counters().bad_frees, c.bad_frees + 2);
        // A partial free that cannot have its tags (every one injected to
        // fail) is a failure, and changes nothing else.
        a.set_mtbf(1, 1);
        let before = (a.sizes(), a.live());
        assert_eq!(a.free_part(x, Size(0x10), Size(0x10)), Err(ArenaError::Injected));
        assert_eq!(a.counters().failures, c.failures + 4, "a failed free_part");
        assert_eq!((a.sizes(), a.live()), before);
        a.set_mtbf(0, 0);
        a.free_part(x, Size(0x10), Size(0x10)).unwrap();
        a.check().unwrap();
    });
}

#[test]
/// `extend` filling the gap between two added spans merges them into one
/// ("The new room coalesces with free segments at the seam"): one span, one
/// free segment across the old seams, and `resize` may then grow across
/// where the old span ended (now the same span).
fn extend_merge_then_resize_across_the_old_seam() {
    with_arena(16, |a| {
        a.add(Addr(0x1000), Size(0x100)).unwrap();
        a.add(Addr(0x1200), Size(0x100)).unwrap();
        let x = a.xalloc(&Constraints::new(Size(0x10)).exact(Addr(0x10f0))).unwrap();
        refused(
            a,
            "grow past the span end",
            false,
            |a| a.resize(x, Size(0x10), Size(0x20)),
            |e| matches!(e, ArenaError::NoSpace { .. }),
        );
        a.extend(Addr(0x1100), Size(0x100)).unwrap();
        assert_eq!(a.span_count(), 1);
        assert_eq!(
            segs(a),
            vec![
                (Fr, 0x1000, 0x10f0, 0xf0),
                (Al, 0x10f0, 0x1100, 0x10),
                (Fr, 0x1100, 0x1300, 0x200)
            ]
        );
        assert_eq!(a.largest_free(), Size(0x200));
        a.resize(x, Size(0x10), Size(0x210)).unwrap();
        assert_eq!(segs(a)[1..], [(Al, 0x10f0, 0x1300, 0x210)]);
        assert!(a.contains(Addr(0x1000), Size(0x300)));
        a.free(x, Size(0x210)).unwrap();
        assert_eq!(segs(a), vec![(Fr, 0x1000, 0x1300, 0x300)]);
        // Extend down and up: the free segment grows at both ends.
        a.extend(Addr(0xf00), Size(0x100)).unwrap();
        a.extend(Addr(0x1300), Size(0x100)).unwrap();
        assert_eq!(segs(a), vec![(Fr, 0xf00, 0x1400, 0x500)]);
        assert_eq!(a.sizes().total, Size(0x500));
        assert_eq!(a.free_histogram().iter().sum::<usize>(), 1);
    });
}

#[test]
/// `check()` verifies "the rotor is a tag on the address list" (Arena
/// docs, Invariants); `free_part` and `resize` release tags (a freed piece
/// absorbed by a free neighbour, a free segment a growth swallows whole)
/// right where the last next-fit allocation was. Next fit afterwards still
/// starts where the last next-fit allocation ended (`Policy::NextFit`).
fn rotor_survives_free_part_and_resize() {
    // free_part of the head of the next-fit allocation, absorbed by the
    // free segment before it.
    with_arena(16, |a| {
        a.add(Addr(0x1000), Size(0x1000)).unwrap();
        let y = a.alloc(Size(0x10), Policy::FirstFit).unwrap();
        let x = a.alloc(Size(0x40), Policy::NextFit).unwrap();
        assert_eq!(x, Addr(0x1010));
        a.free(y, Size(0x10)).unwrap();
        a.check().unwrap();
        a.free_part(x, Size(0), Size(0x10)).unwrap();
        a.check().unwrap();
        let n = a.alloc(Size(0x10), Policy::NextFit).unwrap();
        assert_eq!(n, Addr(0x1050), "next fit after the rotor");
        a.check().unwrap();
    });
    // resize swallowing the free segment where the freed next-fit
    // allocation was.
    with_arena(16, |a| {
        a.add(Addr(0x1000), Size(0x1000)).unwrap();
        let x = a.alloc(Size(0x10), Policy::FirstFit).unwrap();
        let z = a.alloc(Size(0x10), Policy::NextFit).unwrap();
        assert_eq!(z, Addr(0x1010));
        a.free(z, Size(0x10)).unwrap();
        a.check().unwrap();
        a.resize(x, Size(0x10), Size(0x1000)).unwrap();
        a.check().unwrap();
        a.resize(x, Size(0x1000), Size(0x30)).unwrap();
        a.check().unwrap();
        let n = a.alloc(Size(0x10), Policy::NextFit).unwrap();
        assert_eq!(
            n,
            Addr(0x1030),
            "next fit from where the last one ended (0x1020), first fit there"
        );
        a.check().unwrap();
    });
    // resize (shrink) and free_part of the tail of the next-fit allocation.
    with_arena(16, |a| {
        a.add(Addr(0x1000), Size(0x1000)).unwrap();
        let x = a.alloc(Size(0x40), Policy::NextFit).unwrap();
        a.resize(x, Size(0x40), Size(0x20)).unwrap();
        a.check().unwrap();
        a.free_part(x, Size(0x10), Size(0x10)).unwrap();
        a.check().unwrap();
        a.free(x, Size(0x10)).unwrap();
        a.check().unwrap();
        let n = a.alloc(Size(0x10), Policy::NextFit).unwrap();
        assert_eq!(n, Addr(0x1040), "the rotor stays at 0x1040 (where the last next-fit ended)");
        a.check().unwrap();
    });
}
