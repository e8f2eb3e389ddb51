//! [`RseqPin`]: the user-space [`CpuPin`] for per-CPU quantum caches, through
//! Linux restartable sequences (rseq), as tcmalloc's per-CPU caches work.
//!
//! glibc 2.35 and later registers an rseq area for every thread it starts
//! and exports where it is (`__rseq_offset`, from the thread pointer) and
//! how large (`__rseq_size`, zero when registration failed or was turned
//! off). The kernel keeps the area's `cpu_id` equal to the CPU the thread
//! runs on, and when the thread is preempted, migrated or signalled while
//! its instruction pointer is inside the critical section that the area's
//! `rseq_cs` field describes, it resumes the thread at that section's abort
//! handler instead.
//!
//! Each magazine operation of [`CpuMags`] is one such section, in a small
//! assembly block: read `cpu_id`, find that CPU's `CpuMags`, read its
//! control word and rounds, write rounds past the counts (which no one
//! reads), and commit with one store of the new word as the last
//! instruction of the section. The abort handler starts the block again
//! from the top. So an operation either completes on the CPU whose
//! magazines it read, with no other thread running there in between, or
//! leaves them as they were: the same exclusion preemption-off gives in the
//! kernel, for the price of a store of the section's address and a load of
//! the CPU number (no atomic read-modify-write, no system call). A hit pair
//! costs a few nanoseconds more than a per-thread cache's.
//!
//! Where rseq is not available (not x86_64 Linux with glibc, glibc too
//! old, registration off or refused: `__rseq_size` is zero or missing), the
//! pin falls back to [`SchedPin`], decided once when it is made. A glibc
//! thread whose registration failed or was turned off gets
//! [`Popped::Unpinned`] and its caches' calls go to the arena, which is slow
//! but correct.
//!
//! Two limits, both of glibc's rseq support and not checked: the caches
//! are to be used from the main thread and threads glibc started (a
//! `vfork` child or a task made by a raw `clone` shares its parent's
//! thread pointer, so it reads the parent's registered CPU number without
//! a registration of its own that would abort its sequences); and code
//! running these sequences must not be unloaded while a thread may still
//! have its section registered (the kernel reads the section's descriptor
//! at the thread's next preemption), so a shared object using `RseqPin`
//! is linked `-z nodelete` or never `dlclose`d. `libvmspace.so` uses
//! [`SchedPin`].

use vmspace::qcache::{CpuMags, CpuPin, MagSlots, Magazine, Popped, Pushed};

use crate::pin::SchedPin;
use crate::tsan;

/// A [`CpuPin`] running [`CpuCaches`](vmspace::sync::CpuCaches)'
/// magazine operations as restartable sequences on the CPU the thread runs
/// on, one slot per possible CPU number
/// ([`possible_cpus`](crate::possible_cpus)); [`SchedPin`] where rseq is not
/// available (see the module docs). `pin` and `unpin` (which `CpuCaches`
/// does not use) are always `SchedPin`'s.
#[derive(Debug)]
pub struct RseqPin {
    sched: SchedPin,
    /// `__rseq_offset` when this pin runs restartable sequences.
    rseq: Option<isize>,
}

impl RseqPin {
    /// One slot per possible CPU number, with restartable
    /// sequences when they are available.
    pub fn new() -> Self {
        Self::from_sched(SchedPin::new())
    }

    /// `slots` slots (at least one, at most [`MAX_SLOTS`](crate::MAX_SLOTS)), with restartable sequences when they
    /// are available. With them, a thread on a CPU numbered `slots` or more
    /// gets [`Popped::Unpinned`] (its caches' calls go to the arena); with
    /// the fallback, such CPUs share slots.
    pub fn with_slots(slots: usize) -> Self {
        Self::from_sched(SchedPin::with_slots(slots))
    }

    /// Always [`SchedPin`], with `slots` slots (for comparisons and tests).
    pub fn without_rseq(slots: usize) -> Self {
        RseqPin { sched: SchedPin::with_slots(slots), rseq: None }
    }

    fn from_sched(sched: SchedPin) -> Self {
        RseqPin { sched, rseq: arch::registered() }
    }

    /// Whether the magazine operations run as restartable sequences (else
    /// through [`SchedPin`]).
    pub fn uses_rseq(&self) -> bool {
        self.rseq.is_some()
    }

    /// `__rseq_offset` if the operations on `mags` run as restartable
    /// sequences: when this pin uses them and a slot's `CpuMags` is the
    /// next one (as `CpuCaches` lays them out). The answer depends only on
    /// `mags`, so every operation on the same slots goes the same way.
    #[inline]
    fn rseq_for(&self, mags: &MagSlots) -> Option<isize> {
        self.rseq.filter(|_| mags.stride() == CpuMags::SIZE)
    }

