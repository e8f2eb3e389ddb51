//! The allocations and frees of the `capi` target: by address and by
//! handle with any flags and constraints, frees good and bad, deferred
//! frees and flushes, reclaims, the child's limit, injected faults, and
//! the child destroyed and made again.

use core::ffi::c_int;
use core::ptr;

use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api as lib;

use crate::model::*;

/// Step `op` (0 to 15) on arena `which`, of `size` with `flags`.
pub fn step(
    w: &mut World,
    input: &mut Input,
    (which, op, size, flags): (usize, u8, usize, c_int),
    step: u64,
) {
    let (q, qcache_max, span) = (w.q, w.qcache_max, w.span);
    let (parent, child) = (w.parent, w.child);
    let arena = w.arena(which);
    // The parent's allocations must keep off the child's spans.
    let below = if which == 0 { spans(child) } else { Vec::new() };
    let added = w.added(which);
    let model = (&added[..], &*w.source);
    let [b0, b1] = &mut w.books;
    let again = b0.mtbf || b1.mtbf;
    let proto = w.source.proto();
    let allowed = |unsupported| Allowed { again, proto, unsupported };
    let (b, other) = if which == 0 { (b0, &*b1) } else { (b1, &*b0) };
    // SAFETY (every call below): `arena` is live, out-pointers are ours.
    unsafe {
        match op {
            0 | 1 if b.live.len() < MAX_LIVE => {
                let mut addr = 0;
                let e = if op == 0 {
                    lib::vmspace_arena_alloc(arena, size, flags, &mut addr)
                } else {
                    lib::vmspace_arena_alloc_timed(arena, size, flags, 0, &mut addr)
                };
                match e {
                    0 => {
                        placed(arena, q, (addr, size), &[b, other], &below, model);
                        b.live.push((addr, size));
                    }
                    e => alloc_error(e, allowed(false)),
                }
            }
            2 if b.live.len() < MAX_LIVE => {
                let align = [0, q, 4 * q, 64 * q, 3 * q][input.byte() as usize % 5];
                let phase = if align > q { q * (input.byte() as usize % (align / q)) } else { 0 };
                let nocross = [0, 64 * q, 256 * q][input.byte() as usize % 3];
                let lo = BASE + q * input.byte() as usize * 2;
                let (min, max) = match input.byte() % 4 {
                    0 => (0, 0),
                    1 => (lo, 0),
                    2 => (lo, lo + q * input.byte() as usize * 4),
                    _ => (0, lo),
                };
                let exact = if input.byte() % 8 == 0 { VMSPACE_EXACT } else { 0 };
                let mut addr = 0;
                let e = lib::vmspace_arena_xalloc(
                    arena,
                    size,
                    align,
                    phase,
                    nocross,
                    min,
                    max,
                    lo,
                    flags | exact,
                    &mut addr,
                );
                match e {
                    0 => {
                        placed(arena, q, (addr, size), &[b, other], &below, model);
                        let a = align.max(q);
                        assert_eq!(addr % a, phase, "align {align:#x} phase {phase:#x}");
                        if nocross != 0 {
                            assert_eq!(addr / nocross, (addr + round(size, q) - 1) / nocross);
                        }
                        assert!(addr >= min && (max == 0 || addr + round(size, q) <= max));
                        assert!(exact == 0 || addr == lo);
                        b.live.push((addr, size));
                    }
                    e => alloc_error(e, allowed(false)),
                }
            }
            3 if !b.live.is_empty() => {
                let i = size % b.live.len();
                let (addr, asked) = b.live.swap_remove(i);
                assert_eq!(lib::vmspace_arena_free(arena, addr, asked), 0, "good free");
                if input.byte() % 4 == 0 {
                    // At once a double free: refused, from a quantum
                    // cache's magazine as from the arena.
                    let e = lib::vmspace_arena_free(arena, addr, asked);
                    assert!([ENOENT, EMSGSIZE].contains(&e), "double free: errno {e}");
                }
            }
            4 if !b.live.is_empty() => {
                // A wrong size (in the same quantum, or not), a double
                // free, or an address inside an allocation: refused,
                // nothing changed (the good free after still works).
                let (addr, asked) = b.live[size % b.live.len()];
                let (bad_addr, bad_size) = match input.byte() % 4 {
                    0 => (addr, asked + 1),
                    1 => (addr, asked.saturating_sub(1)),
                    2 => (addr + q, asked),
                    _ => (addr ^ (q << (input.byte() % 8)), asked),
                };
                if bad_size == asked && bad_addr == addr {
                    return;
                }
                let live = |a: usize, s: usize| b.live.contains(&(a, s));
                if live(bad_addr, bad_size) || which == 0 && imported(child, bad_addr, q) {
                    return;
                }
                let e = lib::vmspace_arena_free(arena, bad_addr, bad_size);
                // Another live allocation at the bad address (freed
                // with the wrong size) is refused the same way.
                assert!([ENOENT, EMSGSIZE].contains(&e), "bad free: errno {e}");
            }
            5 if b.handles.len() < MAX_LIVE => {
                let mut h = vmspace_handle { addr: 0, tag: 0, arena: 0 };
                let wait = if input.byte() % 16 == 0 { VMSPACE_WAIT } else { 0 };
                let align = [0, q, 8 * q][input.byte() as usize % 3];
                let e = if align == 0 {
                    lib::vmspace_arena_alloc_handle(arena, size, flags | wait, &mut h)
                } else {
                    lib::vmspace_arena_xalloc_handle(
                        arena,
                        size,
                        align,
                        0,
                        0,
                        0,
                        0,
                        0,
                        flags | wait,
                        &mut h,
                    )
                };
                match e {
                    0 => {
                        assert_eq!(wait, 0, "a waiting handle allocation is -EOPNOTSUPP");
                        placed(arena, q, (h.addr, size), &[b, other], &below, model);
                        assert_eq!(h.addr % align.max(q), 0, "xalloc_handle's alignment");
                        assert_eq!(*b.fingerprint.get_or_insert(h.arena), h.arena);
                        b.stale.retain(|s| (s.addr, s.tag) != (h.addr, h.tag));
                        b.handles.push((h, size));
                    }
                    e => alloc_error(e, allowed(wait != 0)),
                }
            }
            6 if !b.handles.is_empty() => {
                let (h, asked) = b.handles.swap_remove(size % b.handles.len());
                let mut got = 0;
                let deferred = input.byte() % 4 == 0;
                let e = if deferred {
                    lib::vmspace_arena_free_handle_deferred(arena, h, &mut got)
                } else {
                    lib::vmspace_arena_free_handle(arena, h, &mut got)
                };
                assert_eq!((e, got), (0, asked), "good free by handle");
                if deferred {
                    b.unflushed.push((h.addr, round(asked, q)));
                }
                if input.byte() % 4 == 0 {
                    // Freed again, deferred (after a deferred free or a
                    // plain one): a stale handle, -ENOENT, nothing
                    // changed, nothing stored.
                    let before = (format!("{:?}", sizes(arena)), b.unflushed.len());
                    let mut again = 1;
                    let e = lib::vmspace_arena_free_handle_deferred(arena, h, &mut again);
                    assert_eq!((e, again), (ENOENT, 1), "{h:x?} freed again, deferred");
                    assert!(before == (format!("{:?}", sizes(arena)), b.unflushed.len()));
                }
                if b.stale.len() < MAX_LIVE {
                    b.stale.push(h);
                }
            }
            7 if !b.stale.is_empty() || !other.handles.is_empty() => {
                // A stale handle, or the other arena's live one (when
                // the two fingerprints are known to differ: the header
                // allows a mix-up once in about 2^32 otherwise).
                let foreign = other.handles.get(size % other.handles.len().max(1)).map(|h| h.0);
                let apart = foreign.zip(b.fingerprint).is_some_and(|(h, f)| h.arena != f);
                let h = match (foreign, b.stale.get(size % b.stale.len().max(1))) {
                    (Some(h), None) if apart => h,
                    (Some(h), Some(_)) if apart && input.byte() % 2 == 0 => h,
                    (_, Some(&h)) => h,
                    _ => return,
                };
                let e = lib::vmspace_arena_free_handle(arena, h, ptr::null_mut());
                assert_eq!(e, ENOENT, "stale or foreign handle {h:x?}");
            }
            8 if !b.live.is_empty() => {
                let (addr, asked) = b.live[size % b.live.len()];
                match lib::vmspace_arena_free_deferred(arena, addr, asked) {
                    0 => {
                        b.live.retain(|&l| l != (addr, asked));
                        b.unflushed.push((addr, round(asked, q)));
                    }
                    // A quantum-cache object (documented: refused).
                    e => {
                        assert!(qcache_max != 0 && which == 1 && e == ENOENT, "errno {e}");
                    }
                }
            }
            9 => {
                let mut freed = 0;
                assert_eq!(lib::vmspace_arena_flushed(arena, &mut freed), 0);
                let waiting: usize = b.unflushed.iter().map(|u| u.1).sum();
                assert_eq!(freed, waiting, "flushed");
                b.unflushed.clear();
            }
            10 => {
                assert!(lib::vmspace_arena_reclaim(arena) >= 0);
            }
            11 => {
                let mtbf = input.pick(&[0u32, 0, 2, 7]);
                assert_eq!(lib::vmspace_arena_set_mtbf(arena, step, mtbf), 0);
                b.mtbf = mtbf != 0;
            }
            12 if which == 1 => {
                let limit = input.pick(&[0, span / 4, span]);
                assert_eq!(lib::vmspace_arena_set_limit(arena, limit), 0);
                b.limit = limit;
            }
            13 => {
                // An address never handed out, or freed already.
                let addr = BASE + q * input.byte() as usize;
                let held = |&(a, s): &(usize, usize)| overlaps((a, round(s, q)), (addr, q));
                if b.live.iter().any(held)
                    || b.handles.iter().any(|(h, s)| held(&(h.addr, *s)))
                    || which == 0 && imported(child, addr, q)
                {
                    return;
                }
                let e = lib::vmspace_arena_free(arena, addr, q);
                assert!([ENOENT, EMSGSIZE].contains(&e), "free of nothing: errno {e}");
            }
            14 if which == 0 => {
                // The parent while the child imports from it: refused,
                // nothing changed (the checks after this step).
                assert_eq!(lib::vmspace_arena_destroy(parent), EBUSY, "parent destroyed");
            }
            14 if which == 1 && b.unflushed.is_empty() => {
                // The child destroyed with what it has out, and made
                // again: its imports go back to the parent.
                assert_eq!(lib::vmspace_arena_destroy(child), 0, "destroy");
                w.child = create(&w.child_params);
                w.books[1] = Books::default();
            }
            _ => {
                for &(addr, asked) in &b.live {
                    assert_eq!(lib::vmspace_arena_contains(arena, addr, round(asked, q)), 1);
                }
            }
        }
    }
}
