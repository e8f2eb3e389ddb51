// SPDX-License-Identifier: MIT OR Apache-2.0

//! What the kernel supplies to the vmspace core besides page operations:
//! the lock and the waiter of `vmspace::sync` ([`KernelMutex`] on the
//! kernel crate's `sync` abstractions, [`KernelWaiter`] on a wait queue of
//! the C helpers, for its killable sleeps), and the CPU
//! pin of per-CPU quantum caches ([`KernelCpuPin`]). Linked into both the
//! built-in and the module build (it uses exported functions only).

const __LOG_PREFIX: &[u8] = b"vmspace\0";

mod lock;
mod pin;
mod preempt;
mod waiter;

pub use lock::{KernelLock, KernelMutex};
pub use pin::{cond_resched, current_cpu, nr_cpu_ids, num_online_cpus, relax, KernelCpuPin};
pub use waiter::{sleep_ms, KernelWaiter};
