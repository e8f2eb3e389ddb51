//! Round 62b (outside reviewer): `PageOps::reschedule` reaches the backend
//! from an arena's address-hash doubling through `PageStore` (src/arena/
//! store.rs:44-47: "let the thread be rescheduled where its backing can
//! sleep ([`PageOps::reschedule`])") and through `FaultInjector` (which
//! wraps a backend); CHANGELOG.md (Unreleased, Added): "the address hash
//! calls it every 4,096 buckets or entries it moves when it doubles".

use std::sync::atomic::{AtomicUsize, Ordering};

use vmspace::arena::{NoSource, PageStore};
use vmspace::{Addr, Arena, Policy, Protection, Range, ShimError, Size};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, PageOps};

/// A backend that counts its reschedule points.
struct Resched<P> {
    inner: P,
    n: AtomicUsize,
}

// SAFETY: every call is the inner backend's.
unsafe impl<P: PageOps> PageOps for Resched<P> {
    fn page_size(&self) -> Size {
        self.inner.page_size()
    }
    fn name(&self) -> &'static str {
        "resched"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.inner.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds the contract, as for the inner backend.
        unsafe { self.inner.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds the contract, as for the inner backend.
        unsafe { self.inner.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: the caller upholds the contract, as for the inner backend.
        unsafe { self.inner.unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        // SAFETY: the caller upholds the contract, as for the inner backend.
        unsafe { self.inner.protect(range, prot) }
    }
    fn reschedule(&self) {
        self.n.fetch_add(1, Ordering::Relaxed);
        self.inner.reschedule()
    }
}

const PAGE: usize = 4096;

fn fill<P: PageOps>(ops: P, n: usize) -> usize {
    let mut a = Arena::new(
        "r",
        Size(16),
        PageStore::new(&ops, Size(32 << 20)).unwrap(),
        PageStore::new(&ops, Size(4 << 20)).unwrap(),
        NoSource,
    )
    .unwrap();
    a.add(Addr(1 << 40), Size(1 << 30)).unwrap();
    for _ in 0..n {
        a.alloc(Size(16), Policy::InstantFit).unwrap();
    }
    a.check().unwrap();
    n
}

/// 70,000 live allocations: the doublings to 131,072 buckets make 62 or 63
/// reschedule points (32 in the last alone), each reaching the backend.
#[test]
fn reschedule_reaches_the_backend_through_page_store() {
    let mut buf = vec![0u8; 64 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let r = Resched { inner: &sim, n: AtomicUsize::new(0) };
    fill(&r, 70_000);
    let got = r.n.load(Ordering::Relaxed);
    assert!((62..=63).contains(&got), "{got}");
}

#[test]
fn reschedule_reaches_the_backend_through_a_fault_injector() {
    let mut buf = vec![0u8; 64 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let r = Resched { inner: &sim, n: AtomicUsize::new(0) };
    let f = FaultInjector::new(&r);
    fill(&f, 70_000);
    let got = r.n.load(Ordering::Relaxed);
    assert!((62..=63).contains(&got), "{got}");
}
