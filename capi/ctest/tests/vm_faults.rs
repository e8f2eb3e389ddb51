//! The C API's VM layer and arenas of pages when the page operations fail:
//! a platform whose pages go through one [`FaultInjector`] over the mmap
//! backend, failing the call chosen (its only operation selected, so the
//! arenas' own metadata is not failed), cleanly, part way, or as a
//! shortage. Each failure returns its errno and leaves the VM (or arena)
//! as the header says: a refused destroy leaves the VM live and usable, a
//! map maps none of its pages, a protect refused part way can be set
//! again, an unmap refused part way leaves the range
//! mapped and read-write, a failed import or give-back of an arena of
//! pages changes nothing the caller sees.
//!
//! One process for the file, and the injector is shared by every object the
//! platform makes, so the tests take turns (`SERIAL`).

mod common;

use core::alloc::Layout;
use core::ffi::c_int;
use std::sync::{LazyLock, Mutex};

use common::access;
use vmspace_capi::ctypes::*;
use vmspace_capi::{Api, Platform};
use vmspace_capi_ctest as _;
use vmspace_shim::{FaultInjector, FaultShape, InjectedError, Op};
use vmspace_user::{CondvarWaiter, MmapBackend, ParkingLock, SchedPin};

const ENOMEM: c_int = -12;
const EIO: c_int = -5;

static INJ: LazyLock<FaultInjector<MmapBackend>> =
    LazyLock::new(|| FaultInjector::new(MmapBackend::new()));
static SERIAL: Mutex<()> = Mutex::new(());

struct FaultPlat;

// SAFETY: `alloc_object` is the global allocator's `alloc` (never
// zero-sized here) and `free_object` its `dealloc` with the same layout.
unsafe impl Platform for FaultPlat {
    type Lock = ParkingLock;
    type Waiter = CondvarWaiter;
    type Pin = SchedPin;
    type Pages = &'static FaultInjector<MmapBackend>;
    fn lock() -> Option<ParkingLock> {
        Some(ParkingLock::default())
    }
    fn waiter() -> Option<CondvarWaiter> {
        Some(CondvarWaiter::default())
    }
    fn pin() -> Option<SchedPin> {
        Some(SchedPin::new())
    }
    fn pages() -> &'static FaultInjector<MmapBackend> {
        &INJ
    }
    fn random_u32() -> u32 {
        0x5eed
    }
    fn alloc_object(layout: Layout) -> *mut u8 {
        // SAFETY: never zero-sized (the trait's promise).
        unsafe { std::alloc::alloc(layout) }
    }
    unsafe fn free_object(ptr: *mut u8, layout: Layout) {
        // SAFETY: from `alloc_object` with `layout` (caller).
        unsafe { std::alloc::dealloc(ptr, layout) }
    }
}

type F = Api<FaultPlat>;

/// Fail the next call of `op` as `shape` and `error` say.
fn fail_next(op: Op, shape: FaultShape, error: InjectedError) {
    INJ.clear();
    INJ.only(&[op]);
    INJ.set_shape(shape);
    INJ.set_error(error);
    INJ.fail_nth(1);
}

fn page() -> usize {
    vmspace_shim::PageOps::page_size(&*INJ).0
}

fn vm(size: usize) -> *mut vmspace_vm_t {
    let mut v = core::ptr::null_mut();
    // SAFETY: a writable out pointer.
    assert_eq!(unsafe { F::vmspace_vm_create(size, 0, 0, &mut v) }, 0);
    v
}

fn info(v: *mut vmspace_vm_t) -> vmspace_vm_info {
    let mut i = vmspace_vm_info::default();
    // SAFETY: a live VM, a writable info.
    assert_eq!(unsafe { F::vmspace_vm_info(v, &mut i) }, 0);
    i
}

fn fill(addr: usize, n: usize, b: u8) {
    // SAFETY: the caller mapped the range.
    unsafe { core::ptr::write_bytes(addr as *mut u8, b, n) }
}

fn all(addr: usize, n: usize, b: u8) -> bool {
    // SAFETY: the caller mapped the range.
    unsafe { core::slice::from_raw_parts(addr as *const u8, n) }.iter().all(|&x| x == b)
}

