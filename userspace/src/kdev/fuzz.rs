//! Fuzzing the kernel through the device: the arena fuzz corpus replayed
//! through a kernel arena ([`replay_arena_ops`]), and random commands with
//! random argument bytes ([`ioctl_storm`]) after which every object must
//! still pass its `check()`.

use std::collections::BTreeMap;

use nix::errno::Errno;
use vmspace_abi::args::*;
use vmspace_abi::cmd;
use vmspace_abi::error::{DEV_BAD_ID, DEV_WRONG_KIND};
use vmspace_shim::Size;
use vmspace_workload::arena_ops::{ArenaDriver, ArenaOp, ArenaOpConfig, ArenaRunStats};
use vmspace_workload::Rng;

use super::{ArenaConfig, Device};

/// Replay one input of the `arena_ops` fuzz target through an arena in the
/// kernel, as the target does in process: the first byte picks the quantum
/// and (bit 7) an arena that imports, here from a VM of its own in the
/// kernel rather than from a parent arena; the rest decodes into
/// operations, each checked against the model by the same driver. (Bit 6,
/// the target's mtbf fault injection, has no device counterpart and is
/// ignored.)
pub fn replay_arena_ops(dev: &Device, data: &[u8]) -> Result<ArenaRunStats, String> {
    let Some((&head, mut ops)) = data.split_first() else { return Ok(ArenaRunStats::default()) };
    let q = [1usize, 16, 4096][head as usize % 3];
    let cfg = ArenaOpConfig::new(1 << 40, 1024 * q, q);
    let mut config = ArenaConfig::new(Size(q)).max_tags(4096);
    if head & 0x80 != 0 {
        config = config.import(16 << 20);
    }
    let mut arena = dev.arena(&config).map_err(|e| e.to_string())?;
    let mut driver = ArenaDriver::<256, 32>::new();
    while let Some(op) = ArenaOp::decode(&mut ops, &cfg) {
        driver.step(&mut arena, &op).map_err(|e| e.to_string())?;
    }
    Ok(driver.stats())
}

/// What an [`ioctl_storm`] did.
#[derive(Debug, Clone, Default)]
pub struct StormStats {
    /// Calls made.
    pub calls: usize,
    /// Calls that succeeded.
    pub succeeded: usize,
    /// Calls refused, by errno.
    pub refused: BTreeMap<i32, usize>,
    /// Objects made by the storm (and the two made before it).
    pub objects: usize,
    /// Objects whose `check()` passed at the end (the others had been
    /// destroyed by the storm itself).
    pub checked: usize,
}

/// Scratch memory for arguments: `RW` bytes readable and writable, then a
/// long inaccessible stretch, so any user buffer the kernel is pointed at
/// either lies in memory of ours or faults (`EFAULT`).
struct Scratch {
    base: *mut u8,
}

impl Scratch {
    const RW: usize = 8 << 20;
    const ALL: usize = 72 << 20;

    fn new() -> Result<Scratch, String> {
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::ALL,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err("mmap of the scratch area failed".into());
        }
        // SAFETY: the first `RW` bytes of our own fresh mapping.
        if unsafe { libc::mprotect(p, Self::RW, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
            // SAFETY: unmapping what we just mapped.
            unsafe { libc::munmap(p, Self::ALL) };
            return Err("mprotect of the scratch area failed".into());
        }
        Ok(Scratch { base: p.cast() })
    }

    fn addr(&self, offset: usize) -> u64 {
        self.base as u64 + offset as u64
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used.
        unsafe { libc::munmap(self.base.cast(), Self::ALL) };
    }
}

/// What the storm knows of the objects it made, to aim most calls at them.
#[derive(Default)]
struct Known {
    /// Arenas: id, quantum.
    arenas: Vec<(u32, u64)>,
    /// VMs: id, base, pages.
    vms: Vec<(u32, u64, u64)>,
    /// Allocations: arena id, address, size, tag.
    allocs: Vec<(u32, u64, u64, u32)>,
}

impl Known {
    fn ids(&self) -> Vec<u32> {
        self.arenas.iter().map(|a| a.0).chain(self.vms.iter().map(|v| v.0)).collect()
    }
}

/// One of `v`, or `None`.
fn pick<T: Copy>(r: &mut Rng, v: &[T]) -> Option<T> {
    (!v.is_empty()).then(|| v[r.below(v.len())])
}

/// An id: mostly the one given, sometimes one bit off, or anything.
fn some_id(r: &mut Rng, known: Option<u32>) -> u32 {
    match known {
        Some(id) if r.chance(900) => id,
        Some(id) => id ^ (1 << r.below(32)),
        None => r.next_u64() as u32,
    }
}

