// SPDX-License-Identifier: MIT OR Apache-2.0

//! Cases on the core's chunk map (per-chunk state of a large sparse space in
//! a lazily mapped two-level table) over a kernel page backend, on one
//! thread and on several racing kernel threads.
//!
//! A thread that finds a chunk claimed by another waits for it through the
//! backend's `PageOps::relax` (`cond_resched()`): a kernel without
//! involuntary preemption (UML here) would otherwise let the waiter spin in
//! front of a claimant that sleeps in the backend.

use core::sync::atomic::{AtomicUsize, Ordering};

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig, ChunkState};
use vmspace_workload::{chunkmap_ops, Rng};
use vmspace_shim::{Addr, FaultInjector, FaultShape, Op, PageOps, Range, Size};

use crate::outcome::{ensure, Context, Failure, Outcome};
use crate::threads::run_threads;
use crate::touch::{stamp_pages, verify_pages};

fn range(base: Addr, offset: usize, size: usize) -> Result<Range, Failure> {
    Range::from_size(Addr(base.0 + offset), Size(size)).context("range")
}

/// `ensure_mapped` maps exactly the chunks a range touches, once; mapped
/// chunks hold what is written to them; `is_mapped` and `state` agree.
pub fn ensure_mapped<P: PageOps>(ops: P) -> Outcome {
    let page = ops.page_size();
    let map = ChunkMap::new(ops, ChunkMapConfig::new(Size(64 << 20), Size(256 << 10))).context("ChunkMap::new")?;
    let base = map.space().base();
    let r = range(base, 100, 300 << 10)?;
    map.ensure_mapped(r).context("ensure_mapped")?;
    ensure(map.committed_chunks() == 2, "not exactly the two chunks touched were mapped")?;
    ensure(map.is_mapped(r.base()) && map.is_mapped(Addr(r.limit().0 - 1)), "a touched chunk is not mapped")?;
    ensure(map.state(Addr(base.0 + (1 << 20))) == Some(ChunkState::Unmapped), "an untouched chunk is mapped")?;
    let chunks = range(base, 0, 512 << 10)?;
    // SAFETY: the two chunks are mapped read-write and ours alone.
    unsafe {
        stamp_pages(chunks, page, 11);
    }
    map.ensure_mapped(r).context("ensure_mapped again")?;
    ensure(map.committed_chunks() == 2, "mapping again changed the count")?;
    // SAFETY: still mapped: ensure_mapped maps only what is missing.
    unsafe { verify_pages(chunks, page, Some(11)) }?;
    map.check().context("check")
}

/// Quarantined chunks are reserved, not committed; `unmap` returns chunks
/// of every state to unmapped and `trim` gives back the table pages.
pub fn quarantine_unmap_trim<P: PageOps>(ops: P) -> Outcome {
    let mut map = ChunkMap::new(ops, ChunkMapConfig::new(Size(128 << 20), Size(64 << 10))).context("ChunkMap::new")?;
    let base = map.space().base();
    let q = range(base, 0, 1 << 20)?;
    let m = range(base, 64 << 20, 1 << 20)?;
    let before = map.metadata_mapped();
    map.quarantine(q).context("quarantine")?;
    map.ensure_mapped(m).context("ensure_mapped")?;
    ensure(map.state(q.base()) == Some(ChunkState::Quarantined), "quarantined chunk has the wrong state")?;
    ensure(!map.is_mapped(q.base()), "a quarantined chunk reads as mapped")?;
    ensure(map.committed_chunks() == 16, "wrong number of committed chunks")?;
    let census = map.census();
    ensure(census[ChunkState::Quarantined as usize] == 16, "census: quarantined")?;
    ensure(census[ChunkState::Mapped as usize] == 16, "census: mapped")?;
    map.check().context("check")?;
    map.unmap(q).context("unmap the quarantined chunks")?;
    map.unmap(m).context("unmap the mapped chunks")?;
    ensure(map.committed_chunks() == 0, "chunks left committed")?;
    let given = map.trim().context("trim")?;
    ensure(given > 0, "trim gave nothing back")?;
    ensure(map.metadata_mapped() == before, "table pages left mapped after trim")?;
    map.check().context("check after trim")
}

