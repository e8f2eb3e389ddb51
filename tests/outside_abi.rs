//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the `/dev/vmspace` ABI crate: layouts and
//! command numbers, and the user-space decoding of error records from
//! arbitrary bytes (no panics; documented payloads decode to the right
//! variants).

use core::mem::{align_of, offset_of, size_of};

use vmspace::arena::ArenaError;
use vmspace::vm::VmError;
use vmspace::CommonError;
use vmspace_abi::args::*;
use vmspace_abi::error::*;
use vmspace_abi::{cmd, ioc, Pod, IOCTL_TYPE};
use vmspace_shim::{Addr, Op, Range, ShimError, Size};
use vmspace_user::kdev::KdevError;

mod outside_common;
use outside_common::XorshiftStar as Rng;

fn from_bytes<T: Pod>(b: &[u8]) -> T {
    assert_eq!(b.len(), size_of::<T>());
    // SAFETY: T is Pod: every byte pattern is a valid value.
    unsafe { core::ptr::read_unaligned(b.as_ptr().cast::<T>()) }
}

fn bytes_of<T: Pod>(t: &T) -> Vec<u8> {
    // SAFETY: Pod has no padding; every byte is initialised.
    unsafe { core::slice::from_raw_parts((t as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
}

macro_rules! layout {
    ($($t:ty => $cmd:expr, $nr:expr, $dir:expr;)*) => {
        vec![$((stringify!($t), size_of::<$t>(), align_of::<$t>(), $cmd, $nr, $dir)),*]
    };
}

#[test]
fn every_command_carries_its_argument_size_type_number_and_direction() {
    let rw = ioc::READ | ioc::WRITE;
    let table = layout! {
        VersionArgs => cmd::VERSION, cmd::nr::VERSION, ioc::READ;
        ArenaCreateArgs => cmd::ARENA_CREATE, cmd::nr::ARENA_CREATE, rw;
        DestroyArgs => cmd::DESTROY, cmd::nr::DESTROY, rw;
        SpanArgs => cmd::ARENA_ADD, cmd::nr::ARENA_ADD, rw;
        SpanArgs => cmd::ARENA_EXTEND, cmd::nr::ARENA_EXTEND, rw;
        AllocArgs => cmd::ARENA_ALLOC, cmd::nr::ARENA_ALLOC, rw;
        FreeArgs => cmd::ARENA_FREE, cmd::nr::ARENA_FREE, rw;
        FreeArgs => cmd::ARENA_FREE_HANDLE, cmd::nr::ARENA_FREE_HANDLE, rw;
        FreeArgs => cmd::ARENA_FREE_PART, cmd::nr::ARENA_FREE_PART, rw;
        FreeArgs => cmd::ARENA_RESIZE, cmd::nr::ARENA_RESIZE, rw;
        LookupArgs => cmd::ARENA_LOOKUP, cmd::nr::ARENA_LOOKUP, rw;
        ListArgs => cmd::ARENA_WALK, cmd::nr::ARENA_WALK, rw;
        ArenaStatsArgs => cmd::ARENA_STATS, cmd::nr::ARENA_STATS, rw;
        CheckArgs => cmd::ARENA_CHECK, cmd::nr::ARENA_CHECK, rw;
        FreeArgs => cmd::ARENA_FREE_DEFERRED, cmd::nr::ARENA_FREE_DEFERRED, rw;
        FreeArgs => cmd::ARENA_FLUSHED, cmd::nr::ARENA_FLUSHED, rw;
        VmReserveArgs => cmd::VM_RESERVE, cmd::nr::VM_RESERVE, rw;
        VmRangeArgs => cmd::VM_MAP, cmd::nr::VM_MAP, rw;
        VmRangeArgs => cmd::VM_UNMAP, cmd::nr::VM_UNMAP, rw;
        VmRangeArgs => cmd::VM_PROTECT, cmd::nr::VM_PROTECT, rw;
        VmStatsArgs => cmd::VM_STATS, cmd::nr::VM_STATS, rw;
        ListArgs => cmd::VM_RUNS, cmd::nr::VM_RUNS, rw;
        CheckArgs => cmd::VM_CHECK, cmd::nr::VM_CHECK, rw;
        VmIoArgs => cmd::VM_READ, cmd::nr::VM_READ, rw;
        VmIoArgs => cmd::VM_WRITE, cmd::nr::VM_WRITE, rw;
        FreeArgs => cmd::ARENA_FREE_HANDLE_DEFERRED, cmd::nr::ARENA_FREE_HANDLE_DEFERRED, rw;
    };
    assert_eq!(table.len(), cmd::ALL.len());
    for (i, (name, size, align, c, nr, dir)) in table.into_iter().enumerate() {
        assert_eq!(cmd::ALL[i], c, "{name}: ALL is in number order");
        assert_eq!(nr as usize, i, "{name}: numbers are dense");
        assert_eq!(ioc::size(c), size, "{name}: size in the number");
        assert!(size <= ioc::MAX_SIZE, "{name}");
        assert_eq!(ioc::ty(c), IOCTL_TYPE, "{name}");
        assert_eq!(ioc::nr(c), nr, "{name}");
        assert_eq!(ioc::dir(c), dir, "{name}");
        assert_eq!(size % 8, 0, "{name}: a multiple of 8 (same layout for 32-bit compat)");
        assert!(align <= 8, "{name}");
        // The number Linux's _IOR/_IOWR gives (asm-generic encoding).
        let linux = if dir == ioc::READ {
            nix::request_code_read!(IOCTL_TYPE, nr, size)
        } else {
            nix::request_code_readwrite!(IOCTL_TYPE, nr, size)
        };
        assert_eq!(linux as u32, c, "{name}: differs from Linux's number");
    }
    // Distinct numbers.
    let mut all = cmd::ALL.to_vec();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), cmd::ALL.len());
}

#[test]
fn layouts_have_the_documented_sizes_and_the_error_record_at_an_aligned_offset() {
    assert_eq!(size_of::<WireError>(), 128);
    assert_eq!(offset_of!(WireError, msg), 48);
    assert_eq!(offset_of!(ArenaCreateArgs, err) % 8, 0);
    assert_eq!(offset_of!(DestroyArgs, err) % 8, 0);
    assert_eq!(offset_of!(SpanArgs, err) % 8, 0);
    assert_eq!(offset_of!(AllocArgs, err) % 8, 0);
    assert_eq!(offset_of!(FreeArgs, err) % 8, 0);
    assert_eq!(offset_of!(LookupArgs, err) % 8, 0);
    assert_eq!(offset_of!(ListArgs, err) % 8, 0);
    assert_eq!(offset_of!(ArenaStatsArgs, err) % 8, 0);
    assert_eq!(offset_of!(CheckArgs, err) % 8, 0);
    assert_eq!(offset_of!(VmReserveArgs, err) % 8, 0);
    assert_eq!(offset_of!(VmRangeArgs, err) % 8, 0);
    assert_eq!(offset_of!(VmStatsArgs, err) % 8, 0);
    assert_eq!(offset_of!(VmIoArgs, err) % 8, 0);
    assert_eq!(size_of::<WireSegment>(), 32);
    assert_eq!(size_of::<WireRange>(), 16);
    assert_eq!(ArenaStatsArgs::ZERO.histogram.len(), HISTOGRAM_LEN);
    // ZERO is all-zero bytes, and Default is ZERO.
    assert!(bytes_of(&ArenaStatsArgs::ZERO).iter().all(|&b| b == 0));
    assert_eq!(AllocArgs::default(), AllocArgs::ZERO);
    assert!(!WireError::ZERO.is_error());
    assert_eq!(WireError::ZERO.innermost(), NONE);
    // Every byte pattern round-trips.
    let mut rng = Rng(11);
    for _ in 0..200 {
        let b: Vec<u8> = (0..size_of::<VmIoArgs>()).map(|_| rng.next() as u8).collect();
        let v: VmIoArgs = from_bytes(&b);
        assert_eq!(bytes_of(&v), b);
    }
}

const CODES: &[u16] = &[
    NONE,
    DEV_BAD_ID,
    DEV_BAD_FIELD,
    DEV_LIMIT,
    DEV_WRONG_KIND,
    DEV_NOT_ACCESSIBLE,
    ARENA_OVERFLOW,
    ARENA_INVALID_ARGUMENT,
    ARENA_MISALIGNED,
    ARENA_OVER_CONSTRAINED,
    ARENA_NO_SPACE,
    ARENA_BAD_FREE,
    ARENA_BAD_HANDLE,
    ARENA_SPAN_OVERLAP,
    ARENA_NOT_ADJACENT,
    ARENA_TAGS_EXHAUSTED,
    ARENA_BACKING,
    ARENA_VM,
    ARENA_BAD_IMPORT,
    ARENA_SOURCE_BUSY,
    ARENA_INJECTED,
    ARENA_CORRUPT,
    ARENA_OTHER,
    VM_BACKEND,
    VM_COMMON,
    VM_ALREADY_MAPPED,
    VM_NOT_MAPPED,
    COMMON_OVERFLOW,
    COMMON_INVALID_ARGUMENT,
    COMMON_MISALIGNED,
    COMMON_OUT_OF_RANGE,
    COMMON_CORRUPT,
    COMMON_OTHER,
    SHIM_OVERFLOW,
    SHIM_MISALIGNED,
    SHIM_INVALID_ARGUMENT,
    SHIM_NOT_RESERVED,
    SHIM_ALREADY_MAPPED,
    SHIM_NOT_MAPPED,
    SHIM_OUT_OF_ADDRESS_SPACE,
    SHIM_OUT_OF_MEMORY,
    SHIM_OS,
    SHIM_INJECTED,
    SHIM_UNFLUSHED,
    SHIM_OTHER,
];

fn random_record(rng: &mut Rng) -> WireError {
    let mut b: Vec<u8> = (0..size_of::<WireError>()).map(|_| rng.next() as u8).collect();
    let mut e: WireError = from_bytes(&b);
    // Mostly plausible chains, sometimes raw noise.
    if rng.below(4) != 0 {
        for k in 0..4 {
            e.chain[k] = CODES[rng.below(CODES.len())];
        }
    }
    if rng.below(3) == 0 {
        e.msg_len = rng.below(100) as u32;
    }
    if rng.below(3) == 0 {
        let x = [0u64, 1, u64::MAX, 1 << 63, 0x1000][rng.below(5)];
        e.a = x;
        e.b = if rng.below(2) == 0 { x } else { x.wrapping_sub(1) };
    }
    b.clear();
    e
}

#[test]
fn decoding_arbitrary_records_never_panics() {
    let mut rng = Rng(0xabad_1dea);
    for i in 0..200_000 {
        let r = random_record(&mut rng);
        let m = r.message();
        assert!(m.len() <= (r.msg_len as usize).min(80), "{i}");
        assert_eq!(m.as_bytes(), &r.msg[..m.len()]);
        let _ = r.innermost();
        let _ = r.is_error();
        let a = vmspace_user::kdev::decode_arena(&r);
        let v = vmspace_user::kdev::decode_vm(&r);
        let _ = (a.to_string(), v.to_string());
        let _ = vmspace_user::kdev::describe(&r);
        let k = KdevError {
            command: "fuzz",
            errno: nix::errno::Errno::EINVAL,
            record: Some(Box::new(r)),
        };
        let _ = (k.arena(), k.vm(), k.to_string());
    }
}

/// Records written as the ABI documents each code decode to that variant
/// with that payload.
#[test]
fn documented_records_decode_to_their_variants() {
    use vmspace_user::kdev::{decode_arena, decode_vm};
    let mut rng = Rng(5);
    for _ in 0..2000 {
        let a = rng.next() as usize;
        let b = rng.next() as usize;
        let (lo, hi) = (a.min(b), a.max(b));
        let range = Range::new(Addr(lo), Addr(hi)).unwrap();
        let rec = |chain: &[u16], a: usize, b: usize| {
            let mut w = WireError::ZERO;
            w.chain[..chain.len()].copy_from_slice(chain);
            w.a = a as u64;
            w.b = b as u64;
            w
        };
        assert_eq!(
            decode_arena(&rec(&[ARENA_MISALIGNED], a, b)),
            ArenaError::Misaligned { value: a, align: b }
        );
        assert_eq!(decode_arena(&rec(&[ARENA_NO_SPACE], a, 0)), ArenaError::NoSpace { size: a });
        assert_eq!(
            decode_arena(&rec(&[ARENA_SPAN_OVERLAP], lo, hi)),
            ArenaError::SpanOverlap(range)
        );
        assert_eq!(
            decode_arena(&rec(&[ARENA_NOT_ADJACENT], lo, hi)),
            ArenaError::NotAdjacent(range)
        );
        assert_eq!(decode_arena(&rec(&[ARENA_BAD_IMPORT], lo, hi)), ArenaError::BadImport(range));
        let tag = rng.next() as u32;
        assert_eq!(
            decode_arena(&rec(&[ARENA_BAD_HANDLE], a, tag as usize)),
            ArenaError::BadHandle { addr: Addr(a), tag }
        );
        let mut bf = rec(&[ARENA_BAD_FREE], a, b);
        assert_eq!(
            decode_arena(&bf),
            ArenaError::BadFree { addr: Addr(a), size: Size(b), allocated: None }
        );
        bf.c = lo as u64;
        bf.flags = FLAG_C;
        assert_eq!(
            decode_arena(&bf),
            ArenaError::BadFree { addr: Addr(a), size: Size(b), allocated: Some(Size(lo)) }
        );
        let mut c = rec(&[ARENA_CORRUPT], tag as usize, 0);
        c.set_message("free list broken");
        assert_eq!(decode_arena(&c), ArenaError::Corrupt { what: "free list broken", tag });
        assert_eq!(
            decode_arena(&rec(&[ARENA_VM, VM_ALREADY_MAPPED], lo, hi)),
            ArenaError::Vm(VmError::AlreadyMapped(range))
        );
        assert_eq!(
            decode_arena(&rec(&[ARENA_VM, VM_BACKEND, SHIM_OUT_OF_MEMORY], lo, hi)),
            ArenaError::Vm(VmError::Backend(ShimError::OutOfMemory(range)))
        );
        assert_eq!(
            decode_arena(&rec(&[ARENA_BACKING, SHIM_UNFLUSHED], lo, hi)),
            ArenaError::Backing(ShimError::Unflushed(range))
        );
        assert_eq!(
            decode_vm(&rec(&[VM_COMMON, COMMON_OUT_OF_RANGE], lo, hi)),
            VmError::Common(CommonError::OutOfRange(range))
        );
        assert_eq!(
            decode_vm(&rec(&[VM_COMMON, COMMON_MISALIGNED], a, b)),
            VmError::Common(CommonError::Misaligned { value: a, align: b })
        );
        assert_eq!(
            decode_vm(&rec(&[VM_BACKEND, SHIM_OUT_OF_ADDRESS_SPACE], a, 0)),
            VmError::Backend(ShimError::OutOfAddressSpace { size: a })
        );
        for (i, op) in Op::ALL.iter().enumerate() {
            let mut w = rec(&[VM_BACKEND, SHIM_OS], 0, 0);
            w.op = i as u32;
            w.errno = -(rng.below(200) as i32);
            assert_eq!(decode_vm(&w), VmError::Backend(ShimError::Os { op: *op, errno: w.errno }));
            let mut w = rec(&[ARENA_BACKING, SHIM_INJECTED], 0, 0);
            w.op = i as u32;
            assert_eq!(decode_arena(&w), ArenaError::Backing(ShimError::Injected { op: *op }));
        }
    }
}
