//! Round 61 (outside reviewer): `fork()` in a multithreaded process that
//! uses a `UserArena` and its per-CPU caches (`UserCpuCaches`), then the
//! caches in the child.
//!
//! Nothing in the docs (README.md's threads section, src/sync/, userspace/
//! src/{sync.rs,pin.rs,rseq/mod.rs}) says whether the caches may be used in
//! a child forked while other threads use them; the rseq docs mention only
//! `vfork` and raw `clone` children. No `pthread_atfork` handler is
//! registered, so the child inherits the arena lock (`ParkingLock`) and
//! `SchedPin`'s slot try-locks in whatever state other threads left them.
//!
//! - `quiet_fork_child_uses_the_caches` (PASSES, sharp): fork after every
//!   other thread using the caches has been joined; the child (one thread,
//!   its rseq registration inherited) allocates and frees through the
//!   caches, never gets an object the parent held at the fork, and
//!   `check()` holds there.
//! - Two more cases hung a child: forked while a second thread held the
//!   arena lock (it waits for ever at its first miss), and, with
//!   `SchedPin::with_slots(1)`, while a second thread held the slot (it
//!   spins in `SchedPin::pin`). Was a doc DEFECT (fixed: `CpuCaches`' docs
//!   and the README say a child must not use an arena or caches other
//!   threads were using at the fork); the hanging cases, which only showed
//!   the documented prohibition, are not kept.
//!
//! At fault: the docs (no word on fork), and no atfork handling. Proposed
//! fix: document that a child of a multithreaded process must not use an
//! arena or caches shared with other threads at the fork (as for any
//! mutex), or make them fork-safe: a `pthread_atfork` prepare handler that
//! takes the arena lock (and every `SlotFlag`) and parent/child handlers
//! that release them (what glibc malloc does with its arenas).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use vmspace::arena::NoSource;
use vmspace::qcache::CpuPin;
use vmspace::{Addr, Size};
use vmspace_user::{allowed_cpus, run_only_on, RseqPin, UserCpuCaches};

mod outside_r61_common;

use outside_r61_common::*;

/// The child's work: allocations past two magazines of two classes (so
/// misses, under the arena lock), none of them an object in `parent_held`,
/// none twice; then everything freed and `check()`. Exit codes: 0 fine,
/// 2 duplicate, 3 parent's object, 4 alloc/free error, 5 check.
fn child_body<P: CpuPin>(
    c: &UserCpuCaches<'_, Store, NoSource, P>,
    parent_held: &HashSet<usize>,
) -> i32 {
    let mut mine = Vec::new();
    let mut seen = HashSet::new();
    for i in 0..80 {
        let sz = Size(Q * (1 + i % 2));
        let Ok(a) = c.alloc(sz) else { return 4 };
        if !seen.insert(a.0) {
            return 2;
        }
        if parent_held.contains(&a.0) {
            return 3;
        }
        mine.push((a, sz));
    }
    for (a, sz) in mine {
        if c.free(a, sz).is_err() {
            return 4;
        }
    }
    if c.arena().check().is_err() {
        return 5;
    }
    0
}

/// Fork; the child runs `body` and `_exit`s with its code. The parent
/// waits at most `deadline`: `Some(code)` or `None` (hung; killed).
fn fork_and_wait(body: impl FnOnce() -> i32, deadline: Duration) -> Option<i32> {
    // SAFETY: fork; the child only runs `body` (which allocates with
    // glibc malloc, fork-safe) and `_exit`s, never returning into the
    // test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = body();
        // SAFETY: ends the child without running the parent's atexit or
        // destructors.
        unsafe { libc::_exit(code) };
    }
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
        if start.elapsed() > deadline {
            // SAFETY: our child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn quiet_fork_child_uses_the_caches() {
    let s = shared();
    let c = caches(&s, RseqPin::new());
    let cpus = allowed_cpus().unwrap();
    // Every CPU's magazines warmed by threads that are gone by the fork.
    let held: Vec<(Addr, Size)> = std::thread::scope(|sc| {
        let hs: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                let c = &c;
                sc.spawn(move || {
                    run_only_on(cpu).unwrap();
                    let mut keep = Vec::new();
                    for i in 0..100 {
                        let sz = Size(Q * (1 + i % 2));
                        let a = c.alloc(sz).unwrap();
                        if i % 3 == 0 {
                            keep.push((a, sz));
                        } else {
                            c.free(a, sz).unwrap();
                        }
                    }
                    keep
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let parent_held: HashSet<usize> = held.iter().map(|(a, _)| a.0).collect();
    for _ in 0..5 {
        let code = fork_and_wait(|| child_body(&c, &parent_held), Duration::from_secs(5));
        assert_eq!(code, Some(0), "a quiet fork's child failed (codes in child_body)");
    }
    for (a, sz) in held {
        c.free(a, sz).unwrap();
    }
    drop(c);
    s.check().unwrap();
}
