//! Written by a reviewer outside the project, from the documented contracts
//! of `/dev/vmspace` (README.md, kernel/README.md "/dev/vmspace" and "The
//! ABI", the `vmspace-abi` crate's docs), to break them: ids (stale, of
//! the other kind, at 0 and `u32::MAX`), the per-file bounds filled, freed
//! and refilled, sizes and addresses at the top of what `u64` holds,
//! constraint extremes, and the error records' documented payloads.
//! Skipped (returning early) when `VMSPACE_DEVICE` is not set.

#![allow(
    clippy::result_large_err,
    reason = "the helpers return the device's error record whole: it is what the tests inspect"
)]

use std::collections::HashSet;
use std::os::fd::RawFd;

use nix::errno::Errno;
use vmspace::arena::Policy;
use vmspace_abi::args::*;
use vmspace_abi::cmd;
use vmspace_abi::error::*;
use vmspace_shim::{Addr, Size};
use vmspace_user::kdev::{device_for_tests, ArenaConfig};
use vmspace_workload::ArenaTarget;

mod outside_kdev_common;
use outside_kdev_common::*;

/// A VM through raw `VM_RESERVE`.
fn reserve(fd: RawFd, size: u64, grain: u64) -> Result<VmReserveArgs, (Errno, WireError)> {
    let mut a = VmReserveArgs { size, grain, ..VmReserveArgs::ZERO };
    match raw(fd, cmd::VM_RESERVE, &mut a) {
        Ok(()) => Ok(a),
        Err(e) => Err((e, a.err)),
    }
}

fn destroy(fd: RawFd, id: u32) -> Result<(u64, u64), (Errno, WireError)> {
    let mut a = DestroyArgs { id, ..DestroyArgs::ZERO };
    match raw(fd, cmd::DESTROY, &mut a) {
        Ok(()) => Ok((a.leaked, a.leaked_bytes)),
        Err(e) => Err((e, a.err)),
    }
}

const BAD_ID: [u16; 4] = [DEV_BAD_ID, 0, 0, 0];
const LIMIT: [u16; 4] = [DEV_LIMIT, 0, 0, 0];
/// "an id outlives its object only as a stale generation, never reused":
/// after hundreds of create/destroy cycles of both kinds through the same
/// slots, every id ever handed out is distinct and every dead one is
/// refused with `DEV_BAD_ID` (payload `a` = the id), whatever kind of object
/// now lives in its slot; a long-lived object's id keeps working.
#[test]
fn stale_ids_never_name_a_newer_object() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let page = dev.page_size() as u64;
    let keeper = create(fd, arena_args(16, 512)).unwrap();
    span(fd, keeper, 1 << 40, 1 << 20, false).unwrap();
    let mut seen = HashSet::from([keeper]);
    let mut dead: Vec<u32> = Vec::new();
    for round in 0..300 {
        let id = if round % 2 == 0 {
            create(fd, arena_args(16, 512)).unwrap()
        } else {
            reserve(fd, page, 0).unwrap().id
        };
        assert!(seen.insert(id), "round {round}: id {id:#x} handed out twice");
        for &old in dead.iter().rev().take(20) {
            let mut c = CheckArgs { id: old, ..CheckArgs::ZERO };
            let cmd = if round % 2 == 0 { cmd::ARENA_CHECK } else { cmd::VM_CHECK };
            assert_eq!(raw(fd, cmd, &mut c), Err(Errno::EINVAL), "round {round}: stale {old:#x}");
            assert_eq!(
                (c.err.chain, c.err.a),
                (BAD_ID, old as u64),
                "round {round}: stale {old:#x}"
            );
            assert_eq!(refusal(destroy(fd, old)), (Errno::EINVAL, BAD_ID));
        }
        destroy(fd, id).unwrap();
        assert_eq!(refusal(destroy(fd, id)), (Errno::EINVAL, BAD_ID), "destroyed twice");
        dead.push(id);
    }
    let (addr, _) = alloc(fd, AllocArgs { id: keeper, size: 64, ..AllocArgs::ZERO }).unwrap();
    assert_eq!(addr, 1 << 40);
    check_arena(fd, keeper).unwrap();
}

