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

/// The start every sequence shares, as one template string: its `rseq_cs`
/// descriptor (label 3: version 0, flags 0, the section from label 6 to
/// label 2, the abort handler), the abort handler (label 4, in
/// `__rseq_failure` right after the signature; it starts the block again
/// at label 5), the store of the descriptor's address in the thread's
/// area, and the section's first instructions: `p` = this CPU's
/// `CpuMags` (out to label 2 with `st` = UNPINNED when the CPU has no
/// slot), `w` its control word, `n` its loaded top L and `t` that
/// magazine's base B. The block names the operands `off`, `base`,
/// `slots`, `shift`, `unpinned`, `p`, `w`, `n`, `t` and `st`, and ends
/// with label 2 after its committing store.
macro_rules! sequence_head {
    () => {
        concat!(
            ".pushsection __rseq_cs, \"aw\"\n",
            ".balign 32\n",
            "3:\n",
            ".long 0, 0\n",
            ".quad 6f, 2f - 6f, 4f\n",
            ".popsection\n",
            ".pushsection __rseq_failure, \"ax\"\n",
            ".byte 0x0f, 0xb9, 0x3d\n",
            ".long 0x53053053\n",
            "4:\n",
            "jmp 5f\n",
            ".popsection\n",
            "5:\n",
            "lea {t}, [rip + 3b]\n",
            "mov qword ptr fs:[{off} + 8], {t}\n",
            "6:\n",
            "mov {p:e}, dword ptr fs:[{off} + 4]\n",
            "mov {st:e}, {unpinned}\n",
            "cmp {p}, {slots}\n",
            "jae 2f\n",
            "shl {p}, {shift}\n",
            "add {p}, {base}\n",
            "mov {w}, qword ptr [{p}]\n",
            "movzx {n:e}, byte ptr [{p}]\n",
            "movzx {t:e}, byte ptr [{p} + 2]",
        )
    };
}

/// [`CpuMags::pop`] as a restartable sequence.
///
/// # Safety
///
/// `offset` is `__rseq_offset` (from [`registered`]); `mags` is valid
/// (the `MagSlots` invariants) with a stride of `CpuMags::SIZE`, and
/// its `CpuMags` are touched only by these sequences or exclusively.
#[inline]
pub(super) unsafe fn pop(offset: isize, mags: MagSlots) -> Popped {
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
            sequence_head!(),
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
        UNPINNED => Popped::Unpinned,
        // SAFETY: the block leaves one of the three in `st`.
        _ => unsafe { core::hint::unreachable_unchecked() },
    }
}

/// [`CpuMags::push`] as a restartable sequence.
///
/// # Safety
///
/// As for [`pop`].
#[inline]
pub(super) unsafe fn push(offset: isize, mags: MagSlots, addr: usize) -> Pushed {
    let st: u32;
    // SAFETY: as in `pop`; besides the committing store, the sequence
    // writes the round past the loaded top (which no one reads until the
    // commit makes it part of the magazine).
    unsafe {
        asm!(
            sequence_head!(),
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
        UNPINNED => Pushed::Unpinned,
        // SAFETY: the block leaves one of the three in `st`.
        _ => unsafe { core::hint::unreachable_unchecked() },
    }
}

/// [`CpuMags::spill`] as a restartable sequence.
///
/// # Safety
///
/// As for [`pop`].
#[inline]
pub(super) unsafe fn spill(offset: isize, mags: MagSlots, out: &mut Magazine) -> bool {
    let st: u32;
    // SAFETY: as in `pop`; besides the committing store, the sequence
    // writes `out` (the caller's; a restart writes it again): its count
    // and that many rounds, a valid `Magazine` whatever the rest holds.
    unsafe {
        asm!(
            sequence_head!(),
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
pub(super) unsafe fn install(offset: isize, mags: MagSlots, mag: &Magazine) -> bool {
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
            sequence_head!(),
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
