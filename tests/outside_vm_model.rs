//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the VM layer against a per-page model, on the
//! simulated backend with faults injected at every call index (on mmap:
//! `outside_vm_mmap.rs`).

use vmspace::vm::{Vm, VmError};
use vmspace::CommonError;
use vmspace_shim::sim::{PageState, SimBackend, POISON};
use vmspace_shim::{Addr, FaultInjector, Op, PageOps, Protection, Range, ShimError, Size};

mod outside_common;
use outside_common::XorshiftStar as Rng;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum P {
    Unmapped,
    Mapped(Protection),
    Unflushed,
}

#[derive(Clone, Copy, Debug)]
enum VOp {
    Map(usize, usize),
    Unmap(usize, usize),
    UnmapDeferred(usize, usize),
    Protect(usize, usize, Protection),
    Flush,
    Trim,
    TrimRange(usize, usize),
    Write(usize, u8),
}

fn gen_ops(seed: u64, n: usize, pages: usize) -> Vec<VOp> {
    let mut r = Rng(seed | 1);
    (0..n)
        .map(|_| {
            // Ranges biased to cross table-page boundaries (512 pages each
            // with 64-byte pages) and to go slightly past the end.
            let first = match r.below(4) {
                0 => (r.below(pages / 512 + 1) * 512).saturating_sub(r.below(4)),
                _ => r.below(pages + 2),
            };
            let len = match r.below(5) {
                0 => 0,
                1 => r.below(1100),
                _ => 1 + r.below(40),
            };
            let prot = [Protection::None, Protection::Read, Protection::ReadWrite][r.below(3)];
            match r.below(13) {
                0..=3 => VOp::Map(first, len),
                4..=5 => VOp::Unmap(first, len),
                6..=7 => VOp::UnmapDeferred(first, len),
                8 => VOp::Protect(first, len, prot),
                9 => VOp::Flush,
                10 => VOp::Trim,
                11 => VOp::TrimRange(first, len.max(1)),
                _ => VOp::Write(r.below(pages), r.next() as u8 | 1),
            }
        })
        .collect()
}

struct Model {
    pages: Vec<P>,
    data: Vec<u8>, // first byte of each page as last written (0 after map)
}

fn rng_of(vm: &Vm<impl PageOps>, first: usize, len: usize) -> Option<Range> {
    let pg = vm.page_size().0;
    Range::from_size(Addr(vm.base().0 + first * pg), Size(len * pg)).ok()
}

fn sim_state(sim: &SimBackend<'_>, vm: &Vm<impl PageOps>) -> Vec<Option<PageState>> {
    let pg = vm.page_size().0;
    let total = vm.reservation().size().0 / pg;
    (0..total).map(|i| sim.page_state(Addr(vm.reservation().base().0 + i * pg))).collect()
}

fn expect_state(vm: &Vm<impl PageOps>, sim: &SimBackend<'_>, m: &Model, ctx: &str) {
    vm.check().unwrap_or_else(|e| panic!("{ctx}: check: {e}"));
    let pg = vm.page_size().0;
    let mapped = m.pages.iter().filter(|p| matches!(p, P::Mapped(_))).count();
    assert_eq!(vm.mapped(), Size(mapped * pg), "{ctx}: mapped bytes");
    let s = sim.stats();
    assert_eq!(
        s.mapped_pages * pg,
        vm.mapped().0 + vm.metadata_mapped().0,
        "{ctx}: backend mapped pages vs vm.mapped + metadata"
    );
    let unfl = m.pages.iter().filter(|p| **p == P::Unflushed).count();
    assert_eq!(s.unflushed_pages, unfl, "{ctx}: unflushed pages");
    for (i, want) in m.pages.iter().enumerate() {
        let a = Addr(vm.base().0 + i * pg);
        let got = sim.page_state(a).unwrap();
        let ok = match (want, got) {
            (P::Mapped(p), PageState::Mapped(q)) => *p == q,
            (P::Unmapped, PageState::Reserved) => true,
            (P::Unflushed, PageState::Unflushed) => true,
            _ => false,
        };
        assert!(ok, "{ctx}: page {i}: model {want:?}, backend {got:?}");
        assert_eq!(vm.is_mapped(a), matches!(want, P::Mapped(_)), "{ctx}: is_mapped({i})");
        if let P::Mapped(p) = want {
            if *p != Protection::None {
                // SAFETY: mapped and readable in the simulated buffer.
                let b = unsafe { *(a.0 as *const u8) };
                assert_eq!(b, m.data[i], "{ctx}: contents of page {i}");
            }
        }
    }
    // Runs.
    let mut runs = vec![];
    let mut i = 0;
    while i < m.pages.len() {
        if matches!(m.pages[i], P::Mapped(_)) {
            let s0 = i;
            while i < m.pages.len() && matches!(m.pages[i], P::Mapped(_)) {
                i += 1;
            }
            runs.push(rng_of(vm, s0, i - s0).unwrap());
        } else {
            i += 1;
        }
    }
    let got: Vec<Range> = vm.mapped_runs().collect();
    assert_eq!(got, runs, "{ctx}: mapped runs");
}

