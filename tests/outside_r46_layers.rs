//! Outside review, round 46: layers over a source that panics: a child
//! arena over `KeepFree` over a `&SyncArena` parent whose own source
//! panics; per-CPU caches and cache handles dropped as the panic unwinds.
//! Each scenario runs in a child process (an abort, or a hang, cannot be
//! caught), with a watchdog.

mod child_process;
use child_process::run_child_within;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vmspace::arena::{Arena, ArenaError, Policy, SliceStore, Source};
use vmspace::qcache::{CpuPin, QCacheConfig, SlotFlag};
use vmspace::sources::KeepFree;
use vmspace::sync::{CacheHandle, CpuCaches, NoWait, SpinLock, SyncArena};
use vmspace::{Addr, Range, Size};

const Q: usize = 4096;
const CHILD: &str = "VMSPACE_R46_LAYERS_CHILD";

#[derive(Default)]
struct Flags {
    import: AtomicBool,
    release: AtomicBool,
    releases: AtomicUsize,
    next: AtomicUsize,
}

#[derive(Clone)]
struct Panicky(Arc<Flags>);

impl Panicky {
    fn new() -> Self {
        let f = Flags::default();
        f.next.store(1 << 30, Ordering::SeqCst);
        Panicky(Arc::new(f))
    }
}

impl Source for Panicky {
    fn quantum(&self) -> Size {
        Size(Q)
    }
    fn import(&mut self, size: Size, align: Size) -> Result<Range, ArenaError> {
        assert!(!self.0.import.load(Ordering::SeqCst), "import panics");
        let n = self.0.next.load(Ordering::SeqCst);
        let base = (n + align.0 - 1) & !(align.0 - 1);
        self.0.next.store(base + size.0, Ordering::SeqCst);
        Ok(Range::from_size(Addr(base), size)?)
    }
    fn release(&mut self, _: Range) -> Result<(), ArenaError> {
        self.0.releases.fetch_add(1, Ordering::SeqCst);
        assert!(!self.0.release.load(Ordering::SeqCst), "release panics");
        Ok(())
    }
}

type Parent<'a> = SyncArena<SpinLock, NoWait, SliceStore<'a>, Panicky>;

fn parent_keep_child() {
    let s = Panicky::new();
    let f = s.0.clone();
    let (mut pt, mut ph) = (vec![0u8; 64 << 10], vec![0u8; 16 << 10]);
    let parent: Parent<'_> = SyncArena::new(
        Arena::new("parent", Size(Q), SliceStore::new(&mut pt), SliceStore::new(&mut ph), s)
            .unwrap(),
    );
    let r = catch_unwind(AssertUnwindSafe(|| {
        let (mut t, mut h) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
        let mut child = Arena::new(
            "child",
            Size(16),
            SliceStore::new(&mut t),
            SliceStore::new(&mut h),
            KeepFree::<_, 2>::new(&parent, Size(Q)),
        )
        .unwrap();
        let a = child.alloc(Size(Q), Policy::InstantFit).unwrap();
        let _b = child.alloc(Size(Q), Policy::InstantFit).unwrap();
        let _c = child.alloc(Size(8 * Q), Policy::InstantFit).unwrap();
        child.free(a, Size(Q)).unwrap(); // kept by KeepFree (parent still holds it)
        f.import.store(true, Ordering::SeqCst);
        f.release.store(true, Ordering::SeqCst);
        // Parent has nothing free that big: its import panics.
        let _ = child.alloc(Size(1 << 20), Policy::InstantFit);
    }));
    assert!(r.is_err());
    // The parent's lock works, its books hold, its source saw no call.
    parent.check().unwrap();
    // The lock is free; the child's spans stayed allocated in the parent
    // (the child's drop skipped its give-backs), the one `KeepFree` kept
    // stayed with it (its drop skipped its trim).
    assert_eq!(parent.with(|a| a.sizes().allocated), Size(10 * Q));
    assert_eq!(f.releases.load(Ordering::SeqCst), 0);
    drop(parent);
    assert_eq!(f.releases.load(Ordering::SeqCst), 0, "parent's drop skipped its source");
}

