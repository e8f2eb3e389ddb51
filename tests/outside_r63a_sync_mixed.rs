//! Round 63a (outside reviewer): several threads on one SyncArena with
//! quantum caches, each mixing cached allocations (CacheHandle), plain and
//! constrained arena allocations, handles, deferred frees by address and by
//! handle, partial frees and resizes through `with`, while one thread
//! flushes and checks. A global interval model (under a mutex, updated in
//! an order that can only under-report) must never see two live or
//! unflushed ranges overlap, and at the end everything is back. (No
//! double-free probes here: with other threads allocating, a second free
//! may legitimately hit a new allocation of the same address and size.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use vmspace::arena::{Arena, ArenaError, Constraints, Handle, NoSource, PageStore, Policy};
use vmspace::qcache::QCacheConfig;
use vmspace::sync::{CacheHandle, Wait};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, UserArena};

type Store = PageStore<MmapBackend>;
type Shared = UserArena<Store, NoSource>;

const Q: usize = 16;
const BASE: usize = 1 << 40;
const SPAN: usize = 1 << 16;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

fn shared() -> Shared {
    let mut a = Arena::new("mixed", Size(Q), store(), store(), NoSource).unwrap();
    a.add(Addr(BASE), Size(SPAN)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(4, store())).unwrap()
}

/// Live or unflushed ranges: start -> (end, unflushed).
type Model = Mutex<BTreeMap<usize, (usize, bool)>>;

fn insert(m: &Model, s: usize, len: usize, what: &str) {
    let e = s + len;
    let mut g = m.lock().unwrap();
    if let Some((&ps, &(pe, u))) = g.range(..e).next_back() {
        assert!(pe <= s, "{what} [{s:#x},{e:#x}) overlaps [{ps:#x},{pe:#x}) unflushed={u}");
    }
    g.insert(s, (e, false));
}

