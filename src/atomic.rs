//! The atomics the core uses, from one place: `core`'s in every build, and
//! `loom`'s when the crate is compiled with `--cfg loom` for the concurrency
//! models in `tests/loom_*.rs` (so loom sees every atomic operation of the
//! lock-free protocols and explores their interleavings). Nothing else
//! changes between the two: the core has no dependency outside `cfg(loom)`.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

/// A pause in a spin-wait: the CPU's spin hint, or under loom a yield, so
/// the model checker runs the thread being waited for.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// The byte at `ptr` (in mapped memory: the chunk map's tables) as an atomic.
///
/// Under loom, which cannot watch raw memory, each address gets an atomic of
/// its own the first time it is asked for, starting at the byte's value
/// then; later changes live in that atomic only, so models must not unmap
/// and map such memory again.
///
/// # Safety
///
/// As for [`core::sync::atomic::AtomicU8::from_ptr`]: `ptr` is valid for
/// reads and writes for `'a`, and only accessed atomically meanwhile.
#[inline]
pub(crate) unsafe fn atomic_u8<'a>(ptr: *mut u8) -> &'a AtomicU8 {
    #[cfg(not(loom))]
    // SAFETY: the caller's contract is `from_ptr`'s.
    return unsafe { AtomicU8::from_ptr(ptr) };
    #[cfg(loom)]
    // SAFETY: the caller's contract: `ptr` is readable now.
    return unsafe { loom_bytes::get(ptr) };
}

#[cfg(loom)]
mod loom_bytes {
    extern crate std;
    use std::boxed::Box;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::AtomicU8;

    loom::lazy_static! {
        /// One atomic per address, for one loom execution.
        static ref BYTES: Mutex<HashMap<usize, &'static AtomicU8>> = Mutex::new(HashMap::new());
    }

    /// # Safety
    ///
    /// `ptr` is readable (its value seeds the atomic the first time).
    pub(super) unsafe fn get<'a>(ptr: *mut u8) -> &'a AtomicU8 {
        let mut bytes = BYTES.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: readable (the caller's contract).
        let first = unsafe { ptr.read() };
        bytes.entry(ptr as usize).or_insert_with(|| Box::leak(Box::new(AtomicU8::new(first))))
    }
}