/// Ids at the extremes name nothing: every id-taking command answers
/// `EINVAL` with exactly `[DEV_BAD_ID]` and `a` = the id; the statistics
/// commands leave every output zero.
#[test]
fn extreme_ids_are_refused_with_the_id_in_the_record() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    // A live object of each kind, so the table is not empty.
    let _arena = dev.arena(&ArenaConfig::new(Size(16)).max_tags(512)).unwrap();
    let _vm = dev.vm(dev.page_size(), 0).unwrap();
    for id in [0u32, 1, u32::MAX, u32::MAX - 1, 1 << 31, 63, 64] {
        // Skip the (about 2^-26) chance that this id is a live one.
        if id == _arena.id() || id == _vm.id() {
            continue;
        }
        let mut c = CheckArgs { id, ..CheckArgs::ZERO };
        assert_eq!(raw(fd, cmd::ARENA_CHECK, &mut c), Err(Errno::EINVAL));
        assert_eq!((c.err.chain, c.err.a), (BAD_ID, id as u64), "{id:#x}");
        let mut c = CheckArgs { id, ..CheckArgs::ZERO };
        assert_eq!(raw(fd, cmd::VM_CHECK, &mut c), Err(Errno::EINVAL));
        assert_eq!((c.err.chain, c.err.a), (BAD_ID, id as u64), "{id:#x}");
        let mut s = ArenaStatsArgs { id, ..ArenaStatsArgs::ZERO };
        assert_eq!(raw(fd, cmd::ARENA_STATS, &mut s), Err(Errno::EINVAL));
        assert_eq!(
            ArenaStatsArgs { err: WireError::ZERO, ..s },
            ArenaStatsArgs { id, ..ArenaStatsArgs::ZERO }
        );
        let mut s = VmStatsArgs { id, ..VmStatsArgs::ZERO };
        assert_eq!(raw(fd, cmd::VM_STATS, &mut s), Err(Errno::EINVAL));
        assert_eq!(
            VmStatsArgs { err: WireError::ZERO, ..s },
            VmStatsArgs { id, ..VmStatsArgs::ZERO }
        );
        assert_eq!(refusal(destroy(fd, id)), (Errno::EINVAL, BAD_ID));
        assert_eq!(
            refusal(alloc(fd, AllocArgs { id, size: 16, ..AllocArgs::ZERO })),
            (Errno::EINVAL, BAD_ID)
        );
        assert_eq!(refusal(span(fd, id, 1 << 40, 4096, false)), (Errno::EINVAL, BAD_ID));
        let mut m = VmRangeArgs { id, addr: 0, size: 4096, ..VmRangeArgs::ZERO };
        assert_eq!(raw(fd, cmd::VM_MAP, &mut m), Err(Errno::EINVAL));
        assert_eq!(m.err.chain, BAD_ID);
        let mut l = LookupArgs { id, addr: 1 << 40, ..LookupArgs::ZERO };
        assert_eq!(raw(fd, cmd::ARENA_LOOKUP, &mut l), Err(Errno::EINVAL));
        assert_eq!((l.err.chain, l.found), (BAD_ID, 0));
    }
    // Of the other kind: DEV_WRONG_KIND with `a` = the id.
    let mut c = CheckArgs { id: _arena.id(), ..CheckArgs::ZERO };
    assert_eq!(raw(fd, cmd::VM_CHECK, &mut c), Err(Errno::EINVAL));
    assert_eq!((c.err.chain, c.err.a), ([DEV_WRONG_KIND, 0, 0, 0], _arena.id() as u64));
    let mut c = CheckArgs { id: _vm.id(), ..CheckArgs::ZERO };
    assert_eq!(raw(fd, cmd::ARENA_CHECK, &mut c), Err(Errno::EINVAL));
    assert_eq!((c.err.chain, c.err.a), ([DEV_WRONG_KIND, 0, 0, 0], _vm.id() as u64));
}

