//! Creation and handles: every refusal, the largest sizes and grains, a VM where an arena is expected and the reverse.

use super::*;

// ---------------------------------------------------------------------------
// Create.

#[test]
fn create_refusals_store_null_and_have_the_documented_errno() {
    let page = os_page();
    // -EINVAL: size 0, bad grains, unknown flags.
    assert_eq!(try_create(0, 0, 0), Err(-EINVAL));
    assert_eq!(try_create(0, page, 0), Err(-EINVAL));
    for grain in [1, 3, page / 2, page + 1, 3 * page, usize::MAX, (1 << 63) + page] {
        assert_eq!(try_create(page, grain, 0), Err(-EINVAL), "grain {grain:#x}");
    }
    for flags in [1, 2, 0x100, -1, c_int::MIN, c_int::MAX] {
        assert_eq!(try_create(page, 0, flags), Err(-EINVAL), "flags {flags:#x}");
    }
    // A NULL out pointer.
    // SAFETY: NULL is refused before anything is written.
    assert_eq!(unsafe { vmspace_vm_create(page, 0, 0, null_mut()) }, -EINVAL);
    // -EOVERFLOW: the size rounded up to the grain does not fit.
    assert_eq!(try_create(usize::MAX, 0, 0), Err(-EOVERFLOW));
    assert_eq!(try_create(usize::MAX - page + 2, 0, 0), Err(-EOVERFLOW));
    assert_eq!(try_create((1 << 63) + 1, 1 << 63, 0), Err(-EOVERFLOW));
    // -ENOMEM: sizes and grains that fit an address but no address space.
    assert_eq!(try_create(1, 1 << 63, 0), Err(-ENOMEM));
    assert_eq!(try_create(1 << 63, 1 << 63, 0), Err(-ENOMEM));
    assert_eq!(try_create((1 << 40) + 1, 1 << 63, 0), Err(-ENOMEM));
    assert_eq!(try_create(1 << 62, 0, 0), Err(-ENOMEM));
    assert_eq!(try_create(1 << 63, 0, 0), Err(-ENOMEM));
}

#[test]
fn create_at_the_top_of_size_is_overflow_or_nomem_never_success() {
    // The size itself fits once rounded, but with its bookkeeping it does
    // not: the header names -EOVERFLOW for "the size rounded up to the
    // grain ... does not fit", and -ENOMEM for "no address space to
    // reserve"; either is a refusal that stores NULL.
    let page = os_page();
    for size in [usize::MAX - page + 1, usize::MAX - (1 << 40) + 1, usize::MAX / 2 + page] {
        let e = try_create(size, 0, 0).unwrap_err();
        assert!(e == -EOVERFLOW || e == -ENOMEM, "size {size:#x}: {e}");
    }
}

#[test]
fn create_rounds_to_grain_and_info_is_consistent() {
    let page = os_page();
    for (size, grain) in [
        (1, 0),
        (page, 0),
        (page + 1, 0),
        (1, 1 << 16),
        ((3 << 16) + 1, 1 << 16),
        (5 * page, 1 << 21),
        (1, 1 << 30),
        (page, 1 << 40),
    ] {
        let vm = create(size, grain);
        let (b, s, g, p, m, r, md) = info(vm);
        let want_grain = if grain == 0 { page } else { grain };
        assert_eq!(p, page);
        assert_eq!(g, want_grain, "grain for ({size:#x}, {grain:#x})");
        assert_eq!(s, size.div_ceil(want_grain) * want_grain, "size for ({size:#x}, {grain:#x})");
        assert_eq!(b % g, 0, "base {b:#x} not a multiple of grain {g:#x}");
        assert_eq!((b + s) % g, 0);
        assert_eq!(m, 0);
        assert!(r >= s, "reserved {r:#x} < size {s:#x}");
        assert!(md <= r - s, "metadata {md:#x} beyond the bookkeeping reserved {:#x}", r - s);
        assert_eq!(md % page, 0);
        assert_eq!(check(vm), 0);
        assert_eq!(is_mapped(vm, b, s), 0);
        assert_eq!(page_states(vm, (s / p).min(4096)).iter().filter(|&&x| x != 0).count(), 0);
        destroy(vm);
    }
}

// ---------------------------------------------------------------------------
// Handles.

