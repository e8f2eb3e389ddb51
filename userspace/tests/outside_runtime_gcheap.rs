//! An outside reviewer (a language runtime's author): a GC heap shared by
//! more threads than CPUs. A vmem arena owns a VM arena on mmap as its
//! source (under a commit limit, so space runs out and allocations wait),
//! behind a `UserArena` with quantum caches; objects come from two per-CPU
//! caches (one with fewer slots than CPUs), per-thread handles and the
//! shared arena, are stamped in memory, handed to other threads and freed
//! there through another door, while threads move between CPUs. No object
//! may be handed out twice, stamps must survive, and when everything is
//! freed and the caches are gone, every tract must be back in the VM arena.

use std::collections::BTreeMap;
use std::sync::Mutex;

use vmspace::arena::{Arena, ArenaError, PageStore, Policy};
use vmspace::qcache::{magazine_store_bytes, table_store_bytes, QCacheConfig};
use vmspace::sync::{CacheHandle, Wait};
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace::{Addr, Size};
use vmspace_user::{
    allowed_cpus, run_only_on, CondvarWaiter, MmapBackend, ParkingLock, RseqPin, UserArena,
    UserCpuCaches,
};

type Store = PageStore<MmapBackend>;
type Heap = UserArena<Store, VmArena<MmapBackend>>;
type Handle<'a> = CacheHandle<'a, ParkingLock, CondvarWaiter, Store, VmArena<MmapBackend>>;

fn store(bytes: usize) -> Store {
    PageStore::new(MmapBackend::new(), Size(bytes)).unwrap()
}

/// Live ranges, to catch an object handed out twice.
struct Ledger(Mutex<BTreeMap<usize, usize>>);

impl Ledger {
    fn take(&self, a: Addr, size: usize, what: &str) {
        let mut m = self.0.lock().unwrap();
        if let Some((&s, &e)) = m.range(..a.0 + size).next_back() {
            assert!(e <= a.0, "{what}: [{:#x}, +{size}) overlaps live [{s:#x}, {e:#x})", a.0);
        }
        m.insert(a.0, a.0 + size);
    }
    fn give(&self, a: Addr) {
        assert!(self.0.lock().unwrap().remove(&a.0).is_some());
    }
}

fn stamp(a: Addr, size: usize, v: u64) {
    let p = a.0 as *mut u64;
    // SAFETY: [a, a + size) is a live allocation of at least 16 bytes in
    // tracts the VM arena committed read-write, owned by this thread now.
    unsafe {
        p.write(v);
        p.cast::<u8>().add(size - 8).cast::<u64>().write(!v);
    }
}

fn read_stamp(a: Addr, size: usize) -> (u64, u64) {
    let p = a.0 as *const u64;
    // SAFETY: as in `stamp`: the allocation is live and owned by the reader.
    unsafe { (p.read(), p.cast::<u8>().add(size - 8).cast::<u64>().read()) }
}

#[derive(Clone, Copy, Debug)]
enum Door {
    CpuA,
    CpuB,
    Handle,
    Shared,
}

fn heap(commit_limit: usize) -> Heap {
    let va = VmArena::new(
        MmapBackend::new(),
        VmArenaConfig::new(Size(1 << 30)).spare_limit(64).commit_limit(Size(commit_limit)),
    )
    .unwrap();
    let arena = Arena::on_pages("gc", Size(16), MmapBackend::new(), 1 << 16, va).unwrap();
    UserArena::with_quantum_caches(arena, QCacheConfig::new(8, store(table_store_bytes(8))))
        .unwrap()
}