/// The objects bound: fill the file with arenas and VMs, the next one of
/// either kind is `ENOSPC`/`DEV_LIMIT` with `a` = the bound; destroying any
/// one makes room for exactly one more, round after round.
#[test]
fn objects_bound_is_exact_and_slots_are_reused() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let max = dev.info().max_objects as usize;
    let page = dev.page_size() as u64;
    let mut ids = Vec::new();
    for i in 0..max {
        ids.push(if i % 2 == 0 {
            create(fd, arena_args(16, 256)).unwrap()
        } else {
            reserve(fd, page, 0).unwrap().id
        });
    }
    for round in 0..3 {
        let e = create(fd, arena_args(16, 256)).unwrap_err();
        assert_eq!((e.0, e.1.chain, e.1.a), (Errno::ENOSPC, LIMIT, max as u64), "round {round}");
        let e = reserve(fd, page, 0).unwrap_err();
        assert_eq!((e.0, e.1.chain, e.1.a), (Errno::ENOSPC, LIMIT, max as u64), "round {round}");
        for (i, id) in ids.iter_mut().enumerate() {
            destroy(fd, *id).unwrap();
            *id = if (i + round) % 2 == 0 {
                reserve(fd, page, 0).unwrap().id
            } else {
                create(fd, arena_args(16, 256)).unwrap()
            };
            assert_eq!(
                refusal(reserve(fd, page, 0)),
                (Errno::ENOSPC, LIMIT),
                "round {round}, slot {i}"
            );
        }
    }
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), max);
}

/// `DEV_LIMIT`: "`msg` names it, `a` is the bound, `b` what the command
/// asked for in all" (abi/src/error.rs), for every bound a creation can
/// hit.
#[test]
fn limit_records_carry_the_bound_and_the_total_asked() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let v = *dev.info();
    let page = dev.page_size() as u64;
    // Tags per arena.
    let e = create(fd, arena_args(16, v.max_tags_per_arena + 1)).unwrap_err();
    assert_eq!((e.0, e.1.chain), (Errno::ENOSPC, LIMIT));
    assert_eq!((e.1.a, e.1.b), (v.max_tags_per_arena, v.max_tags_per_arena + 1));
    // Reserved bytes: a VM of the whole bound costs one grain more.
    let e = reserve(fd, v.max_reserved_per_file, 0).unwrap_err();
    assert_eq!((e.0, e.1.chain), (Errno::ENOSPC, LIMIT));
    assert_eq!((e.1.a, e.1.b), (v.max_reserved_per_file, v.max_reserved_per_file + page));
    // Tags per file.
    let per = v.max_tags_per_arena;
    let n = v.max_tags_per_file / per;
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(create(fd, arena_args(16, per)).unwrap());
    }
    let e = create(fd, arena_args(16, per)).unwrap_err();
    assert_eq!((e.0, e.1.chain), (Errno::ENOSPC, LIMIT));
    assert!(e.1.message().contains("tags per file"), "{}", e.1.message());
    assert_eq!((e.1.a, e.1.b), (v.max_tags_per_file, (n + 1) * per));
    // Released by a destroy.
    destroy(fd, held.pop().unwrap()).unwrap();
    held.push(create(fd, arena_args(16, per)).unwrap());
    for id in held {
        destroy(fd, id).unwrap();
    }
    // Objects: `b` is what was asked for in all, one more than the bound.
    let mut held = Vec::new();
    for _ in 0..v.max_objects {
        held.push(reserve(fd, page, 0).unwrap().id);
    }
    let e = reserve(fd, page, 0).unwrap_err();
    assert_eq!((e.0, e.1.chain, e.1.a), (Errno::ENOSPC, LIMIT, v.max_objects as u64));
    assert_eq!(
        e.1.b,
        v.max_objects as u64 + 1,
        "DEV_LIMIT for objects: `b` should be the total asked for"
    );
}