/// The expected outcome of one op on the model (None: an argument error is
/// expected, Some(Err(())) a state error, Some(Ok) success).
fn range_ok(m: &Model, first: usize, len: usize) -> bool {
    len > 0 && first + len <= m.pages.len()
}

fn apply<B: PageOps>(
    vm: &mut Vm<B>,
    sim: &SimBackend<'_>,
    m: &mut Model,
    op: VOp,
    injected_possible: bool,
    ctx: &str,
) {
    let before = sim_state(sim, vm);
    let meta_before = vm.metadata_mapped();
    let pg = vm.page_size().0;
    let unchanged = |vm: &Vm<B>, what: &str| {
        assert_eq!(sim_state(sim, vm), before, "{ctx}: {what}: a failed op changed the backend");
        assert_eq!(vm.metadata_mapped(), meta_before, "{ctx}: {what}: metadata changed");
    };
    match op {
        VOp::Map(f, l) | VOp::Unmap(f, l) | VOp::UnmapDeferred(f, l) | VOp::Protect(f, l, _) => {
            let Some(r) = rng_of(vm, f, l) else { return };
            let res = match op {
                VOp::Map(..) => vm.map(r),
                VOp::Unmap(..) => vm.unmap(r),
                VOp::UnmapDeferred(..) => vm.unmap_deferred(r),
                VOp::Protect(_, _, p) => vm.protect(r, p),
                _ => unreachable!(),
            };
            // is_range_mapped agrees before anything else.
            if !range_ok(m, f, l) {
                assert!(
                    matches!(
                        res,
                        Err(VmError::Common(
                            CommonError::InvalidArgument(_) | CommonError::OutOfRange(_)
                        ))
                    ),
                    "{ctx}: {op:?} -> {res:?}"
                );
                assert!(vm.is_range_mapped(r).is_err());
                unchanged(vm, "bad range");
                return;
            }
            let span = &m.pages[f..f + l];
            let expected: Result<(), VmError> = match op {
                VOp::Map(..) => {
                    if span.iter().any(|p| matches!(p, P::Mapped(_))) {
                        Err(VmError::AlreadyMapped(r))
                    } else if span.contains(&P::Unflushed) {
                        Err(VmError::Backend(ShimError::Unflushed(r)))
                    } else {
                        Ok(())
                    }
                }
                _ => {
                    if span.iter().all(|p| matches!(p, P::Mapped(_))) {
                        Ok(())
                    } else {
                        Err(VmError::NotMapped(r))
                    }
                }
            };
            let injected = matches!(res, Err(VmError::Backend(ShimError::Injected { .. })));
            if injected {
                assert!(injected_possible, "{ctx}: injected without injector");
                unchanged(vm, "injected fault");
                return;
            }
            assert_eq!(res, expected, "{ctx}: {op:?}");
            if res.is_err() {
                unchanged(vm, "refused op");
                return;
            }
            for i in f..f + l {
                match op {
                    VOp::Map(..) => {
                        m.pages[i] = P::Mapped(Protection::ReadWrite);
                        m.data[i] = 0;
                    }
                    VOp::Unmap(..) => m.pages[i] = P::Unmapped,
                    VOp::UnmapDeferred(..) => m.pages[i] = P::Unflushed,
                    VOp::Protect(_, _, p) => m.pages[i] = P::Mapped(p),
                    _ => {}
                }
            }
            if let VOp::Unmap(..) = op {
                // Unmapped pages are poisoned at once by the simulator.
                // SAFETY: inside the simulated buffer (reserved, unmapped).
                let b = unsafe { *((vm.base().0 + f * pg) as *const u8) };
                assert_eq!(b, POISON);
            }
        }
        VOp::Flush => {
            let want = m.pages.iter().filter(|p| **p == P::Unflushed).count();
            let got = vm.flush();
            assert_eq!(got, want, "{ctx}: flush count");
            for p in m.pages.iter_mut() {
                if *p == P::Unflushed {
                    *p = P::Unmapped;
                }
            }
        }
        VOp::Trim => {
            let _ = vm.trim();
        }
        VOp::TrimRange(f, l) => {
            let Some(r) = rng_of(vm, f, l) else { return };
            let res = vm.trim_range(r);
            if !range_ok(m, f, l) {
                assert!(res.is_err(), "{ctx}: trim_range of a bad range");
            }
        }
        VOp::Write(i, b) => {
            if m.pages[i] == P::Mapped(Protection::ReadWrite) {
                // SAFETY: mapped read-write in the simulated buffer.
                unsafe { *((vm.base().0 + i * pg) as *mut u8) = b };
                m.data[i] = b;
            }
        }
    }
}

