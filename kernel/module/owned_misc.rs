// SPDX-License-Identifier: MIT OR Apache-2.0

//! A misc device whose file operations name this module as their owner.
//!
//! 7.2's `MiscDeviceRegistration` registers the abstraction's static
//! `file_operations`, whose `owner` is unset. Built in, that is harmless; in
//! a module, nothing keeps the module loaded while a file is open, and a
//! module that takes a reference on itself in `open` must drop it in
//! `release`, from its own code, which then still has to return through
//! the module's text after the last reference is gone (a racing `rmmod` may
//! free it first). With `owner` set, the VFS takes the reference in
//! `misc_open` (`fops_get`) and drops it in `__fput` after `release` has
//! returned, in core code.
//!
//! So this registers a copy of the abstraction's table with `owner` set;
//! its entry points are the abstraction's own (they find the device
//! through the `struct miscdevice` they are given, laid out as the
//! abstraction's registration is).

use core::marker::PhantomData;

use kernel::bindings;
use kernel::error::to_result;
use kernel::miscdevice::{MiscDevice, MiscDeviceOptions};
use kernel::prelude::*;
use kernel::types::Opaque;

/// A registered misc device on a copy of the abstraction's file operations
/// owned by a module.
///
/// # Invariants
///
/// - `inner` holds a `struct miscdevice` registered with `misc_register`,
///   whose `fops` is `fops`, and is deregistered once, in `drop`, before
///   `fops` is freed.
/// - `fops` is the table `MiscDeviceOptions::into_raw::<T>` points to, with
///   `owner` set to the module that holds this registration.
#[pin_data(PinnedDrop)]
pub(crate) struct OwnedMiscDevice<T> {
    fops: KBox<bindings::file_operations>,
    #[pin]
    inner: Opaque<bindings::miscdevice>,
    _t: PhantomData<T>,
}

// SAFETY: `misc_deregister` may run on another thread than
// `misc_register`, and nothing else touches the registration after it is
// made; the table is only read.
unsafe impl<T> Send for OwnedMiscDevice<T> {}
// SAFETY: no `&self` method touches the registration.
unsafe impl<T> Sync for OwnedMiscDevice<T> {}

impl<T: MiscDevice> OwnedMiscDevice<T> {
    /// Register `/dev/<name>` on `T`, owned by `module`.
    pub(crate) fn register(name: &'static CStr, module: &'static ThisModule) -> Result<Pin<KBox<Self>>> {
        let raw = MiscDeviceOptions { name }.into_raw::<T>();
        // SAFETY: `into_raw` points `fops` at the abstraction's table for
        // `T`, a static.
        let mut fops = KBox::new(unsafe { *raw.fops }, GFP_KERNEL)?;
        fops.owner = module.as_ptr();
        let table: *const bindings::file_operations = &*fops;
        KBox::try_pin_init(
            try_pin_init!(Self {
                fops,
                inner <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                    let mut raw = raw;
                    // INVARIANT: the copy with the owner, which lives in the
                    // box (its heap memory does not move with it) until
                    // after the device is deregistered.
                    raw.fops = table;
                    // SAFETY: the initializer may write the slot.
                    unsafe { slot.write(raw) };
                    // SAFETY: the slot holds a filled-in miscdevice in pinned
                    // memory, deregistered in `drop` before it is freed. The
                    // abstraction's entry points take `private_data` (this
                    // miscdevice) for their `MiscDeviceRegistration<T>`, a
                    // `repr(transparent)` wrapper of the same
                    // `Opaque<miscdevice>`.
                    to_result(unsafe { bindings::misc_register(slot) })
                }),
                _t: PhantomData,
            }),
            GFP_KERNEL,
        )
    }
}

#[pinned_drop]
impl<T> PinnedDrop for OwnedMiscDevice<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: registered (type invariant), and deregistered only here.
        unsafe { bindings::misc_deregister(self.inner.get()) };
    }
}
