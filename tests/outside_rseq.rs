//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the per-CPU caches through restartable
//! sequences: objects never lost or handed out twice when threads migrate
//! (sched_setaffinity bouncing), with more threads than CPUs, frees through
//! another set of caches / a CacheHandle / the arena than the one that
//! allocated, fewer slots than CPUs, and the fallback with rseq turned off
//! (glibc's tunable, in a child process).

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use vmspace::arena::{Arena, NoSource, PageStore};
use vmspace::qcache::{CpuPin, QCacheConfig};
use vmspace::sync::CacheHandle;
use vmspace::{Addr, Size};
use vmspace_user::{
    allowed_cpus, run_only_on, MmapBackend, RseqPin, SchedPin, UserArena, UserCpuCaches,
};
use vmspace_workload::Rng;

type Store = PageStore<MmapBackend>;
type Parent = UserArena<Store, NoSource>;

const BASE: usize = 1 << 40;
const SPAN: usize = 1 << 22;
const Q: usize = 16;

fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(64 << 20)).unwrap()
}

fn parent(classes: usize) -> Parent {
    let mut a = Arena::new("parent", Size(Q), store(), store(), NoSource).unwrap();
    a.add(Addr(BASE), Size(SPAN)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(classes, store())).unwrap()
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One byte per quantum of the span: 1 while some thread holds it.
struct Owners(Vec<AtomicU8>);

impl Owners {
    fn new() -> Self {
        Owners((0..SPAN / Q).map(|_| AtomicU8::new(0)).collect())
    }
    fn take(&self, a: Addr, size: usize, what: &str) {
        assert!(a.0 >= BASE && a.0 + size <= BASE + SPAN, "{what}: {a:?} outside the span");
        assert_eq!(a.0 % Q, 0);
        for u in (a.0 - BASE) / Q..(a.0 - BASE + size).div_ceil(Q) {
            assert_eq!(
                self.0[u].swap(1, Ordering::SeqCst),
                0,
                "{what}: {a:?}+{size} handed out twice"
            );
        }
    }
    fn give(&self, a: Addr, size: usize) {
        for u in (a.0 - BASE) / Q..(a.0 - BASE + size).div_ceil(Q) {
            assert_eq!(self.0[u].swap(0, Ordering::SeqCst), 1, "{a:?}+{size} freed but not held");
        }
    }
}

/// `threads` threads share two sets of per-CPU caches (`a` and `b`) over
/// one arena, and a pool of live objects: each step allocates through one
/// of a, b, a CacheHandle or the arena, or frees an object (possibly
/// allocated by another thread through another way) through one of them,
/// bouncing between CPUs every few steps. Nothing is lost or duplicated:
/// at the end, after flushes and reclaim, the arena has nothing allocated.
fn churn<PA: CpuPin + Send + Sync, PB: CpuPin + Send + Sync>(
    pa: PA,
    pb: PB,
    threads: usize,
    steps: usize,
    seed: u64,
) {
    let s = &parent(8);
    let own = &Owners::new();
    let cpulist = &allowed_cpus().expect("the thread's affinity mask");
    {
        let a = &UserCpuCaches::new(s, pa, store()).unwrap();
        let b = &UserCpuCaches::new(s, pb, store()).unwrap();
        let pool = &std::sync::Mutex::new(Vec::<(Addr, usize)>::new());
        let fails = &AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for t in 0..threads {
                sc.spawn(move || {
                    let mut rng = Rng::new(seed ^ (t as u64 * 0x9E37_79B9));
                    let mut h = CacheHandle::new(s);
                    let mut mine: Vec<(Addr, usize)> = Vec::new();
                    for i in 0..steps {
                        if i % 7 == 0 {
                            run_only_on(cpulist[rng.below(cpulist.len())]).expect("an allowed CPU");
                        }
                        let way = rng.below(4);
                        if rng.below(100) < 52 || mine.is_empty() {
                            // Mostly cached sizes, some past qcache_max.
                            let size = if rng.below(10) == 0 {
                                16 * rng.between(9, 40)
                            } else {
                                rng.between(1, 128)
                            };
                            let r = match way {
                                0 => a.alloc(Size(size)),
                                1 => b.alloc(Size(size)),
                                2 => h.alloc(Size(size)),
                                _ => s.alloc(
                                    Size(size),
                                    vmspace::arena::Policy::InstantFit,
                                    vmspace::sync::Wait::No,
                                ),
                            };
                            match r {
                                Ok(x) => {
                                    own.take(x, size, "alloc");
                                    mine.push((x, size));
                                }
                                Err(_) => {
                                    fails.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            if rng.below(8) == 0 && !mine.is_empty() {
                                // hand one to another thread
                                let k = rng.below(mine.len());
                                pool.lock().unwrap().push(mine.swap_remove(k));
                            }
                        } else {
                            let obj =
                                if rng.below(3) == 0 { pool.lock().unwrap().pop() } else { None };
                            let (x, size) = match obj {
                                Some(o) => o,
                                None => mine.swap_remove(rng.below(mine.len())),
                            };
                            own.give(x, size);
                            let r = match way {
                                0 => a.free(x, Size(size)),
                                1 => b.free(x, Size(size)),
                                2 => h.free(x, Size(size)),
                                _ => s.free(x, Size(size)),
                            };
                            r.unwrap_or_else(|e| panic!("free {x:?}+{size} via {way}: {e:?}"));
                        }
                    }
                    for (x, size) in mine {
                        own.give(x, size);
                        a.free(x, Size(size)).unwrap();
                    }
                    h.flush();
                });
            }
        });
        for (x, size) in pool.lock().unwrap().drain(..) {
            own.give(x, size);
            b.free(x, Size(size)).unwrap();
        }
        assert_eq!(fails.load(Ordering::Relaxed), 0, "the span never runs out here");
    }
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|x| x.sizes().allocated), Size(0), "objects lost in caches");
    assert!(own.0.iter().all(|b| b.load(Ordering::Relaxed) == 0));
}