const PG: usize = 64;

fn new_model(vm: &Vm<impl PageOps>) -> Model {
    let n = vm.range().size().0 / vm.page_size().0;
    Model { pages: vec![P::Unmapped; n], data: vec![0; n] }
}

#[test]
fn vm_against_page_model_small_pages_many_table_pages() {
    for seed in 1..=3u64 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PG).unwrap();
        // 2000 pages of 64 bytes: 4 bit-table pages of 512 bits each.
        let mut vm = Vm::reserve(&sim, Size(2000 * PG), Size(4 * PG)).unwrap();
        let mut m = new_model(&vm);
        for (k, op) in gen_ops(seed, 600, m.pages.len()).into_iter().enumerate() {
            let ctx = format!("seed {seed} step {k} {op:?}");
            apply(&mut vm, &sim, &mut m, op, false, &ctx);
            expect_state(&vm, &sim, &m, &ctx);
        }
        drop(vm);
        let s = sim.stats();
        assert_eq!((s.reservations, s.mapped_pages, s.unflushed_pages), (0, 0, 0));
    }
}

#[test]
fn vm_with_a_fault_at_every_call_index() {
    let ops = gen_ops(0xfeed, 700, 1100);
    // Count the calls of a clean run first.
    let calls = {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PG).unwrap();
        let fi = FaultInjector::new(&sim);
        fi.fail_nth(0);
        let mut vm = Vm::reserve(&fi, Size(1100 * PG), Size(PG)).unwrap();
        let mut m = new_model(&vm);
        for op in &ops {
            apply(&mut vm, &sim, &mut m, *op, false, "clean");
        }
        fi.eligible_calls()
    };
    assert!(calls > 60, "{calls}");
    for n in 1..=calls + 1 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PG).unwrap();
        let fi = FaultInjector::new(&sim);
        fi.fail_nth(n);
        let mut vm = match Vm::reserve(&fi, Size(1100 * PG), Size(PG)) {
            Ok(vm) => vm,
            Err(e) => {
                assert!(n <= 2, "reserve failed at call {n}: {e}");
                assert_eq!(sim.stats().reservations, 0, "failed reserve leaked");
                assert_eq!(sim.stats().mapped_pages, 0);
                continue;
            }
        };
        let mut m = new_model(&vm);
        for (k, op) in ops.iter().enumerate() {
            let ctx = format!("fault at call {n}, step {k} {op:?}");
            apply(&mut vm, &sim, &mut m, *op, true, &ctx);
            expect_state(&vm, &sim, &m, &ctx);
        }
        // Release may be the faulted call: it hands the VM back.
        let vm = match vm.release() {
            Ok(()) => None,
            Err((vm, e)) => {
                assert!(matches!(e, VmError::Backend(ShimError::Injected { op: Op::Release })));
                vm.check().unwrap();
                Some(vm)
            }
        };
        if let Some(vm) = vm {
            vm.release().map_err(|(_, e)| e).unwrap();
        }
        let s = sim.stats();
        assert_eq!((s.reservations, s.mapped_pages, s.unflushed_pages), (0, 0, 0), "call {n}");
    }
}

