//! Threads, replacements racing allocations, limits and waits, the largest values, vmem(9) over pages.

use super::*;

/// Quantum caches over pages under several threads: every object is
/// mapped for its size and handed to one thread at a time (stamps survive
/// until freed), while another thread reclaims and checks.
#[test]
fn quantum_caches_threads() {
    let pg = page();
    for &(quantum, qmax) in &[(16usize, 128usize), (pg, 8 * pg)] {
        let a = P(arena("qcache", quantum, qmax, 0));
        assert_eq!(set_vm(a.0, 64 << 20), 0);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = 4;
        let bar = Arc::new(Barrier::new(threads + 1));
        let mut hs = Vec::new();
        for t in 0..threads {
            let bar = bar.clone();
            hs.push(std::thread::spawn(move || {
                let a = a;
                let mut rng = Rng(0x1234_5678 + t as u64);
                let mut live: Vec<(usize, usize, u8)> = Vec::new();
                bar.wait();
                for i in 0..3000u32 {
                    if live.len() < 48 && rng.below(3) != 0 {
                        let size = if rng.below(8) == 0 {
                            1 + rng.below(3 * pg as u64) as usize
                        } else {
                            1 + rng.below(qmax as u64) as usize
                        };
                        let x = alloc(a.0, size, 0).unwrap();
                        let stamp = ((t as u32 * 61 + i) % 255 + 1) as u8;
                        fill(x, size, stamp);
                        live.push((x, size, stamp));
                    } else if !live.is_empty() {
                        let k = rng.below(live.len() as u64) as usize;
                        let (x, size, stamp) = live.swap_remove(k);
                        assert!(holds(x, size, stamp), "object changed under its owner");
                        free(a.0, x, size);
                    }
                }
                for (x, size, stamp) in live {
                    assert!(holds(x, size, stamp));
                    free(a.0, x, size);
                }
            }));
        }
        let stop2 = stop.clone();
        let reclaimer = std::thread::spawn(move || {
            let a = a;
            let mut n = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                // SAFETY: a live arena.
                assert!(unsafe { vmspace_arena_reclaim(a.0) } >= 0);
                check(a.0);
                n += 1;
                std::thread::yield_now();
            }
            n
        });
        bar.wait();
        for h in hs {
            h.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        reclaimer.join().unwrap();
        // SAFETY: a live arena.
        unsafe { vmspace_arena_reclaim(a.0) };
        consistent(a.0);
        destroy(a.0);
    }
}

/// set_vm, set_vm(0) and set_import racing allocations: whatever source is
/// in place, every allocation that succeeds is mapped for its size and
/// keeps its contents; replacements are only -EBUSY or taken.
#[test]
fn replacements_racing_allocations() {
    let pg = page();
    let a = P(arena("race", pg, 0, 0));
    assert_eq!(set_vm(a.0, 1 << 20), 0);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut hs = Vec::new();
    for t in 0..2u64 {
        let stop = stop.clone();
        let ok = ok.clone();
        hs.push(std::thread::spawn(move || {
            let a = a;
            let mut rng = Rng(99 + t);
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) || i < 200 {
                i += 1;
                let size = 1 + rng.below(4 * pg as u64) as usize;
                match alloc(a.0, size, 0) {
                    Ok(x) => {
                        fill(x, size, (i % 250 + 1) as u8);
                        std::thread::yield_now();
                        assert!(holds(x, size, (i % 250 + 1) as u8));
                        free(a.0, x, size);
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => assert_eq!(e, -ENOMEM),
                }
                if i > 20_000 {
                    break;
                }
            }
        }));
    }
    let mut rng = Rng(5);
    for _ in 0..400 {
        let r = match rng.below(4) {
            0 => set_vm(a.0, 0),
            // SAFETY: a live arena.
            1 => unsafe { vmspace_arena_set_import(a.0, None, None, null_mut(), 0) },
            _ => set_vm(a.0, (1 + rng.below(64) as usize) * pg),
        };
        assert!(r == 0 || r == -EBUSY, "{r}");
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().unwrap();
    }
    check(a.0);
    if let Ok(i) = vm_info(a.0) {
        assert_eq!(i.mapped, sizes(a.0).imported);
    }
    assert_eq!(sizes(a.0).imported, 0);
    destroy(a.0);
}