#[test]
fn a_refused_destroy_leaves_the_vm_live_and_usable() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = page();
    let v = vm(16 * p);
    let b = info(v).base;
    // SAFETY: a live VM.
    assert_eq!(unsafe { F::vmspace_vm_map(v, b, 4 * p) }, 0);
    fill(b, 4 * p, 0x3c);
    for (error, want) in [(InjectedError::Os(libc_enomem()), ENOMEM), (InjectedError::Marker, -11)]
    {
        let before = info(v);
        let injected = INJ.injected();
        fail_next(Op::Release, FaultShape::Clean, error);
        // SAFETY: a live VM nobody else uses.
        assert_eq!(unsafe { F::vmspace_vm_destroy(v) }, want);
        assert_eq!(INJ.injected(), injected + 1);
        INJ.clear();
        // Live again, as it was: the same info, the pages and contents kept.
        assert_eq!(info(v), before);
        // SAFETY: a live VM.
        unsafe {
            assert_eq!(F::vmspace_vm_mapped(v, b, 4 * p), 1);
            assert_eq!(F::vmspace_vm_check(v), 0);
            assert!(all(b, 4 * p, 0x3c));
            assert_eq!(F::vmspace_vm_map(v, b + 4 * p, p), 0);
            assert_eq!(F::vmspace_vm_unmap(v, b + 4 * p, p), 0);
        }
    }
    // SAFETY: a live VM, not used after.
    assert_eq!(unsafe { F::vmspace_vm_destroy(v) }, 0);
}

#[test]
fn a_failed_map_maps_none_of_its_pages() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = page();
    let v = vm(64 * p);
    let b = info(v).base;
    for (error, want) in [
        (InjectedError::Shortage, ENOMEM),
        (InjectedError::Os(libc_enomem()), ENOMEM),
        (InjectedError::Os(22), EIO),
        (InjectedError::Marker, -11),
    ] {
        let before = info(v);
        fail_next(Op::Map, FaultShape::Clean, error);
        // SAFETY: a live VM.
        assert_eq!(unsafe { F::vmspace_vm_map(v, b + 8 * p, 8 * p) }, want, "{error:?}");
        INJ.clear();
        let after = info(v);
        assert_eq!((after.mapped, after.metadata), (before.mapped, before.metadata));
        // SAFETY: a live VM.
        unsafe {
            assert_eq!(F::vmspace_vm_mapped(v, b + 8 * p, p), 0);
            assert_eq!(F::vmspace_vm_check(v), 0);
        }
    }
    // SAFETY: a live VM, not used after.
    assert_eq!(unsafe { F::vmspace_vm_destroy(v) }, 0);
}

#[test]
fn an_unmap_refused_part_way_leaves_the_range_mapped_and_writable() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = page();
    let v = vm(64 * p);
    let b = info(v).base;
    // SAFETY: a live VM.
    assert_eq!(unsafe { F::vmspace_vm_map(v, b, 8 * p) }, 0);
    fill(b, 8 * p, 0x77);
    let before = info(v);
    let part_way = INJ.changed_part_way();
    fail_next(Op::Unmap, FaultShape::PartWay, InjectedError::Os(libc_enomem()));
    // SAFETY: a live VM.
    assert_eq!(unsafe { F::vmspace_vm_unmap(v, b, 8 * p) }, ENOMEM);
    assert_eq!(INJ.changed_part_way(), part_way + 1, "the failure came part way");
    INJ.clear();
    assert_eq!(info(v), before);
    // SAFETY: a live VM.
    assert_eq!(unsafe { F::vmspace_vm_mapped(v, b, 8 * p) }, 1);
    // Every page read-write again (a fault here is the defect): the prefix
    // the failure decommitted reads zero, the rest as written.
    let zeroed = (0..8).take_while(|i| all(b + i * p, p, 0)).count();
    assert!((1..8).contains(&zeroed), "a prefix of {zeroed} pages decommitted");
    assert!(all(b + zeroed * p, (8 - zeroed) * p, 0x77));
    fill(b, 8 * p, 0x11);
    assert!(all(b, 8 * p, 0x11));
    // SAFETY: a live VM.
    unsafe {
        assert_eq!(F::vmspace_vm_check(v), 0);
        assert_eq!(F::vmspace_vm_unmap(v, b, 8 * p), 0);
        assert_eq!(F::vmspace_vm_destroy(v), 0);
    }
}

