//! Outside review r62c: the C API's `VMSPACE_KILLABLE` ending a wait with
//! `-EINTR`, on a platform whose waiter can be interrupted (a thread is
//! "killed" when its id is in `KILLED`; its interruptible sleeps return at
//! least every millisecond so that the loop looks again, as the kernel's
//! returns on a fatal signal). The user-space platform's waiter is never
//! interrupted, so `killable.rs` cannot reach any of these paths.
//!
//! Liveness only: a wait the kill does not end is freed after 10 s so that
//! the test fails rather than hangs.

use core::alloc::Layout;
use core::ffi::{c_int, c_void};
use std::collections::HashSet;
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

use vmspace::sync::Waiter;
use vmspace_capi::ctypes::{
    vmspace_addr_t, vmspace_arena_t, vmspace_params, vmspace_size_t, VMSPACE_KILLABLE, VMSPACE_WAIT,
};
use vmspace_capi::{Api, Platform};
use vmspace_capi_ctest as _;
use vmspace_user::{CondvarWaiter, MmapBackend, ParkingLock, SchedPin};

const EINTR: c_int = 4;
const ETIMEDOUT: c_int = 110;
const ENOMEM: c_int = 12;
const Q: usize = 4096;

static KILLED: Mutex<Option<HashSet<ThreadId>>> = Mutex::new(None);

fn killed() -> bool {
    let id = std::thread::current().id();
    KILLED.lock().unwrap().as_ref().is_some_and(|s| s.contains(&id))
}

fn kill(id: ThreadId) {
    KILLED.lock().unwrap().get_or_insert_with(HashSet::new).insert(id);
}

#[derive(Default)]
struct Killable(CondvarWaiter);

impl Waiter for Killable {
    fn now(&self) -> Duration {
        self.0.now()
    }
    fn epoch(&self) -> u64 {
        self.0.epoch()
    }
    fn wait(&self, seen: u64, timeout: Option<Duration>) -> bool {
        self.0.wait(seen, timeout)
    }
    fn interrupted(&self) -> bool {
        killed()
    }
    fn wait_interruptible(&self, seen: u64, timeout: Option<Duration>) -> bool {
        let ms = Duration::from_millis(1);
        self.0.wait(seen, Some(timeout.map_or(ms, |t| t.min(ms))))
    }
    fn notify_all(&self) {
        self.0.notify_all()
    }
}

struct KPlat;

// SAFETY: the global allocator, as the user platform.
unsafe impl Platform for KPlat {
    type Lock = ParkingLock;
    type Waiter = Killable;
    type Pin = SchedPin;
    type Pages = MmapBackend;
    fn lock() -> Option<ParkingLock> {
        Some(ParkingLock::default())
    }
    fn waiter() -> Option<Killable> {
        Some(Killable::default())
    }
    fn pin() -> Option<SchedPin> {
        Some(SchedPin::new())
    }
    fn pages() -> MmapBackend {
        MmapBackend::new()
    }
    fn random_u32() -> u32 {
        0x5eed
    }
    fn alloc_object(layout: Layout) -> *mut u8 {
        // SAFETY: never zero-sized.
        unsafe { std::alloc::alloc(layout) }
    }
    unsafe fn free_object(ptr: *mut u8, layout: Layout) {
        // SAFETY: from alloc_object with layout.
        unsafe { std::alloc::dealloc(ptr, layout) }
    }
}

type K = Api<KPlat>;

#[derive(Clone, Copy)]
struct P(*mut vmspace_arena_t);
// SAFETY: the C API is thread-safe.
unsafe impl Send for P {}
// SAFETY: as above.
unsafe impl Sync for P {}

fn create(size: usize, qcache_max: usize, parent: *mut vmspace_arena_t) -> P {
    let p = vmspace_params {
        name: c"r62c".as_ptr(),
        base: if size > 0 { 1 << 40 } else { 0 },
        size,
        quantum: Q,
        qcache_max,
        parent,
        ..Default::default()
    };
    let mut a = core::ptr::null_mut();
    // SAFETY: valid params, writable out pointer.
    assert_eq!(unsafe { K::vmspace_arena_create_ex(&p, &mut a) }, 0);
    P(a)
}

fn alloc(a: P, size: usize, flags: c_int) -> Result<usize, c_int> {
    let mut x = 0;
    // SAFETY: live arena, writable out.
    match unsafe { K::vmspace_arena_alloc(a.0, size, flags, &mut x) } {
        0 => Ok(x),
        e => Err(-e),
    }
}

fn timed(a: P, size: usize, flags: c_int, ns: u64) -> Result<usize, c_int> {
    let mut x = 0;
    // SAFETY: live arena, writable out.
    match unsafe { K::vmspace_arena_alloc_timed(a.0, size, flags, ns, &mut x) } {
        0 => Ok(x),
        e => Err(-e),
    }
}

fn free(a: P, x: usize, size: usize) {
    // SAFETY: live arena.
    assert_eq!(unsafe { K::vmspace_arena_free(a.0, x, size) }, 0);
}

fn destroy(a: P) {
    // SAFETY: live arena, nothing allocated.
    assert_eq!(unsafe { K::vmspace_arena_check(a.0) }, 0);
    // SAFETY: as above.
    assert_eq!(unsafe { K::vmspace_arena_destroy(a.0) }, 0);
}

