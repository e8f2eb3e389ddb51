//! What callers ask of a VM arena: its configuration, allocation requests with
//! zone placement, and what an allocation returns.

use core::fmt;

use vmspace_shim::{Pages, Range, Size};

/// The number of zones the address space is striped into.
pub const ZONES: u32 = 64;

/// A set of zones, one bit per zone (bit `z` stands for zone `z`).
///
/// Zone `z` is every stripe of `2^zone_shift` bytes whose address, shifted
/// right by `zone_shift`, is `z` modulo 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ZoneSet(pub u64);

impl ZoneSet {
    /// No zone.
    pub const EMPTY: ZoneSet = ZoneSet(0);
    /// Every zone.
    pub const ALL: ZoneSet = ZoneSet(u64::MAX);

    /// The set holding only zone `z` (modulo 64).
    pub const fn single(z: u32) -> ZoneSet {
        ZoneSet(1 << (z % ZONES))
    }

    /// Whether zone `z` (modulo 64) is in the set.
    pub const fn contains(self, z: u32) -> bool {
        self.0 & (1 << (z % ZONES)) != 0
    }

    /// The zones in both sets.
    pub const fn inter(self, other: ZoneSet) -> ZoneSet {
        ZoneSet(self.0 & other.0)
    }

    /// The zones in either set.
    pub const fn union(self, other: ZoneSet) -> ZoneSet {
        ZoneSet(self.0 | other.0)
    }

    /// The zones not in the set.
    pub const fn complement(self) -> ZoneSet {
        ZoneSet(!self.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// How a [`VmArena`](super::VmArena) is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmArenaConfig {
    /// Bytes of tracts (rounded up to the page size).
    pub size: Size,
    /// log2 of the zone stripe in bytes; at least the page shift and below
    /// the word size.
    pub zone_shift: u32,
    /// Freed pages kept committed for reuse, at most (the spare bound).
    pub spare_limit: usize,
    /// Committed bytes (tracts allocated or spare, and the page and
    /// allocation tables) never exceed this.
    pub commit_limit: Size,
}

impl VmArenaConfig {
    /// `size` bytes of tracts, zones of 1 MiB, no spare pages, no commit limit.
    pub const fn new(size: Size) -> Self {
        VmArenaConfig { size, zone_shift: 20, spare_limit: 0, commit_limit: Size(usize::MAX) }
    }

    /// With zones of `2^shift` bytes.
    pub const fn zone_shift(mut self, shift: u32) -> Self {
        self.zone_shift = shift;
        self
    }

    /// Keeping up to `pages` freed pages committed for reuse.
    pub const fn spare_limit(mut self, pages: usize) -> Self {
        self.spare_limit = pages;
        self
    }

    /// With a commit limit of `limit` bytes.
    pub const fn commit_limit(mut self, limit: Size) -> Self {
        self.commit_limit = limit;
        self
    }
}

/// Who tracts are allocated to: a client pool's number. `Owner(0)` stands
/// for free tracts and is never granted anything. `Owner(u32::MAX)` is
/// [`IMPORT_OWNER`](crate::sources::IMPORT_OWNER), the owner of the tracts
/// the VM arena hands out as a [`Source`](crate::arena::Source): a client
/// pool given that number shares its tracts with the imports (a give-back
/// through the source takes them), so give client pools other numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Owner(pub u32);

impl Owner {
    /// The owner recorded for free tracts (not a valid requester).
    pub const NONE: Owner = Owner(0);
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "owner {}", self.0)
    }
}

/// A request for a run of tracts.
///
/// The arena places the run, first fit by address, wholly in zones of
/// `prefer` and none of `avoid`; failing that, in zones not in `avoid`;
/// failing that, anywhere. [`Grant::placement`] says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Pages wanted (non-zero).
    pub pages: Pages,
    /// The owner the tracts are allocated to (not [`Owner::NONE`]).
    pub owner: Owner,
    /// The run's base address is a multiple of `align` pages (a power of two).
    pub align: Pages,
    /// Zones to place the run in.
    pub prefer: ZoneSet,
    /// Zones to keep the run out of.
    pub avoid: ZoneSet,
}

impl Request {
    /// `pages` pages for `owner`, anywhere.
    pub const fn new(pages: Pages, owner: Owner) -> Self {
        Request { pages, owner, align: Pages(1), prefer: ZoneSet::ALL, avoid: ZoneSet::EMPTY }
    }

    /// Preferring the zones in `zones`.
    pub const fn prefer(mut self, zones: ZoneSet) -> Self {
        self.prefer = zones;
        self
    }

    /// Avoiding the zones in `zones`.
    pub const fn avoid(mut self, zones: ZoneSet) -> Self {
        self.avoid = zones;
        self
    }

    /// With the base a multiple of `pages` pages (a power of two).
    pub const fn align(mut self, pages: Pages) -> Self {
        self.align = pages;
        self
    }

    /// The zone sets tried in order, each with the placement it yields;
    /// a set equal to the one before it is skipped.
    pub(crate) fn tiers(&self) -> [(ZoneSet, Placement); 3] {
        [
            (self.prefer.inter(self.avoid.complement()), Placement::Preferred),
            (self.avoid.complement(), Placement::NotAvoided),
            (ZoneSet::ALL, Placement::Anywhere),
        ]
    }
}

/// Where an allocation landed relative to its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Wholly in preferred zones and out of avoided ones.
    Preferred,
    /// No preferred place was left: out of avoided zones, not wholly in
    /// preferred ones.
    NotAvoided,
    /// Every place out of avoided zones was taken: it touches an avoided zone.
    Anywhere,
}

/// A successful allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The tracts: page-aligned, committed, owned by the requester.
    pub range: Range,
    /// How well the zone request was honoured.
    pub placement: Placement,
}

impl Grant {
    /// Whether the arena fell back from the preferred zones.
    pub fn fell_back(&self) -> bool {
        self.placement != Placement::Preferred
    }
}
