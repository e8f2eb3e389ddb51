//! What the round-27 VM arena contract tests (`outside_r27_vmarena_*.rs`)
//! share: the page size, a generator, and a snapshot of an arena's state.

#![allow(dead_code)] // each test file uses part of it

use vmspace::vmarena::{Owner, VmArena};
use vmspace_shim::{Addr, PageOps, Protection, Size};

pub const PAGE: usize = 256;

pub fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Snap {
    pub allocated: Size,
    pub spare: Size,
    pub committed: Size,
    pub tables: usize,
    pub bits: usize,
    pub owners: Vec<Option<(Owner, Protection, u16)>>,
}

pub fn snap<P: PageOps>(a: &VmArena<P>) -> Snap {
    Snap {
        allocated: a.allocated(),
        spare: a.spare(),
        committed: a.committed(),
        tables: a.table_pages_mapped(),
        bits: a.bit_pages_mapped(),
        owners: (0..a.tracts())
            .map(|i| {
                a.tract(Addr(a.base().0 + i * a.page_size().0)).map(|t| (t.owner, t.prot, t.client))
            })
            .collect(),
    }
}