/// "a source VM counts whole" against the mapped bound (kernel/README.md,
/// bounds table; `Limits::max_mapped`: "an arena's source VM counts with its
/// whole size"): an importing arena whose source is exactly as large as
/// the mapped bound (and whose reservation, plus a grain, fits the reserved
/// bound) is admitted, and then nothing more can be mapped.
#[test]
fn a_source_as_large_as_the_mapped_bound_is_admitted() {
    let Some(dev) = device_for_tests() else { return };
    let v = *dev.info();
    let page = dev.page_size();
    let size = (v.max_mapped_per_file as usize).min(v.max_reserved_per_file as usize - page);
    let created = dev.arena(&ArenaConfig::new(Size(page)).max_tags(1024).import(size));
    let mut arena = created.unwrap_or_else(|e| panic!("import_size {size:#x}: {e}"));
    let a = arena.alloc(Size(page), Policy::InstantFit).unwrap();
    if size as u64 == v.max_mapped_per_file {
        let mut vm = dev.vm(page, 0).unwrap();
        let r = vmspace_shim::Range::from_size(vm_base(&vm), Size(page)).unwrap();
        let e = vmspace_workload::VmTarget::map(&mut vm, r).unwrap_err();
        assert!(format!("{e}").contains("mapped bytes per file"), "{e}");
    }
    arena.free(a, Size(page)).unwrap();
    arena.check().unwrap();
}

fn vm_base(vm: &vmspace_user::kdev::DevVm) -> Addr {
    vmspace_workload::VmTarget::base(vm)
}

/// Sizes and addresses at the top of `u64`, and out-of-domain creation
/// arguments: each refused with its documented errno and record, and none
/// leaves a charge behind (the file can still make its full count of
/// objects and reserve its whole bound afterwards).
#[test]
fn creation_arguments_at_the_extremes_are_refused_and_cost_nothing() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let v = *dev.info();
    let page = dev.page_size() as u64;
    let vm_common = |r: Result<VmReserveArgs, (Errno, WireError)>| {
        let (e, c) = refusal(r);
        assert_eq!((e, c[0]), (Errno::EINVAL, VM_COMMON), "{c:x?}");
        c[1]
    };
    // VM_RESERVE.
    assert_eq!(refusal(reserve(fd, u64::MAX, 0)), (Errno::ENOSPC, LIMIT));
    assert_eq!(refusal(reserve(fd, 1 << 63, 0)), (Errno::ENOSPC, LIMIT));
    assert_eq!(refusal(reserve(fd, page, 1 << 63)), (Errno::ENOSPC, LIMIT));
    assert_eq!(refusal(reserve(fd, u64::MAX - page + 1, page)), (Errno::ENOSPC, LIMIT));
    assert_eq!(vm_common(reserve(fd, 0, 0)), COMMON_INVALID_ARGUMENT);
    assert_eq!(vm_common(reserve(fd, page, 3)), COMMON_INVALID_ARGUMENT);
    assert_eq!(vm_common(reserve(fd, page, page / 2)), COMMON_INVALID_ARGUMENT);
    let mut outs = VmReserveArgs { size: page, limit: 1, ..VmReserveArgs::ZERO };
    assert_eq!(raw(fd, cmd::VM_RESERVE, &mut outs), Err(Errno::EINVAL));
    assert_eq!(outs.err.chain, BAD_FIELD);
    // ARENA_CREATE.
    for q in [0u64, 3, 1 << 28, 1 << 63, u64::MAX] {
        let (e, c) = refusal(create(fd, arena_args(q, 512)));
        assert_eq!((e, c), (Errno::EINVAL, [ARENA_INVALID_ARGUMENT, 0, 0, 0]), "quantum {q:#x}");
    }
    for t in [0u64, 1, 8] {
        let (e, c) = refusal(create(fd, arena_args(16, t)));
        assert_eq!((e, c), (Errno::EINVAL, [ARENA_INVALID_ARGUMENT, 0, 0, 0]), "max_tags {t}");
    }
    assert_eq!(refusal(create(fd, arena_args(16, u64::MAX))), (Errno::ENOSPC, LIMIT));
    for p in [4, POLICY_DEFAULT, u32::MAX - 1] {
        let a = ArenaCreateArgs { default_policy: p, ..arena_args(16, 512) };
        assert_eq!(refusal(create(fd, a)), (Errno::EINVAL, BAD_FIELD), "policy {p:#x}");
    }
    for (size, grain) in [(u64::MAX, 0), (page, 1 << 63), (1 << 63, page)] {
        let a = ArenaCreateArgs { import_size: size, import_quantum: grain, ..arena_args(16, 512) };
        assert_eq!(refusal(create(fd, a)), (Errno::ENOSPC, LIMIT), "import {size:#x}/{grain:#x}");
    }
    let a = ArenaCreateArgs { import_size: page, import_quantum: 3, ..arena_args(16, 512) };
    assert_eq!(refusal(create(fd, a)).0, Errno::EINVAL);
    // The largest quantum the docs allow is accepted.
    let big = create(fd, arena_args(1 << 27, 512)).unwrap();
    span(fd, big, 1 << 40, 1 << 28, false).unwrap();
    assert_eq!(alloc(fd, AllocArgs { id: big, size: 1, ..AllocArgs::ZERO }).unwrap().0, 1 << 40);
    destroy(fd, big).unwrap();
    // Nothing was charged: the whole bound of objects, and the whole bound
    // of reserved bytes, are still there.
    let mut ids = Vec::new();
    ids.push(reserve(fd, v.max_reserved_per_file - page, 0).unwrap().id);
    for _ in 1..v.max_objects {
        ids.push(create(fd, arena_args(16, 256)).unwrap());
    }
    assert_eq!(refusal(create(fd, arena_args(16, 256))), (Errno::ENOSPC, LIMIT));
    for id in ids {
        destroy(fd, id).unwrap();
    }
}

