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

use vmspace::qcache::{CpuPin, MagSlots, Magazine, Popped, Pushed};

use crate::pin::SchedPin;

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
}

impl Default for RseqPin {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `slots`, `pin` and `unpin` are `SchedPin`'s, which keeps the
// contract for them. The three magazine operations are all overridden:
// without rseq each is `SchedPin`'s default (pin, the `CpuMags` method,
// unpin); with rseq each is the `CpuMags` method of the same name run by
// `arch` as one restartable sequence on the `CpuMags` of the slot of the
// CPU the thread runs on (below `mags.slots()`, else `Unpinned`), which the
// kernel runs to its single committing store without another thread running
// on that CPU, or restarts, having stored nothing the others read: atomic
// with respect to every other sequence on that slot, and, one CPU running
// them all, each sees the effects of the ones before. They touch only that
// `CpuMags` (and the caller's spill or source magazine), and `CpuCaches`
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
        match self.rseq {
            // SAFETY: `offset` is glibc's `__rseq_offset`, checked when the
            // pin was made; `mags` is valid with our slot count (the
            // caller's contract).
            Some(offset) => unsafe { arch::pop(offset, &mags) },
            // SAFETY: the caller's contract, for `sched` (same slots).
            None => unsafe { self.sched.pop(mags) },
        }
    }

    #[inline]
    unsafe fn push(&self, mags: MagSlots, addr: usize, spill: &mut Magazine) -> Pushed {
        match self.rseq {
            // SAFETY: as in `pop`.
            Some(offset) => unsafe { arch::push(offset, &mags, addr, spill) },
            // SAFETY: as in `pop`.
            None => unsafe { self.sched.push(mags, addr, spill) },
        }
    }

    #[inline]
    unsafe fn install(&self, mags: MagSlots, mag: &Magazine) -> bool {
        match self.rseq {
            // SAFETY: as in `pop`.
            Some(offset) => unsafe { arch::install(offset, &mags, mag) },
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
    //! `MagSlots` is read through a pointer (base at 0, stride at 8, slots
    //! at 16) to leave registers for the copies; a `CpuMags` is its control
    //! word at 0 and two arrays of `ROUNDS` rounds from 8; a `Magazine` is
    //! its count at 0 and its rounds from 8.

    use core::arch::asm;

    use vmspace::qcache::{CpuMags, MagSlots, Magazine, Popped, Pushed, ROUNDS};

    const _: () = assert!(CpuMags::WORD_OFFSET == 0 && CpuMags::ROUNDS_OFFSET == 8);
    const _: () = assert!(CpuMags::PREVIOUS_SHIFT == 8 && CpuMags::WHICH_BIT == 1 << 16);
    const _: () = assert!(CpuMags::HITS_SHIFT == 17 && ROUNDS < 256);
    const _: () = assert!(core::mem::size_of::<Magazine>() == 8 * (ROUNDS + 1));

    /// `MagSlots` field offsets the blocks read.
    const BASE: usize = MagSlots::BASE_OFFSET;
    const STRIDE: usize = MagSlots::STRIDE_OFFSET;
    const SLOTS: usize = MagSlots::SLOTS_OFFSET;

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
    /// (the `MagSlots` invariants) and its `CpuMags` are touched only by
    /// these sequences or exclusively.
    #[inline]
    pub(super) unsafe fn pop(offset: isize, mags: &MagSlots) -> Popped {
        let (st, out): (u32, u64);
        // SAFETY: the sequence reads the thread's rseq area (registered:
        // the caller's contract) and the `CpuMags` of the CPU it runs on,
        // if below `slots` (valid: the caller's contract), and writes only
        // that area's `rseq_cs` and, as its last instruction, that
        // `CpuMags`'s word, with the new value `CpuMags::pop` gives; the
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
                "cmp {p}, qword ptr [{m} + {slots}]",
                "jae 2f",
                "imul {p}, qword ptr [{m} + {stride}]",
                "add {p}, qword ptr [{m} + {base}]",
                "mov {w}, qword ptr [{p}]",
                // n = loaded count, t = which array is loaded
                "mov {n:e}, {w:e}",
                "and {n:e}, 255",
                "mov {t:e}, {w:e}",
                "shr {t:e}, 16",
                "and {t:e}, 1",
                "mov {st:e}, {done}",
                "test {n:e}, {n:e}",
                "jnz 9f",
                // loaded empty: n = previous count
                "mov {n:e}, {w:e}",
                "shr {n:e}, 8",
                "and {n:e}, 255",
                "test {n:e}, {n:e}",
                "jnz 8f",
                // both empty: take the hits out
                "mov {out}, {w}",
                "shr {out}, 17",
                "and {w}, 0x1ffff",
                "mov {st:e}, {other}",
                "jmp 7f",
                "8:",
                // previous becomes loaded: flip, loaded = n, previous = 0
                "xor {t:e}, 1",
                "and {w}, -65536",
                "xor {w}, 65536",
                "or {w}, {n}",
                "9:",
                // round n - 1 of array t, at 8 + 8 * (ROUNDS * t + n - 1)
                "imul {t:e}, {t:e}, {rounds}",
                "add {t:e}, {n:e}",
                "mov {out}, qword ptr [{p} + {t} * 8]",
                // loaded count - 1, hits + 1
                "add {w}, 131071",
                "7:",
                "mov qword ptr [{p}], {w}",
                "2:",
                off = in(reg) offset,
                m = in(reg) mags as *const MagSlots,
                base = const BASE,
                stride = const STRIDE,
                slots = const SLOTS,
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
    pub(super) unsafe fn push(
        offset: isize,
        mags: &MagSlots,
        addr: usize,
        spill: &mut Magazine,
    ) -> Pushed {
        let st: u32;
        // SAFETY: as in `pop`; besides the committing store, the sequence
        // writes the round past the loaded count (which no one reads until
        // the commit makes it part of the magazine) and, when both
        // magazines are full, the caller's `spill` (its own memory; a
        // restart writes it again).
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
                "cmp {p}, qword ptr [{m} + {slots}]",
                "jae 2f",
                "imul {p}, qword ptr [{m} + {stride}]",
                "add {p}, qword ptr [{m} + {base}]",
                "mov {w}, qword ptr [{p}]",
                "mov {n:e}, {w:e}",
                "and {n:e}, 255",
                "mov {t:e}, {w:e}",
                "shr {t:e}, 16",
                "and {t:e}, 1",
                "mov {st:e}, {done}",
                "cmp {n:e}, {rounds}",
                "jb 9f",
                // loaded full: n = previous count
                "mov {n:e}, {w:e}",
                "shr {n:e}, 8",
                "and {n:e}, 255",
                "test {n:e}, {n:e}",
                "jz 8f",
                // both full: copy previous (array t ^ 1) into spill
                "mov {st:e}, {other}",
                "mov qword ptr [{spill}], {n}",
                "mov {src:e}, {t:e}",
                "xor {src:e}, 1",
                "imul {src:e}, {src:e}, {array}",
                "add {src}, {p}",
                "12:",
                "mov {tmp}, qword ptr [{src} + {n} * 8]",
                "mov qword ptr [{spill} + {n} * 8], {tmp}",
                "dec {n:e}",
                "jnz 12b",
                "8:",
                // flip: the full loaded one becomes previous, loaded = 0
                "xor {t:e}, 1",
                "and {w}, -65536",
                "xor {w}, 65536",
                "or {w}, {full}",
                "xor {n:e}, {n:e}",
                "9:",
                // round n of array t, at 8 + 8 * (ROUNDS * t + n)
                "imul {t:e}, {t:e}, {rounds}",
                "add {t:e}, {n:e}",
                "mov qword ptr [{p} + {t} * 8 + 8], {addr}",
                "add {w}, 1",
                "mov qword ptr [{p}], {w}",
                "2:",
                off = in(reg) offset,
                m = in(reg) mags as *const MagSlots,
                addr = in(reg) addr,
                spill = in(reg) spill as *mut Magazine,
                base = const BASE,
                stride = const STRIDE,
                slots = const SLOTS,
                rounds = const ROUNDS,
                array = const ROUNDS * 8,
                full = const ROUNDS << 8,
                done = const DONE,
                other = const OTHER,
                unpinned = const UNPINNED,
                p = out(reg) _,
                w = out(reg) _,
                n = out(reg) _,
                t = out(reg) _,
                src = out(reg) _,
                tmp = out(reg) _,
                st = out(reg) st,
                options(nostack),
            );
        }
        match st {
            DONE => Pushed::Done,
            OTHER => Pushed::Spilled,
            _ => Pushed::Unpinned,
        }
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
                "cmp {p}, qword ptr [{m} + {slots}]",
                "jae 2f",
                "imul {p}, qword ptr [{m} + {stride}]",
                "add {p}, qword ptr [{m} + {base}]",
                "mov {w}, qword ptr [{p}]",
                "mov {n:e}, {w:e}",
                "and {n:e}, 255",
                "mov {t:e}, {w:e}",
                "shr {t:e}, 16",
                "and {t:e}, 1",
                "mov {st:e}, {other}",
                "test {n:e}, {n:e}",
                "jz 9f",
                // loaded not empty: refused unless previous is
                "mov {src:e}, {w:e}",
                "shr {src:e}, 8",
                "and {src:e}, 255",
                "test {src:e}, {src:e}",
                "jnz 2f",
                // flip: loaded becomes previous (count n), loaded = 0
                "xor {t:e}, 1",
                "and {w}, -65536",
                "xor {w}, 65536",
                "shl {n:e}, 8",
                "or {w}, {n}",
                "9:",
                // copy mag's k rounds into array t; loaded count = k
                "mov {n}, qword ptr [{mag}]",
                "or {w}, {n}",
                "imul {t:e}, {t:e}, {array}",
                "add {t}, {p}",
                "12:",
                "mov {src}, qword ptr [{mag} + {n} * 8]",
                "mov qword ptr [{t} + {n} * 8], {src}",
                "dec {n:e}",
                "jnz 12b",
                "mov {st:e}, {done}",
                "mov qword ptr [{p}], {w}",
                "2:",
                off = in(reg) offset,
                m = in(reg) mags as *const MagSlots,
                mag = in(reg) mag as *const Magazine,
                base = const BASE,
                stride = const STRIDE,
                slots = const SLOTS,
                array = const ROUNDS * 8,
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

    pub(super) unsafe fn push(_: isize, _: &MagSlots, _: usize, _: &mut Magazine) -> Pushed {
        Pushed::Unpinned
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
                    let mut mag = Magazine::EMPTY;
                    for step in 0..20_000 {
                        let mags = slots.mags();
                        match rng.below(8) {
                            0..=2 => {
                                // SAFETY: `mags` is valid and used only here.
                                let got = unsafe { pin.pop(mags) };
                                assert_eq!(got, model.pop(), "step {step}");
                            }
                            3..=6 => {
                                next += 1;
                                let (mut a, mut b) = (Magazine::EMPTY, Magazine::EMPTY);
                                // SAFETY: as above.
                                let got = unsafe { pin.push(mags, next, &mut a) };
                                assert_eq!(got, model.push(next, &mut b), "step {step}");
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
                            }
                        }
                        assert_eq!(slots.mem[cpu].counts(), model.counts(), "step {step}");
                    }
                    let _ = mag;
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
                assert_eq!(pin.push(slots.mags(), 8, &mut spill), Pushed::Unpinned);
                let mut m = Magazine::EMPTY;
                m.push(16);
                assert!(!pin.install(slots.mags(), &m));
            }
            assert_eq!(slots.mem[0].counts(), (0, 0), "nothing changed");
        });
        assert!(ran.is_some() || RseqPin::new().slots() < 2);
    }
}
