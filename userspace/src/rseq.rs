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
//! pin falls back to [`SchedPin`], decided once when it is made. A thread
//! without a registered area (one not started by glibc) gets
//! [`Popped::Unpinned`] and its caches' calls go to the arena, which is slow
//! but correct.

use vmspace::qcache::{CpuMags, CpuPin, MagSlots, Magazine, Popped, Pushed};

use crate::pin::SchedPin;
use crate::tsan;

/// A [`CpuPin`] running [`CpuCaches`](vmspace::sync::CpuCaches)'
/// magazine operations as restartable sequences on the CPU the thread runs
/// on, one slot per configured CPU; [`SchedPin`] where rseq is not
/// available (see the module docs). `pin` and `unpin` (which `CpuCaches`
/// does not use) are always `SchedPin`'s.
#[derive(Debug)]
pub struct RseqPin {
    sched: SchedPin,
    /// `__rseq_offset` when this pin runs restartable sequences.
    rseq: Option<isize>,
}

impl RseqPin {
    /// One slot per CPU the system has configured, with restartable
    /// sequences when they are available.
    pub fn new() -> Self {
        Self::from_sched(SchedPin::new())
    }

    /// `slots` slots (at least one), with restartable sequences when they
    /// are available. A thread on a CPU numbered `slots` or more gets
    /// [`Popped::Unpinned`] (its caches' calls go to the arena).
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

    #[inline]
    unsafe fn pop(&self, mags: MagSlots) -> Popped {
        match self.rseq_for(&mags) {
            Some(offset) => {
                tsan::release(mags.base());
                // SAFETY: `offset` is glibc's `__rseq_offset`, checked when
                // the pin was made; `mags` is valid with our slot count (the
                // caller's contract) and, `rseq_for` checked,
                // `CpuMags::SIZE` apart.
                let popped = unsafe { arch::pop(offset, &mags) };
                tsan::acquire(mags.base());
                popped
            }
            // SAFETY: the caller's contract, for `sched` (same slots).
            None => unsafe { self.sched.pop(mags) },
        }
    }

    #[inline]
    unsafe fn push(&self, mags: MagSlots, addr: usize) -> Pushed {
        match self.rseq_for(&mags) {
            // SAFETY: as in `pop`.
            Some(offset) => {
                tsan::release(mags.base());
                // SAFETY: as in `pop`.
                let pushed = unsafe { arch::push(offset, &mags, addr) };
                tsan::acquire(mags.base());
                pushed
            }
            // SAFETY: as in `pop`.
            None => unsafe { self.sched.push(mags, addr) },
        }
    }

    #[inline]
    unsafe fn spill(&self, mags: MagSlots, out: &mut Magazine) -> bool {
        match self.rseq_for(&mags) {
            // SAFETY: as in `pop`.
            Some(offset) => {
                tsan::release(mags.base());
                // SAFETY: as in `pop`.
                let spilled = unsafe { arch::spill(offset, &mags, out) };
                tsan::acquire(mags.base());
                spilled
            }
            // SAFETY: as in `pop`.
            None => unsafe { self.sched.spill(mags, out) },
        }
    }

