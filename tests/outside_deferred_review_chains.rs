//! Outside review (from the docs only): `Source::release_unflushed` along
//! chains of arenas (`&mut Arena`, `&RefCell<Arena>`, `&SyncArena`), dropped
//! in every order the borrows allow, with flushes at different levels.

use std::cell::RefCell;
use std::sync::Mutex;
use vmspace::arena::{NoSource, PageStore, Policy, Sizes, Source};
use vmspace::sync::Wait;
use vmspace::{Addr, Range, Size};
use vmspace_user::{MmapBackend, UserArena};

const Q: usize = 0x1000;
const BASE: usize = 0x4000_0000;
const SPAN: usize = 64 * Q;

mod outside_deferred_common;
use outside_deferred_common::*;

fn covered(rs: &[Range]) -> usize {
    rs.iter().map(|x| x.size().get()).sum()
}

/// Allocate everything one quantum at a time, check disjoint from `bad`,
/// then free it all again.
fn sweep<I: Source>(a: &mut A<I>, bad: &[Range], what: &str) -> usize {
    let mut got = Vec::new();
    while let Ok(x) = a.alloc(Size(Q), Policy::FirstFit) {
        let g = r(x.get(), Q);
        for b in bad {
            assert!(!g.overlaps(b), "{what}: UNFLUSHED RANGE REISSUED: {g:?} in {b:?}");
        }
        got.push(x);
        assert!(got.len() <= SPAN / Q, "{what}: more quanta than the root holds");
    }
    let n = got.len();
    for x in got {
        a.free(x, Size(Q)).unwrap();
    }
    n
}

fn root() -> A<NoSource> {
    let mut a = arena("root", Q, NoSource);
    a.add(Addr(BASE), Size(SPAN)).unwrap();
    a
}

fn initial(s: Sizes) {
    assert_eq!(
        (s.allocated, s.free, s.unflushed, s.total),
        (Size(0), Size(SPAN), Size(0), Size(SPAN)),
        "not back to initial: {s:?}"
    );
}

#[test]
fn three_levels_by_mut_leaf_dropped_unflushed_then_middle_dropped() {
    let mut root = root();
    let x;
    {
        let mut mid = arena("mid", Q, &mut root);
        {
            let mut leaf = arena("leaf", Q, &mut mid);
            x = leaf.alloc(Size(4 * Q), Policy::InstantFit).unwrap();
            leaf.free_deferred(x, Size(4 * Q)).unwrap();
            audit(&leaf, "leaf");
            assert_eq!(leaf.source().sizes().allocated, Size(4 * Q), "mid holds leaf's span");
        }
        // leaf dropped: its span is a deferred free in mid
        audit(&mid, "mid after leaf drop");
        let un = unflushed(&mid);
        assert_eq!(covered(&un), 4 * Q, "mid unflushed after leaf drop: {un:?}");
        assert!(un[0].contains(&r(x.get(), 4 * Q)));
        assert_eq!(mid.sizes().allocated, Size(0));
        let c = mid.counters();
        assert_eq!(c.deferred_frees, 1, "mid counts the drop's give-back as a deferred free");
        assert_eq!(c.frees, c.allocs - mid.live() as u64, "mid: allocs - frees != live ({c:?})");
        // mid can still serve, never from the unflushed range
        let n = sweep(&mut mid, &un, "mid sweep");
        assert_eq!(n, 60, "mid should reach everything else in root");
        audit(&mid, "mid after sweep");
        assert_eq!(mid.sizes().unflushed, Size(4 * Q));
    }
    // mid dropped holding the unflushed span: root defers it
    audit(&root, "root after mid drop");
    let un = unflushed(&root);
    assert_eq!(covered(&un), 4 * Q, "root unflushed: {un:?}");
    assert_eq!(root.sizes().allocated, Size(0), "nothing else held in root");
    let c = root.counters();
    assert_eq!(c.deferred_frees, 1, "root: {c:?}");
    assert_eq!(c.frees, c.allocs - root.live() as u64, "root: allocs - frees != live ({c:?})");
    let n = sweep(&mut root, &un, "root sweep");
    assert_eq!(n, 60);
    assert_eq!(root.flushed(), Size(4 * Q));
    initial(root.sizes());
    assert_eq!(root.largest_free(), Size(SPAN));
    audit(&root, "root end");
}