#[derive(Clone, Copy)]
enum Live {
    Cached(usize, usize),
    Plain(usize, usize),
    Held(Handle, usize),
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn worker(s: &Shared, m: &Model, seed: u64, ops: usize) {
    let mut seed = seed | 1;
    let mut cache = CacheHandle::new(s);
    let mut live: Vec<Live> = vec![];
    for _ in 0..ops {
        let r = rng(&mut seed);
        match r % 10 {
            0..=2 => {
                let size = 1 + (rng(&mut seed) as usize % (4 * Q));
                if let Ok(a) = cache.alloc(Size(size)) {
                    insert(m, a.0, size.div_ceil(Q) * Q, "cached");
                    live.push(Live::Cached(a.0, size));
                }
            }
            3 => {
                let size = 1 + (rng(&mut seed) as usize % 600);
                let pol = Policy::ALL[(r >> 8) as usize % 4];
                if let Ok(a) = s.alloc(Size(size), pol, Wait::No) {
                    insert(m, a.0, size.div_ceil(Q) * Q, "plain");
                    live.push(Live::Plain(a.0, size));
                }
            }
            4 => {
                let size = 1 + (rng(&mut seed) as usize % 300);
                let c = Constraints::new(Size(size))
                    .align(Size(Q << ((r >> 8) % 6)))
                    .nocross(Size(1024))
                    .policy(Policy::ALL[(r >> 16) as usize % 4])
                    .from_top(r >> 20 & 1 == 1);
                match s.xalloc(&c, Wait::No) {
                    Ok(a) => {
                        let rs = size.div_ceil(Q) * Q;
                        assert_eq!(a.0 / 1024, (a.0 + rs - 1) / 1024, "nocross");
                        insert(m, a.0, rs, "xalloc");
                        live.push(Live::Plain(a.0, size));
                    }
                    Err(ArenaError::NoSpace { .. }) | Err(ArenaError::OverConstrained(_)) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            5 => {
                let size = 1 + (rng(&mut seed) as usize % 400);
                if let Ok(h) = s.with(|a| a.alloc_handle(Size(size), Policy::BestFit)) {
                    insert(m, h.addr().0, size.div_ceil(Q) * Q, "held");
                    live.push(Live::Held(h, size));
                }
            }
            _ if live.is_empty() => {}
            6..=7 => {
                let k = rng(&mut seed) as usize % live.len();
                let l = live.swap_remove(k);
                let deferred = r >> 8 & 1 == 1;
                match l {
                    Live::Cached(a, size) => {
                        // Marked unflushed first (the model may only
                        // under-report): a deferred free of a slab object is
                        // refused, one of an object a miss took from the
                        // arena itself is a plain deferred free.
                        m.lock().unwrap().get_mut(&a).unwrap().1 = true;
                        let d = s.free_deferred(Addr(a), Size(size));
                        if d.is_err() {
                            m.lock().unwrap().remove(&a);
                            assert!(matches!(d, Err(ArenaError::BadFree { .. })), "{d:?}");
                            cache.free(Addr(a), Size(size)).unwrap();
                        }
                    }
                    Live::Plain(a, size) => {
                        if deferred {
                            m.lock().unwrap().get_mut(&a).unwrap().1 = true;
                            s.free_deferred(Addr(a), Size(size)).unwrap();
                        } else {
                            m.lock().unwrap().remove(&a);
                            s.free(Addr(a), Size(size)).unwrap();
                        }
                    }
                    Live::Held(h, size) => {
                        if deferred {
                            m.lock().unwrap().get_mut(&h.addr().0).unwrap().1 = true;
                            assert_eq!(s.free_handle_deferred(h), Ok(Size(size)));
                        } else {
                            m.lock().unwrap().remove(&h.addr().0);
                            assert_eq!(s.free_handle(h), Ok(Size(size)));
                        }
                    }
                }
            }
            8 => {
                // Resize or partial free of a plain allocation, under the lock.
                let k = rng(&mut seed) as usize % live.len();
                if let Live::Plain(a, size) = live[k] {
                    let new = 1 + (rng(&mut seed) as usize % 700);
                    let mut g = m.lock().unwrap();
                    let r = s.with(|ar| ar.resize(Addr(a), Size(size), Size(new)));
                    match r {
                        Ok(()) => {
                            let e = a + new.div_ceil(Q) * Q;
                            g.remove(&a);
                            if let Some((&ps, &(pe, _))) = g.range(..e).next_back() {
                                assert!(
                                    pe <= a,
                                    "resize to [{a:#x},{e:#x}) over [{ps:#x},{pe:#x})"
                                );
                            }
                            g.insert(a, (e, false));
                            live[k] = Live::Plain(a, new);
                        }
                        Err(ArenaError::NoSpace { .. }) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
            _ => {
                let k = rng(&mut seed) as usize % live.len();
                if let Live::Plain(a, size) = live[k] {
                    if size > Q {
                        // Free the first quantum.
                        m.lock().unwrap().remove(&a);
                        s.with(|ar| ar.free_part(Addr(a), Size(0), Size(Q))).unwrap();
                        m.lock().unwrap().insert(a + Q, (a + size.div_ceil(Q) * Q, false));
                        live[k] = Live::Plain(a + Q, size - Q);
                    }
                }
            }
        }
    }
    let (c, p, h) = live.iter().fold((0, 0, 0), |(c, p, h), l| match l {
        Live::Cached(..) => (c + 1, p, h),
        Live::Plain(..) => (c, p + 1, h),
        Live::Held(..) => (c, p, h + 1),
    });
    eprintln!("live at the end: cached {c} plain {p} held {h}");
    // Free everything left.
    for l in live {
        match l {
            Live::Cached(a, size) => {
                m.lock().unwrap().remove(&a);
                cache.free(Addr(a), Size(size)).unwrap();
            }
            Live::Plain(a, size) => {
                m.lock().unwrap().remove(&a);
                s.free(Addr(a), Size(size)).unwrap();
            }
            Live::Held(h, _) => {
                m.lock().unwrap().remove(&h.addr().0);
                s.free_handle(h).unwrap();
            }
        }
    }
}

#[test]
fn mixed_threads_never_overlap_and_account_exactly() {
    let s = shared();
    let m: Model = Mutex::new(BTreeMap::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3u64)
            .map(|t| {
                let (s, m) = (&s, &m);
                sc.spawn(move || worker(s, m, 0x9e37_79b9_7f4a_7c15 ^ ((t + 1) * 7919), 15_000))
            })
            .collect();
        sc.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                {
                    let mut g = m.lock().unwrap();
                    let want: usize =
                        g.iter().filter(|(_, &(_, u))| u).map(|(&st, &(e, _))| e - st).sum();
                    let before = s.with(|a| a.sizes().unflushed.0);
                    let got = s.flushed();
                    // Only this thread flushes; workers may defer more
                    // meanwhile (they defer without the model's lock).
                    assert!(got.0 >= before, "flushed {got:?}, {before:#x} was unflushed");
                    let _ = want;
                    g.retain(|_, &mut (_, u)| !u);
                }
                s.check().unwrap();
                std::thread::yield_now();
            }
        });
        for h in hs {
            h.join().unwrap();
        }
        stop.store(true, Ordering::Release);
    });
    s.flushed();
    s.reclaim();
    s.check().unwrap();
    eprintln!("{:?}\n{:?}", s.with(|a| a.counters()), s.qcache_stats());
    let sizes = s.with(|a| a.sizes());
    assert_eq!((sizes.allocated.0, sizes.unflushed.0, sizes.free.0), (0, 0, SPAN), "{sizes:?}");
    let a = s.into_inner().unwrap_or_else(|r| panic!("{:?}", r.error()));
    a.check().unwrap();
    assert_eq!(a.live(), 0);
}