    #[inline]
    unsafe fn install(&self, mags: MagSlots, mag: &Magazine) -> bool {
        match self.rseq_for(&mags) {
            // SAFETY: as in `pop`.
            Some(offset) => {
                tsan::release(mags.base());
                // SAFETY: as in `pop`.
                let installed = unsafe { arch::install(offset, &mags, mag) };
                tsan::acquire(mags.base());
                installed
            }
            // SAFETY: as in `pop`.
            None => unsafe { self.sched.install(mags, mag) },
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
mod arch {
    //! The sections for x86_64. Each block starts by storing the address
    //! of its `rseq_cs` descriptor (label 3, in section `__rseq_cs`) in the
    //! thread's rseq area; the section is labels 6 to 2 and ends with the
    //! committing store; the abort handler (label 4, in section
    //! `__rseq_failure`, right after the 4-byte signature glibc registers,
    //! `RSEQ_SIG` = 0x53053053, encoded as the operand of a `ud1` so that
    //! disassemblers stay in step) jumps back to the top (label 5). The
    //! thread's rseq area is reached through `fs`, at `__rseq_offset` from
    //! the thread pointer: `cpu_id` at 4, `rseq_cs` at 8.
    //!
    //! A CPU's `CpuMags` is at `base + (cpu << SIZE_SHIFT)` (the callers
    //! check the stride); a `CpuMags` is its control word at 0 (loaded top
    //! `L` in bits 0-7, previous count in 8-15, loaded base `B` in 16-23,
    //! hits from 24) and its `2 * ROUNDS` rounds from 8; a `Magazine` is
    //! its count at 0 and its rounds from 8.

    use core::arch::asm;

    use vmspace::qcache::{CpuMags, MagSlots, Magazine, Popped, Pushed, ROUNDS};

    const _: () = assert!(CpuMags::WORD_OFFSET == 0 && CpuMags::ROUNDS_OFFSET == 8);
    const _: () = assert!(CpuMags::PREVIOUS_SHIFT == 8 && CpuMags::BASE_SHIFT == 16);
    const _: () = assert!(CpuMags::HITS_SHIFT == 24 && 2 * ROUNDS < 256);
    const _: () = assert!(core::mem::size_of::<Magazine>() == 8 * (ROUNDS + 1));
    const _: () = assert!(core::mem::size_of::<CpuMags>() == CpuMags::SIZE);

    /// Status codes the blocks leave in `st`.
    const DONE: u32 = 0;
    const OTHER: u32 = 1;
    const UNPINNED: u32 = 2;

    /// `__rseq_offset`, if glibc registered an rseq area large enough for
    /// `cpu_id` and `rseq_cs` and the calling thread's is live.
    pub(super) fn registered() -> Option<isize> {
        // glibc's RTLD_DEFAULT (the libc crate defines it for some targets
        // only): search the global scope.
        let default = core::ptr::null_mut();
        // SAFETY: dlsym with a NUL-terminated name; the results are checked
        // for null before use.
        let (size, offset) = unsafe {
            (
                libc::dlsym(default, c"__rseq_size".as_ptr()).cast::<u32>(),
                libc::dlsym(default, c"__rseq_offset".as_ptr()).cast::<isize>(),
            )
        };
        if size.is_null() || offset.is_null() {
            return None;
        }
        // SAFETY: glibc's `unsigned int __rseq_size` and `ptrdiff_t
        // __rseq_offset`, set before `main` and never changed after.
        let (size, offset) = unsafe { (size.read(), offset.read()) };
        if size < 16 {
            return None;
        }
        let cpu: u32;
        // SAFETY: glibc registered an area of `size >= 16` bytes at
        // `offset` from the thread pointer (fs base) for this thread, as
        // for every thread it starts; `cpu_id` is the u32 at 4.
        unsafe {
            asm!(
                "mov {cpu:e}, dword ptr fs:[{off} + 4]",
                off = in(reg) offset,
                cpu = lateout(reg) cpu,
                options(nostack, readonly, preserves_flags),
            );
        }
        // -1: not registered yet; -2: registration failed.
        (cpu < u32::MAX - 1).then_some(offset)
    }

    /// [`CpuMags::pop`] as a restartable sequence.
    ///
    /// # Safety
    ///
    /// `offset` is `__rseq_offset` (from [`registered`]); `mags` is valid
    /// (the `MagSlots` invariants) with a stride of `CpuMags::SIZE`, and
    /// its `CpuMags` are touched only by these sequences or exclusively.
    #[inline]
    pub(super) unsafe fn pop(offset: isize, mags: &MagSlots) -> Popped {
        let (st, out): (u32, u64);
        // SAFETY: the sequence reads the thread's rseq area (glibc puts one
        // at `offset` from the thread pointer of every thread it starts,
        // registered or not: an unregistered one reads -1 or -2 as its
        // `cpu_id`, which no slot count exceeds, so the sequence ends there
        // having stored only `rseq_cs`, which the kernel then never reads)
        // and the `CpuMags` of the CPU it runs on, if below `slots` (valid:
        // the caller's contract), and writes only that area's `rseq_cs`
        // and, as its last instruction, that `CpuMags`'s word, with the new
        // value `CpuMags::pop` gives; the
        // kernel runs it from label 6 to that store on one CPU with no other
        // thread running there, or restarts it at label 5 through the abort
        // handler. The descriptor and handler follow the rseq ABI (32-byte
        // aligned descriptor, version 0, handler after the signature,
        // outside the section).
        unsafe {
            asm!(
                ".pushsection __rseq_cs, \"aw\"",
                ".balign 32",
                "3:",
                ".long 0, 0",
                ".quad 6f, 2f - 6f, 4f",
                ".popsection",
                ".pushsection __rseq_failure, \"ax\"",
                ".byte 0x0f, 0xb9, 0x3d",
                ".long 0x53053053",
                "4:",
                "jmp 5f",
                ".popsection",
                "5:",
                "lea {t}, [rip + 3b]",
                "mov qword ptr fs:[{off} + 8], {t}",
                "6:",
                "mov {p:e}, dword ptr fs:[{off} + 4]",
                "mov {st:e}, {unpinned}",
                "cmp {p}, {slots}",
                "jae 2f",
                "shl {p}, {shift}",
                "add {p}, {base}",
                "mov {w}, qword ptr [{p}]",
                // n = the loaded top L (byte 0), t = its base B (byte 2)
                "movzx {n:e}, byte ptr [{p}]",
                "movzx {t:e}, byte ptr [{p} + 2]",
                "mov {st:e}, {done}",
                "cmp {n:e}, {t:e}",
                "jne 9f",
                // loaded empty: n = previous count
                "mov {n:e}, {w:e}",
                "shr {n:e}, 8",
                "and {n:e}, 255",
                "test {n:e}, {n:e}",
                "jnz 8f",
                // both empty: take the hits out
                "mov {out}, {w}",
                "shr {out}, 24",
                "and {w}, 0xffffff",
                "mov {st:e}, {other}",
                "jmp 7f",
                "8:",
                // previous becomes loaded: B ^= ROUNDS, L = B + n, previous = 0
                "xor {t:e}, {rounds}",
                "and {w}, -16777216",
                "add {n:e}, {t:e}",
                "or {w}, {n}",
                "shl {t:e}, 16",
                "or {w}, {t}",
                "9:",
                // round L - 1, at 8 + 8 * (L - 1); L - 1, hits + 1
                "mov {out}, qword ptr [{p} + {n} * 8]",
                "add {w}, 16777215",
                "7:",
                "mov qword ptr [{p}], {w}",
                "2:",
                off = in(reg) offset,
                base = in(reg) mags.base(),
                slots = in(reg) mags.slots(),
                shift = const CpuMags::SIZE_SHIFT,
                rounds = const ROUNDS,
                done = const DONE,
                other = const OTHER,
                unpinned = const UNPINNED,
                p = out(reg) _,
                w = out(reg) _,
                n = out(reg) _,
                t = out(reg) _,
                st = out(reg) st,
                out = out(reg) out,
                options(nostack),
            );
        }
        match st {
            DONE => Popped::Round(out as usize),
            OTHER => Popped::Empty { hits: out },
            _ => Popped::Unpinned,
        }
    }

    /// [`CpuMags::push`] as a restartable sequence.
    ///
    /// # Safety
    ///
    /// As for [`pop`].
    #[inline]
    pub(super) unsafe fn push(offset: isize, mags: &MagSlots, addr: usize) -> Pushed {
        let st: u32;
        // SAFETY: as in `pop`; besides the committing store, the sequence
        // writes the round past the loaded top (which no one reads until the
        // commit makes it part of the magazine).
        unsafe {
            asm!(
                ".pushsection __rseq_cs, \"aw\"",
                ".balign 32",
                "3:",
                ".long 0, 0",
                ".quad 6f, 2f - 6f, 4f",
                ".popsection",
                ".pushsection __rseq_failure, \"ax\"",
                ".byte 0x0f, 0xb9, 0x3d",
                ".long 0x53053053",
                "4:",
                "jmp 5f",
                ".popsection",
                "5:",
                "lea {t}, [rip + 3b]",
                "mov qword ptr fs:[{off} + 8], {t}",
                "6:",
                "mov {p:e}, dword ptr fs:[{off} + 4]",
                "mov {st:e}, {unpinned}",
                "cmp {p}, {slots}",
                "jae 2f",
                "shl {p}, {shift}",
                "add {p}, {base}",
                "mov {w}, qword ptr [{p}]",
                // n = the loaded top L (byte 0), t = its base B (byte 2)
                "movzx {n:e}, byte ptr [{p}]",
                "movzx {t:e}, byte ptr [{p} + 2]",
                "mov {st:e}, {done}",
                "mov {m:e}, {n:e}",
                "sub {m:e}, {t:e}",
                "cmp {m:e}, {rounds}",
                "jb 9f",
                // loaded full: when previous is too, nothing (Full)
                "mov {st:e}, {other}",
                "test {w:e}, 0xff00",
                "jnz 2f",
                // swap: B = the other base, L = B, previous = ROUNDS
                "mov {st:e}, {done}",
                "xor {t:e}, {rounds}",
                "and {w}, -16777216",
                "or {w}, {full}",
                "mov {n:e}, {t:e}",
                "shl {t:e}, 16",
                "or {w}, {t}",
                "or {w}, {n}",
                "9:",
                // round L, at 8 + 8 * L; L + 1
                "mov qword ptr [{p} + {n} * 8 + 8], {addr}",
                "add {w}, 1",
                "mov qword ptr [{p}], {w}",
                "2:",
                off = in(reg) offset,
                base = in(reg) mags.base(),
                slots = in(reg) mags.slots(),
                shift = const CpuMags::SIZE_SHIFT,
                addr = in(reg) addr,
                rounds = const ROUNDS,
                full = const ROUNDS << 8,
                done = const DONE,
                other = const OTHER,
                unpinned = const UNPINNED,
                p = out(reg) _,
                w = out(reg) _,
                n = out(reg) _,
                t = out(reg) _,
                m = out(reg) _,
                st = out(reg) st,
                options(nostack),
            );
        }
        match st {
            DONE => Pushed::Done,
            OTHER => Pushed::Full,
            _ => Pushed::Unpinned,
        }
    }

    /// [`CpuMags::spill`] as a restartable sequence.
    ///
    /// # Safety
    ///
    /// As for [`pop`].
    #[inline]
    pub(super) unsafe fn spill(offset: isize, mags: &MagSlots, out: &mut Magazine) -> bool {
        let st: u32;
        // SAFETY: as in `pop`; besides the committing store, the sequence
        // writes `out` (the caller's; a restart writes it again): its count
        // and that many rounds, a valid `Magazine` whatever the rest holds.
        unsafe {
            asm!(
                ".pushsection __rseq_cs, \"aw\"",
                ".balign 32",
                "3:",
                ".long 0, 0",
                ".quad 6f, 2f - 6f, 4f",
                ".popsection",
                ".pushsection __rseq_failure, \"ax\"",
                ".byte 0x0f, 0xb9, 0x3d",
                ".long 0x53053053",
                "4:",
                "jmp 5f",
                ".popsection",
                "5:",
                "lea {t}, [rip + 3b]",
                "mov qword ptr fs:[{off} + 8], {t}",
                "6:",
                "mov {p:e}, dword ptr fs:[{off} + 4]",
                "mov {st:e}, {unpinned}",
                "cmp {p}, {slots}",
                "jae 2f",
                "shl {p}, {shift}",
                "add {p}, {base}",
                "mov {w}, qword ptr [{p}]",
                // n = the loaded top L (byte 0), t = its base B (byte 2)
                "movzx {n:e}, byte ptr [{p}]",
                "movzx {t:e}, byte ptr [{p} + 2]",
                "mov {st:e}, {other}",
                "mov {m:e}, {n:e}",
                "sub {m:e}, {t:e}",
                "cmp {m:e}, {rounds}",
                "jb 2f",
                // loaded full: m = previous count, nothing when 0
                "mov {m:e}, {w:e}",
                "shr {m:e}, 8",
                "and {m:e}, 255",
                "jz 2f",
                // copy previous (from the other base) into out
                "xor {t:e}, {rounds}",
                "mov qword ptr [{out}], {m}",
                "lea {src}, [{p} + {t} * 8]",
                "12:",
                "mov {tmp}, qword ptr [{src} + {m} * 8]",
                "mov qword ptr [{out} + {m} * 8], {tmp}",
                "dec {m:e}",
                "jnz 12b",
                // swap: B = the other base, L = B, previous = ROUNDS
                "and {w}, -16777216",
                "or {w}, {full}",
                "or {w}, {t}",
                "shl {t:e}, 16",
                "or {w}, {t}",
                "mov {st:e}, {done}",
                "mov qword ptr [{p}], {w}",
                "2:",
                off = in(reg) offset,
                base = in(reg) mags.base(),
                slots = in(reg) mags.slots(),
                shift = const CpuMags::SIZE_SHIFT,
                out = in(reg) out as *mut Magazine,
                rounds = const ROUNDS,
                full = const ROUNDS << 8,
                done = const DONE,
                other = const OTHER,
                unpinned = const UNPINNED,
                p = out(reg) _,
                w = out(reg) _,
                n = out(reg) _,
                t = out(reg) _,
                m = out(reg) _,
                src = out(reg) _,
                tmp = out(reg) _,
                st = out(reg) st,
                options(nostack),
            );
        }
        st == DONE
    }

    /// [`CpuMags::install`] as a restartable sequence.
    ///
    /// # Safety
    ///
    /// As for [`pop`].
    #[inline]
    pub(super) unsafe fn install(offset: isize, mags: &MagSlots, mag: &Magazine) -> bool {
        if mag.is_empty() {
            return true;
        }
        let st: u32;
        // SAFETY: as in `pop`; besides the committing store, the sequence
        // writes rounds of an empty magazine (which no one reads until the
        // commit gives it a count). `mag` holds 1 to ROUNDS rounds (checked
        // above; at most ROUNDS by `Magazine`'s invariant).
        unsafe {
            asm!(
                ".pushsection __rseq_cs, \"aw\"",
                ".balign 32",
                "3:",
                ".long 0, 0",
                ".quad 6f, 2f - 6f, 4f",
                ".popsection",
                ".pushsection __rseq_failure, \"ax\"",
                ".byte 0x0f, 0xb9, 0x3d",
                ".long 0x53053053",
                "4:",
                "jmp 5f",
                ".popsection",
                "5:",
                "lea {t}, [rip + 3b]",
                "mov qword ptr fs:[{off} + 8], {t}",
                "6:",
                "mov {p:e}, dword ptr fs:[{off} + 4]",
                "mov {st:e}, {unpinned}",
                "cmp {p}, {slots}",
                "jae 2f",
                "shl {p}, {shift}",
                "add {p}, {base}",
                "mov {w}, qword ptr [{p}]",
                // n = the loaded top L (byte 0), t = its base B (byte 2)
                "movzx {n:e}, byte ptr [{p}]",
                "movzx {t:e}, byte ptr [{p} + 2]",
                "mov {st:e}, {other}",
                "cmp {n:e}, {t:e}",
                "je 9f",
                // loaded not empty: refused unless previous is
                "mov {src:e}, {w:e}",
                "shr {src:e}, 8",
                "and {src:e}, 255",
                "test {src:e}, {src:e}",
                "jnz 2f",
                // swap: previous = L - B, B ^= ROUNDS, L = B
                "sub {n:e}, {t:e}",
                "xor {t:e}, {rounds}",
                "and {w}, -16777216",
                "shl {n:e}, 8",
                "or {w}, {n}",
                "mov {n:e}, {t:e}",
                "shl {n:e}, 16",
                "or {w}, {n}",
                "or {w}, {t}",
                "9:",
                // copy mag's k rounds to rounds[B..B + k]; L += k
                "mov {n}, qword ptr [{mag}]",
                "add {w}, {n}",
                "lea {t}, [{p} + {t} * 8]",
                "12:",
                "mov {src}, qword ptr [{mag} + {n} * 8]",
                "mov qword ptr [{t} + {n} * 8], {src}",
                "dec {n:e}",
                "jnz 12b",
                "mov {st:e}, {done}",
                "mov qword ptr [{p}], {w}",
                "2:",
                off = in(reg) offset,
                base = in(reg) mags.base(),
                slots = in(reg) mags.slots(),
                shift = const CpuMags::SIZE_SHIFT,
                mag = in(reg) mag as *const Magazine,
                rounds = const ROUNDS,
                done = const DONE,
                other = const OTHER,
                unpinned = const UNPINNED,
                p = out(reg) _,
                w = out(reg) _,
                n = out(reg) _,
                t = out(reg) _,
                src = out(reg) _,
                st = out(reg) st,
                options(nostack),
            );
        }
        st == DONE
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu")))]
mod arch {
    //! No restartable sequences on this target: [`registered`] says so, and
    //! the others are never called.

    use vmspace::qcache::{MagSlots, Magazine, Popped, Pushed};

    pub(super) fn registered() -> Option<isize> {
        None
    }

    pub(super) unsafe fn pop(_: isize, _: &MagSlots) -> Popped {
        Popped::Unpinned
    }

    pub(super) unsafe fn push(_: isize, _: &MagSlots, _: usize) -> Pushed {
        Pushed::Unpinned
    }

    pub(super) unsafe fn spill(_: isize, _: &MagSlots, _: &mut Magazine) -> bool {
        false
    }

    pub(super) unsafe fn install(_: isize, _: &MagSlots, _: &Magazine) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use vmspace::qcache::{CpuMags, MagSlots, Magazine, Popped, Pushed, ROUNDS};
    use vmspace_workload::Rng;

    use super::*;

    /// Run `f` on a thread allowed only on `cpu` (if the affinity can be
    /// set); its result.
    fn on_cpu<R: Send>(cpu: usize, f: impl FnOnce() -> R + Send) -> Option<R> {
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
                // sched_setaffinity take valid pointers to it.
                let ok = unsafe {
                    let mut set: libc::cpu_set_t = core::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, core::mem::size_of_val(&set), &set) == 0
                };
                ok.then(f)
            })
            .join()
            .expect("no panic")
        })
    }

