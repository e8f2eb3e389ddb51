//! `VMSPACE_KILLABLE` in user space: accepted with `VMSPACE_WAIT`, in a
//! timed allocation and alone; nothing in user space interrupts a wait, so
//! a killable wait is woken by a free and times out as a plain one does,
//! and the flag alone does not wait. `-EINTR` has its text. (The fatal
//! signal that ends a killable wait is the kernel's; the C API's paths to
//! `-EINTR` are tested on a platform whose waiter can be interrupted in
//! `outside_r62c_killable_platform.rs`, and the core's loop in
//! `userspace/tests/wait_interruptible.rs`.)

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{check_and_destroy, create, free, P, Q};
use vmspace_capi::ctypes::{VMSPACE_KILLABLE, VMSPACE_WAIT};
use vmspace_capi_user::vmspace_native_api::{
    vmspace_arena_alloc, vmspace_arena_alloc_timed, vmspace_strerror,
};

const ENOMEM: i32 = 12;
const EINTR: i32 = 4;
const ETIMEDOUT: i32 = 110;

fn alloc_flags(a: P, size: usize, flags: i32) -> Result<usize, i32> {
    let mut x = 0;
    // SAFETY: a live arena, a writable out pointer.
    match unsafe { vmspace_arena_alloc(a.0, size, flags, &mut x) } {
        0 => Ok(x),
        e => Err(-e),
    }
}

#[test]
fn killable_waits_wait_as_plain_ones_in_user_space() {
    let a = create(1 << 40, Q, 0, core::ptr::null_mut());
    let all = alloc_flags(P(a), Q, VMSPACE_KILLABLE).unwrap();
    // The flag alone: no wait.
    assert_eq!(alloc_flags(P(a), Q, VMSPACE_KILLABLE), Err(ENOMEM));
    // Timed and killable: times out.
    let mut x = 0;
    // SAFETY: a live arena, a writable out pointer.
    let r = unsafe { vmspace_arena_alloc_timed(a, Q, VMSPACE_KILLABLE, 5_000_000, &mut x) };
    assert_eq!(r, -ETIMEDOUT);
    // Waiting and killable: woken by the free.
    let (tx, rx) = mpsc::channel();
    let p = P(a);
    std::thread::spawn(move || {
        let p = p;
        tx.send(alloc_flags(p, Q, VMSPACE_WAIT | VMSPACE_KILLABLE)).unwrap();
    });
    assert!(rx.recv_timeout(Duration::from_millis(20)).is_err(), "did not wait");
    free(a, all, Q);
    // A liveness bound, not a timing assertion: the free must wake it.
    let got = rx.recv_timeout(Duration::from_secs(20)).expect("woken by the free");
    assert_eq!(got, Ok(all));
    free(a, all, Q);
    check_and_destroy(a);
}

#[test]
fn eintr_has_its_text() {
    // SAFETY: any value; a static string comes back.
    let s = unsafe { std::ffi::CStr::from_ptr(vmspace_strerror(-EINTR)) };
    assert!(s.to_str().unwrap().contains("VMSPACE_KILLABLE"), "{s:?}");
}