#[test]
fn three_levels_flush_in_the_middle_before_its_drop() {
    let mut root = root();
    {
        let mut mid = arena("mid", Q, &mut root);
        {
            let mut leaf = arena("leaf", Q, &mut mid);
            let x = leaf.alloc(Size(2 * Q), Policy::InstantFit).unwrap();
            let y = leaf.alloc(Size(3 * Q), Policy::InstantFit).unwrap();
            leaf.free_deferred(x, Size(2 * Q)).unwrap();
            leaf.free(y, Size(3 * Q)).unwrap();
        }
        audit(&mid, "mid");
        assert!(mid.sizes().unflushed.get() >= 2 * Q);
        let got = mid.flushed();
        assert!(got.get() >= 2 * Q);
        audit(&mid, "mid flushed");
        assert_eq!(mid.sizes().total, Size(0), "mid's spans wholly free: back to root");
        assert_eq!(mid.sizes().unflushed, Size(0));
    }
    audit(&root, "root");
    initial(root.sizes());
}

#[test]
fn four_levels_mixed_quanta_with_a_leaked_live_allocation() {
    let mut root = root();
    let (x, live);
    {
        let mut a = arena("a", 2 * Q, &mut root);
        {
            let mut b = arena("b", Q, &mut a);
            {
                let mut c = arena("c", Q, &mut b);
                x = c.alloc(Size(Q), Policy::InstantFit).unwrap();
                live = c.alloc(Size(Q), Policy::InstantFit).unwrap(); // leaked at drop
                c.free_deferred(x, Size(Q)).unwrap();
                audit(&c, "c");
            }
            audit(&b, "b after c");
            let un = unflushed(&b);
            assert!(
                un.iter().any(|u| u.contains(&r(x.get(), Q))),
                "b must hold x unflushed: {un:?}"
            );
            assert!(sweep(&mut b, &un, "b sweep") > 0);
            // flush at b: the range goes back up as a plain free
            b.flushed();
            audit(&b, "b flushed");
            assert_eq!(b.sizes().total, Size(0));
        }
        audit(&a, "a after b");
        assert_eq!(a.sizes().unflushed, Size(0));
        assert_eq!(a.sizes().total, Size(0));
    }
    let _ = live;
    audit(&root, "root");
    initial(root.sizes());
}

#[test]
fn four_levels_unflushed_climbs_to_the_root_unflushed_everywhere() {
    let mut root = root();
    let x;
    {
        let mut a = arena("a", Q, &mut root);
        {
            let mut b = arena("b", 2 * Q, &mut a);
            {
                let mut c = arena("c", Q, &mut b);
                x = c.alloc(Size(Q), Policy::InstantFit).unwrap();
                c.free_deferred(x, Size(Q)).unwrap();
            }
            audit(&b, "b");
            let un = unflushed(&b);
            assert!(un.iter().any(|u| u.contains(&r(x.get(), Q))), "b: {un:?}");
        }
        audit(&a, "a");
        let un = unflushed(&a);
        assert!(un.iter().any(|u| u.contains(&r(x.get(), Q))), "a: {un:?}");
        sweep(&mut a, &un, "a sweep");
    }
    audit(&root, "root");
    let un = unflushed(&root);
    assert!(un.iter().any(|u| u.contains(&r(x.get(), Q))), "root: {un:?}");
    let n = sweep(&mut root, &un, "root sweep");
    assert_eq!(n * Q + covered(&un), SPAN, "a range lost");
    root.flushed();
    initial(root.sizes());
    audit(&root, "root end");
}