/// Random faults (several per op possible: a failed map whose clean-up
/// unmap also fails) must still leave check() passing and the backend
/// consistent with the VM's own accounts.
#[test]
fn vm_with_random_faults_keeps_its_books() {
    for seed in 1..=10u64 {
        let mut buf = vec![0u8; 1 << 20];
        let sim = SimBackend::new(&mut buf, PG).unwrap();
        let fi = FaultInjector::new(&sim);
        let mut vm = Vm::reserve(&fi, Size(1600 * PG), Size(PG)).unwrap();
        fi.fail_randomly(seed, 300_000);
        let mut m = new_model(&vm);
        for (k, op) in gen_ops(seed * 7, 300, m.pages.len()).into_iter().enumerate() {
            let ctx = format!("seed {seed} step {k} {op:?}");
            // Failed maps may leave a table page (documented); compare only
            // the client pages and the books.
            let _ = &ctx;
            let snap_meta = vm.metadata_mapped();
            let res = match op {
                VOp::Map(f, l) => rng_of(&vm, f, l).map(|r| (vm.map(r), f, l, 0)),
                VOp::Unmap(f, l) => rng_of(&vm, f, l).map(|r| (vm.unmap(r), f, l, 1)),
                VOp::UnmapDeferred(f, l) => {
                    rng_of(&vm, f, l).map(|r| (vm.unmap_deferred(r), f, l, 2))
                }
                VOp::Flush => {
                    let want = m.pages.iter().filter(|p| **p == P::Unflushed).count();
                    assert_eq!(vm.flush(), want);
                    m.pages
                        .iter_mut()
                        .filter(|p| **p == P::Unflushed)
                        .for_each(|p| *p = P::Unmapped);
                    None
                }
                VOp::Trim => {
                    let _ = vm.trim();
                    None
                }
                _ => None,
            };
            if let Some((Ok(()), f, l, kind)) = res {
                for i in f..f + l {
                    m.pages[i] = match kind {
                        0 => P::Mapped(Protection::ReadWrite),
                        1 => P::Unmapped,
                        _ => P::Unflushed,
                    };
                    m.data[i] = 0;
                }
            } else if let Some((Err(_), ..)) = res {
                assert!(vm.metadata_mapped() >= snap_meta);
            }
            vm.check().unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let mapped = m.pages.iter().filter(|p| matches!(p, P::Mapped(_))).count();
            assert_eq!(vm.mapped(), Size(mapped * PG), "{ctx}");
            assert_eq!(
                sim.stats().mapped_pages * PG,
                vm.mapped().0 + vm.metadata_mapped().0,
                "{ctx}: backend and VM disagree on what is mapped"
            );
        }
        fi.clear();
        assert!(vm.trim().is_ok());
        vm.check().unwrap();
    }
}

#[test]
fn vm_map_after_deferred_unmap_is_refused_until_flush_and_reads_zero_after() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let mut vm = Vm::reserve(&sim, Size(16 * 4096), Size(4096)).unwrap();
    let r = Range::from_size(vm.base(), Size(2 * 4096)).unwrap();
    vm.map(r).unwrap();
    // SAFETY: mapped read-write.
    unsafe { (r.base().0 as *mut u64).write(0xdead_beef) };
    vm.unmap_deferred(r).unwrap();
    assert!(!vm.is_range_mapped(r).unwrap());
    let meta = vm.metadata_mapped();
    assert_eq!(vm.map(r), Err(VmError::Backend(ShimError::Unflushed(r))));
    assert_eq!(vm.metadata_mapped(), meta);
    vm.check().unwrap();
    assert_eq!(vm.flush(), 2);
    assert_eq!(vm.flush(), 0);
    vm.map(r).unwrap();
    // SAFETY: mapped read-write.
    assert_eq!(unsafe { (r.base().0 as *const u64).read() }, 0);
    vm.check().unwrap();
    // Trimming after a deferred unmap gives the table page back once the
    // client pages are unflushed.
    vm.unmap_deferred(r).unwrap();
    assert_eq!(vm.trim().unwrap(), 1);
    vm.check().unwrap();
    assert_eq!(vm.metadata_mapped(), Size(4096));
    drop(vm);
    assert_eq!(sim.stats().unflushed_pages, 0, "release completes deferred unmaps");
}

