//! An outside reviewer (a language runtime's author): runtimes run a
//! sampling profiler (`SIGPROF` from `setitimer(ITIMER_PROF)`) while their
//! threads allocate. Every signal that lands inside a restartable sequence
//! aborts it and restarts it from the top, so per-CPU cache operations are
//! restarted far more often than preemption or migration alone would make
//! them. No object may be handed out twice or lost.

use std::sync::atomic::{AtomicU64, Ordering};

use vmspace::arena::{Arena, NoSource, PageStore};
use vmspace::qcache::{magazine_store_bytes, table_store_bytes, CpuPin, QCacheConfig};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, RseqPin, UserArena, UserCpuCaches};

type Store = PageStore<MmapBackend>;

static SIGNALS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_prof(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

fn store(bytes: usize) -> Store {
    PageStore::new(MmapBackend::new(), Size(bytes)).unwrap()
}

/// A `SIGPROF` every `usec` microseconds of process CPU time (0: off).
fn profile(usec: i64) {
    let tv = libc::timeval { tv_sec: 0, tv_usec: usec as libc::suseconds_t };
    let it = libc::itimerval { it_interval: tv, it_value: tv };
    // SAFETY: a valid itimerval; the old value is not asked for.
    assert_eq!(unsafe { libc::setitimer(libc::ITIMER_PROF, &it, core::ptr::null_mut()) }, 0);
}

#[test]
fn per_cpu_caches_under_a_sampling_profiler() {
    // SAFETY: a zeroed sigaction is valid; the handler only bumps an atomic
    // (async-signal-safe); SA_RESTART keeps the harness's calls going.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_prof as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        assert_eq!(libc::sigaction(libc::SIGPROF, &sa, core::ptr::null_mut()), 0);
    }
    let mut arena =
        Arena::on_pages("prof", Size(16), MmapBackend::new(), 1 << 16, NoSource).unwrap();
    // Real memory, so objects can be stamped.
    let span = 64 << 20;
    // SAFETY: a fresh private anonymous mapping, owned by this test and
    // unmapped at its end after every object is freed.
    let mem = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(mem, libc::MAP_FAILED);
    arena.add(Addr(mem as usize), Size(span)).unwrap();
    let sh: UserArena<Store, NoSource> =
        UserArena::with_quantum_caches(arena, QCacheConfig::new(8, store(table_store_bytes(8))))
            .unwrap();
    let pin = RseqPin::new();
    let uses_rseq = pin.uses_rseq();
    let bytes = magazine_store_bytes(8, pin.slots()).unwrap();
    let caches: UserCpuCaches<'_, Store, NoSource> =
        UserCpuCaches::new(&sh, pin, store(bytes)).unwrap();
    let freed_at_end = AtomicU64::new(0);
    profile(1000);
    let threads = 2 * std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    let tids: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
    let done = AtomicU64::new(0);
    std::thread::scope(|s| {
        // The profiler's other half: a signal to each worker in turn, as
        // fast as it can send them, until they are done.
        let (tids, done) = (&tids, &done);
        s.spawn(move || {
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() };
            while done.load(Ordering::Relaxed) < threads as u64 {
                for t in tids {
                    let tid = t.load(Ordering::Relaxed);
                    if tid != 0 {
                        // SAFETY: tgkill sends a signal and touches no
                        // memory; the thread may just have exited (then
                        // ESRCH, or another thread of this process, which
                        // handles SIGPROF the same way).
                        unsafe {
                            libc::syscall(libc::SYS_tgkill, pid, tid as libc::pid_t, libc::SIGPROF)
                        };
                    }
                }
                std::thread::yield_now();
            }
        });
        for (t, my_tid) in tids.iter().enumerate() {
            let (caches, freed_at_end) = (&caches, &freed_at_end);
            s.spawn(move || {
                // SAFETY: gettid has no preconditions.
                my_tid.store(unsafe { libc::gettid() } as u64, Ordering::Relaxed);
                let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ (t as u64 + 1);
                let mut mine: Vec<(Addr, usize, u64)> = Vec::new();
                for step in 0..400_000u64 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if mine.len() < 200 && (rng % 3 != 0 || mine.is_empty()) {
                        let size = 8 + (rng >> 8) as usize % 128;
                        let a = caches.alloc(Size(size)).unwrap();
                        let v = (t as u64) << 40 | step;
                        // SAFETY: a live allocation of `size` >= 8 bytes in
                        // our read-write mapping, this thread's alone.
                        unsafe { (a.0 as *mut u64).write_unaligned(v) };
                        mine.push((a, size, v));
                    } else {
                        let i = (rng >> 16) as usize % mine.len();
                        let (a, size, v) = mine.swap_remove(i);
                        // SAFETY: as above: still live and ours.
                        let got = unsafe { (a.0 as *const u64).read_unaligned() };
                        assert_eq!(got, v, "object [{:#x}, +{size}) overwritten", a.0);
                        caches.free(a, Size(size)).unwrap();
                    }
                }
                let n = mine.len() as u64;
                for (a, size, v) in mine {
                    // SAFETY: as above.
                    let got = unsafe { (a.0 as *const u64).read_unaligned() };
                    assert_eq!(got, v, "object [{:#x}, +{size}) overwritten", a.0);
                    caches.free(a, Size(size)).unwrap();
                }
                freed_at_end.fetch_add(n, Ordering::Relaxed);
                my_tid.store(0, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    profile(0);
    let signals = SIGNALS.load(Ordering::Relaxed);
    eprintln!("{signals} SIGPROFs, rseq: {uses_rseq}");
    assert!(signals > 0, "no SIGPROF arrived");
    drop(caches);
    sh.reclaim();
    sh.check().unwrap();
    assert_eq!(sh.with(|a| a.sizes().allocated), Size(0), "objects lost");
    assert_eq!(sh.qcache_stats().slabs, 0);
    assert!(freed_at_end.load(Ordering::Relaxed) > 0);
    drop(sh);
    // SAFETY: the mapping made above; nothing in it is used any more.
    assert_eq!(unsafe { libc::munmap(mem, span) }, 0);
}
