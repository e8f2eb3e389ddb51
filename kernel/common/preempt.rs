// SPDX-License-Identifier: MIT OR Apache-2.0

//! The C helpers in `preempt.c`: what the kernel crate has no Rust API for.
//! Their declarations are made from `preempt.h` by the kernel build's
//! bindgen at build time (`kernel/crates.kbuild`), not written by hand.

#[expect(unreachable_pub, reason = "bindgen declares every function pub")]
mod generated {
    include!(concat!(env!("VMK_OBJ"), "/kernel/common/preempt_bindings.rs"));
}

pub(crate) use generated::{
    vmspace_cond_resched, vmspace_fatal_signal_pending, vmspace_pin_cpu, vmspace_relax,
    vmspace_unpin_cpu, vmspace_wq_free, vmspace_wq_new, vmspace_wq_wait, vmspace_wq_wake_all,
};

/// `vmspace_wq_wait`'s modes (`VMSPACE_WQ_*` in `preempt.h`; bindgen
/// declares the functions only).
pub(crate) mod wq_mode {
    /// `TASK_UNINTERRUPTIBLE`.
    pub(crate) const UNINTERRUPTIBLE: i32 = 0;
    /// `TASK_IDLE`.
    pub(crate) const IDLE: i32 = 1;
    /// `TASK_KILLABLE`.
    pub(crate) const KILLABLE: i32 = 2;
}