    /// One magazine operation on `mags` with the caller's `arg`: `seq` (a
    /// restartable sequence, given glibc's `__rseq_offset`) where rseq
    /// serves `mags`, with ThreadSanitizer told what the sequence orders
    /// (`tsan`), or else `fallback` (`SchedPin`'s).
    #[inline(always)]
    fn sequence<A, R>(
        &self,
        mags: MagSlots,
        arg: A,
        seq: impl FnOnce(isize, A) -> R,
        fallback: impl FnOnce(A) -> R,
    ) -> R {
        match self.rseq_for(&mags) {
            Some(offset) => {
                tsan::release(mags.base());
                let r = seq(offset, arg);
                tsan::acquire(mags.base());
                r
            }
            None => cold(fallback, arg),
        }
    }
}

/// `f(arg)`, kept out of line: `SchedPin`'s path, taken only where rseq is
/// not available, stays out of the callers' hot path (inlined, it made
/// `CpuCaches::alloc` and `free` too large for the compiler to inline).
#[cold]
#[inline(never)]
fn cold<A, R>(f: impl FnOnce(A) -> R, arg: A) -> R {
    f(arg)
}

impl Default for RseqPin {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `slots`, `pin` and `unpin` are `SchedPin`'s, which keeps the
// contract for them. The four magazine operations are all overridden:
// without rseq each is `SchedPin`'s default (pin, the `CpuMags` method,
// unpin); with rseq (for slots `CpuMags::SIZE` apart; `SchedPin`'s
// otherwise, the same way for every operation on those slots) each is the
// `CpuMags` method of the same name run by `arch` as one restartable
// sequence on the `CpuMags` of the slot of the
// CPU the thread runs on (below `mags.slots()`, else `Unpinned`), which the
// kernel runs to its single committing store without another thread running
// on that CPU, or restarts, having stored nothing the others read: atomic
// with respect to every other sequence on that slot, and, one CPU running
// them all, each sees the effects of the ones before. They touch only that
// `CpuMags` (and the caller's `out` or source magazine), and `CpuCaches`
// never uses `pin` on the slots they use.
unsafe impl CpuPin for RseqPin {
    #[inline]
    fn slots(&self) -> usize {
        self.sched.slots()
    }

    #[inline]
    fn pin(&self) -> usize {
        self.sched.pin()
    }

    #[inline]
    unsafe fn unpin(&self, slot: usize) {
        // SAFETY: the caller pinned `slot` on this value, so on `sched`.
        unsafe { self.sched.unpin(slot) }
    }

    // In each operation below, the sequence's SAFETY: `offset` is glibc's
    // `__rseq_offset`, checked when the pin was made; `mags` is valid with
    // our slot count (the caller's contract) and, `rseq_for` checked,
    // `CpuMags::SIZE` apart. The fallback's: the caller's contract, for
    // `sched` (same slots).

    #[inline]
    unsafe fn pop(&self, mags: MagSlots) -> Popped {
        self.sequence(
            mags,
            (),
            // SAFETY: see above.
            move |offset, ()| unsafe { arch::pop(offset, mags) },
            // SAFETY: see above.
            move |()| unsafe { self.sched.pop(mags) },
        )
    }

    #[inline]
    unsafe fn push(&self, mags: MagSlots, addr: usize) -> Pushed {
        self.sequence(
            mags,
            addr,
            // SAFETY: see above.
            move |offset, addr| unsafe { arch::push(offset, mags, addr) },
            // SAFETY: see above.
            move |addr| unsafe { self.sched.push(mags, addr) },
        )
    }

    #[inline]
    unsafe fn spill(&self, mags: MagSlots, out: &mut Magazine) -> bool {
        // 128 bytes, copied once a spill (a magazine's worth of frees).
        let before = *out;
        let spilled = self.sequence(
            mags,
            &mut *out,
            // SAFETY: see above.
            move |offset, out| unsafe { arch::spill(offset, mags, out) },
            // SAFETY: see above.
            move |out| unsafe { self.sched.spill(mags, out) },
        );
        if !spilled {
            // A sequence that restarted after writing `out` and then found
            // nothing to spill leaves rounds there that are still the
            // slot's: `CpuMags::spill` leaves `out` as it was when it
            // returns `false`, and so does this (round 73 found it emptied,
            // which lost what a caller had there).
            *out = before;
        }
        spilled
    }

    #[inline]
    unsafe fn install(&self, mags: MagSlots, mag: &Magazine) -> bool {
        self.sequence(
            mags,
            mag,
            // SAFETY: see above.
            move |offset, mag| unsafe { arch::install(offset, mags, mag) },
            // SAFETY: see above.
            move |mag| unsafe { self.sched.install(mags, mag) },
        )
    }
}

// x86_64 with 64-bit pointers only: x32 (`gnux32`) is x86_64 too, but its
// magazines are laid out for 32-bit words.
#[cfg(all(
    target_arch = "x86_64",
    target_pointer_width = "64",
    target_os = "linux",
    target_env = "gnu"
))]
#[path = "x86_64.rs"]
mod arch;

#[cfg(not(all(
    target_arch = "x86_64",
    target_pointer_width = "64",
    target_os = "linux",
    target_env = "gnu"
)))]
#[path = "fallback.rs"]
mod arch;

#[cfg(test)]
mod tests;