/// Error records: a successful command clears whatever was in `err` on
/// input; each code's documented payload is filled as documented
/// (`ARENA_BAD_FREE`: `a` address, `b` size, `c` the allocated size when
/// `FLAG_C`; `ARENA_BAD_HANDLE`: `a` address, `b` tag; `VM_ALREADY_MAPPED`,
/// `VM_NOT_MAPPED`: `a` base, `b` limit; `COMMON_MISALIGNED`: `a` value,
/// `b` alignment), and the client decodes them variant for variant.
#[test]
fn error_records_carry_their_documented_payloads() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let page = dev.page_size() as u64;
    let mut arena = dev.arena(&ArenaConfig::new(Size(16)).max_tags(512)).unwrap();
    let id = arena.id();
    arena.add(Addr(1 << 40), Size(1 << 20)).unwrap();
    let garbage = WireError {
        chain: [0xffff; 4],
        a: 7,
        b: 7,
        c: 7,
        flags: 3,
        msg_len: 80,
        msg: [b'x'; 80],
        op: 9,
        errno: -5,
    };
    let mut a = AllocArgs { id, size: 64, err: garbage, ..AllocArgs::ZERO };
    raw(fd, cmd::ARENA_ALLOC, &mut a).unwrap();
    assert_eq!(a.err, WireError::ZERO, "a success leaves a clean record");
    let at = a.addr;
    // Wrong size: the live allocation's size in c.
    let mut f = FreeArgs { id, addr: at, a: 32, ..FreeArgs::ZERO };
    assert_eq!(raw(fd, cmd::ARENA_FREE, &mut f), Err(Errno::EINVAL));
    let w = f.err;
    assert_eq!((w.chain, w.a, w.b, w.c, w.flags), ([ARENA_BAD_FREE, 0, 0, 0], at, 32, 64, FLAG_C));
    // Never allocated: no size to give.
    let mut f = FreeArgs { id, addr: at + 4096, a: 64, ..FreeArgs::ZERO };
    assert_eq!(raw(fd, cmd::ARENA_FREE, &mut f), Err(Errno::EINVAL));
    let w = f.err;
    assert_eq!((w.chain, w.a, w.b, w.c, w.flags), ([ARENA_BAD_FREE, 0, 0, 0], at + 4096, 64, 0, 0));
    let e = vmspace_user::kdev::decode_arena(&w);
    assert_eq!(
        e,
        vmspace::arena::ArenaError::BadFree {
            addr: Addr(at as usize + 4096),
            size: Size(64),
            allocated: None
        }
    );
    // A handle with a tag that holds nothing.
    let mut f = FreeArgs { id, addr: at, tag: 12345, ..FreeArgs::ZERO };
    assert_eq!(raw(fd, cmd::ARENA_FREE_HANDLE, &mut f), Err(Errno::EINVAL));
    let w = f.err;
    assert_eq!((w.chain, w.a, w.b, f.size), ([ARENA_BAD_HANDLE, 0, 0, 0], at, 12345, 0));
    // The stats counted both bad frees, and the allocation is intact.
    let s = arena.stats().unwrap();
    assert_eq!((s.bad_frees, s.allocated, s.live), (3, 64, 1));
    // VM records.
    let vm = dev.vm(4 * page as usize, 0).unwrap();
    let base = vm_base(&vm).0 as u64;
    let range = |c, addr, size| {
        let mut r = VmRangeArgs { id: vm.id(), addr, size, ..VmRangeArgs::ZERO };
        raw(fd, c, &mut r).map_err(|e| (e, r.err))
    };
    range(cmd::VM_MAP, base, page).unwrap();
    let (e, w) = range(cmd::VM_MAP, base, 2 * page).unwrap_err();
    assert_eq!(
        (e, w.chain, w.a, w.b),
        (Errno::EINVAL, [VM_ALREADY_MAPPED, 0, 0, 0], base, base + 2 * page)
    );
    let (e, w) = range(cmd::VM_UNMAP, base, 2 * page).unwrap_err();
    assert_eq!(
        (e, w.chain, w.a, w.b),
        (Errno::EINVAL, [VM_NOT_MAPPED, 0, 0, 0], base, base + 2 * page)
    );
    let (e, w) = range(cmd::VM_MAP, base + page + 8, page).unwrap_err();
    assert_eq!(
        (e, w.chain, w.a, w.b),
        (Errno::EINVAL, [VM_COMMON, COMMON_MISALIGNED, 0, 0], base + page + 8, page)
    );
    let (e, w) = range(cmd::VM_MAP, base + page, 0).unwrap_err();
    assert_eq!((e, w.chain), (Errno::EINVAL, [VM_COMMON, COMMON_INVALID_ARGUMENT, 0, 0]));
    let (e, w) = range(cmd::VM_MAP, base + 4 * page, page).unwrap_err();
    assert_eq!(
        (e, w.chain, w.a, w.b),
        (Errno::EINVAL, [VM_COMMON, COMMON_OUT_OF_RANGE, 0, 0], base + 4 * page, base + 5 * page)
    );
    // The module refuses protection: SHIM_INVALID_ARGUMENT, a refusal that
    // changed nothing (the maintainers' change: it was SHIM_OS with op
    // protect (4) and -EINVAL, which a layer must take as a failure that
    // may have come part way; see `ShimError::may_have_changed`).
    if !dev.can_protect() {
        let (e, w) = range(cmd::VM_PROTECT, base, page).unwrap_err();
        assert_eq!(
            (e, w.chain, w.op, w.errno),
            (Errno::EINVAL, [VM_BACKEND, SHIM_INVALID_ARGUMENT, 0, 0], 0, 0)
        );
    }
    range(cmd::VM_UNMAP, base, page).unwrap();
}

/// "Each code's payload is documented beside it; fields a code does not
/// name are zero" (abi/src/error.rs). `DEV_BAD_ID` names only `a` (the id),
/// `DEV_WRONG_KIND` only `a`, `DEV_NOT_ACCESSIBLE` only `a` (the page):
/// their `msg` should then be empty.
#[test]
fn device_records_leave_unnamed_fields_zero() {
    let Some(dev) = device_for_tests() else { return };
    let fd = dev.fd();
    let mut c = CheckArgs { id: 0x5a5a_5a5a, ..CheckArgs::ZERO };
    if raw(fd, cmd::ARENA_CHECK, &mut c).is_ok() {
        return; // an id that happens to be live (about 2^-26)
    }
    let w = c.err;
    assert_eq!(
        (w.chain, w.a, w.b, w.c, w.flags, w.op, w.errno),
        (BAD_ID, 0x5a5a_5a5a, 0, 0, 0, 0, 0)
    );
    // `msg` is the exception the ABI documents: a device code's sentence.
    assert!(w.msg_len > 0 && !w.message().is_empty(), "DEV_BAD_ID without its sentence");
    assert!(w.msg[w.msg_len as usize..].iter().all(|&b| b == 0), "bytes past msg_len");
}
