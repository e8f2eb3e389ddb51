//! Round 61 outside review: `VmArena::purge_spare` is quadratic in the
//! number of committed runs.
//!
//! src/vmarena/ops.rs `purge_spare`: every turn of its outer loop
//! restarts `self.vm.mapped_runs()` from the arena's first page and
//! `find`s the first run past `from`, walking again over every run
//! already passed. Purged runs disappear, but allocated runs do not: with
//! R allocated runs between the spare ones a purge makes ~R^2/2 run
//! steps. On a 1 MiB arena of 64-byte pages (16,384 tracts; a 64 MiB
//! arena of 4 KiB pages has the same shape) with every fourth tract
//! allocated and every fourth spare, the purge of the 4,096 spare tracts
//! took 3.7 s here (debug build), 4x per doubling of the arena. An
//! allocation that purges to stay within the commit limit pays the same.
//!
//! Was a DEFECT (fixed: the purge resumes where its last run ended,
//! through `Vm::mapped_runs_from`). The reviewer's test compared the
//! purge's times on two sizes; the project asserts no times, so this one
//! purges an arena 4x the size above (65,536 tracts, 16,384 spare: about a
//! minute the quadratic way, milliseconds now) and checks what it did, and
//! checks `mapped_runs_from` against `mapped_runs` at every kind of start.

use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Pages, Range, Size};

const PAGE: usize = 64;

/// Purge an arena of `n` tracts where tract 4k is allocated, 4k+2 spare
/// and the odd ones decommitted; check the runs walked from each start
/// first.
fn purge(n: usize) {
    let mut buf = vec![0u8; n * PAGE * 2 + (1 << 20)];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let config = VmArenaConfig::new(Size(n * PAGE)).spare_limit(n / 4);
    let mut a = VmArena::new(&sim, config).unwrap();
    let g = a.alloc(&Request::new(Pages(n), Owner(1))).unwrap();
    let b = g.range.base().0;
    let t = |i: usize| Range::from_size(Addr(b + i * PAGE), Size(PAGE)).unwrap();
    for i in (2..n).step_by(4) {
        a.free(t(i), Owner(1)).unwrap(); // kept spare
    }
    for i in (1..n).step_by(2) {
        a.free(t(i), Owner(1)).unwrap(); // spare bound reached: decommitted
    }
    assert_eq!(a.spare(), Size(n / 4 * PAGE));
    // The runs from any address are the runs from the start, from the page
    // holding it on (a run holding that page cut to start there).
    let all: Vec<Range> = a.vm().mapped_runs().collect();
    for at in [0, 1, 2, 3, 5, 63, 64, 65, n - 1, n, n + 7] {
        let x = Addr(b + at * PAGE + at % 3);
        let page = Addr(b + at * PAGE);
        let want: Vec<Range> = all
            .iter()
            .filter(|r| r.limit() > page)
            .map(|r| Range::new(r.base().max(page), r.limit()).unwrap())
            .collect();
        let got: Vec<Range> = a.vm().mapped_runs_from(x).collect();
        assert_eq!(got, want, "from tract {at}");
    }
    assert_eq!(a.vm().mapped_runs_from(Addr(0)).count(), all.len());
    assert_eq!(a.purge_spare(), Ok(n / 4));
    a.check().unwrap();
    assert_eq!(a.spare(), Size(0));
}

#[test]
fn purge_spare_over_many_runs() {
    purge(1 << 16);
}