/// Run `f` on a thread, kill it once it is running, and give its result;
/// a wait the kill does not end gets `rescue` called after 10 s.
fn killed_run(
    f: impl FnOnce() -> Result<usize, c_int> + Send,
    rescue: impl FnOnce(),
) -> Result<usize, c_int> {
    std::thread::scope(|s| {
        let t = s.spawn(f);
        std::thread::sleep(Duration::from_millis(30));
        kill(t.thread().id());
        for _ in 0..1000 {
            if t.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !t.is_finished() {
            rescue();
        }
        t.join().unwrap()
    })
}

const W: c_int = VMSPACE_WAIT | VMSPACE_KILLABLE;

#[test]
fn a_killable_wait_in_a_root_ends_with_eintr() {
    for qcache in [0, 8 * Q] {
        for size in [Q, 4 * Q] {
            let a = create(16 * Q, qcache, core::ptr::null_mut());
            let all = alloc(a, 16 * Q, 0).unwrap();
            let r = killed_run(|| alloc(a, size, W), || free(a, all, 16 * Q));
            assert_eq!(r, Err(EINTR), "qcache {qcache} size {size}");
            free(a, all, 16 * Q);
            destroy(a);
        }
    }
}

#[test]
fn a_killable_timed_wait_ends_with_eintr_not_etimedout() {
    for qcache in [0, 8 * Q] {
        let a = create(16 * Q, qcache, core::ptr::null_mut());
        let all = alloc(a, 16 * Q, 0).unwrap();
        let r =
            killed_run(|| timed(a, Q, VMSPACE_KILLABLE, 600_000_000_000), || free(a, all, 16 * Q));
        assert_eq!(r, Err(EINTR), "qcache {qcache}");
        // Not killed: it times out as a plain timed wait.
        assert_eq!(timed(a, Q, VMSPACE_KILLABLE, 1_000_000), Err(ETIMEDOUT));
        free(a, all, 16 * Q);
        destroy(a);
    }
}

/// A child waits at the root of its tree: the kill ends it there too.
#[test]
fn a_killable_wait_in_a_child_ends_with_eintr() {
    for qcache in [0, 8 * Q] {
        let root = create(16 * Q, 0, core::ptr::null_mut());
        let child = create(0, qcache, root.0);
        let all = alloc(root, 16 * Q, 0).unwrap();
        let r = killed_run(|| alloc(child, Q, W), || free(root, all, 16 * Q));
        assert_eq!(r, Err(EINTR), "qcache {qcache}");
        free(root, all, 16 * Q);
        destroy(child);
        destroy(root);
    }
}

unsafe extern "C" fn refuse(
    _: *mut c_void,
    _: vmspace_size_t,
    _: c_int,
    _: *mut vmspace_addr_t,
) -> c_int {
    -ENOMEM
}
unsafe extern "C" fn release(_: *mut c_void, _: vmspace_addr_t, _: vmspace_size_t) {}

/// A root whose import functions never have room polls: the kill still
/// ends its wait (and a child's below it).
#[test]
fn a_killable_wait_at_a_polling_root_ends_with_eintr() {
    let root = create(0, 0, core::ptr::null_mut());
    assert_eq!(
        // SAFETY: live arena, functions of the right type.
        unsafe {
            K::vmspace_arena_set_import(
                root.0,
                Some(refuse),
                Some(release),
                core::ptr::null_mut(),
                Q,
            )
        },
        0
    );
    let child = create(0, 8 * Q, root.0);
    for (a, size) in [(root, Q), (child, Q), (child, 16 * Q)] {
        let r = killed_run(
            || alloc(a, size, W),
            || {
                // SAFETY: live arena.
                unsafe { K::vmspace_arena_add(root.0, 1 << 40, 1 << 20, 0) };
            },
        );
        assert_eq!(r, Err(EINTR), "size {size}");
    }
    destroy(child);
    destroy(root);
}

/// The flag alone does not wait, killed or not; space that is there is
/// taken by a killed thread.
#[test]
fn killed_threads_take_space_that_is_there() {
    let a = create(16 * Q, 8 * Q, core::ptr::null_mut());
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            kill(std::thread::current().id());
            let x = alloc(a, Q, W).unwrap();
            let y = timed(a, Q, VMSPACE_KILLABLE, 0).unwrap();
            free(a, x, Q);
            free(a, y, Q);
            let all = alloc(a, 16 * Q, VMSPACE_KILLABLE).unwrap();
            let r =
                (alloc(a, Q, VMSPACE_KILLABLE), timed(a, Q, VMSPACE_KILLABLE, 0), alloc(a, Q, W));
            free(a, all, 16 * Q);
            r
        })
        .join()
        .unwrap()
    });
    // A timeout of 0 "tries once without sleeping" and fails with
    // -ETIMEDOUT; a killed waiting allocation ends with -EINTR.
    assert_eq!(r, (Err(ENOMEM), Err(ETIMEDOUT), Err(EINTR)));
    destroy(a);
}

/// A killable constrained allocation (never from the caches) in a root
/// and in a child waits at the root and ends with -EINTR.
#[test]
fn a_killable_xalloc_ends_with_eintr() {
    let root = create(16 * Q, 0, core::ptr::null_mut());
    let child = create(0, 8 * Q, root.0);
    let all = alloc(root, 16 * Q, 0).unwrap();
    for a in [root, child] {
        let r = killed_run(
            move || {
                let a = a;
                let mut x = 0;
                // SAFETY: live arena, writable out.
                match unsafe { K::vmspace_arena_xalloc(a.0, Q, 2 * Q, 0, 0, 0, 0, 0, W, &mut x) } {
                    0 => Ok(x),
                    e => Err(-e),
                }
            },
            || free(root, all, 16 * Q),
        );
        assert_eq!(r, Err(EINTR));
    }
    free(root, all, 16 * Q);
    destroy(child);
    destroy(root);
}