#[test]
fn null_handles_and_null_out_pointers_are_einval() {
    let mut i = vmspace_vm_info::default();
    // SAFETY: NULL handles are refused before anything is read.
    unsafe {
        assert_eq!(vmspace_vm_destroy(null_mut()), -EINVAL);
        assert_eq!(vmspace_vm_map(null_mut(), 0x10000, 4096), -EINVAL);
        assert_eq!(vmspace_vm_unmap(null_mut(), 0x10000, 4096), -EINVAL);
        assert_eq!(vmspace_vm_mapped(null_mut(), 0x10000, 4096), -EINVAL);
        assert_eq!(vmspace_vm_info(null_mut(), &mut i), -EINVAL);
        assert_eq!(vmspace_vm_trim(null_mut()), -EINVAL);
        assert_eq!(vmspace_vm_check(null_mut()), -EINVAL);
    }
    let vm = create(1 << 20, 0);
    // SAFETY: a live VM, a NULL out pointer.
    assert_eq!(unsafe { vmspace_vm_info(vm, null_mut()) }, -EINVAL);
    destroy(vm);
}

#[test]
fn an_arena_is_not_a_vm_and_a_vm_is_not_an_arena() {
    let page = os_page();
    let vm = create(1 << 20, 1 << 16);
    let b = base(vm);
    assert_eq!(map(vm, b, page), 0);
    fill(b, page, 0x5a);
    let before = info(vm);
    // SAFETY: a valid arena over the VM's range.
    let arena =
        unsafe { vmspace_arena_create(c"r75".as_ptr(), b, 1 << 20, page, 0, VMSPACE_INSTANTFIT) };
    assert!(!arena.is_null());
    let av = arena.cast::<vmspace_vm_t>();
    let mut i = vmspace_vm_info::default();
    // SAFETY: an arena passed as a VM: the first word is readable.
    unsafe {
        assert_eq!(vmspace_vm_map(av, b + page, page), -EBADF);
        assert_eq!(vmspace_vm_unmap(av, b, page), -EBADF);
        assert_eq!(vmspace_vm_mapped(av, b, page), -EBADF);
        assert_eq!(vmspace_vm_info(av, &mut i), -EBADF);
        assert_eq!(vmspace_vm_trim(av), -EBADF);
        assert_eq!(vmspace_vm_check(av), -EBADF);
        assert_eq!(vmspace_vm_destroy(av), -EBADF);
    }
    // The arena is untouched.
    // SAFETY: a live arena.
    unsafe {
        assert_eq!(vmspace_arena_check(arena), 0);
        let mut a = 0;
        assert_eq!(vmspace_arena_alloc(arena, page, VMSPACE_INSTANTFIT, &mut a), 0);
        assert_eq!(vmspace_arena_free(arena, a, page), 0);
    }
    // A VM passed as an arena.
    let va = vm.cast::<vmspace_arena_t>();
    // SAFETY: a VM passed as an arena: the first word is readable.
    unsafe {
        let mut a = 0;
        assert_eq!(vmspace_arena_check(va), -EBADF);
        assert_eq!(vmspace_arena_alloc(va, page, VMSPACE_INSTANTFIT, &mut a), -EBADF);
        assert_eq!(vmspace_arena_free(va, b, page), -EBADF);
        assert_eq!(vmspace_arena_destroy(va), -EBADF);
    }
    // The VM is untouched.
    assert_eq!(info(vm), before);
    assert_eq!(is_mapped(vm, b, page), 1);
    assert!(all(b, page, 0x5a));
    assert_eq!(check(vm), 0);
    // SAFETY: a live arena nobody else uses.
    assert_eq!(unsafe { vmspace_arena_destroy(arena) }, 0);
    destroy(vm);
}

#[test]
fn storage_that_is_not_a_vm_is_ebadf() {
    // Zeroed storage, storage holding some other VM's magic-like word, and
    // a misaligned pointer into a live VM object.
    let zero = [0usize; 8];
    let zp = zero.as_ptr() as *mut vmspace_vm_t;
    let vm = create(1 << 20, 0);
    let mut copy = [0usize; 64];
    // A copy of a live VM's first bytes, elsewhere: its magic word is tied
    // to its own address, so the copy is not a VM.
    // SAFETY: the VM object is at least one word long and readable.
    copy[0] = unsafe { (vm as *const usize).read() };
    let cp = copy.as_mut_ptr() as *mut vmspace_vm_t;
    let misaligned = (vm as usize + 1) as *mut vmspace_vm_t;
    let mut i = vmspace_vm_info::default();
    for p in [zp, cp, misaligned] {
        // SAFETY: each points to readable storage of at least a word (or
        // is misaligned, which is refused before reading).
        unsafe {
            assert_eq!(vmspace_vm_map(p, base(vm), 4096), -EBADF, "{p:?}");
            assert_eq!(vmspace_vm_mapped(p, base(vm), 4096), -EBADF);
            assert_eq!(vmspace_vm_info(p, &mut i), -EBADF);
            assert_eq!(vmspace_vm_trim(p), -EBADF);
            assert_eq!(vmspace_vm_check(p), -EBADF);
            assert_eq!(vmspace_vm_destroy(p), -EBADF);
        }
    }
    assert_eq!(check(vm), 0);
    destroy(vm);
}