#[test]
fn child_over_keepfree_over_sync_parent_whose_source_panics() {
    let name = "child_over_keepfree_over_sync_parent_whose_source_panics";
    if std::env::var(CHILD).is_ok() {
        parent_keep_child();
        return;
    }
    let st = run_child_within(name, CHILD, "run", Duration::from_secs(30));
    assert!(matches!(st, Some(s) if s.success()), "child: {st:?} (None: hung)");
}

struct OneSlot(SlotFlag);
// SAFETY: one slot, handed out only while its flag is taken.
unsafe impl CpuPin for OneSlot {
    fn slots(&self) -> usize {
        1
    }
    fn pin(&self) -> usize {
        while SlotFlag::take_any(core::slice::from_ref(&self.0), 0).is_none() {}
        0
    }
    unsafe fn unpin(&self, _: usize) {
        // SAFETY: the caller pinned slot 0 with `pin`, which took the flag.
        unsafe { self.0.release() }
    }
}

fn cpu_caches_unwind() {
    let s = Panicky::new();
    let f = s.0.clone();
    let (mut t, mut h, mut qc, mut mags, mut mags2) = (
        vec![0u8; 64 << 10],
        vec![0u8; 16 << 10],
        vec![0u8; 1 << 16],
        vec![0u8; 1 << 14],
        vec![0u8; 1 << 14],
    );
    let shared: Parent<'_> = SyncArena::with_quantum_caches(
        Arena::new("s", Size(16), SliceStore::new(&mut t), SliceStore::new(&mut h), s).unwrap(),
        QCacheConfig::new(4, SliceStore::new(&mut qc)),
    )
    .unwrap();
    let m1 = SliceStore::new(&mut mags);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let cpu = CpuCaches::new(&shared, OneSlot(SlotFlag::new()), m1).unwrap();
        let mut hd = CacheHandle::new(&shared);
        let mut xs = vec![];
        for _ in 0..100 {
            xs.push(cpu.alloc(Size(16)).unwrap());
            xs.push(hd.alloc(Size(32)).unwrap());
        }
        for (i, x) in xs.iter().enumerate() {
            if i % 2 == 0 {
                cpu.free(*x, Size(16)).unwrap();
            } else {
                hd.free(*x, Size(32)).unwrap();
            }
        }
        f.import.store(true, Ordering::SeqCst);
        f.release.store(true, Ordering::SeqCst);
        // A new class: a slab to import: panics; cpu and hd unwind.
        loop {
            cpu.alloc(Size(64)).unwrap();
        }
    }));
    assert!(r.is_err());
    shared.check().unwrap();
    // Caches work afterwards (no slot left pinned, no lock held).
    f.import.store(false, Ordering::SeqCst);
    let cpu =
        CpuCaches::new(&shared, OneSlot(SlotFlag::new()), SliceStore::new(&mut mags2)).unwrap();
    let mut xs = vec![];
    for _ in 0..300 {
        xs.push(cpu.alloc(Size(16)).unwrap());
        xs.push(cpu.alloc(Size(64)).unwrap());
    }
    let mut sorted = xs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), xs.len(), "an object handed out twice");
    for (i, x) in xs.iter().enumerate() {
        cpu.free(*x, Size(if i % 2 == 0 { 16 } else { 64 })).unwrap();
    }
    drop(cpu);
    // The import returned: give-backs resume (release still panics! turn off).
    f.release.store(false, Ordering::SeqCst);
    while shared.reclaim() > 0 {}
    shared.check().unwrap();
    assert_eq!(shared.with(|a| a.sizes().allocated), Size(0));
    drop(shared);
}

#[test]
fn cpu_caches_and_handles_dropped_as_a_slab_import_panics() {
    let name = "cpu_caches_and_handles_dropped_as_a_slab_import_panics";
    if std::env::var(CHILD).is_ok() {
        cpu_caches_unwind();
        return;
    }
    let st = run_child_within(name, CHILD, "run", Duration::from_secs(30));
    assert!(matches!(st, Some(s) if s.success()), "child: {st:?} (None: hung)");
}
