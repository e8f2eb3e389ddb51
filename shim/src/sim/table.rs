//! The simulated backend's per-page state table: one byte a page.

use crate::ops::Protection;

/// The state of one page of the simulated address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageState {
    /// Not in any reservation.
    Free,
    /// Reserved, nothing committed.
    Reserved,
    /// Reserved, unmapped by `unmap_deferred` and not yet flushed: it keeps
    /// its old contents (what a stale TLB entry would still reach) and may
    /// not be mapped until the flush.
    Unflushed,
    /// Reserved and committed, with this protection.
    Mapped(Protection),
}

const KIND_MASK: u8 = 0b11;
const KIND_FREE: u8 = 0;
const KIND_RESERVED: u8 = 1;
const KIND_MAPPED: u8 = 2;
const PROT_SHIFT: u8 = 2;
const PROT_MASK: u8 = 0b11 << PROT_SHIFT;
/// Set on the first page of each reservation, so adjacent reservations stay apart.
const START: u8 = 1 << 4;
/// Set on reserved pages whose deferred unmap is not flushed yet.
const UNFLUSHED: u8 = 1 << 5;

/// One page's state byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct Cell(pub(crate) u8);

impl Cell {
    pub(crate) const FREE: Cell = Cell(KIND_FREE);

    pub(crate) fn reserved(start: bool) -> Cell {
        Cell(KIND_RESERVED | if start { START } else { 0 })
    }

    pub(crate) fn is_free(self) -> bool {
        self.0 & KIND_MASK == KIND_FREE
    }

    pub(crate) fn is_mapped(self) -> bool {
        self.0 & KIND_MASK == KIND_MAPPED
    }

    pub(crate) fn is_start(self) -> bool {
        self.0 & START != 0
    }

    pub(crate) fn with_mapped(self, prot: Protection) -> Cell {
        let p = match prot {
            Protection::None => 0,
            Protection::Read => 1,
            Protection::ReadWrite => 2,
        };
        Cell((self.0 & START) | KIND_MAPPED | (p << PROT_SHIFT))
    }

    pub(crate) fn with_unmapped(self) -> Cell {
        Cell((self.0 & START) | KIND_RESERVED)
    }

    /// Unmapped, its flush pending.
    pub(crate) fn with_unflushed(self) -> Cell {
        Cell((self.0 & START) | KIND_RESERVED | UNFLUSHED)
    }

    pub(crate) fn is_unflushed(self) -> bool {
        self.0 & UNFLUSHED != 0
    }

    pub(crate) fn state(self) -> PageState {
        match self.0 & KIND_MASK {
            KIND_FREE => PageState::Free,
            KIND_RESERVED if self.0 & UNFLUSHED != 0 => PageState::Unflushed,
            KIND_RESERVED => PageState::Reserved,
            _ => PageState::Mapped(match (self.0 & PROT_MASK) >> PROT_SHIFT {
                0 => Protection::None,
                1 => Protection::Read,
                _ => Protection::ReadWrite,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_round_trips() {
        let c = Cell::reserved(true);
        assert!(c.is_start() && !c.is_free() && !c.is_mapped());
        let m = c.with_mapped(Protection::Read);
        assert!(m.is_start() && m.is_mapped());
        assert_eq!(m.state(), PageState::Mapped(Protection::Read));
        assert_eq!(m.with_unmapped(), c);
        assert_eq!(Cell::FREE.state(), PageState::Free);
        assert_eq!(Cell::reserved(false).state(), PageState::Reserved);
        let u = m.with_unflushed();
        assert!(u.is_start() && u.is_unflushed() && !u.is_mapped());
        assert_eq!(u.state(), PageState::Unflushed);
        assert_eq!(u.with_unmapped(), c);
    }
}
