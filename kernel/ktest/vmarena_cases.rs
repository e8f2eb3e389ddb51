// SPDX-License-Identifier: MIT OR Apache-2.0

//! Cases on the core's VM arena (tracts in one large reservation, a page
//! table mapped only while in use, zones, a commit limit, spare pages) over a
//! kernel page backend.

use vmspace::arena::{Arena, Policy};
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError, ZoneSet};
use vmspace_workload::{vmarena_ops, Rng};
use vmspace_shim::{FaultInjector, FaultShape, Op, PageOps, Pages, Protection, Range, Size};

use crate::outcome::{ensure, Context, Outcome};
use crate::touch::{stamp_pages, verify_pages};

/// 1024 tracts in zones of 16 pages (64 zones).
fn config(page: Size) -> VmArenaConfig {
    VmArenaConfig::new(Size(1024 * page.0)).zone_shift(page.0.trailing_zeros() + 4)
}

/// Allocate, look up and free tracts: tables are mapped only while they
/// describe an allocated tract, spare pages are kept up to the bound.
pub fn basic<P: PageOps>(ops: P) -> Outcome {
    let page = ops.page_size();
    let mut a = VmArena::new(ops, config(page).spare_limit(8)).context("VmArena::new")?;
    ensure(a.table_pages_mapped() == 0, "an empty VM arena has table pages mapped")?;
    let g = a.alloc(&Request::new(Pages(4), Owner(7)).prefer(ZoneSet::single(3))).context("alloc")?;
    ensure(!g.fell_back(), "a free preferred zone was not used")?;
    ensure(a.zone_of(g.range.base()) == 3, "allocation not in the preferred zone")?;
    ensure(a.tract(g.range.base()).map(|t| t.owner) == Some(Owner(7)), "tract owner not recorded")?;
    // SAFETY: granted tracts are committed read-write and ours alone.
    unsafe {
        stamp_pages(g.range, page, 7);
        verify_pages(g.range, page, Some(7))?;
    }
    ensure(a.free(g.range, Owner(8)).is_err(), "free by the wrong owner accepted")?;
    a.free(g.range, Owner(7)).context("free")?;
    ensure(a.spare() == Size(4 * page.0), "freed tracts not kept as spare")?;
    ensure(a.table_pages_mapped() == 0, "table pages left mapped with nothing allocated")?;
    ensure(a.free(g.range, Owner(7)).is_err(), "double free accepted")?;
    let purged = a.purge_spare().context("purge_spare")?;
    ensure(purged == 4 && a.spare() == Size(0), "spare pages not purged")?;
    a.check().context("check")
}

/// Preferred zones are used while they have room; avoided zones only when
/// nothing else is left, and the grant says so.
pub fn zones<P: PageOps>(ops: P) -> Outcome {
    let page = ops.page_size();
    let mut a = VmArena::new(ops, config(page)).context("VmArena::new")?;
    // The arena need not start on a stripe boundary; the stripe five after
    // the first one lies wholly inside it and holds 16 tracts.
    let z0 = a.zone_of(a.base());
    let zone = |k: u32| (z0 + k) % 64;
    let five = ZoneSet::single(zone(5));
    for _ in 0..4 {
        let g = a.alloc(&Request::new(Pages(4), Owner(1)).prefer(five)).context("alloc in the preferred zone")?;
        ensure(!g.fell_back() && a.zones_of(g.range) == five, "zone preference not honoured")?;
    }
    let g = a.alloc(&Request::new(Pages(4), Owner(1)).prefer(five)).context("alloc past the preferred zone")?;
    ensure(g.fell_back(), "a full preferred zone did not fall back")?;
    let mut allowed = ZoneSet::EMPTY;
    for k in 60..64 {
        allowed = allowed.union(ZoneSet::single(zone(k)));
    }
    let g = a.alloc(&Request::new(Pages(8), Owner(2)).avoid(allowed.complement())).context("alloc avoiding")?;
    ensure(
        a.zones_of(g.range).inter(allowed.complement()).is_empty(),
        "an avoided zone was used while others had room",
    )?;
    a.check().context("check")
}

