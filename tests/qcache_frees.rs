//! What the quantum caches accept as a free, through every door (a thread's
//! `CacheHandle`, shared `CpuCaches`, `SyncArena::free`): exactly the
//! allocations they handed out, with the size they were asked for, once.
//!
//! - Two frees of one object racing each other: exactly one succeeds, on
//!   every pair of paths.
//! - A slab (the caches' own allocation from the arena) cannot be freed by a
//!   caller who never allocated it, whatever size is passed.
//! - A size in the same class as the allocation but not the one asked for is
//!   a bad free, as it is for the arena.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use vmspace::arena::{Arena, ArenaError, Constraints, NoSource, PageStore};
use vmspace::qcache::{QCacheConfig, OBJECTS};
use vmspace::sync::{CacheHandle, CpuCaches, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{CondvarWaiter, MmapBackend, ParkingLock, RseqPin, UserArena, UserCpuCaches};

type Store = PageStore<MmapBackend>;
type Shared = UserArena<Store, NoSource>;

const QUANTUM: usize = 16;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(64 << 20)).unwrap()
}

fn shared() -> Shared {
    let mut a = Arena::new("shared", Size(QUANTUM), store(), store(), NoSource).unwrap();
    a.add(Addr(1 << 40), Size(1 << 30)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(8, store())).unwrap()
}

/// One way to free a cached object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// A `CacheHandle` of the freeing thread's own.
    Handle,
    /// The `CpuCaches` every thread shares.
    PerCpu,
    /// `SyncArena::free`, under the arena lock.
    Arena,
}

const DOORS: [Door; 3] = [Door::Handle, Door::PerCpu, Door::Arena];

struct Doors<'a> {
    shared: &'a Shared,
    cpu: &'a UserCpuCaches<'a, Store, NoSource>,
    handle: CacheHandle<'a, ParkingLock, CondvarWaiter, Store, NoSource>,
}

impl<'a> Doors<'a> {
    fn new(shared: &'a Shared, cpu: &'a UserCpuCaches<'a, Store, NoSource>) -> Self {
        Doors { shared, cpu, handle: CacheHandle::new(shared) }
    }

    fn free(&mut self, door: Door, a: Addr, size: Size) -> Result<(), ArenaError> {
        match door {
            Door::Handle => self.handle.free(a, size),
            Door::PerCpu => self.cpu.free(a, size),
            Door::Arena => self.shared.free(a, size),
        }
    }

    fn alloc(&mut self, door: Door, size: Size) -> Addr {
        match door {
            Door::Handle => self.handle.alloc(size),
            Door::PerCpu => self.cpu.alloc(size),
            Door::Arena => self.shared.alloc(size, vmspace::Policy::InstantFit, Wait::No),
        }
        .unwrap()
    }
}

/// Wait a moment: spin briefly, and let others run (the racers may share
/// one CPU with the allocating thread).
fn pause() {
    for _ in 0..64 {
        std::hint::spin_loop();
    }
    std::thread::yield_now();
}

/// Objects per round: every one freed by both racing threads.
const BATCH: usize = 48;