#[test]
fn an_arena_of_pages_survives_failed_imports_and_give_backs() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = page();
    // SAFETY: a valid name; no initial span.
    let a = unsafe { F::vmspace_arena_create(c"faults".as_ptr(), 0, 0, p, 0, 0) };
    assert!(!a.is_null());
    // Making the VM fails: its reservation refused.
    fail_next(Op::Reserve, FaultShape::Clean, InjectedError::Shortage);
    // SAFETY: a live arena.
    assert_eq!(unsafe { F::vmspace_arena_set_vm(a, 1 << 20, 0) }, ENOMEM);
    INJ.clear();
    let mut i = vmspace_vm_info::default();
    // SAFETY: as above.
    assert_eq!(unsafe { F::vmspace_arena_vm_info(a, &mut i) }, -22, "no VM after the failure");
    // SAFETY: as above.
    assert_eq!(unsafe { F::vmspace_arena_set_vm(a, 1 << 20, 0) }, 0);
    // An import whose map is refused: no space, nothing imported.
    let mut x = 0usize;
    fail_next(Op::Map, FaultShape::Clean, InjectedError::Shortage);
    // SAFETY: a live arena, a writable out pointer.
    assert_eq!(unsafe { F::vmspace_arena_alloc(a, 3 * p, 0, &mut x) }, ENOMEM);
    INJ.clear();
    let mut s = vmspace_sizes::default();
    // SAFETY: as above.
    unsafe {
        assert_eq!(F::vmspace_arena_sizes(a, &mut s), 0);
        assert_eq!((s.imported, s.live), (0, 0));
        assert_eq!(F::vmspace_arena_vm_info(a, &mut i), 0);
        assert_eq!(i.mapped, 0);
        assert_eq!(F::vmspace_arena_check(a), 0);
        // The same allocation now succeeds, mapped.
        assert_eq!(F::vmspace_arena_alloc(a, 3 * p, 0, &mut x), 0);
    }
    fill(x, 3 * p, 0x42);
    // A give-back whose unmap fails part way: the free is done, the span
    // stays imported (mapped, read-write again) and checks.
    let before = INJ.changed_part_way();
    fail_next(Op::Unmap, FaultShape::PartWay, InjectedError::Os(libc_enomem()));
    // SAFETY: a live arena; `x` is not touched after.
    let freed = unsafe { F::vmspace_arena_free(a, x, 3 * p) };
    let part_way = INJ.changed_part_way() - before;
    INJ.clear();
    // SAFETY: as above.
    unsafe {
        assert_eq!(F::vmspace_arena_sizes(a, &mut s), 0);
        assert_eq!(F::vmspace_arena_vm_info(a, &mut i), 0);
        assert_eq!(F::vmspace_arena_check(a), 0, "free returned {freed}");
    }
    assert_eq!(part_way, 1);
    assert_eq!(s.live, 0, "the free itself succeeded (returned {freed})");
    assert_eq!(i.mapped, s.imported, "mapped is what is still imported");
    // SAFETY: a live arena, not used after.
    assert_eq!(unsafe { F::vmspace_arena_destroy(a) }, 0);
}

#[test]
fn a_failed_protect_returns_its_errno_and_a_part_way_one_can_be_set_again() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = page();
    let v = vm(64 * p);
    let b = info(v).base;
    // SAFETY: a live VM.
    assert_eq!(unsafe { F::vmspace_vm_map(v, b, 8 * p) }, 0);
    fill(b, 8 * p, 0x42);
    let before = info(v);
    // Refused cleanly: nothing changed, every page still read-write.
    for (error, want) in [
        (InjectedError::Os(libc_enomem()), ENOMEM),
        (InjectedError::Os(22), EIO),
        (InjectedError::Marker, -11),
    ] {
        fail_next(Op::Protect, FaultShape::Clean, error);
        // SAFETY: a live VM.
        assert_eq!(unsafe { F::vmspace_vm_protect(v, b, 8 * p, VMSPACE_PROT_READ) }, want);
        INJ.clear();
        assert!((0..8).all(|i| access(b + i * p) == (true, true)), "{error:?}");
        assert_eq!(info(v), before);
    }
    // Refused part way (Linux's mprotect at vm.max_map_count): a prefix
    // has no access, the rest is as it was; set again, the whole range is
    // read-write with its contents.
    let part_way = INJ.changed_part_way();
    fail_next(Op::Protect, FaultShape::PartWay, InjectedError::Os(libc_enomem()));
    // SAFETY: a live VM.
    assert_eq!(unsafe { F::vmspace_vm_protect(v, b, 8 * p, VMSPACE_PROT_NONE) }, ENOMEM);
    assert_eq!(INJ.changed_part_way(), part_way + 1, "the failure came part way");
    INJ.clear();
    let shut = (0..8).take_while(|i| access(b + i * p) == (false, false)).count();
    assert!((1..8).contains(&shut), "a prefix of {shut} pages protected");
    assert!((shut..8).all(|i| access(b + i * p) == (true, true)));
    assert_eq!(info(v), before);
    // SAFETY: a live VM.
    unsafe {
        assert_eq!(F::vmspace_vm_mapped(v, b, 8 * p), 1);
        assert_eq!(F::vmspace_vm_protect(v, b, 8 * p, VMSPACE_PROT_READ | VMSPACE_PROT_WRITE), 0);
    }
    assert!(all(b, 8 * p, 0x42));
    fill(b, 8 * p, 0x11);
    // SAFETY: a live VM.
    unsafe {
        assert_eq!(F::vmspace_vm_check(v), 0);
        assert_eq!(F::vmspace_vm_destroy(v), 0);
    }
}

/// Linux's ENOMEM, as the mmap backend reports it (positive).
fn libc_enomem() -> i32 {
    12
}
