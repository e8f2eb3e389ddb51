//! What the round-26 simulator and injector tests
//! (`outside_r26_shim_sim_*.rs`) share: the page size, ranges, a snapshot
//! of a simulator's pages and bytes, a fresh simulator.

#![allow(dead_code)] // each test file uses part of it

use vmspace_shim::sim::{PageState, Placed, SimBackend};
use vmspace_shim::{Addr, PageOps, Range, Size};

pub const PAGE: usize = 256;

pub fn r(base: usize, size: usize) -> Range {
    Range::from_size(Addr(base), Size(size)).unwrap()
}

/// Every page's state and every byte of the region.
pub fn snapshot(sim: &SimBackend<'_>) -> (Vec<PageState>, Vec<u8>) {
    let reg = sim.region();
    let page = sim.page_size().0;
    let states = (0..reg.size().0 / page)
        .map(|i| sim.page_state(Addr(reg.base().0 + i * page)).unwrap())
        .collect();
    // SAFETY: the region lies in the buffer the backend borrows; nothing
    // writes it while we read (single thread).
    let bytes =
        unsafe { std::slice::from_raw_parts(reg.base().as_ptr::<u8>(), reg.size().0) }.to_vec();
    (states, bytes)
}

pub fn fresh(buf: &mut Placed) -> SimBackend<'_> {
    SimBackend::new(buf.fresh(), PAGE).unwrap()
}