/// A space of `space` bytes (at least 128 MiB) in 4 MiB chunks: scattered
/// ranges are mapped and touched, then all of it is unmapped.
pub fn sparse_space<P: PageOps>(ops: P, space: usize) -> Outcome {
    let page = ops.page_size();
    let stride = space / 8;
    ensure(stride >= 16 << 20, "space too small for this case")?;
    let mut map = ChunkMap::new(ops, ChunkMapConfig::new(Size(space), Size(4 << 20))).context("ChunkMap::new")?;
    let base = map.space().base();
    for i in 0..8 {
        let r = range(base, i * stride + (i << 20), 3 << 20)?;
        map.ensure_mapped(r).context("ensure_mapped")?;
        // SAFETY: `r` lies in chunks just mapped read-write; ours alone.
        unsafe {
            let pages = Range::new(r.base().align_down(page).context("align")?, r.limit().align_up(page).context("align")?)
                .ok_or(Failure::new("empty range"))?;
            stamp_pages(pages, page, i as u64);
            verify_pages(pages, page, Some(i as u64))?;
        }
    }
    map.check().context("check")?;
    let all = map.space();
    map.unmap(all).context("unmap everything")?;
    ensure(map.committed_chunks() == 0, "chunks left committed")?;
    map.trim().context("trim")?;
    map.check().context("check after unmap")
}

/// A failing backend call leaves every chunk as it was; then protect works
/// (`strict`: a backend that changes protection) or, on a backend that
/// cannot, is refused without changing anything.
pub fn faults<P: PageOps>(ops: P, strict: bool) -> Outcome {
    let fi = FaultInjector::new(ops);
    let mut map = ChunkMap::new(&fi, ChunkMapConfig::new(Size(64 << 20), Size(64 << 10))).context("ChunkMap::new")?;
    let base = map.space().base();
    // Far apart: each needs its own leaf page as well as its chunks.
    let rs = [range(base, 0, 256 << 10)?, range(base, 48 << 20, 128 << 10)?];
    let mut failures = 0;
    for n in 1..=6 {
        for r in rs {
            let census = map.census();
            fi.only(&[Op::Map]);
            fi.fail_nth(n);
            let result = map.ensure_mapped(r);
            fi.clear();
            match result {
                Ok(()) => {}
                Err(_) => {
                    failures += 1;
                    ensure(map.census() == census, "a failed ensure_mapped changed chunk states")?;
                }
            }
            map.check().context("check after a fault")?;
        }
    }
    ensure(failures > 0, "no injected fault was reached")?;
    map.ensure_mapped(rs[0]).context("ensure_mapped before protect")?;
    let census = map.census();
    if strict {
        // A protect and an unmap failing part way (a prefix of the run's
        // pages changed first, as `mprotect` may in user space): the map
        // puts the prefix back, so every chunk is still mapped and
        // writable, which the stamps check (a page left inaccessible would
        // fault here).
        let page = fi.page_size();
        for (i, op) in [Op::Protect, Op::Unmap].into_iter().enumerate() {
            let before = fi.changed_part_way();
            fi.only(&[op]);
            fi.set_shape(FaultShape::PartWay);
            fi.fail_nth(1);
            let result = if op == Op::Protect { map.protect(rs[0]) } else { map.unmap(rs[0]) };
            let changed = fi.changed_part_way() - before;
            fi.clear();
            ensure(result.is_err(), "a call failing part way succeeded")?;
            ensure(changed == 1, "the call did not fail part way")?;
            ensure(map.census() == census, "a call failing part way changed chunk states")?;
            let salt = 40 + i as u64;
            // SAFETY: rs[0]'s chunks are mapped read-write (the census
            // says so, and the pages must agree) and this test's alone.
            unsafe { stamp_pages(rs[0], page, salt) };
            // SAFETY: as above.
            unsafe { verify_pages(rs[0], page, Some(salt)) }?;
        }
        map.protect(rs[0]).context("protect")?;
        ensure(map.state(rs[0].base()) == Some(ChunkState::Protected), "a protected chunk is not protected")?;
        map.unprotect(rs[0]).context("unprotect")?;
        ensure(map.census() == census, "protect and unprotect did not restore the chunk states")?;
    } else {
        ensure(map.protect(rs[0]).is_err(), "a backend that cannot protect accepted protect")?;
        ensure(map.census() == census, "a refused protect changed chunk states")?;
    }
    map.check().context("final check")
}