#[test]
fn refcell_siblings_and_a_refcell_middle() {
    let root = RefCell::new(root());
    let x;
    {
        let mid = RefCell::new(arena("mid", Q, &root));
        let mut c1 = arena("c1", Q, &mid);
        let mut c2 = arena("c2", Q, &mid);
        let mut c3 = arena("c3", Q, &root);
        x = c1.alloc(Size(4 * Q), Policy::InstantFit).unwrap();
        c1.free_deferred(x, Size(4 * Q)).unwrap();
        let bad = [r(x.get(), 4 * Q)];
        drop(c1);
        audit(&mid.borrow(), "mid after c1");
        assert_eq!(mid.borrow().sizes().unflushed, Size(4 * Q));
        assert!(sweep(&mut c2, &bad, "c2") > 0);
        assert!(sweep(&mut c3, &bad, "c3") > 0);
        // drop the middle while its sibling child is still alive is not
        // possible (borrow); drop c2, then mid, with the range still unflushed
        drop(c2);
        drop(mid);
        audit(&root.borrow(), "root after mid");
        assert_eq!(root.borrow().sizes().unflushed, Size(4 * Q), "root must hold x unflushed");
        assert!(sweep(&mut c3, &bad, "c3 again") > 0);
        // flush at the root while c3 is alive: c3 may get it now
        assert_eq!(root.borrow_mut().flushed(), Size(4 * Q));
        assert_eq!(sweep(&mut c3, &[], "c3 after flush"), SPAN / Q);
    }
    initial(root.borrow().sizes());
    audit(&root.borrow(), "root end");
}

static LEAKED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
fn hook(_: &'static str, r: Range) {
    LEAKED.lock().unwrap().push((r.base().get(), r.size().get()));
}

#[test]
fn sync_parent_takes_a_dropped_childs_unflushed_span() {
    let mut p = arena("sync-root", Q, NoSource);
    p.add(Addr(BASE), Size(SPAN)).unwrap();
    let parent: UserArena<PageStore<MmapBackend>, NoSource> = UserArena::new(p);
    let x;
    {
        let mut child = arena("child", Q, &parent);
        child.set_leak_hook(Some(hook));
        x = child.alloc(Size(8 * Q), Policy::InstantFit).unwrap();
        child.free_deferred(x, Size(8 * Q)).unwrap();
    }
    assert!(
        LEAKED.lock().unwrap().contains(&(x.get(), 8 * Q)),
        "leak hook told of the unflushed range"
    );
    parent.check().unwrap();
    let un = parent.with(|a| {
        audit(a, "parent");
        unflushed(a)
    });
    assert_eq!(covered(&un), 8 * Q, "parent unflushed: {un:?}");
    let mut got = Vec::new();
    while let Ok(y) = parent.alloc(Size(Q), Policy::FirstFit, Wait::No) {
        let g = r(y.get(), Q);
        assert!(
            !un.iter().any(|u| u.overlaps(&g)),
            "UNFLUSHED RANGE REISSUED by sync parent: {g:?}"
        );
        got.push(y);
    }
    assert_eq!(got.len(), 56);
    assert_eq!(parent.flushed(), Size(8 * Q));
    for y in got {
        parent.free(y, Size(Q)).unwrap();
    }
    parent.with(|a| initial(a.sizes()));
    parent.check().unwrap();
}

#[test]
fn sync_middle_between_mut_root_and_leaf() {
    let mut root = root();
    let x;
    {
        let mid: UserArena<PageStore<MmapBackend>, &mut A<NoSource>> =
            UserArena::new(arena("mid", Q, &mut root));
        {
            let mut leaf = arena("leaf", Q, &mid);
            x = leaf.alloc(Size(2 * Q), Policy::InstantFit).unwrap();
            leaf.free_deferred(x, Size(2 * Q)).unwrap();
        }
        mid.check().unwrap();
        assert_eq!(mid.with(|a| a.sizes().unflushed), Size(2 * Q));
        // a deferred free of mid's own and a child importing from mid
        let y = mid.alloc(Size(Q), Policy::InstantFit, Wait::No).unwrap();
        mid.free_deferred(y, Size(Q)).unwrap();
        let bad = [r(x.get(), 2 * Q), r(y.get(), Q)];
        {
            let mut leaf2 = arena("leaf2", Q, &mid);
            assert_eq!(sweep(&mut leaf2, &bad, "leaf2"), 61);
        }
        mid.with(|a| audit(a, "mid"));
    }
    audit(&root, "root after sync mid");
    let un = unflushed(&root);
    assert_eq!(covered(&un), 3 * Q, "root: {un:?}");
    assert_eq!(root.sizes().allocated, Size(0));
    root.flushed();
    initial(root.sizes());
}