/// A plain value's bytes.
fn bytes_of<T: vmspace_abi::Pod>(v: &T) -> Vec<u8> {
    // SAFETY: `T: Pod`: no padding, every byte initialised.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), core::mem::size_of::<T>()) }
        .to_vec()
}

/// A plain value from the first bytes of `arg`, if there are enough.
fn read<T: vmspace_abi::Pod>(arg: &[u8]) -> Option<T> {
    (arg.len() >= core::mem::size_of::<T>())
        // SAFETY: at least `size_of::<T>()` bytes, any of which make a valid
        // `T` (`Pod`); read unaligned.
        .then(|| unsafe { arg.as_ptr().cast::<T>().read_unaligned() })
}

/// The argument of command `c`, made to be mostly valid for the objects
/// the storm knows (ids, spans near 2^40, page-multiple VM ranges, user
/// buffers in the scratch area), with out-of-domain values now and then;
/// random bytes for a command that is not one of ours.
fn argument(r: &mut Rng, c: u32, k: &Known, page: u64, scratch: &Scratch) -> Vec<u8> {
    let arena = pick(r, &k.arenas);
    let vm = pick(r, &k.vms);
    let alloc = pick(r, &k.allocs);
    let small = |r: &mut Rng| r.between(1, 16) as u64 * page;
    let buf = |r: &mut Rng| scratch.addr(r.below(Scratch::RW));
    let near = |r: &mut Rng| (1 << 40) + r.below(1 << 12) as u64 * page;
    let vm_addr = |r: &mut Rng| match vm {
        Some((_, base, pages)) => base + r.below(pages as usize + 2) as u64 * page,
        None => r.next_u64(),
    };
    let arena_id = |r: &mut Rng| some_id(r, arena.map(|a| a.0));
    let vm_id = |r: &mut Rng| some_id(r, vm.map(|v| v.0));
    match c {
        cmd::ARENA_CREATE => bytes_of(&ArenaCreateArgs {
            quantum: 1 << r.below(14),
            max_tags: r.between(16, 4096) as u64,
            import_size: if r.chance(300) { small(r) * 16 } else { 0 },
            default_policy: r.below(5) as u32,
            ..ArenaCreateArgs::ZERO
        }),
        cmd::DESTROY => {
            let any = pick(r, &k.ids());
            let id = some_id(r, any);
            bytes_of(&DestroyArgs { id, ..DestroyArgs::ZERO })
        }
        cmd::ARENA_ADD | cmd::ARENA_EXTEND => {
            bytes_of(&SpanArgs { id: arena_id(r), base: near(r), size: small(r), ..SpanArgs::ZERO })
        }
        cmd::ARENA_ALLOC => {
            let flags = r.below(ALLOC_FLAGS as usize + 1) as u32;
            let on = |bit: u32| flags & ALLOC_CONSTRAINED != 0 && flags & bit != 0;
            bytes_of(&AllocArgs {
                id: arena_id(r),
                flags: if on(ALLOC_CONSTRAINED) { flags } else { flags & ALLOC_HELD },
                policy: if r.chance(100) { POLICY_DEFAULT } else { r.below(4) as u32 },
                size: r.between(1, 4 * page as usize) as u64,
                align: if on(ALLOC_CONSTRAINED) { 1 << r.below(16) } else { 0 },
                phase: if on(ALLOC_CONSTRAINED) { 16 * r.below(4) as u64 } else { 0 },
                nocross: if on(ALLOC_CONSTRAINED) && r.chance(200) {
                    page << r.below(4)
                } else {
                    0
                },
                min: if on(ALLOC_MIN) { near(r) } else { 0 },
                max: if on(ALLOC_MAX) { near(r) } else { 0 },
                exact: if on(ALLOC_EXACT) { near(r) } else { 0 },
                ..AllocArgs::ZERO
            })
        }
        cmd::ARENA_FREE
        | cmd::ARENA_FREE_HANDLE
        | cmd::ARENA_FREE_PART
        | cmd::ARENA_RESIZE
        | cmd::ARENA_FREE_DEFERRED
        | cmd::ARENA_FREE_HANDLE_DEFERRED
        | cmd::ARENA_FLUSHED => {
            let (id, mut addr, size, tag) = alloc.unwrap_or((arena_id(r), near(r), 64, 0));
            let q = arena.map_or(16, |a| a.1);
            if c == cmd::ARENA_FLUSHED && !r.chance(100) {
                addr = 0;
            }
            let (a, b, tag) = match c {
                cmd::ARENA_FREE | cmd::ARENA_FREE_DEFERRED => (size, 0, 0),
                cmd::ARENA_FLUSHED => (0, 0, 0),
                cmd::ARENA_FREE_HANDLE | cmd::ARENA_FREE_HANDLE_DEFERRED => {
                    (0, 0, tag.max(u32::from(r.chance(100))))
                }
                cmd::ARENA_FREE_PART => (q * r.below(4) as u64, q * r.between(1, 4) as u64, 0),
                _ => (size, size + q * r.below(8) as u64, 0),
            };
            bytes_of(&FreeArgs { id: some_id(r, Some(id)), tag, addr, a, b, ..FreeArgs::ZERO })
        }
        cmd::ARENA_LOOKUP => {
            let (id, addr, _, tag) = alloc.unwrap_or((arena_id(r), near(r), 0, 0));
            bytes_of(&LookupArgs { id: some_id(r, Some(id)), tag, addr, ..LookupArgs::ZERO })
        }
        cmd::ARENA_WALK | cmd::VM_RUNS => {
            let walk = c == cmd::ARENA_WALK;
            bytes_of(&ListArgs {
                id: if walk { arena_id(r) } else { vm_id(r) },
                kinds: if walk { r.between(1, 7) as u32 } else { 0 },
                buf: buf(r),
                cap: r.below(1 << 12) as u64,
                ..ListArgs::ZERO
            })
        }
        cmd::ARENA_STATS => bytes_of(&ArenaStatsArgs { id: arena_id(r), ..ArenaStatsArgs::ZERO }),
        cmd::ARENA_CHECK => bytes_of(&CheckArgs { id: arena_id(r), ..CheckArgs::ZERO }),
        cmd::VM_CHECK => bytes_of(&CheckArgs { id: vm_id(r), ..CheckArgs::ZERO }),
        cmd::VM_RESERVE => bytes_of(&VmReserveArgs {
            size: small(r) * r.between(1, 16) as u64,
            grain: if r.chance(300) { page << r.below(4) } else { 0 },
            ..VmReserveArgs::ZERO
        }),
        cmd::VM_MAP | cmd::VM_UNMAP | cmd::VM_PROTECT => bytes_of(&VmRangeArgs {
            id: vm_id(r),
            prot: if c == cmd::VM_PROTECT { r.below(4) as u32 } else { 0 },
            addr: vm_addr(r),
            size: r.between(1, 8) as u64 * page,
            ..VmRangeArgs::ZERO
        }),
        cmd::VM_STATS => bytes_of(&VmStatsArgs { id: vm_id(r), ..VmStatsArgs::ZERO }),
        cmd::VM_READ | cmd::VM_WRITE => bytes_of(&VmIoArgs {
            id: vm_id(r),
            addr: vm_addr(r) + r.below(page as usize) as u64,
            len: r.below(3 * page as usize) as u64,
            buf: buf(r),
            ..VmIoArgs::ZERO
        }),
        _ => (0..vmspace_abi::ioc::size(c).max(8)).map(|_| r.next_u64() as u8).collect(),
    }
}

