//! The per-chunk and per-leaf state bytes, and the transitions between them.

/// The state of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ChunkState {
    /// Nothing committed and not set aside.
    Unmapped = 0,
    /// Set aside (reserved for a use), nothing committed.
    Quarantined = 1,
    /// Committed, read-write.
    Mapped = 2,
    /// Committed, no access.
    Protected = 3,
}

/// Chunk byte flag: a thread is changing the chunk; the low bits keep the
/// state it had.
pub(crate) const BUSY: u8 = 0x80;
/// The state bits of a chunk byte.
pub(crate) const STATE: u8 = 0x03;

pub(crate) const UNMAPPED: u8 = ChunkState::Unmapped as u8;
pub(crate) const QUARANTINED: u8 = ChunkState::Quarantined as u8;
pub(crate) const MAPPED: u8 = ChunkState::Mapped as u8;
pub(crate) const PROTECTED: u8 = ChunkState::Protected as u8;

/// Directory byte: the leaf page is not mapped.
pub(crate) const LEAF_ABSENT: u8 = 0;
/// Directory byte: a thread is mapping the leaf page and owns its entries.
pub(crate) const LEAF_BUSY: u8 = 1;
/// Directory byte: the leaf page is mapped and its entries readable.
pub(crate) const LEAF_PRESENT: u8 = 2;

impl ChunkState {
    /// The state a (non-busy) state byte stands for; `None` for a bad byte.
    pub(crate) fn from_byte(b: u8) -> Option<ChunkState> {
        match b {
            UNMAPPED => Some(ChunkState::Unmapped),
            QUARANTINED => Some(ChunkState::Quarantined),
            MAPPED => Some(ChunkState::Mapped),
            PROTECTED => Some(ChunkState::Protected),
            _ => None,
        }
    }

    /// Whether memory is committed behind the chunk.
    pub const fn is_committed(self) -> bool {
        matches!(self, ChunkState::Mapped | ChunkState::Protected)
    }
}

/// A change asked of a range of chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Make every chunk mapped (read-write).
    Map,
    /// Set aside every unmapped chunk; leave the others.
    Quarantine,
    /// Make every mapped chunk protected; all must be committed.
    Protect,
    /// Make every protected chunk mapped; all must be committed.
    Unprotect,
}

/// The page operation that moves a chunk between two states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// No backend call.
    None,
    /// `map`.
    Map,
    /// `protect(ReadWrite)`.
    ProtectRw,
    /// `protect(None)`.
    ProtectNone,
}

impl Action {
    /// The state a chunk in state `old` goes to, or `None` when the action
    /// does not apply to it (an error for the whole range).
    pub(crate) fn target(self, old: u8) -> Option<u8> {
        match (self, old) {
            (Action::Map, _) => Some(MAPPED),
            (Action::Quarantine, UNMAPPED) => Some(QUARANTINED),
            (Action::Quarantine, s) => Some(s),
            (Action::Protect, MAPPED | PROTECTED) => Some(PROTECTED),
            (Action::Unprotect, MAPPED | PROTECTED) => Some(MAPPED),
            _ => None,
        }
    }

    /// Whether the action may need leaf pages that are not mapped yet.
    pub(crate) fn creates_leaves(self) -> bool {
        matches!(self, Action::Map | Action::Quarantine)
    }
}

impl Call {
    /// The call that moves a chunk from `old` to `new`.
    pub(crate) fn between(old: u8, new: u8) -> Call {
        match (old, new) {
            (UNMAPPED | QUARANTINED, MAPPED) => Call::Map,
            (PROTECTED, MAPPED) => Call::ProtectRw,
            (MAPPED, PROTECTED) => Call::ProtectNone,
            _ => Call::None,
        }
    }
}
