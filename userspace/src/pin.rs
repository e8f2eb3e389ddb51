//! [`SchedPin`]: the user-space [`CpuPin`] for per-CPU quantum caches.

use vmspace::qcache::{CpuPin, SlotFlag};
use vmspace::sync::CpuCaches;

use crate::sync::{CondvarWaiter, ParkingLock};

/// A [`CpuPin`] for user space: one try-lock ([`SlotFlag`]) per slot, by
/// default one slot per possible CPU number ([`possible_cpus`]). Pinning takes the slot of the CPU
/// `sched_getcpu()` reports, or the next free one when another thread holds
/// it (a thread can be preempted or migrate while pinned; the lock keeps the
/// slot its own), and yields the CPU after a full round of busy slots.
#[derive(Debug)]
pub struct SchedPin {
    flags: Box<[SlotFlag]>,
}

impl SchedPin {
    /// One slot per CPU number the system can ever have
    /// ([`possible_cpus`]).
    pub fn new() -> Self {
        Self::with_slots(possible_cpus())
    }

    /// `slots` slots, at least one and at most [`MAX_SLOTS`]; CPUs past the
    /// last share slots.
    pub fn with_slots(slots: usize) -> Self {
        let n = slots.clamp(1, MAX_SLOTS);
        SchedPin { flags: (0..n).map(|_| SlotFlag::new()).collect() }
    }
}

/// The most slots a pin keeps (64 bytes each: 4 MiB): more than any Linux
/// build numbers CPUs (`NR_CPUS` is at most 8,192), so no CPU shares a slot
/// for want of one, and a caller's larger count is not an allocation that
/// aborts the process.
pub const MAX_SLOTS: usize = 1 << 16;

/// The number of CPU numbers the system can ever use: the highest in
/// `/sys/devices/system/cpu/possible` plus one (CPUs hot-plugged later
/// included, and numbers past holes in the set), else
/// `sysconf(_SC_NPROCESSORS_CONF)`, else the available parallelism. The
/// sysconf count alone is of CPUs present, not the highest number plus one:
/// with CPUs hot-plugged later or numbered past a hole, threads on the
/// highest CPUs would find no slot of their own.
pub fn possible_cpus() -> usize {
    if let Some(n) = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| highest_cpu(&s))
        .and_then(|h| h.checked_add(1))
    {
        return n;
    }
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    })
}

/// The highest CPU number in a kernel CPU list (`0-3,8,10-11`), `None` if
/// it is not one.
fn highest_cpu(list: &str) -> Option<usize> {
    let mut highest = None;
    for part in list.trim().split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi) = (lo.parse::<usize>().ok()?, hi.parse::<usize>().ok()?);
        if lo > hi {
            return None;
        }
        highest = highest.max(Some(hi));
    }
    highest
}

impl Default for SchedPin {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `slots` is the length of `flags`, fixed and non-zero (`with_slots`);
// `pin` returns only an index whose flag it took (`take_any`: exclusive until
// released, acquire ordered); `unpin` releases the flag its caller took
// (release ordered).
unsafe impl CpuPin for SchedPin {
    #[inline]
    fn slots(&self) -> usize {
        self.flags.len()
    }

    #[inline]
    fn pin(&self) -> usize {
        loop {
            // SAFETY: sched_getcpu has no preconditions; -1 (no answer)
            // becomes a large hint, reduced into range by `take_any`.
            let cpu = unsafe { libc::sched_getcpu() } as usize;
            if let Some(slot) = SlotFlag::take_any(&self.flags, cpu) {
                return slot;
            }
            std::thread::yield_now();
        }
    }

    #[inline]
    unsafe fn unpin(&self, slot: usize) {
        // SAFETY: the caller pinned `slot` (this method's contract), so we
        // took its flag.
        unsafe { self.flags[slot].release() }
    }
}

/// Per-CPU quantum caches for a [`UserArena`](crate::UserArena), pinned
/// with [`RseqPin`](crate::RseqPin) unless said otherwise.
pub type UserCpuCaches<'a, S, I, P = crate::RseqPin> =
    CpuCaches<'a, ParkingLock, CondvarWaiter, S, I, P>;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn one_slot_per_possible_cpu() {
        let pin = SchedPin::new();
        // SAFETY: no preconditions.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
        assert_eq!(pin.slots(), possible_cpus());
        assert!(pin.slots() as libc::c_long >= cpus, "fewer slots than CPUs present");
        // SAFETY: no preconditions.
        let here = unsafe { libc::sched_getcpu() };
        assert!((here as usize) < pin.slots(), "CPU {here} has no slot");
        let slot = pin.pin();
        assert!(slot < pin.slots());
        // SAFETY: pinned just above.
        unsafe { pin.unpin(slot) };
        assert_eq!(SchedPin::with_slots(0).slots(), 1);
    }

    #[test]
    fn threads_never_share_a_pinned_slot() {
        let pin = SchedPin::with_slots(2);
        let inside = [AtomicUsize::new(0), AtomicUsize::new(0)];
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        let slot = pin.pin();
                        assert_eq!(inside[slot].fetch_add(1, Ordering::SeqCst), 0);
                        inside[slot].fetch_sub(1, Ordering::SeqCst);
                        // SAFETY: pinned just above.
                        unsafe { pin.unpin(slot) };
                    }
                });
            }
        });
    }

    #[test]
    fn cpu_lists_as_the_kernel_writes_them() {
        assert_eq!(highest_cpu("0\n"), Some(0));
        assert_eq!(highest_cpu("0-1\n"), Some(1));
        assert_eq!(highest_cpu("0-3,8,10-11"), Some(11));
        assert_eq!(highest_cpu("4-7,0-1"), Some(7));
        for bad in ["", "x", "3-1", "0-", "-2", "0,,1", "0-1-2"] {
            assert_eq!(highest_cpu(bad), None, "{bad:?}");
        }
    }
}
