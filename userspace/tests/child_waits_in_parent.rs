//! A shared child arena importing from a shared parent waits for space in
//! either by allocating in the child without waiting and waiting in the
//! parent with `SyncArena::wait_for` (what `Source for &SyncArena`
//! documents, and what the C API's children do): a free in the parent
//! wakes it, and so does a free in the child followed by the parent's
//! `wake_waiters`. (Waiting in the child alone sleeps through the
//! parent's frees: the documented limit this pattern lifts.)

use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use vmspace::arena::{Arena, ArenaError, NoSource, PageStore, Policy};
use vmspace::sync::Wait;
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, UserArena};

const Q: usize = 4096;
const BASE: usize = 1 << 40;
const OWN: usize = 1 << 41;
/// A wait that must end does so within this long of its cause.
const WATCHDOG: Duration = Duration::from_secs(10);

type Parent = UserArena<PageStore<MmapBackend>, NoSource>;
type Child = UserArena<PageStore<MmapBackend>, &'static Parent>;

/// `x` for the rest of the process: detached waiters may outlive a failing
/// test. Kept reachable from a static, so that LeakSanitizer (`make asan`)
/// sees memory meant to live, not memory lost.
fn leak<T: 'static>(x: T) -> &'static T {
    static KEPT: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let r: &'static T = Box::leak(Box::new(x));
    KEPT.lock().unwrap().push(r as *const T as usize);
    r
}

fn family() -> (&'static Parent, &'static Child) {
    let mut p = Arena::on_pages("parent", Size(Q), MmapBackend::new(), 1 << 10, NoSource).unwrap();
    p.add(Addr(BASE), Size(4 * Q)).unwrap();
    let parent: &'static Parent = leak(UserArena::new(p));
    let mut c = Arena::on_pages("child", Size(Q), MmapBackend::new(), 1 << 10, parent).unwrap();
    // A page of the child's own, which its frees keep.
    c.add(Addr(OWN), Size(Q)).unwrap();
    (parent, leak(UserArena::new(c)))
}

/// One page from the child, waiting in the parent, on a detached thread.
fn wait_in_parent(parent: &'static Parent, child: &'static Child) -> mpsc::Receiver<Addr> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let attempt = || child.alloc(Size(Q), Policy::InstantFit, Wait::No);
        let got = parent.wait_for(Wait::Forever, attempt(), attempt).unwrap();
        let _ = tx.send(got);
    });
    rx
}

fn until_waiting(a: &Parent) {
    // A liveness bound only: the waiter may be slow to run on a loaded
    // machine.
    let t0 = Instant::now();
    while a.waiting() != 1 {
        assert!(t0.elapsed() < Duration::from_secs(30), "the waiter never waited");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn a_child_waiting_in_its_parent_is_woken_by_frees_in_either() {
    let (parent, child) = family();
    let held: Vec<Addr> =
        (0..4).map(|_| parent.alloc(Size(Q), Policy::InstantFit, Wait::No).unwrap()).collect();
    let own = child.alloc(Size(Q), Policy::InstantFit, Wait::No).unwrap();
    assert_eq!(own, Addr(OWN));
    let full = child.alloc(Size(Q), Policy::InstantFit, Wait::No);
    assert!(matches!(full, Err(ArenaError::NoSpace { .. })), "{full:?}");

    // A free in the parent: the child imports the page.
    let rx = wait_in_parent(parent, child);
    until_waiting(parent);
    assert!(rx.try_recv().is_err(), "served with no space");
    parent.free(held[0], Size(Q)).unwrap();
    let got = rx.recv_timeout(WATCHDOG).expect("not woken by a free in the parent");
    assert_eq!(got, held[0]);
    child.check().unwrap();

    // A free in the child of its own page (which stays in the child: the
    // parent sees nothing), then the parent's wake_waiters.
    let rx = wait_in_parent(parent, child);
    until_waiting(parent);
    child.free(own, Size(Q)).unwrap();
    parent.wake_waiters();
    let again = rx.recv_timeout(WATCHDOG).expect("not woken by a free in the child");
    assert_eq!(again, own);
    child.free(again, Size(Q)).unwrap();
    child.free(got, Size(Q)).unwrap();
    assert_eq!(parent.waiting(), 0);
    for &a in &held[1..] {
        parent.free(a, Size(Q)).unwrap();
    }
    parent.check().unwrap();
}