#[test]
fn rseq_caches_many_threads_bouncing_and_cross_frees() {
    eprintln!("rseq: {}", RseqPin::new().uses_rseq());
    churn(RseqPin::new(), RseqPin::new(), 4 * cpus(), 30000, 1);
}

#[test]
fn rseq_and_sched_pins_share_an_arena() {
    churn(RseqPin::new(), SchedPin::new(), 3 * cpus(), 30000, 2);
}

#[test]
fn fewer_slots_than_cpus_and_the_forced_fallback() {
    churn(RseqPin::with_slots(1), RseqPin::without_rseq(1), 3 * cpus(), 30000, 3);
    churn(RseqPin::without_rseq(cpus()), RseqPin::with_slots(cpus() + 3), 3 * cpus(), 30000, 4);
}

/// With glibc's rseq registration turned off (GLIBC_TUNABLES), the pin
/// must notice (`uses_rseq() == false`) and the caches still work. Runs
/// itself in a child process with the tunable set.
#[test]
fn rseq_turned_off_by_glibc_tunable() {
    if std::env::var_os("STRANGER2_CHILD").is_some() {
        let p = RseqPin::new();
        assert!(!p.uses_rseq(), "rseq registration off, yet uses_rseq()");
        churn(RseqPin::new(), RseqPin::new(), 2 * cpus(), 20000, 5);
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "rseq_turned_off_by_glibc_tunable", "--nocapture", "--test-threads", "1"])
        .env("STRANGER2_CHILD", "1")
        .env("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "{text}");
}

/// A double free through a different set of caches than the one that
/// allocated (and than the one the first free went through) is refused,
/// never silently accepted (which would hand the object out twice).
#[test]
fn double_free_through_other_caches_is_refused() {
    let s = &parent(8);
    let a = UserCpuCaches::new(s, RseqPin::new(), store()).unwrap();
    let b = UserCpuCaches::new(s, SchedPin::new(), store()).unwrap();
    for round in 0..2000 {
        let size = Size(1 + round % 128);
        let x = a.alloc(size).unwrap();
        b.free(x, size).unwrap();
        assert!(a.free(x, size).is_err(), "round {round}: double free accepted");
        assert!(b.free(x, size).is_err(), "round {round}: double free accepted");
        // The wrong size is refused too, and changes nothing.
        let y = b.alloc(size).unwrap();
        assert!(a.free(y, Size(size.0 + 16)).is_err());
        a.free(y, size).unwrap();
    }
    drop(a);
    drop(b);
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|x| x.sizes().allocated), Size(0));
}

/// The calling thread's rseq area unregistered (so the kernel neither
/// updates `cpu_id` nor restarts sequences for it): its caches' calls must
/// go to the arena ("A thread without a registered area ... gets
/// Popped::Unpinned"), while registered threads keep using the slots; no
/// object is lost or handed out twice.
#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
#[test]
fn a_thread_that_unregistered_its_rseq_area_is_unpinned() {
    let pin = RseqPin::new();
    if !pin.uses_rseq() {
        return;
    }
    /// Unregister this thread's glibc rseq area; whether it worked.
    fn unregister() -> bool {
        // SAFETY: dlsym lookups checked for null; fs:0 is glibc's TCB self
        // pointer (the thread pointer); the syscall only unregisters.
        unsafe {
            let off = libc::dlsym(core::ptr::null_mut(), c"__rseq_offset".as_ptr()).cast::<isize>();
            let size = libc::dlsym(core::ptr::null_mut(), c"__rseq_size".as_ptr()).cast::<u32>();
            if off.is_null() || size.is_null() {
                return false;
            }
            let tp: usize;
            core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp);
            let area = (tp as isize + off.read()) as usize;
            for len in [32u32, size.read()] {
                if libc::syscall(libc::SYS_rseq, area, len, 1 /* UNREGISTER */, 0x5305_3053u32) == 0
                {
                    return true;
                }
            }
            false
        }
    }
    let s = &parent(8);
    let own = &Owners::new();
    let cpulist = &allowed_cpus().expect("the thread's affinity mask");
    {
        let caches = &UserCpuCaches::new(s, pin, store()).unwrap();
        std::thread::scope(|sc| {
            for t in 0..(2 * cpus()).max(4) {
                sc.spawn(move || {
                    if t % 2 == 0 && !unregister() {
                        eprintln!("could not unregister rseq");
                    }
                    let mut rng = Rng::new(t as u64 + 99);
                    let mut mine = Vec::new();
                    for i in 0..20000 {
                        if i % 11 == 0 {
                            run_only_on(cpulist[rng.below(cpulist.len())]).expect("an allowed CPU");
                        }
                        if rng.below(2) == 0 || mine.is_empty() {
                            let size = rng.between(1, 128);
                            let x = caches.alloc(Size(size)).unwrap();
                            own.take(x, size, "alloc");
                            mine.push((x, size));
                        } else {
                            let (x, size) = mine.swap_remove(rng.below(mine.len()));
                            own.give(x, size);
                            caches.free(x, Size(size)).unwrap();
                        }
                    }
                    for (x, size) in mine {
                        own.give(x, size);
                        caches.free(x, Size(size)).unwrap();
                    }
                });
            }
        });
    }
    s.reclaim();
    s.check().unwrap();
    assert_eq!(s.with(|x| x.sizes().allocated), Size(0));
}