/// Allocations past the commit limit fail and change nothing.
pub fn commit_limit<P: PageOps>(ops: P) -> Outcome {
    let page = ops.page_size();
    // 10 tracts, one page-table page and one bit-table page.
    let mut a = VmArena::new(ops, config(page).commit_limit(Size(12 * page.0))).context("VmArena::new")?;
    a.alloc(&Request::new(Pages(10), Owner(1))).context("alloc up to the limit")?;
    let before = (a.allocated(), a.committed());
    ensure(
        matches!(a.alloc(&Request::new(Pages(1), Owner(1))), Err(VmArenaError::CommitLimit { .. })),
        "the commit limit was not enforced",
    )?;
    ensure(before == (a.allocated(), a.committed()), "a refused allocation changed the arena")?;
    a.check().context("check")
}

/// A seeded sequence of allocations (random sizes, owners, zones and
/// alignments) and frees, with every granted page written and read back
/// before it is freed and `check()` after every step.
pub fn workload<P: PageOps>(ops: P, seed: u64, steps: usize) -> Outcome {
    let page = ops.page_size();
    let mut a = VmArena::new(ops, config(page).spare_limit(16)).context("VmArena::new")?;
    run(&mut a, seed, steps, false)?;
    ensure(a.allocated() == Size(0), "tracts left allocated")?;
    a.purge_spare().context("purge_spare")?;
    ensure(a.table_pages_mapped() == 0, "table pages left mapped")?;
    a.check().context("final check")
}

/// The same sequence with map and unmap calls failing at random: a failed
/// allocation leaves the arena unchanged.
pub fn workload_with_faults<P: PageOps>(ops: P, seed: u64, steps: usize) -> Outcome {
    let fi = FaultInjector::new(ops);
    let page = fi.page_size();
    let mut a = VmArena::new(&fi, config(page).spare_limit(4)).context("VmArena::new")?;
    fi.only(&[Op::Map]);
    fi.fail_randomly(seed, 100_000);
    run(&mut a, seed, steps, true)?;
    ensure(fi.injected() > 0, "no fault was injected")?;
    fi.clear();
    a.check().context("final check")
}

/// A protect and a free failing part way (the backend changes a prefix of
/// the range first, as `mprotect` may in user space). `strict` (a backend
/// that changes protections): the arena puts the prefix back, so every
/// tract stays owned, recorded read-write and writable, which stamped
/// pages prove (a page left inaccessible would fault). Otherwise (a
/// backend that refuses every protect) a failed free cannot be put back:
/// `RollbackFailed`, the tracts stay owned and are recorded inaccessible
/// (never more open than they may be), and a later free succeeds.
pub fn failed_calls_put_back<P: PageOps>(ops: P, strict: bool) -> Outcome {
    let fi = FaultInjector::new(ops);
    let page = fi.page_size();
    let mut a = VmArena::new(&fi, config(page)).context("VmArena::new")?;
    let g = a.alloc(&Request::new(Pages(8), Owner(3))).context("alloc")?;
    let ops: &[Op] = if strict { &[Op::Protect, Op::Unmap] } else { &[Op::Unmap] };
    for (i, &op) in ops.iter().enumerate() {
        let before = fi.changed_part_way();
        fi.only(&[op]);
        fi.set_shape(FaultShape::PartWay);
        fi.fail_nth(1);
        let result = match op {
            Op::Protect => a.protect(g.range, Owner(3), Protection::None),
            _ => a.free(g.range, Owner(3)),
        };
        let changed = fi.changed_part_way() - before;
        fi.clear();
        a.check().context("check after a call failing part way")?;
        let owned = a.tract(g.range.base()).map(|t| (t.owner, t.prot));
        if strict {
            ensure(result.is_err(), "a call failing part way succeeded")?;
            ensure(changed == 1, "the call did not fail part way")?;
            ensure(!matches!(result, Err(VmArenaError::RollbackFailed { .. })), "the put-back failed")?;
            ensure(owned == Some((Owner(3), Protection::ReadWrite)), "the tracts are not as before")?;
            let salt = 50 + i as u64;
            // SAFETY: the grant is owned and recorded read-write, so its
            // pages must be; ours alone.
            unsafe { stamp_pages(g.range, page, salt) };
            // SAFETY: as above.
            unsafe { verify_pages(g.range, page, Some(salt)) }?;
        } else {
            ensure(matches!(result, Err(VmArenaError::RollbackFailed { .. })), "no RollbackFailed")?;
            ensure(owned == Some((Owner(3), Protection::None)), "the tracts are not recorded inaccessible")?;
        }
    }
    a.free(g.range, Owner(3)).context("free after the failures")?;
    ensure(a.allocated() == Size(0), "tracts left allocated")?;
    a.check().context("final check")
}