#[test]
fn gc_heap_threads_outnumber_cpus_move_and_free_each_others_objects() {
    let cpus = allowed_cpus().expect("the thread's affinity mask");
    let sh = heap(6 << 20);
    let pin_a = RseqPin::with_slots(1);
    let pin_b = RseqPin::new();
    let bytes_a = magazine_store_bytes(8, 1).unwrap();
    let bytes_b = magazine_store_bytes(8, vmspace::qcache::CpuPin::slots(&pin_b)).unwrap();
    let a = UserCpuCaches::new(&sh, pin_a, store(bytes_a)).unwrap();
    let b = UserCpuCaches::new(&sh, pin_b, store(bytes_b)).unwrap();
    let ledger = Ledger(Mutex::new(BTreeMap::new()));
    let handoff: Mutex<Vec<(Addr, usize, u64)>> = Mutex::new(Vec::new());
    let threads = 3 * cpus.len() + 2;
    let waited_out = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (sh, a, b, ledger, handoff, cpus) = (&sh, &a, &b, &ledger, &handoff, &cpus);
            let waited_out = &waited_out;
            s.spawn(move || {
                let mut h = CacheHandle::new(sh);
                let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                let mut next = || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let mut live: Vec<(Addr, usize, u64)> = Vec::new();
                for step in 0..4000u64 {
                    if step % 37 == 0 {
                        run_only_on(cpus[(next() as usize) % cpus.len()]).expect("an allowed CPU");
                    }
                    let r = next();
                    if live.len() < 48 && r % 3 != 0 {
                        let small = r % 4 != 0;
                        let size = if small {
                            16 * (1 + (next() % 8) as usize)
                        } else {
                            16 * (9 + (next() % 4000) as usize)
                        };
                        let door = [Door::CpuA, Door::CpuB, Door::Handle, Door::Shared]
                            [(next() % 4) as usize];
                        let got = match (small, door) {
                            (true, Door::CpuA) => a.alloc(Size(size)),
                            (true, Door::CpuB) => b.alloc(Size(size)),
                            (true, Door::Handle) => h.alloc(Size(size)),
                            _ => sh.alloc(
                                Size(size),
                                Policy::ALL[(next() % 4) as usize],
                                Wait::Timeout(core::time::Duration::from_millis(20)),
                            ),
                        };
                        match got {
                            Ok(x) => {
                                let v = (t as u64) << 32 | step;
                                ledger.take(x, size, &format!("thread {t} step {step} {door:?}"));
                                stamp(x, size, v);
                                live.push((x, size, v));
                            }
                            Err(ArenaError::NoSpace { .. }) => {
                                waited_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                // Give the others room: free half of ours.
                                for _ in 0..live.len() / 2 {
                                    let (x, size, v) = live.pop().unwrap();
                                    free_one(sh, a, b, &mut h, ledger, x, size, v, next());
                                }
                            }
                            Err(e) => panic!("thread {t} step {step}: {e:?}"),
                        }
                    } else if !live.is_empty() {
                        let i = (next() as usize) % live.len();
                        let obj = live.swap_remove(i);
                        if next() % 2 == 0 {
                            handoff.lock().unwrap().push(obj);
                        } else {
                            free_one(sh, a, b, &mut h, ledger, obj.0, obj.1, obj.2, next());
                        }
                    }
                    if step % 5 == 0 {
                        let theirs = handoff.lock().unwrap().pop();
                        if let Some((x, size, v)) = theirs {
                            free_one(sh, a, b, &mut h, ledger, x, size, v, next());
                        }
                    }
                }
                for (x, size, v) in live {
                    free_one(sh, a, b, &mut h, ledger, x, size, v, 0);
                }
            });
        }
    });
    let rest: Vec<_> = handoff.into_inner().unwrap();
    for (x, size, v) in rest {
        assert_eq!(read_stamp(x, size), (v, !v));
        ledger.give(x);
        sh.free(x, Size(size)).unwrap();
    }
    drop(a);
    drop(b);
    sh.reclaim();
    sh.check().unwrap();
    let stats = sh.qcache_stats();
    assert_eq!(stats.slabs, 0, "slabs left after everything was freed and reclaimed: {stats:?}");
    let arena = sh.into_inner().unwrap();
    arena.check().unwrap();
    assert_eq!(arena.sizes().allocated, Size(0));
    assert_eq!(arena.sizes().imported, Size(0), "a wholly free imported span was kept");
    assert_eq!(arena.source().allocated(), Size(0), "tracts still imported");
    arena.source().check().unwrap();
}

#[allow(clippy::too_many_arguments)]
fn free_one(
    sh: &Heap,
    a: &UserCpuCaches<'_, Store, VmArena<MmapBackend>>,
    b: &UserCpuCaches<'_, Store, VmArena<MmapBackend>>,
    h: &mut Handle<'_>,
    ledger: &Ledger,
    x: Addr,
    size: usize,
    v: u64,
    r: u64,
) {
    assert_eq!(read_stamp(x, size), (v, !v), "stamp of [{:#x}, +{size}) overwritten", x.0);
    stamp(x, size, 0xDEAD);
    ledger.give(x);
    // Any door frees any object (the README: racing frees "on any path").
    let res = match r % 4 {
        0 => a.free(x, Size(size)),
        1 => b.free(x, Size(size)),
        2 => h.free(x, Size(size)),
        _ => sh.free(x, Size(size)),
    };
    res.unwrap_or_else(|e| panic!("free of [{:#x}, +{size}) through door {}: {e:?}", x.0, r % 4));
}