/// The limit holds imports of pages: a limit below a page lets no import
/// through for a byte-quantum arena (imports are whole pages), a waiting
/// allocation gets mapped memory when the limit is raised, and another
/// when a free makes room.
#[test]
fn limits_and_waits() {
    let pg = page();
    let a = P(arena("limit", 16, 0, 0));
    assert_eq!(set_vm(a.0, 64 * pg), 0);
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_set_limit(a.0, pg / 2) }, 0);
    assert_eq!(alloc(a.0, 16, 0), Err(-ENOMEM), "an import is a page, above the limit");
    assert_eq!(mapped(a.0), 0);
    let waiter = std::thread::spawn(move || {
        let a = a;
        let x = alloc(a.0, 3 * pg, VMSPACE_WAIT).unwrap();
        fill(x, 3 * pg, 4);
        x
    });
    // SAFETY: a live arena.
    assert_eq!(unsafe { vmspace_arena_set_limit(a.0, 3 * pg) }, 0);
    let x = waiter.join().unwrap();
    assert!(holds(x, 3 * pg, 4));
    consistent(a.0);
    // Full under the limit: a waiter gets the space once it is freed.
    let waiter = std::thread::spawn(move || {
        let a = a;
        let y = alloc(a.0, 2 * pg, VMSPACE_WAIT).unwrap();
        fill(y, 2 * pg, 5);
        y
    });
    free(a.0, x, 3 * pg);
    let y = waiter.join().unwrap();
    assert!(holds(y, 2 * pg, 5));
    consistent(a.0);
    // A timed wait for more than the limit gives -ETIMEDOUT, never -ENOMEM.
    let mut z = 0;
    // SAFETY: a live arena, a writable out pointer.
    let r = unsafe { vmspace_arena_alloc_timed(a.0, 2 * pg, 0, 1_000_000, &mut z) };
    assert_eq!(r, -110);
    free(a.0, y, 2 * pg);
    consistent(a.0);
    assert_eq!(mapped(a.0), 0);
    // set_vm wakes a waiter of an arena that had no source.
    let b = P(arena("nosrc", pg, 0, 0));
    let waiter = std::thread::spawn(move || {
        let b = b;
        let x = alloc(b.0, pg, VMSPACE_WAIT).unwrap();
        fill(x, pg, 6);
        x
    });
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(set_vm(b.0, 4 * pg), 0);
    let x = waiter.join().unwrap();
    free(b.0, x, pg);
    destroy(b.0);
    destroy(a.0);
}

/// The largest values: set_vm(SIZE_MAX) and sizes whose bookkeeping does
/// not fit fail and change nothing (the VM in place stays, with its
/// contents); a huge allocation fails with no space or overflow and
/// changes nothing; a large VM (address space only) is usable if taken.
#[test]
fn largest_values() {
    let pg = page();
    let a = arena("huge", pg, 0, 0);
    assert_eq!(set_vm(a, 16 * pg), 0);
    let before = vm_info(a).unwrap();
    for &size in &[usize::MAX, usize::MAX - pg + 1, usize::MAX - 2 * pg, 1usize << 63, 1 << 62] {
        let r = set_vm(a, size);
        assert!(r == -EOVERFLOW || r == -ENOMEM, "set_vm({size:#x}) = {r}");
        assert_eq!(vm_info(a).unwrap(), before, "a failed set_vm changes nothing");
    }
    let x = alloc(a, pg, 0).unwrap();
    fill(x, pg, 8);
    for &size in &[usize::MAX, usize::MAX - pg, 1usize << 63, 17 * pg] {
        for &flags in &[0, VMSPACE_TOP, VMSPACE_BESTFIT, VMSPACE_FIRSTFIT, VMSPACE_NEXTFIT] {
            let r = alloc(a, size, flags);
            assert!(r == Err(-ENOMEM) || r == Err(-EOVERFLOW), "alloc({size:#x}) = {r:?}");
        }
        let r = xalloc(a, size, 0, 0, 0, 0, 0, 0);
        assert!(r == Err(-ENOMEM) || r == Err(-EOVERFLOW), "xalloc({size:#x}) = {r:?}");
    }
    let r = xalloc(a, pg, 1 << 62, 0, 0, 0, 0, 0);
    assert!(r == Err(-ENOMEM) || r == Err(-EOVERFLOW), "{r:?}");
    assert!(holds(x, pg, 8));
    consistent(a);
    free(a, x, pg);
    consistent(a);
    assert_eq!(mapped(a), 0);
    // A large VM: 2^44 bytes of address space.
    let big = arena("big", pg, 0, 0);
    match set_vm(big, 1 << 44) {
        0 => {
            let i = vm_info(big).unwrap();
            assert_eq!(i.size, 1 << 44);
            let x = alloc(big, 1 << 20, VMSPACE_TOP).unwrap();
            fill(x, 1 << 20, 3);
            consistent(big);
            free(big, x, 1 << 20);
            consistent(big);
        }
        r => assert_eq!(r, -ENOMEM),
    }
    destroy(big);
    destroy(a);
}