/// Drive `steps` seeded operations; frees everything at the end.
fn run<P: PageOps>(a: &mut VmArena<P>, seed: u64, steps: usize, faults: bool) -> Outcome {
    const LIVE: usize = 24;
    let page = a.page_size();
    let mut rng = Rng::new(seed);
    let mut live: [Option<(Range, u32)>; LIVE] = [None; LIVE];
    for _ in 0..steps {
        let slot = rng.below(LIVE);
        match live[slot] {
            Some((r, owner)) => {
                // SAFETY: `r` is a live grant: committed, ours alone.
                unsafe { verify_pages(r, page, Some(u64::from(owner))) }?;
                a.free(r, Owner(owner)).context("free")?;
                live[slot] = None;
            }
            None => {
                let owner = 1 + rng.below(1000) as u32;
                let mut req = Request::new(Pages(1 + rng.below(12)), Owner(owner)).align(Pages(1 << rng.below(3)));
                if rng.chance(500) {
                    req = req.prefer(ZoneSet::single(rng.below(64) as u32));
                }
                let before = (a.allocated(), a.committed(), a.spare());
                match a.alloc(&req) {
                    Ok(g) => {
                        // SAFETY: a fresh grant: committed, ours alone.
                        unsafe { stamp_pages(g.range, page, u64::from(owner)) };
                        live[slot] = Some((g.range, owner));
                    }
                    Err(e) if faults && e.backend().is_some() => {
                        ensure(before == (a.allocated(), a.committed(), a.spare()), "a failed allocation changed the arena")?;
                    }
                    Err(VmArenaError::NoSpace { .. }) => {}
                    Err(e) => return Err(e).context("alloc"),
                }
            }
        }
        a.check().context("check after a step")?;
    }
    for (r, owner) in live.iter().flatten() {
        // SAFETY: as above.
        unsafe { verify_pages(*r, page, Some(u64::from(*owner))) }?;
        a.free(*r, Owner(*owner)).context("free at the end")?;
    }
    Ok(())
}

/// A vmem arena importing its spans from a VM arena: imported tracts are
/// committed and owned by the importer, and go back when the arena is dropped.
pub fn as_source<P: PageOps, Q: PageOps + Clone>(ops: P, meta: Q) -> Outcome {
    let page = ops.page_size();
    let va = VmArena::new(ops, config(page)).context("VmArena::new")?;
    let mut arena = Arena::on_pages("on-vmarena", Size(64), meta, 4096, va).context("Arena::on_pages")?;
    let mut got = [(vmspace_shim::Addr(0), 0usize); 16];
    for (i, slot) in got.iter_mut().enumerate() {
        let size = 64 * (1 + i * 5);
        let at = arena.alloc(Size(size), Policy::BestFit).context("alloc")?;
        ensure(arena.source().is_allocated(at), "allocated memory is not in an allocated tract")?;
        *slot = (at, size);
        // SAFETY: the arena's memory is tracts committed by the VM arena;
        // writing one word at the allocation's start stays inside it.
        unsafe { (at.0 as *mut u64).write_volatile(size as u64) };
    }
    for (at, size) in got {
        // SAFETY: as above; still allocated.
        let v = unsafe { (at.0 as *const u64).read_volatile() };
        ensure(v == size as u64, "imported memory lost what was written")?;
        arena.free(at, Size(size)).context("free")?;
    }
    arena.check().context("arena check")?;
    arena.source().check().context("VM arena check")?;
    Ok(())
}

/// The core's own seeded VM arena sequence (`workload::vmarena_ops`, the one
/// the user-space property tests and fuzz targets drive) against its model,
/// with `check()` after every step. `strict` (a backend that changes page
/// protection: the built-in sparse one) runs it exactly as user space does,
/// every valid operation succeeding; otherwise (the module's committed
/// backend, which no exported function lets change protection) a protect the
/// backend refuses must leave the arena unchanged.
pub fn shared_sequence<P: PageOps>(ops: P, seed: u64, steps: usize, strict: bool) -> Outcome {
    let page = ops.page_size();
    let config = VmArenaConfig::new(Size(256 * page.0)).zone_shift(page.0.trailing_zeros() + 2).spare_limit(8);
    let mut a = VmArena::new(ops, config).context("VmArena::new")?;
    let stats = vmarena_ops::run::<_, 256>(&mut a, seed, steps, !strict).context("vmarena_ops::run")?;
    ensure(stats.succeeded > steps / 4, "too few operations succeeded")?;
    ensure(stats.rejected > 0, "no bad operation was generated")?;
    a.check().context("final check")
}
