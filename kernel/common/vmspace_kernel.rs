// SPDX-License-Identifier: MIT OR Apache-2.0

//! What the kernel supplies to the vmspace core besides page operations:
//! the lock and the waiter of `vmspace::sync` ([`KernelMutex`],
//! [`KernelWaiter`]), the CPU pin of per-CPU quantum caches
//! ([`KernelCpuPin`]), and a way to run a closure on several kernel threads
//! at once ([`run_threads`]) for the concurrency suites. Linked into both the
//! built-in and the module build (it uses exported functions only).

const __LOG_PREFIX: &[u8] = b"vmspace\0";

mod mutex;
mod pin;
mod sys;
mod threads;
mod waiter;

pub use mutex::KernelMutex;
pub use pin::{current_cpu, nr_cpu_ids, num_online_cpus, KernelCpuPin};
pub use threads::run_threads;
pub use waiter::{relax, sleep_ms, KernelWaiter};
