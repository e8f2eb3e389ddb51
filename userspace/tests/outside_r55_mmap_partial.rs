//! Round 55 (outside reviewer): real part-way failures of `mprotect`
//! (no seccomp): under `RLIMIT_DATA`, Linux checks each VMA of the range
//! in turn, so a range of two VMAs (split here by `MADV_DONTFORK`, which
//! changes no protection) whose second would pass the limit has its
//! first changed and not its second. `map` must put `PROT_NONE` back
//! (mmap.rs:222-229); `protect` may leave part, never all, of its range
//! changed (shim/src/ops.rs:42-47); a `Vm` must keep its books true.
//! Each test runs in a re-executed child.

mod child_reexec;
mod outside_r55_common;

use child_reexec::{set_limit, status_bytes};
use outside_r55_common::*;
use vmspace::vm::Vm;
use vmspace_shim::{PageOps, Protection, Range, Size};
use vmspace_user::{MmapBackend, UnmapStrategy};

/// Give `r` a VMA of its own (no protection changed).
fn split_off(r: Range) {
    // SAFETY: only a VMA flag of our own reservation changes.
    let rc = unsafe { libc::madvise(r.base().as_ptr(), r.size().0, libc::MADV_DONTFORK) };
    assert_eq!(rc, 0);
}

/// Let the data segment grow by `pages` more pages only.
fn data_room(pages: usize) {
    set_limit(libc::RLIMIT_DATA, (status_bytes("VmData:") + pages * page()) as u64);
}

child_test!(
    /// A map whose second VMA passes the data limit: the first has been
    /// made read-write, and must be inaccessible again.
    map_failing_part_way_puts_prot_none_back_under_rlimit,
    || {
        let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
        let x = be.reserve(Size(8 * page()), Size(page())).unwrap();
        split_off(pages(x, 4, 8));
        data_room(3);
        // SAFETY: unmapped, ours.
        let e = unsafe { be.map(pages(x, 2, 8)) }.expect_err("passes the data limit");
        println!("r55: map part way: {e:?}, {:?}", perms(x));
        assert!(e.may_have_changed(), "{e:?}");
        assert!(all(x, "---p"), "a failed map left {:?}", perms(x));
        // SAFETY: unmapped, ours; within the limit.
        unsafe { be.map(pages(x, 0, 2)) }.unwrap();
        assert!(holds(pages(x, 0, 2), 0));
    }
);

child_test!(
    /// A protect to read-write whose second VMA passes the data limit:
    /// part changed, not all, contents kept.
    protect_failing_part_way_changes_part_never_all_under_rlimit,
    || {
        let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
        let x = be.reserve(Size(8 * page()), Size(page())).unwrap();
        // SAFETY: unmapped, ours.
        unsafe { be.map(x) }.unwrap();
        fill(x, 0x44);
        // SAFETY: mapped; only read below.
        unsafe { be.protect(x, Protection::Read) }.unwrap();
        split_off(pages(x, 4, 8));
        data_room(3);
        // SAFETY: mapped.
        let e = unsafe { be.protect(pages(x, 2, 8), Protection::ReadWrite) }
            .expect_err("passes the data limit");
        println!("r55: protect part way: {e:?}, {:?}", perms(x));
        assert!(e.may_have_changed(), "{e:?}");
        assert!(all(pages(x, 2, 4), "rw-p"), "the part before the limit changed");
        assert!(all(pages(x, 4, 8), "r--p"), "never all of it");
        assert!(holds(x, 0x44));
    }
);

child_test!(
    /// `Vm::map` failing part way: the VM counts nothing mapped, and the
    /// kernel shows nothing accessible in its client range.
    vm_map_failing_part_way_keeps_books_true_under_rlimit,
    || {
        let be = MmapBackend::with_strategy(UnmapStrategy::Decommit);
        let mut v = Vm::reserve(be, Size(64 * page()), Size(page())).unwrap();
        // The bit-table page mapped first (for page 63), so the map below
        // needs only its client pages.
        v.map(pages(v.range(), 63, 64)).unwrap();
        split_off(pages(v.range(), 8, 16));
        data_room(5);
        let r = pages(v.range(), 4, 16);
        let e = v.map(r).expect_err("passes the data limit");
        println!("r55: Vm::map part way: {e:?}, {:?}", perms(r));
        v.check().unwrap();
        assert_eq!(v.mapped(), Size(page()));
        assert!(!v.is_mapped(r.base()));
        assert!(all(pages(v.range(), 0, 63), "---p"), "{:?}", perms(v.range()));
    }
);
