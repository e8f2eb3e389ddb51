// SPDX-License-Identifier: MIT OR Apache-2.0

//! [`KernelLock`]: a kernel lock as the core's data-less [`RawLock`], and
//! [`KernelMutex`], the one `vmspace::sync` runs on in the kernel build.
//!
//! The core's lock has no data and no guard (`lock`/`try_lock`/`unlock`),
//! and a `SyncArena` holds it by value and may move. A kernel lock must not
//! move once initialised, so the lock's state lives in a pinned heap
//! allocation of its own ([`KBox::pin_init`]) and is driven through the
//! kernel crate's lock [`Backend`] trait, the same calls `kernel::sync::Lock`
//! makes: initialised with a name and a lockdep class, locked and unlocked
//! by the backend, never moved until it is freed.

use core::marker::PhantomPinned;
use core::pin::Pin;

use kernel::alloc::KBox;
use kernel::error::Error;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::lock::mutex::MutexBackend;
use kernel::sync::lock::Backend;
use kernel::sync::LockClassKey;
use kernel::types::Opaque;
use vmspace::sync::RawLock;

/// The pinned state of a [`KernelLock`].
#[pin_data]
struct State<B: Backend> {
    #[pin]
    raw: Opaque<B::State>,
    #[pin]
    _pin: PhantomPinned,
}

/// A kernel lock without data, whose state may not move, in a value that may.
///
/// Any lock backend of the kernel crate whose guard carries no state
/// (`struct mutex`, `spinlock_t`). Make one with [`new_kernel_mutex!`] (a
/// lockdep class per call site) or [`KernelLock::new`].
///
/// # Invariants
///
/// `state.raw` was initialised by `B::init` and stays at its address until
/// `state` is freed.
pub struct KernelLock<B: Backend<GuardState = ()>> {
    // Dropped before `own_class`, whose key it names.
    state: Pin<KBox<State<B>>>,
    /// The dynamically registered lockdep key of a lock in a class of its
    /// own ([`KernelLock::with_own_class`]).
    own_class: Option<Pin<KBox<LockClassKey>>>,
}

/// A kernel `struct mutex`: a sleeping lock, because arena operations under
/// it may allocate pages (`GFP_KERNEL`); not for atomic context.
pub type KernelMutex = KernelLock<MutexBackend>;

/// A new, unlocked [`KernelMutex`] with a lockdep class of its own call
/// site and an optional name: `new_kernel_mutex!()`,
/// `new_kernel_mutex!("vmspace shared arena")`. Like the kernel crate's
/// `new_mutex!`; evaluates to `Result<KernelMutex, Error>`.
///
/// The name is a static, like the class: lockdep matches a class by its key
/// and the address of its name, and a constant's address is not unique
/// (each copy of code that uses it, after inlining or in a generic
/// function's instances, may carry its own), which lockdep reports as one
/// key under two names.
#[macro_export]
macro_rules! new_kernel_mutex {
    ($($name:literal)?) => {{
        static NAME: &::kernel::str::CStr = ::kernel::optional_name!($($name)?);
        $crate::KernelMutex::new(NAME, ::kernel::static_lock_class!())
    }};
}

impl<B: Backend<GuardState = ()>> KernelLock<B> {
    /// A new, unlocked lock named `name` in the lockdep class `key`.
    pub fn new(name: &'static CStr, key: Pin<&'static LockClassKey>) -> Result<Self, Error> {
        let state = KBox::pin_init(
            pin_init!(State::<B> {
                // SAFETY: `slot` is valid for writes while the closure runs;
                // `name` and `key` are static, so they outlive the lock.
                raw <- Opaque::ffi_init(|slot| unsafe { B::init(slot, name.as_char_ptr(), key.as_ptr()) }),
                _pin: PhantomPinned,
            }),
            GFP_KERNEL,
        )?;
        // INVARIANT: `B::init` ran on `raw`, which is pinned in `state`.
        Ok(KernelLock { state, own_class: None })
    }

    /// A new, unlocked lock named `name` in a lockdep class of its own: a
    /// key registered for it (`lockdep_register_key`), unregistered when
    /// the lock is dropped (which then waits for an RCU grace period under
    /// `CONFIG_LOCKDEP`; without lockdep both are empty). For locks of one
    /// kind that nest in any order lockdep cannot be told: the arenas of
    /// the C API, each importing from a parent or through functions that
    /// may take any other arena's lock under its own. Drop it in task
    /// context.
    pub fn with_own_class(name: &'static CStr) -> Result<Self, Error> {
        let key = KBox::pin_init(LockClassKey::new_dynamic(), GFP_KERNEL)?;
        let key_ptr: *const LockClassKey = &*key;
        // SAFETY: the key is pinned in its box, which the lock keeps in
        // `own_class` and frees only after `state` (field order), the one
        // user of the key; so for every use the reference is valid, though
        // not for `'static`.
        let key_ref = unsafe { Pin::new_unchecked(&*key_ptr) };
        let mut lock = Self::new(name, key_ref)?;
        lock.own_class = Some(key);
        Ok(lock)
    }

    fn raw(&self) -> *mut B::State {
        self.state.raw.get()
    }
}

// SAFETY: the kernel's locks may be taken and released from any task (the
// releasing task being the holder, as `RawLock::unlock` requires); the
// state is only reached through the backend's functions.
unsafe impl<B: Backend<GuardState = ()>> Send for KernelLock<B> {}
// SAFETY: as above; every operation on a shared reference is one of the
// backend's, which the kernel makes safe to call concurrently.
unsafe impl<B: Backend<GuardState = ()>> Sync for KernelLock<B> {}

// SAFETY: the `Backend` contract gives exclusion between `lock` (or a
// successful `try_lock`) and `unlock`; the kernel's locks have acquire
// semantics on taking and release semantics on giving back (see
// Documentation/memory-barriers.txt, "LOCK ACQUISITION FUNCTIONS").
unsafe impl<B: Backend<GuardState = ()>> RawLock for KernelLock<B> {
    fn lock(&self) {
        // SAFETY: `raw` was initialised by `B::init` (type invariant).
        unsafe { B::lock(self.raw()) }
    }

    fn try_lock(&self) -> bool {
        // SAFETY: as above.
        unsafe { B::try_lock(self.raw()) }.is_some()
    }

    unsafe fn unlock(&self) {
        // SAFETY: initialised (type invariant); the caller holds the lock
        // (this method's contract), so it is its owner.
        unsafe { B::unlock(self.raw(), &()) }
    }
}