/// The vmem(9) calls over an arena of pages: allocations mapped, frees
/// unmapping, sizes, a windowed xalloc that cannot import, vmem_set_import
/// replacing the VM only when nothing is imported, vmem_destroy releasing
/// it; an arena in caller storage (vmem_init) as well.
#[test]
fn vmem_over_pages() {
    let pg = page();
    let name = c"vmem-pages";
    // SAFETY: a NUL-terminated name.
    let vm = unsafe { vmem_create(name.as_ptr(), 0, 0, pg, 0, 0) };
    assert!(!vm.is_null());
    let a = vm.cast::<vmspace_arena_t>();
    assert_eq!(set_vm(a, 1 << 20), 0);
    let mut x = 0;
    // SAFETY: a live arena, a writable out pointer.
    assert_eq!(unsafe { vmem_alloc(vm, 3 * pg - 5, M_NOWAIT, &mut x) }, 0);
    fill(x, 3 * pg - 5, 1);
    let mut y = 0;
    // SAFETY: as above.
    let r = unsafe { vmem_xalloc(vm, 5 * pg, 4 * pg, pg, 0, 0, VMEM_ADDR_MAX, M_NOWAIT, &mut y) };
    assert_eq!(r, 0);
    assert_eq!(y % (4 * pg), pg);
    fill(y, 5 * pg, 2);
    consistent(a);
    // SAFETY: a live arena.
    let used = unsafe { vmem_size(vm, VMEM_ALLOC | VMEM_FREE) };
    assert_eq!(used, sizes(a).total);
    // A window below the VM: no import, no space.
    let mut z = 0;
    // SAFETY: as above.
    assert_eq!(unsafe { vmem_xalloc(vm, pg, 0, 0, 0, 0, pg * 16 - 1, M_NOWAIT, &mut z) }, ENOMEM);
    // Busy: vmem_set_import leaves the VM.
    // SAFETY: a live arena.
    unsafe { vmem_set_import(vm, None, None, null_mut(), 0) };
    assert!(vm_info(a).is_ok(), "refused while imported spans are held");
    assert!(holds(x, 3 * pg - 5, 1) && holds(y, 5 * pg, 2));
    // SAFETY: live arena, the sizes allocated.
    unsafe {
        vmem_free(vm, x, 3 * pg - 5);
        vmem_xfree(vm, y, 5 * pg);
    }
    // SAFETY: a live arena.
    unsafe { vmspace_arena_reclaim(a) };
    consistent(a);
    assert_eq!(mapped(a), 0);
    // SAFETY: a live arena.
    unsafe { vmem_set_import(vm, None, None, null_mut(), 0) };
    assert_eq!(vm_info(a), Err(-EINVAL));
    assert_eq!(set_vm(a, 1 << 20), 0);
    // SAFETY: as above.
    assert_eq!(unsafe { vmem_alloc(vm, pg, M_NOWAIT, &mut x) }, 0);
    fill(x, pg, 3);
    // SAFETY: destroyed with a live allocation.
    unsafe { vmem_destroy(vm) };

    // In caller storage.
    let mut storage: Box<core::mem::MaybeUninit<vmem_t>> = Box::new_uninit();
    let sp = storage.as_mut_ptr();
    // SAFETY: storage of sizeof(vmem_t), a NUL-terminated name.
    let v = unsafe { vmem_init(sp, name.as_ptr(), 0, 0, pg, 0, 0) };
    assert_eq!(v, sp);
    let a = v.cast::<vmspace_arena_t>();
    assert_eq!(set_vm(a, 1 << 20), 0);
    // SAFETY: as above.
    assert_eq!(unsafe { vmem_alloc(v, 2 * pg, M_NOWAIT, &mut x) }, 0);
    fill(x, 2 * pg, 4);
    // SAFETY: a live arena in our storage.
    unsafe { vmem_destroy(v) };
    assert_eq!(vm_info(a), Err(-EBADF), "destroyed arena in caller storage");
    assert_eq!(set_vm(a, pg), -EBADF);
}