/// Two threads free the same `BATCH` objects at the same moment, one
/// through `first`, the other through `second`, for `rounds` rounds; every
/// object must be accepted exactly once. Returns how many were accepted
/// twice (the caller asserts none), so a failure says how often.
fn race(first: Door, second: Door, rounds: usize) -> usize {
    let s = shared();
    let cpu = CpuCaches::new(&s, RseqPin::new(), store()).unwrap();
    let objects: Vec<AtomicU32> = (0..BATCH).map(|_| AtomicU32::new(0)).collect();
    let sizes: Vec<AtomicU32> = (0..BATCH).map(|_| AtomicU32::new(0)).collect();
    let accepted: Vec<AtomicU32> = (0..BATCH).map(|_| AtomicU32::new(0)).collect();
    let round = AtomicU32::new(0);
    let done = [AtomicU32::new(0), AtomicU32::new(0)];
    let twice = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for (me, door) in [first, second].into_iter().enumerate() {
            let (s, cpu, objects, sizes, accepted) = (&s, &cpu, &objects, &sizes, &accepted);
            let (round, done, twice, stop) = (&round, &done, &twice, &stop);
            scope.spawn(move || {
                let mut doors = Doors::new(s, cpu);
                let mut seen = 0;
                loop {
                    // Wait for the next round's objects.
                    while round.load(Ordering::Acquire) == seen {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        pause();
                    }
                    seen += 1;
                    for i in 0..BATCH {
                        let a = Addr(objects[i].load(Ordering::Relaxed) as usize + (1 << 40));
                        let size = Size(sizes[i].load(Ordering::Relaxed) as usize);
                        if doors.free(door, a, size).is_ok()
                            && accepted[i].fetch_add(1, Ordering::AcqRel) == 1
                        {
                            twice.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    done[me].store(seen, Ordering::Release);
                }
            });
        }
        // The main thread allocates each round's objects through a door of
        // its own, alternating, so the objects come from every kind of
        // magazine and from the slabs.
        let mut mine = Doors::new(&s, &cpu);
        // Stop the racers however this thread leaves the loop (a failed
        // assertion included), or the scope would wait for them forever.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _stop = Stop(&stop);
        for r in 1..=rounds as u32 {
            for i in 0..BATCH {
                let size = Size(QUANTUM * (1 + (i + r as usize) % 4));
                let a = mine.alloc(DOORS[(i + r as usize) % 3], size);
                objects[i].store((a.0 - (1 << 40)) as u32, Ordering::Relaxed);
                sizes[i].store(size.0 as u32, Ordering::Relaxed);
                accepted[i].store(0, Ordering::Relaxed);
            }
            let mut live: Vec<(u32, u32)> = (0..BATCH)
                .map(|i| (objects[i].load(Ordering::Relaxed), sizes[i].load(Ordering::Relaxed)))
                .collect();
            live.sort_unstable();
            for w in live.windows(2) {
                assert!(
                    w[0].0 + w[0].1 <= w[1].0,
                    "{first:?}/{second:?} round {r}: one address handed out twice: {w:x?}"
                );
            }
            round.store(r, Ordering::Release);
            while done.iter().any(|d| d.load(Ordering::Acquire) != r) {
                pause();
            }
            for (i, n) in accepted.iter().enumerate() {
                let n = n.load(Ordering::Acquire);
                assert!(n >= 1, "{first:?}/{second:?} round {r}: object {i} freed by neither");
            }
        }
    });
    s.check().unwrap_or_else(|e| panic!("{first:?}/{second:?}: {e}"));
    drop(cpu);
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0), "{first:?}/{second:?}: objects lost");
    twice.into_inner() as usize
}

#[test]
fn racing_frees_of_one_object_accept_exactly_one_on_every_pair_of_doors() {
    let mut report = Vec::new();
    for first in DOORS {
        for second in DOORS {
            let twice = race(first, second, 1500);
            if twice > 0 {
                report.push(format!("{first:?} racing {second:?}: {twice} objects freed twice"));
            }
        }
    }
    assert!(report.is_empty(), "{report:#?}");
}

#[test]
fn a_slab_cannot_be_freed_by_a_caller() {
    let s = shared();
    let cpu = CpuCaches::new(&s, RseqPin::new(), store()).unwrap();
    let mut doors = Doors::new(&s, &cpu);
    for class in 1..=8 {
        let size = QUANTUM * class;
        let slab_bytes = size * OBJECTS;
        let slab_align = slab_bytes.next_power_of_two();
        for door in DOORS {
            let obj = doors.alloc(door, Size(size));
            let slab = Addr(obj.0 & !(slab_align - 1));
            for by in DOORS {
                for bytes in [slab_bytes, slab_align, size * 2, 4096] {
                    let e = doors.free(by, slab, Size(bytes));
                    if slab == obj && bytes == size {
                        continue;
                    }
                    assert!(
                        matches!(e, Err(ArenaError::BadFree { .. })),
                        "class {class}: freeing the slab at {slab} ({bytes} bytes) through \
                         {by:?} gave {e:?}"
                    );
                }
            }
            // The slab's range is still allocated in the arena.
            let exact = Constraints::new(Size(slab_bytes)).exact(slab);
            assert!(s.xalloc(&exact, Wait::No).is_err(), "class {class}: slab range handed out");
            s.check().unwrap();
            doors.free(door, obj, Size(size)).unwrap();
        }
    }
    drop(doors);
    drop(cpu);
    s.reclaim();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}

#[test]
fn a_wrong_size_in_the_same_class_is_a_bad_free() {
    let s = shared();
    let cpu = CpuCaches::new(&s, RseqPin::new(), store()).unwrap();
    let mut doors = Doors::new(&s, &cpu);
    for door in DOORS {
        for by in DOORS {
            // 17 bytes are served by the 32-byte class.
            let a = doors.alloc(door, Size(17));
            for wrong in [32, 18, 31, 16, 33, 0] {
                let e = doors.free(by, a, Size(wrong));
                assert!(
                    matches!(
                        e,
                        Err(ArenaError::BadFree { .. }) | Err(ArenaError::InvalidArgument(_))
                    ),
                    "allocated 17 through {door:?}, freed {wrong} through {by:?}: {e:?}"
                );
            }
            doors.free(by, a, Size(17)).unwrap();
            assert!(doors.free(by, a, Size(17)).is_err(), "double free through {by:?}");
        }
    }
    drop(doors);
    drop(cpu);
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|a| a.sizes().allocated), Size(0));
}