    /// `slots` zeroed `CpuMags`, one per slot, `stride` apart.
    struct Slots {
        mem: Vec<CpuMags>,
    }

    impl Slots {
        fn new(slots: usize) -> Self {
            Slots { mem: vec![CpuMags::EMPTY; slots] }
        }
        fn mags(&mut self) -> MagSlots {
            // SAFETY: `mem` holds `len` initialized CpuMags, a CpuMags apart,
            // used only through the pin under test while borrowed.
            unsafe {
                MagSlots::new(
                    self.mem.as_mut_ptr().cast(),
                    core::mem::size_of::<CpuMags>(),
                    self.mem.len(),
                )
            }
        }
    }

    #[test]
    fn restartable_sequences_when_glibc_registers_them() {
        let pin = RseqPin::new();
        let expected = cfg!(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))
            && arch::registered().is_some();
        assert_eq!(pin.uses_rseq(), expected);
        assert!(!RseqPin::without_rseq(4).uses_rseq());
        assert_eq!(RseqPin::with_slots(3).slots(), 3);
        eprintln!("rseq in use: {}", pin.uses_rseq());
    }

    /// Random pops, pushes and installs through the pin on one CPU match
    /// `CpuMags`' own methods on a copy of that CPU's slot, and leave the
    /// other slots alone.
    #[test]
    fn sequences_do_what_cpumags_does() {
        let cpus = RseqPin::new().slots();
        for cpu in [0, cpus - 1] {
            for pin in [RseqPin::new(), RseqPin::without_rseq(cpus)] {
                let rseq = pin.uses_rseq();
                let ran = on_cpu(cpu, || {
                    let mut slots = Slots::new(cpus);
                    let mut model = CpuMags::EMPTY;
                    let mut rng = Rng::new(cpu as u64 + 7);
                    let mut next = 1000usize;
                    let mut mag;
                    // Outcomes seen: miss, full, spilled, refused install.
                    let mut seen = [0usize; 4];
                    for step in 0..20_000 {
                        let mags = slots.mags();
                        // Phases that drain and fill the magazines in turn.
                        let draining = (step / 400) % 2 == 0;
                        let op = match rng.below(16) {
                            0..=9 if draining => 0,
                            0..=9 => 3,
                            10..=12 if draining => 3,
                            10..=12 => 0,
                            13 | 14 => 6,
                            _ => 7,
                        };
                        match op {
                            0..=2 => {
                                // SAFETY: `mags` is valid and used only here.
                                let got = unsafe { pin.pop(mags) };
                                assert_eq!(got, model.pop(), "step {step}");
                                seen[0] += usize::from(matches!(got, Popped::Empty { .. }));
                            }
                            3..=5 => {
                                next += 1;
                                // SAFETY: as above.
                                let got = unsafe { pin.push(mags, next) };
                                assert_eq!(got, model.push(next), "step {step}");
                                seen[1] += usize::from(got == Pushed::Full);
                            }
                            6 => {
                                let (mut a, mut b) = (Magazine::EMPTY, Magazine::EMPTY);
                                // SAFETY: as above.
                                let got = unsafe { pin.spill(mags, &mut a) };
                                assert_eq!(got, model.spill(&mut b), "step {step}");
                                seen[2] += usize::from(got);
                                assert_eq!(a.rounds(), b.rounds(), "step {step}: spilled");
                            }
                            _ => {
                                mag = Magazine::EMPTY;
                                for _ in 0..rng.between(1, ROUNDS) {
                                    next += 1;
                                    mag.push(next);
                                }
                                // SAFETY: as above.
                                let got = unsafe { pin.install(mags, &mag) };
                                assert_eq!(got, model.install(&mag), "step {step}");
                                seen[3] += usize::from(!got);
                            }
                        }
                        assert_eq!(slots.mem[cpu].counts(), model.counts(), "step {step}");
                    }
                    assert!(seen.iter().all(|&n| n > 10), "every outcome: {seen:?}");
                    eprintln!("CPU {cpu}, rseq {rseq}: outcomes {seen:?}");
                    for (i, s) in slots.mem.iter_mut().enumerate() {
                        let (mags, hits) = s.take();
                        if i == cpu {
                            let (want, want_hits) = model.take();
                            assert_eq!(hits, want_hits);
                            for (m, w) in mags.iter().zip(&want) {
                                assert_eq!(m.rounds(), w.rounds());
                            }
                        } else if rseq {
                            assert_eq!((mags[0].len(), mags[1].len(), hits), (0, 0, 0));
                        }
                    }
                });
                if ran.is_none() {
                    eprintln!("could not run on CPU {cpu}: skipped");
                }
            }
        }
    }

    #[test]
    fn a_cpu_past_the_slots_is_unpinned() {
        let pin = RseqPin::with_slots(1);
        if !pin.uses_rseq() || RseqPin::new().slots() < 2 {
            return;
        }
        let ran = on_cpu(1, || {
            let mut slots = Slots::new(1);
            let mut spill = Magazine::EMPTY;
            // SAFETY: `mags` is valid and used only here.
            unsafe {
                assert_eq!(pin.pop(slots.mags()), Popped::Unpinned);
                assert_eq!(pin.push(slots.mags(), 8), Pushed::Unpinned);
                assert!(!pin.spill(slots.mags(), &mut spill));
                let mut m = Magazine::EMPTY;
                m.push(16);
                assert!(!pin.install(slots.mags(), &m));
            }
            assert_eq!(slots.mem[0].counts(), (0, 0), "nothing changed");
        });
        assert!(ran.is_some() || RseqPin::new().slots() < 2);
    }
}
