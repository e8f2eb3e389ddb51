//! The VM arena driven through failures part way.

use super::*;

/// The recorded tract of each tract of `arena` (`None`: free).
pub(crate) fn tracts<P: PageOps>(arena: &VmArena<P>) -> Vec<Option<(Owner, Protection)>> {
    let page = arena.page_size().0;
    (0..arena.tracts())
        .map(|t| arena.tract(Addr(arena.base().0 + t * page)).map(|x| (x.owner, x.prot)))
        .collect()
}

// HOLDS: random operations on a VM arena (allocate, free, protect part
// of a grant, purge, change the spare bound) over random part-way faults:
// `check()` and `tracts_agree` after every step; an error other than
// `RollbackFailed` leaves every tract's record as it was and, until the
// first `RollbackFailed`, every allocated tract's page exactly as
// recorded.
#[test]
pub(crate) fn vm_arena_backend_errors_restore_exactly() {
    let mut rollbacks = 0;
    let mut backend = 0;
    for seed in 1..=12u64 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let f = FaultInjector::new(&sim);
        let config = VmArenaConfig::new(Size(256 * PAGE)).zone_shift(10).spare_limit(8);
        let mut arena = VmArena::new(&f, config).unwrap();
        f.set_shape(FaultShape::PartWay);
        f.fail_randomly(seed * 77, 250_000);
        let mut rng = Rng::new(seed);
        let mut grants: Vec<(Range, Owner)> = Vec::new();
        let mut exact = true;
        let probe = |a| prot(&sim, a);
        for step in 0..300 {
            let before = tracts(&arena);
            let kind = if grants.is_empty() { 0 } else { rng.below(6) };
            let res = match kind {
                0 | 1 => {
                    let owner = Owner(1 + rng.below(3) as u32);
                    let req = Request::new(Pages(1 + rng.below(8)), owner);
                    arena.alloc(&req).map(|g| grants.push((g.range, owner)))
                }
                2 => {
                    let i = rng.below(grants.len());
                    let (r, o) = grants[i];
                    let res = arena.free(r, o);
                    if res.is_ok() {
                        grants.swap_remove(i);
                    }
                    res
                }
                3 | 4 => {
                    let (r, o) = grants[rng.below(grants.len())];
                    let n = r.size().0 / PAGE;
                    let first = rng.below(n);
                    let len = 1 + rng.below(n - first);
                    let p =
                        [Protection::None, Protection::Read, Protection::ReadWrite][rng.below(3)];
                    arena.protect(sub(r, first, len, PAGE), o, p)
                }
                _ if rng.below(2) == 0 => arena.purge_spare().map(drop),
                _ => arena.set_spare_limit(rng.below(10)),
            };
            let what = format!("seed {seed} step {step} kind {kind}: {res:?}");
            arena.check().unwrap_or_else(|e| panic!("{what}: {e}"));
            pages::tracts_agree(&arena, false, &probe).unwrap_or_else(|e| panic!("{what}: {e}"));
            match res {
                Err(VmArenaError::RollbackFailed { .. }) => {
                    rollbacks += 1;
                    exact = false;
                }
                Err(e) => {
                    backend += usize::from(e.backend().is_some());
                    assert_eq!(tracts(&arena), before, "{what}");
                }
                Ok(()) => {}
            }
            if exact {
                pages::tracts_agree(&arena, true, &probe).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
    }
    assert!(backend > 50 && rollbacks > 3, "{backend} backend errors, {rollbacks} rollbacks");
}

// DEFECT: `VmArenaError`: "A failing operation leaves the arena as it was
// before the call: ... the same pages committed; except after
// `RollbackFailed`". An allocation over fresh, spare, fresh tracts maps
// the first fresh run, fails to map the second, and then fails to unmap
// the first again (`commit_tracts`, src/vmarena/ops.rs:352-353, then
// `uncommit_marked`, ops.rs:373-381: the pages "stay committed, free:
// spare"): one more page is committed and spare, yet
// the error is the plain `Vm(Backend)` of the failed map, not
// `RollbackFailed`.
#[test]
pub(crate) fn a_failed_alloc_that_keeps_pages_committed_says_rollback_failed() {
    let mut wrong = Vec::new();
    for n in 1..=6 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PAGE).unwrap();
        let inner = FaultInjector::new(&sim);
        let outer = FaultInjector::new(&inner);
        let config = VmArenaConfig::new(Size(64 * PAGE)).zone_shift(10).spare_limit(1);
        let mut arena = VmArena::new(&outer, config).unwrap();
        let o = Owner(1);
        let keep = arena.alloc(&Request::new(Pages(1), o)).unwrap().range; // t0
        let x = arena.alloc(&Request::new(Pages(1), o)).unwrap().range; // t1
        let y = arena.alloc(&Request::new(Pages(1), o)).unwrap().range; // t2
        let z = arena.alloc(&Request::new(Pages(1), o)).unwrap().range; // t3
        arena.free(y, o).unwrap(); // spare
        arena.free(x, o).unwrap(); // decommitted: the spare bound is 1
        arena.free(z, o).unwrap();
        assert_eq!(arena.spare().0, PAGE);
        let (committed, spare) = (arena.committed(), arena.spare());
        outer.only(&[vmspace_shim::Op::Map]);
        outer.fail_nth(n);
        inner.only(&[vmspace_shim::Op::Unmap]);
        inner.fail_nth(1);
        let res = arena.alloc(&Request::new(Pages(3), o));
        outer.clear();
        inner.clear();
        arena.check().unwrap();
        let changed = (arena.committed(), arena.spare()) != (committed, spare);
        match res {
            Err(VmArenaError::RollbackFailed { .. }) | Ok(_) => {}
            Err(e) if changed => wrong.push(format!(
                "map {n} failing: {e:?}, committed {committed} -> {}, spare {spare} -> {}",
                arena.committed(),
                arena.spare()
            )),
            Err(_) => {}
        }
        let _ = keep;
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

// HOLDS: a VM arena over the mmap backend with part-way faults injected
// above it: after every step every allocated tract recorded read-write is
// written, and every one recorded read-only is read (a tract recorded
// more open than its page would kill the test with SIGSEGV).
#[test]
pub(crate) fn vm_arena_over_mmap_tracts_are_as_open_as_recorded() {
    let mmap = MmapBackend::new();
    let page = mmap.page_size().0;
    let f = FaultInjector::new(mmap);
    let config =
        VmArenaConfig::new(Size(256 * page)).zone_shift(page.trailing_zeros() + 2).spare_limit(8);
    let mut arena = VmArena::new(&f, config).unwrap();
    f.set_shape(FaultShape::PartWay);
    f.fail_randomly(1234, 250_000);
    let mut rng = Rng::new(77);
    let mut grants: Vec<Range> = Vec::new();
    let o = Owner(1);
    for step in 0..400 {
        let kind = if grants.is_empty() { 0 } else { rng.below(5) };
        let res = match kind {
            0 | 1 => arena.alloc(&Request::new(Pages(1 + rng.below(8)), o)).map(|g| {
                grants.push(g.range);
            }),
            2 => {
                let i = rng.below(grants.len());
                let res = arena.free(grants[i], o);
                if res.is_ok() {
                    grants.swap_remove(i);
                }
                res
            }
            3 => {
                let r = grants[rng.below(grants.len())];
                let p = [Protection::None, Protection::Read, Protection::ReadWrite][rng.below(3)];
                arena.protect(r, o, p)
            }
            _ => arena.purge_spare().map(drop),
        };
        arena.check().unwrap_or_else(|e| panic!("step {step}: {res:?}: {e}"));
        for t in 0..arena.tracts() {
            let a = Addr(arena.base().0 + t * page);
            let ptr = a.as_ptr::<u8>();
            match arena.tract(a).map(|x| x.prot) {
                // SAFETY: recorded read-write: committed and writable
                // (what we check); the arena's client memory is ours.
                Some(Protection::ReadWrite) => unsafe {
                    ptr.write_volatile(ptr.read_volatile().wrapping_add(1))
                },
                // SAFETY: recorded read-only: readable (what we check).
                Some(Protection::Read) => unsafe {
                    ptr.read_volatile();
                },
                _ => {}
            }
        }
    }
    assert!(f.changed_part_way() > 10, "{}", f.changed_part_way());
}
