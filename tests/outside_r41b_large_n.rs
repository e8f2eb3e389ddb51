//! Outside review of round 41b's `KeepFree`: a large `N`.
//!
//! `KeepFree<S, N>` holds its kept spans in an inline `[Range; N]` (16
//! bytes a span) built on the stack by `KeepFree::new`. The docs bounded
//! `N` nowhere, and `N = 2^16` overflowed a 2 MiB thread stack in a debug
//! build (found by this review). `N` is now at most `MAX_KEPT` (256),
//! checked when the code is built (a `compile_fail` doctest of
//! `KeepFree`); the largest runs in a child process (this test binary run
//! again with an environment variable), so that a stack overflow fails
//! this test instead of aborting the others.

use std::process::Command;

use vmspace::arena::{ArenaError, Source};
use vmspace::sources::{KeepFree, MAX_KEPT};
use vmspace::{Addr, Range, Size};

const PAGE: usize = 4096;
const CHILD: &str = "OUTSIDE_R41B_LARGE_N_CHILD";

/// Hands out consecutive page-aligned ranges; takes every give-back.
struct Bump(usize);

impl Source for Bump {
    fn quantum(&self) -> Size {
        Size(PAGE)
    }
    fn import(&mut self, size: Size, _align: Size) -> Result<Range, ArenaError> {
        let r = Range::from_size(Addr(self.0), size)?;
        self.0 = r.limit().0;
        Ok(r)
    }
    fn release(&mut self, _: Range) -> Result<(), ArenaError> {
        Ok(())
    }
}

/// Make an adapter keeping up to `MAX_KEPT` spans (12 KiB of `Range`s),
/// use it, on a thread with 256 KiB of stack (an eighth of Rust's default
/// for a spawned thread).
fn make_large_n() {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let mut k = KeepFree::<_, MAX_KEPT>::new(Bump(1 << 20), Size(PAGE));
            let r = k.import(Size(PAGE), Size(PAGE)).unwrap();
            k.release(r).unwrap();
            assert_eq!(k.kept(), &[r]);
        })
        .unwrap()
        .join()
        .unwrap();
}

/// The child's body: runs only when this binary is run again by
/// `the_largest_n_fits_a_small_stack`.
#[test]
fn child_large_n() {
    if std::env::var_os(CHILD).is_some() {
        make_large_n();
    }
}

/// Was a defect (minor; debug builds only): a `KeepFree` of `N = 2^16`
/// died of a stack overflow (SIGABRT, "has overflowed its stack") on a
/// thread of 2 MiB, the array built and moved by value. Now the largest
/// `N` allowed is made and used on a thread of 256 KiB.
#[test]
fn the_largest_n_fits_a_small_stack() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_large_n", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("child: {:?}\n{stderr}", out.status);
    assert!(out.status.success(), "child died: {:?}", out.status);
}

/// Passes: the largest `N` (`MAX_KEPT`, 256 since round 43) on a test
/// thread's stack keeps and hands back exactly what it should. (Written for
/// `N = 1024`, when every give-back was kept while a slot was free; since
/// round 43 a span is kept only if it is one of the last `2 N` handed out
/// and not given back since, so of 1100 spans handed out the first 588 go
/// below, the next 256 are kept and the rest go below.)
#[test]
fn holds_the_largest_n() {
    const N: usize = MAX_KEPT;
    let mut k = KeepFree::<_, N>::new(Bump(1 << 20), Size(PAGE));
    let rs: Vec<Range> = (0..1100).map(|_| k.import(Size(PAGE), Size(PAGE)).unwrap()).collect();
    for r in &rs {
        k.release(*r).unwrap();
    }
    assert_eq!(k.kept().len(), N);
    let first_vouched = 1100 - 2 * N;
    assert_eq!(k.kept(), &rs[first_vouched..first_vouched + N]);
    let c = k.counts();
    assert_eq!((c.imported, c.kept, c.released), (1100, N as u64, (1100 - N) as u64));
    k.check().unwrap();
    // The one kept last first.
    assert_eq!(k.import(Size(PAGE), Size(PAGE)).unwrap(), rs[first_vouched + N - 1]);
    assert_eq!(k.trim(), Size((N - 1) * PAGE));
}
