//! Loom model of waiting for space (`SyncArena` with `Wait::Forever`): the
//! waiter reads the epoch before each attempt and sleeps only while it is
//! unchanged, the freer wakes sleepers only when the waiter count says
//! there are some. A wakeup lost between a failed attempt and the sleep
//! would leave the waiter asleep for ever, which loom reports as a
//! deadlock; the model also checks that the waiter gets the space.

#![cfg(loom)]

use core::time::Duration;

use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use vmspace::arena::{Arena, NoSource, Policy, SliceStore};
use vmspace::sync::{SpinLock, SyncArena, Wait, Waiter};
use vmspace::{Addr, Size};

/// The user-space waiter's protocol (an epoch under a mutex, a condition
/// variable), on loom's primitives.
#[derive(Default)]
struct LoomWaiter {
    epoch: Mutex<u64>,
    changed: Condvar,
}

impl Waiter for LoomWaiter {
    fn now(&self) -> Duration {
        Duration::ZERO
    }
    fn epoch(&self) -> u64 {
        *self.epoch.lock().unwrap()
    }
    fn wait(&self, seen: u64, _timeout: Option<Duration>) -> bool {
        let mut e = self.epoch.lock().unwrap();
        while *e == seen {
            e = self.changed.wait(e).unwrap();
        }
        true
    }
    fn notify_all(&self) {
        *self.epoch.lock().unwrap() += 1;
        self.changed.notify_all();
    }
}

type Shared = SyncArena<SpinLock, LoomWaiter, SliceStore<'static>, NoSource>;

#[test]
fn a_waiter_is_woken_by_the_free_that_makes_room() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.max_branches = 1_000_000;
    b.check(|| {
        let tags: &'static mut [u8] = Box::leak(vec![0u8; 8 << 10].into_boxed_slice());
        let hash: &'static mut [u8] = Box::leak(vec![0u8; 4 << 10].into_boxed_slice());
        let (tp, hp) = (tags as *mut [u8], hash as *mut [u8]);
        let mut a =
            Arena::new("wait", Size(16), SliceStore::new(tags), SliceStore::new(hash), NoSource)
                .unwrap();
        a.add(Addr(1 << 20), Size(32)).unwrap();
        let s: Arc<Shared> = Arc::new(SyncArena::new(a));
        let all = s.alloc(Size(32), Policy::InstantFit, Wait::No).unwrap();
        let waiter = {
            let s = s.clone();
            thread::spawn(move || s.alloc(Size(16), Policy::InstantFit, Wait::Forever))
        };
        s.free(all, Size(32)).unwrap();
        let got = waiter.join().unwrap().expect("the waiter gets the space");
        s.free(got, Size(16)).unwrap();
        s.check().unwrap();
        drop(s);
        // SAFETY: leaked above; the arena over them is gone.
        unsafe {
            drop(Box::from_raw(tp));
            drop(Box::from_raw(hp));
        }
    });
}