/// What a successful call of `c` made, read back from its argument: new
/// objects and allocations join what the storm knows.
fn learn(k: &mut Known, c: u32, arg: &[u8], page: u64) {
    match c {
        cmd::ARENA_CREATE => {
            if let Some(a) = read::<ArenaCreateArgs>(arg) {
                k.arenas.push((a.id, a.quantum));
            }
        }
        cmd::VM_RESERVE => {
            if let Some(a) = read::<VmReserveArgs>(arg) {
                k.vms.push((a.id, a.base, a.limit.saturating_sub(a.base) / page));
            }
        }
        cmd::ARENA_ALLOC => {
            if let Some(a) = read::<AllocArgs>(arg) {
                k.allocs.push((a.id, a.addr, a.size, a.tag));
                if k.allocs.len() > 256 {
                    k.allocs.swap_remove(0);
                }
            }
        }
        _ => {}
    }
}

/// A command number: mostly a real one, else one of ours with another
/// size or direction, a random number of our type, or anything.
fn command(r: &mut Rng) -> u32 {
    let real = cmd::ALL[r.below(cmd::ALL.len())];
    match r.below(20) {
        0..=15 => real,
        16 => real ^ (1 << (16 + r.below(14))),
        17 => real ^ (1 << (30 + r.below(2))),
        18 => vmspace_abi::ioc::ioc(
            r.below(4) as u32,
            vmspace_abi::IOCTL_TYPE,
            r.below(256) as u32,
            r.below(1024),
        ),
        _ => r.next_u64() as u32,
    }
}

/// The object of `id` still exists and passes its `check()` (`Ok(false)`:
/// it no longer exists).
fn check(dev: &Device, id: u32) -> Result<bool, String> {
    for (name, c) in [("ARENA_CHECK", cmd::ARENA_CHECK), ("VM_CHECK", cmd::VM_CHECK)] {
        let mut a = CheckArgs { id, ..CheckArgs::ZERO };
        // SAFETY: `a` is the command's argument, live for the call.
        let rc = unsafe { libc::ioctl(dev.fd(), c as _, &mut a as *mut CheckArgs) };
        if rc == 0 {
            return Ok(true);
        }
        match a.err.innermost() {
            DEV_BAD_ID => return Ok(false),
            DEV_WRONG_KIND => continue,
            _ => return Err(format!("{name} of {id:#x}: {}", super::describe(&a.err))),
        }
    }
    Err(format!("{id:#x} is neither an arena nor a VM"))
}