#[test]
fn vm_grain_handling() {
    let mut buf = vec![0u8; 8 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    for (size, grain) in [(1, 4096), (4097, 8192), (100 * 4096, 64 * 4096), (4096, 1 << 20)] {
        let vm = Vm::reserve(&sim, Size(size), Size(grain)).unwrap();
        assert!(vm.base().is_aligned(Size(grain)), "{size} {grain}");
        assert!(vm.limit().is_aligned(Size(grain)));
        assert!(vm.range().size().0 >= size && vm.range().size().0 < size + grain);
        assert_eq!(vm.grain(), Size(grain));
        assert!(vm.reservation().contains(&vm.range()));
        vm.check().unwrap();
    }
    for (size, grain) in [(0, 4096), (4096, 0), (4096, 2048), (4096, 3 * 4096), (4096, usize::MAX)]
    {
        let calls = sim.stats().calls;
        let r = Vm::reserve(&sim, Size(size), Size(grain));
        assert!(
            matches!(r, Err(VmError::Common(CommonError::InvalidArgument(_)))),
            "{size} {grain}: {r:?}"
        );
        assert_eq!(sim.stats().calls, calls);
    }
    // A grain far too large for the buffer: the backend says no room.
    let r = Vm::reserve(&sim, Size(4096), Size(1 << 40));
    assert!(matches!(r, Err(VmError::Backend(ShimError::OutOfAddressSpace { .. }))), "{r:?}");
    let r = Vm::reserve(&sim, Size(usize::MAX / 2), Size(4096));
    assert!(r.is_err());
    assert_eq!(sim.stats().reservations, 0);
}

#[test]
fn is_range_mapped_errors_match_map_errors() {
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let vm = Vm::reserve(&sim, Size(8 * 4096), Size(4096)).unwrap();
    let b = vm.base().0;
    for (base, size) in [
        (b, 0),
        (b + 1, 4096),
        (b, 4095),
        (b - 4096, 4096),
        (b + 8 * 4096, 4096),
        (b + 7 * 4096, 2 * 4096),
        (vm.limit().0, 0),
    ] {
        let r = Range::from_size(Addr(base), Size(size)).unwrap();
        assert!(vm.is_range_mapped(r).is_err(), "{r}");
    }
    assert!(!vm.is_mapped(Addr(b - 1)));
    assert!(!vm.is_mapped(Addr(usize::MAX)));
    assert!(!vm.is_mapped(Addr(0)));
}

/// Several summary pages (64-byte pages hold 16 summary entries each):
/// table pages far from the first summary page are accounted right.
#[test]
fn vm_with_several_summary_pages() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PG).unwrap();
    let pages = 40 * 512 + 7; // 41 table pages, 3 summary pages
    let mut vm = Vm::reserve(&sim, Size(pages * PG), Size(PG)).unwrap();
    assert_eq!(vm.metadata_mapped(), Size(3 * PG));
    let mut m = new_model(&vm);
    let n = m.pages.len();
    let mut ops = vec![];
    for k in [0usize, 1, 15, 16, 17, 31, 32, 33, 39, 40] {
        let first = (k * 512).saturating_sub(2).min(n - 1);
        let len = 4.min(n - first);
        ops.push(VOp::Map(first, len));
    }
    ops.push(VOp::Map(n - 1, 1));
    ops.push(VOp::Map(n, 1));
    ops.push(VOp::Map(n - 3, 4));
    for k in [0usize, 16, 32, 40] {
        let first = (k * 512).saturating_sub(2).min(n - 1);
        let len = 4.min(n - first);
        ops.push(VOp::UnmapDeferred(first, len));
    }
    ops.push(VOp::Trim);
    ops.push(VOp::Flush);
    ops.push(VOp::Map(0, n));
    ops.push(VOp::Unmap(0, n));
    ops.push(VOp::Map(n - 8, 8));
    ops.push(VOp::Trim);
    for (i, op) in ops.into_iter().enumerate() {
        let ctx = format!("step {i} {op:?}");
        apply(&mut vm, &sim, &mut m, op, false, &ctx);
        expect_state(&vm, &sim, &m, &ctx);
    }
    let runs: Vec<Range> = vm.mapped_runs().collect();
    assert!(!runs.is_empty());
    for r in runs {
        vm.unmap(r).unwrap();
    }
    vm.trim().unwrap();
    assert_eq!(vm.metadata_mapped(), Size(3 * PG));
    vm.check().unwrap();
}
