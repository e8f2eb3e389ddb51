//! Round 61 outside review: a zone request that cannot be met in a long
//! free run costs time quadratic in the run's length.
//!
//! src/vmarena/place.rs: `first_fit` follows a free run and, each time
//! it grows (every allocation-table page, unmapped or not, and every
//! word of a mapped one), `grown` calls `fit_in(a, end, ..)` with `a` the
//! run's *start*. `fit_in` walks the candidate starts from `a` again,
//! one allowed stripe at a time (`Some(next) if next < b => p = next`),
//! and the `Resume(r)` it returns is only used to delay the next look
//! (`want = r + pages`), not as where to start it. With zones of one
//! tract, a two-tract request preferring one zone (never possible: two
//! tracts touch two zones) re-walks the whole run on each growth: for
//! an empty arena of N tracts in pages of B bits that is
//! ~ (N/B)^2 * B / 128 turns. A 2^42-byte arena on the mmap backend
//! (2^30 tracts) did not finish in 10 minutes; the plain request takes
//! microseconds. Default zones (1 MiB) hit it too: 512 pages preferring
//! one zone took 24 ms on 2^36 bytes and 369 ms on 2^38 (debug build),
//! so ~25 min at 2^44. `first_fit` promises "one pass over the allocation
//! table, a word at a time, ... jumping past stripes of disallowed
//! zones".
//!
//! Was a DEFECT (fixed: the followed run keeps the first candidate not yet
//! ruled out, and each look resumes there). The reviewer's test compared
//! times on two sizes; the project asserts no times, so this one makes the
//! request on an empty 2^38-byte arena (about a minute and a half the
//! quadratic way in a debug build, a tenth of a second now) and checks
//! where it went; a 4 KiB-page machine has 2^26 tracts there.

use vmspace::vmarena::{Owner, Placement, Request, VmArena, VmArenaConfig, ZoneSet};
use vmspace_shim::{PageOps, Pages, Size};
use vmspace_user::MmapBackend;

/// An impossible-zone request on an empty arena of `2^shift` bytes with
/// zones of one page: it falls back to the first tracts.
fn zoned(shift: u32) {
    let page_shift = MmapBackend::new().page_size().0.trailing_zeros();
    let config = VmArenaConfig::new(Size(1 << shift)).zone_shift(page_shift);
    let mut a = VmArena::new(MmapBackend::new(), config).unwrap();
    let g = a.alloc(&Request::new(Pages(2), Owner(1)).prefer(ZoneSet::single(5))).unwrap();
    assert_eq!(g.placement, Placement::NotAvoided);
    assert_eq!(g.range.base(), a.base());
    a.free(g.range, Owner(1)).unwrap();
    a.check().unwrap();
}

#[test]
fn impossible_zone_request_on_a_long_free_run() {
    zoned(38);
}