/// Make `calls` ioctl calls on `dev`: commands mostly real (else of
/// another size or direction, another number, or anything), arguments
/// mostly valid for the objects made so far (a tenth of them with bits
/// flipped, a twentieth all random bytes), a tenth of the
/// argument pointers null, unmapped or kernel addresses; then check every
/// object the storm made, and the device's `VERSION`. The kernel log should
/// show no warning, bug or oops: the caller (`make kernel-proptest`)
/// checks that.
///
/// # Safety
///
/// The kernel writes wherever an argument points, and a random or
/// bit-flipped argument may point at any writable memory of this process
/// (the scratch area makes that unlikely, not impossible): undefined
/// behaviour for whatever code owns that memory. Call it only in a process
/// that runs nothing else and ends with the storm (a child process whose
/// exit status is the verdict), where such a write can corrupt nothing but
/// the storm's own run.
pub unsafe fn ioctl_storm(dev: &Device, seed: u64, calls: usize) -> Result<StormStats, String> {
    use vmspace_workload::{ArenaTarget, VmTarget};

    let scratch = Scratch::new()?;
    let mut r = Rng::new(seed);
    let page = dev.page_size() as u64;
    let mut stats = StormStats::default();
    let mut known = Known::default();
    // Two objects to start with.
    let mut arena = dev.arena(&ArenaConfig::new(Size(16))).map_err(|e| e.to_string())?;
    arena.add(vmspace_shim::Addr(1 << 40), Size(1 << 24)).map_err(|e| e.to_string())?;
    let vm = dev.vm(64 * page as usize, 0).map_err(|e| e.to_string())?;
    known.arenas.push((arena.id(), 16));
    known.vms.push((vm.id(), vm.base().0 as u64, 64));
    for _ in 0..calls {
        let c = command(&mut r);
        let mut arg = if r.chance(50) {
            (0..vmspace_abi::ioc::size(c).max(8)).map(|_| r.next_u64() as u8).collect()
        } else {
            argument(&mut r, c, &known, page, &scratch)
        };
        if r.chance(100) {
            for _ in 0..r.between(1, 4) {
                let i = r.below(arg.len());
                arg[i] ^= 1 << r.below(8);
            }
        }
        let at = r.below(Scratch::RW - arg.len()) & if r.chance(950) { !7 } else { !0 };
        // SAFETY: `at + arg.len()` lies within the scratch area's writable
        // bytes, which nothing else refers to (no reference to them lives
        // across the call below, which the kernel may write them in).
        unsafe { std::ptr::copy_nonoverlapping(arg.as_ptr(), scratch.base.add(at), arg.len()) };
        let ptr = match r.below(40) {
            0 => 0,
            1 => r.below(4096) as u64,
            2 => scratch.addr(Scratch::RW + r.below(Scratch::ALL - Scratch::RW)),
            3 => 0xffff_ffff_8000_0000 | (r.next_u64() & 0xfff_ffff),
            _ => scratch.addr(at),
        };
        // SAFETY: `ptr` is in our scratch area (bytes the kernel may read and
        // write as it likes) or memory the kernel must refuse (EFAULT); every
        // user buffer inside an argument points into the scratch area too or,
        // in random bytes, almost surely at nothing mapped (else at memory
        // the caller let the storm overwrite: this function's contract).
        let rc = unsafe { libc::ioctl(dev.fd(), c as _, ptr as usize as *mut libc::c_void) };
        stats.calls += 1;
        if rc >= 0 {
            stats.succeeded += 1;
            if ptr == scratch.addr(at) {
                // SAFETY: as for the copy above; the call has returned, so
                // nothing writes the bytes while this view of them lives.
                let place = unsafe { std::slice::from_raw_parts(scratch.base.add(at), arg.len()) };
                learn(&mut known, c, place, page);
            }
        } else {
            *stats.refused.entry(Errno::last_raw()).or_default() += 1;
        }
    }
    let ids = known.ids();
    stats.objects = ids.len();
    for id in ids {
        stats.checked += usize::from(check(dev, id)?);
    }
    let mut v = VersionArgs::ZERO;
    // SAFETY: `v` is the command's argument.
    if unsafe { libc::ioctl(dev.fd(), cmd::VERSION as _, &mut v as *mut VersionArgs) } != 0 {
        return Err("VERSION failed after the storm".into());
    }
    // The two first objects are destroyed now if the storm left them.
    drop((arena, vm));
    Ok(stats)
}
