//! Round 48 outside review: `retry_stale` in `protect`, `set_client`,
//! `purge_spare`, `set_spare_limit` and `set_commit_limit`, with faults at
//! every call position (clean and part way) while a stale page-table page
//! is present.
//!
//! src/vmarena/mod.rs:27-45: "Every operation either completes or fails
//! with the arena unchanged ... Two exceptions: a table page that cannot be
//! unmapped stays mapped, marked stale, and the next operation retries
//! ..."; `check` holds either way.

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig, VmArenaError};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, FaultShape, Op, Pages, Protection, Range, Size};

const PAGE: usize = 64;
const TRACTS: usize = 64;

type Fi<'a> = FaultInjector<&'a SimBackend<'a>>;

struct Set<'a> {
    a: VmArena<&'a Fi<'a>>,
    live: Range,
}

/// Live allocation (`Owner(2)`, 8 pages), 8 spare pages (a freed
/// `Owner(1)` allocation's), and the page-table page that described them
/// stale (its unmap failed during that free).
fn setup<'a>(fi: &'a Fi<'a>) -> Set<'a> {
    fi.clear();
    fi.set_shape(FaultShape::Clean);
    for nth in 1..=6u64 {
        let cfg = VmArenaConfig::new(Size(TRACTS * PAGE)).spare_limit(8);
        let mut a = VmArena::new(fi, cfg).unwrap();
        let g = a.alloc(&Request::new(Pages(8), Owner(1))).unwrap();
        let live = a.alloc(&Request::new(Pages(8), Owner(2))).unwrap();
        let tables = a.table_pages_mapped();
        fi.only(&[Op::Unmap]);
        fi.fail_nth(nth);
        let r = a.free(g.range, Owner(1));
        fi.clear();
        if r.is_ok() && tables == 2 && a.table_pages_mapped() == 2 && a.spare() == Size(8 * PAGE) {
            a.check().unwrap();
            return Set { a, live: live.range };
        }
    }
    panic!("no stale page");
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum OpK {
    Protect,
    SetClient,
    Purge,
    SpareLimit(usize),
    CommitLimit(usize),
}

fn run(s: &mut Set<'_>, op: OpK) -> Result<(), VmArenaError> {
    match op {
        OpK::Protect => s.a.protect(s.live, Owner(2), Protection::Read),
        OpK::SetClient => s.a.set_client(s.live.base(), 7),
        OpK::Purge => s.a.purge_spare().map(|_| ()),
        OpK::SpareLimit(n) => s.a.set_spare_limit(n),
        OpK::CommitLimit(n) => s.a.set_commit_limit(Size(n)),
    }
}

/// Whether the operation's effect is there (after `Ok`).
fn effect(s: &Set<'_>, op: OpK) -> Result<(), String> {
    let a = &s.a;
    let t = a.tract(s.live.base()).unwrap();
    match op {
        OpK::Protect if t.prot != Protection::Read => Err(format!("prot {:?}", t.prot)),
        OpK::SetClient if t.client != 7 => Err(format!("client {}", t.client)),
        OpK::Purge if a.spare() != Size(0) => Err(format!("spare {:?}", a.spare())),
        OpK::SpareLimit(n) if a.spare_limit() != n || a.spare().0 > n * PAGE => {
            Err(format!("spare limit {} spare {:?}", a.spare_limit(), a.spare()))
        }
        OpK::CommitLimit(n) if a.commit_limit() != Size(n) || a.committed().0 > n => {
            Err(format!("commit limit {:?} committed {:?}", a.commit_limit(), a.committed()))
        }
        _ => Ok(()),
    }
}

/// After a failure: nothing the operation sets changed.
fn unchanged(s: &Set<'_>, op: OpK, before: (Size, usize, Protection, u16)) -> Result<(), String> {
    let a = &s.a;
    let t = a.tract(s.live.base()).unwrap();
    let now = (a.commit_limit(), a.spare_limit(), t.prot, t.client);
    match op {
        OpK::Protect if t.client != before.3 => Err(format!("{now:?} vs {before:?}")),
        OpK::Protect => Ok(()), // protection may be put back or stranded (RollbackFailed)
        _ if now != before => Err(format!("{now:?} vs {before:?}")),
        _ => Ok(()),
    }
}

fn ops() -> Vec<OpK> {
    // Allocated: 8 pages; the live one's table page; the bit page.
    vec![
        OpK::Protect,
        OpK::SetClient,
        OpK::Purge,
        OpK::SpareLimit(0),
        OpK::SpareLimit(4),
        OpK::SpareLimit(16),
        OpK::CommitLimit(usize::MAX),
        OpK::CommitLimit(10 * PAGE),
        OpK::CommitLimit(12 * PAGE),
        OpK::CommitLimit(20 * PAGE),
    ]
}

/// Every operation, every call position failing (any kind of call), both
/// shapes: `check` holds; `Ok` has its effect; an error leaves the
/// settings as they were.
#[test]
fn every_call_position_of_every_retrying_operation() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut problems = Vec::new();
    let (mut runs, mut failed) = (0, 0);
    for op in ops() {
        for shape in [FaultShape::Clean, FaultShape::PartWay] {
            for nth in 0..=16u64 {
                let mut s = setup(&fi);
                let t = s.a.tract(s.live.base()).unwrap();
                let before = (s.a.commit_limit(), s.a.spare_limit(), t.prot, t.client);
                fi.set_shape(shape);
                fi.fail_nth(nth);
                let r = run(&mut s, op);
                runs += 1;
                failed += usize::from(r.is_err());
                let calls = fi.eligible_calls();
                fi.clear();
                if let Err(e) = s.a.check() {
                    problems.push(format!("{op:?} {shape:?} nth {nth}: check {e:?} after {r:?}"));
                    continue;
                }
                let res = match &r {
                    Ok(()) => effect(&s, op),
                    Err(_) => unchanged(&s, op, before),
                };
                if let Err(m) = res {
                    problems.push(format!("{op:?} {shape:?} nth {nth}: {r:?}: {m}"));
                }
                if nth > calls {
                    break;
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(runs > 50 && failed > 5, "runs {runs}, failed {failed}");
}

/// Only the retry's own unmap fails (the first unmap call of the
/// operation): the operation itself has not failed, so its result must be
/// what it is without faults.
#[test]
fn a_failing_retry_does_not_change_the_result() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut problems = Vec::new();
    for op in ops() {
        let mut s = setup(&fi);
        let clean = run(&mut s, op);
        s.a.check().unwrap();
        let mut s = setup(&fi);
        fi.only(&[Op::Unmap]);
        fi.fail_nth(1);
        let r = run(&mut s, op);
        let injected = fi.injected();
        fi.clear();
        s.a.check().unwrap();
        // A refused limit is right when the page whose retry failed is
        // still committed and counted (the limit would be below what is
        // committed without spare pages).
        let still_committed = matches!(
            (op, &r),
            (OpK::CommitLimit(n), Err(VmArenaError::CommitLimit { needed, .. }))
                if *needed > n && *needed == s.a.committed().0 - s.a.spare().0
        );
        if r.is_ok() != clean.is_ok() && !still_committed {
            problems.push(format!(
                "{op:?}: without faults {clean:?}, with the retry failing {r:?} \
                 (committed {:?}, spare {:?}, tables {}, injected {injected})",
                s.a.committed(),
                s.a.spare(),
                s.a.table_pages_mapped()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Validation failures leave everything as it was, stale page included
/// (`set_client` and `protect` validate before they retry; do the limits?).
#[test]
fn refused_operations_change_nothing() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let fi = FaultInjector::new(&sim);
    let mut problems = Vec::new();
    type F = fn(&mut Set<'_>) -> Result<(), VmArenaError>;
    let cases: Vec<(&str, F)> = vec![
        ("protect wrong owner", |s| s.a.protect(s.live, Owner(9), Protection::Read)),
        ("set_client free tract", |s| s.a.set_client(vmspace::Addr(s.a.base().0 + 40 * PAGE), 1)),
        ("set_client outside", |s| s.a.set_client(vmspace::Addr(1), 1)),
        // (A refused `set_commit_limit` retries the stale page first: that
        // is the documented exception, "the next operation retries".)
    ];
    for (name, f) in cases {
        let mut s = setup(&fi);
        let before = (s.a.committed(), s.a.table_pages_mapped(), s.a.spare(), s.a.commit_limit());
        let r = f(&mut s);
        s.a.check().unwrap();
        let after = (s.a.committed(), s.a.table_pages_mapped(), s.a.spare(), s.a.commit_limit());
        if r.is_ok() {
            problems.push(format!("{name}: accepted"));
        } else if before != after {
            problems.push(format!("{name}: refused ({r:?}) but {before:?} -> {after:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
