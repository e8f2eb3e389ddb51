//! Round 26 (outside reviewer): the `/dev/vmspace` client's behaviour that
//! needs no device: opening what is not the device, `from_env`, and the
//! decoding of error records "variant for variant" (kdev/mod.rs,
//! kdev/error.rs). Records are built exactly as the kernel's encoder
//! (kernel/device/encode.rs) writes them.

use vmspace::arena::ArenaError;
use vmspace::vm::VmError;
use vmspace::CommonError;
use vmspace_abi::error::*;
use vmspace_shim::{Addr, Op, Range, ShimError, Size};
use vmspace_user::kdev::{decode_arena, decode_vm, describe, Device, KdevError, OpenError};

fn rec(chain: &[u16], a: u64, b: u64) -> WireError {
    let mut w = WireError::ZERO;
    w.chain[..chain.len()].copy_from_slice(chain);
    w.a = a;
    w.b = b;
    w
}

#[test]
fn opening_what_is_not_the_device() {
    match Device::open("/nonexistent/r26") {
        Err(OpenError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
    match Device::open("/dev/null") {
        Err(OpenError::Version(e)) => assert_eq!(e, nix::errno::Errno::ENOTTY),
        other => panic!("{other:?}"),
    }
    let e = Device::open("/dev/null").unwrap_err().to_string();
    assert!(e.contains("not a vmspace device"), "{e}");
    // An empty VMSPACE_DEVICE is "unset".
    std::env::set_var("VMSPACE_DEVICE", "");
    assert!(Device::from_env().is_none());
    assert!(vmspace_user::kdev::device_for_tests().is_none());
    std::env::set_var("VMSPACE_DEVICE", "/dev/null");
    assert!(matches!(Device::from_env(), Some(Err(OpenError::Version(_)))));
    std::env::remove_var("VMSPACE_DEVICE");
    assert!(Device::from_env().is_none());
}

#[test]
fn records_decode_variant_for_variant() {
    let r = Range::new(Addr(0x1000), Addr(0x3000)).unwrap();
    // Shim errors under a VM.
    let mut w = rec(&[VM_BACKEND, SHIM_OS], 0, 0);
    w.op = Op::Protect as u32;
    w.errno = -12;
    assert_eq!(decode_vm(&w), VmError::Backend(ShimError::Os { op: Op::Protect, errno: -12 }));
    let w = rec(&[VM_BACKEND, SHIM_NOT_RESERVED], 0x1000, 0x3000);
    assert_eq!(decode_vm(&w), VmError::Backend(ShimError::NotReserved(r)));
    let w = rec(&[VM_BACKEND, SHIM_UNFLUSHED], 0x1000, 0x3000);
    assert_eq!(decode_vm(&w), VmError::Backend(ShimError::Unflushed(r)));
    let w = rec(&[VM_COMMON, COMMON_OUT_OF_RANGE], 0x1000, 0x3000);
    assert_eq!(decode_vm(&w), VmError::Common(CommonError::OutOfRange(r)));
    let w = rec(&[VM_NOT_MAPPED], 0x1000, 0x3000);
    assert_eq!(decode_vm(&w), VmError::NotMapped(r));
    // Arena errors, nested.
    let w = rec(&[ARENA_VM, VM_BACKEND, SHIM_OUT_OF_ADDRESS_SPACE], 1 << 40, 0);
    assert_eq!(
        decode_arena(&w),
        ArenaError::Vm(VmError::Backend(ShimError::OutOfAddressSpace { size: 1 << 40 }))
    );
    let mut w = rec(&[ARENA_BAD_FREE], 0x1000, 16);
    w.c = 32;
    w.flags = FLAG_C;
    assert_eq!(
        decode_arena(&w),
        ArenaError::BadFree { addr: Addr(0x1000), size: Size(16), allocated: Some(Size(32)) }
    );
    let w = rec(&[ARENA_BAD_HANDLE], 0x1000, u64::from(u32::MAX));
    assert_eq!(decode_arena(&w), ArenaError::BadHandle { addr: Addr(0x1000), tag: u32::MAX });
    // A VM error at the top of an arena command (arena creation).
    let w = rec(&[VM_COMMON, COMMON_OVERFLOW], 0, 0);
    assert_eq!(decode_arena(&w), ArenaError::Vm(VmError::Common(CommonError::Overflow)));
    // Garbage never panics: every code in every position, extreme payloads.
    let codes: Vec<u16> =
        (0..=0x06ffu16).step_by(1).filter(|c| c & 0xff < 0x20 || c & 0xff == 0xff).collect();
    for &c0 in &codes {
        for &c1 in &[NONE, VM_BACKEND, SHIM_OS, ARENA_VM, 0xffff] {
            let mut w = rec(&[c0, c1, 0xffff, 0xffff], u64::MAX, 0);
            w.op = u32::MAX;
            w.msg_len = u32::MAX;
            let _ = decode_arena(&w);
            let _ = decode_vm(&w);
            let _ = describe(&w);
        }
    }
}

/// kdev/mod.rs: "Errors come back variant for variant"; kdev/error.rs:
/// records "turned back into the core's error types, variant for variant,
/// so a test that compares errors compares them the same way against the
/// kernel". `ArenaError::Stranded` has no ABI code: the kernel's encoder
/// writes `ARENA_OTHER` and its text, which the client turns into an
/// `InvalidArgument` (round 26's finding). No command can return it (only
/// a source returns it, to its importing arena), and the docs now say so
/// and what it would come back as: that is what this checks.
#[test]
fn a_stranded_arena_error_comes_back_as_stranded() {
    let range = Range::new(Addr(0x10_0000), Addr(0x20_0000)).unwrap();
    let error = ShimError::Os { op: Op::Unmap, errno: -12 };
    let original = ArenaError::Stranded { range, error };
    // As kernel/device/encode.rs writes it: `_ => c.push(ARENA_OTHER).display(e)`.
    let mut w = rec(&[ARENA_OTHER], 0, 0);
    w.set_message(&original.to_string());
    let back = decode_arena(&w);
    let k = KdevError {
        command: "ARENA_FREE",
        errno: nix::errno::Errno::ENOMEM,
        record: Some(Box::new(w)),
    };
    assert_eq!(k.arena(), back);
    match back {
        ArenaError::InvalidArgument(text) => {
            assert!(text.starts_with("device code 0x02ff: source could not take back"), "{text}")
        }
        other => panic!("Stranded came back as {other:?}, not as the documented fallback"),
    }
    assert_ne!(back, original);
}