/// The core's own seeded chunk map sequence (`workload::chunkmap_ops`, the
/// one the user-space property tests and fuzz targets drive) against its
/// model, with `check()` after every step. `strict` (a backend that changes
/// page protection: the built-in sparse one) runs it exactly as user space
/// does; otherwise (the module's committed backend) a protect the backend
/// refuses must leave every chunk as it was.
pub fn shared_sequence<P: PageOps>(ops: P, seed: u64, steps: usize, strict: bool) -> Outcome {
    let mut map = ChunkMap::new(ops, ChunkMapConfig::new(Size(64 << 20), Size(256 << 10))).context("ChunkMap::new")?;
    let stats = chunkmap_ops::run::<_, 256>(&mut map, seed, steps, !strict).context("chunkmap_ops::run")?;
    ensure(stats.succeeded > steps / 4, "too few operations succeeded")?;
    ensure(stats.rejected > 0, "no bad operation was generated")?;
    map.check().context("final check")
}

/// Four kernel threads race `ensure_mapped` on overlapping ranges of 256
/// chunks, touching every chunk of each range right after (a chunk the map
/// calls mapped but is not would fault; one mapped twice is refused by the
/// backend, failing the call). At the end exactly the 256 chunks are
/// committed, each holds the count of touches, and `check()` passes.
pub fn racing_threads<P: PageOps + Sync>(ops: P) -> Outcome {
    const CHUNK: usize = 64 << 10;
    const CHUNKS: usize = 256;
    let map = ChunkMap::new(ops, ChunkMapConfig::new(Size(64 << 20), Size(CHUNK))).context("ChunkMap::new")?;
    let base = map.space().base().0;
    let touches = AtomicUsize::new(0);
    let ok = run_threads(4, |t| {
        let mut rng = Rng::new(0xc4a5 + t as u64);
        let mut ranges = (0..150).map(|_| {
            let first = rng.below(CHUNKS);
            (first, rng.between(1, 24).min(CHUNKS - first))
        });
        ranges.all(|(first, n)| {
            let Ok(r) = Range::from_size(Addr(base + first * CHUNK), Size(n * CHUNK)) else { return false };
            if map.ensure_mapped(r).is_err() {
                return false;
            }
            for c in first..first + n {
                // SAFETY: the chunk is mapped read-write (just ensured) and
                // stays mapped; every access to its first word is atomic.
                let word = unsafe { &*((base + c * CHUNK) as *const AtomicUsize) };
                word.fetch_add(1, Ordering::Relaxed);
                touches.fetch_add(1, Ordering::Relaxed);
            }
            true
        }) && map.ensure_mapped(Range::from_size(Addr(base), Size(CHUNKS * CHUNK)).unwrap_or(Range::empty(Addr(base)))).is_ok()
    });
    ensure(ok, "a thread's ensure_mapped failed (a chunk mapped twice?)")?;
    map.check().context("check")?;
    ensure(map.committed_chunks() == CHUNKS, "not exactly the 256 chunks touched are committed")?;
    let mut sum = 0;
    for c in 0..CHUNKS {
        // SAFETY: mapped (checked above), and no thread writes any more.
        sum += unsafe { &*((base + c * CHUNK) as *const AtomicUsize) }.load(Ordering::Relaxed);
    }
    ensure(sum == touches.load(Ordering::Relaxed), "a touch was lost: a chunk was mapped afresh under a writer")
}
