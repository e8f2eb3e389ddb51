//! [`CpuMags`]: one size class's pair of magazines on one CPU, laid out so
//! that every change to it commits with a single store.
//!
//! [`CpuCaches`](crate::sync::CpuCaches) keeps one `CpuMags` per class per
//! slot of its [`CpuPin`](super::CpuPin), and touches them only through the
//! pin's [`pop`](super::CpuPin::pop), [`push`](super::CpuPin::push),
//! [`spill`](super::CpuPin::spill) and [`install`](super::CpuPin::install).
//! By default those pin the slot and run the methods below (the kernel's
//! pin: preemption off). A pin for user space can run the same steps as a
//! restartable sequence instead (Linux rseq, as tcmalloc's per-CPU caches
//! do): the steps read the slot's word and rounds, may write rounds past
//! the counts the word gives (which no one reads), and finish with one
//! store of the new word, so a sequence interrupted before that store can
//! simply start again. The layout constants below are what such a sequence
//! needs.

use super::magazine::{Magazine, ROUNDS};

/// One class's two magazines (Bonwick and Adams' *loaded* and *previous*)
/// on one CPU, and its hit count, in one 64-bit control word and one array
/// of `2 * ROUNDS` rounds: `rounds[B..B + ROUNDS]` is the loaded magazine
/// and the other half the previous one, where the base `B` is 0 or
/// [`ROUNDS`].
///
/// The word holds, from bit 0: the loaded magazine's top `L` (8 bits: its
/// rounds are `rounds[B..L]`, so its count is `L - B`), the previous
/// magazine's count (8 bits), `B` (8 bits), and the hits counted since they
/// were last taken out (the remaining 40 bits, wrapping). Round `j` is at
/// byte offset [`ROUNDS_OFFSET`](Self::ROUNDS_OFFSET) `+ 8 * j` on 64-bit
/// targets, where a `CpuMags` is [`SIZE`](Self::SIZE) bytes (padded), so
/// that a sequence finds a CPU's by a shift and the top round by `L`.
///
/// # Invariants
///
/// `B` is 0 or `ROUNDS`, `B <= L <= B + ROUNDS`, the previous count is at
/// most `ROUNDS`; the rounds of both magazines are cached objects of the
/// class (the owner's invariant: this type only moves addresses around).
/// All-zero is a valid, empty value.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct CpuMags {
    word: u64,
    rounds: [usize; 2 * ROUNDS],
    /// To [`SIZE`](Self::SIZE) bytes on 64-bit targets.
    _pad: [usize; PAD],
}

/// Words of padding that make a `CpuMags` a power of two in size.
const PAD: usize =
    (256 - 8 - 2 * ROUNDS * core::mem::size_of::<usize>()) / core::mem::size_of::<usize>();

/// What [`CpuMags::pop`] (and [`CpuPin::pop`](super::CpuPin::pop)) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popped {
    /// A cached address, from the loaded magazine (or the previous one,
    /// which became the loaded one); one hit counted.
    Round(usize),
    /// Both magazines were empty (a miss): nothing taken. The hits counted
    /// so far were taken out of the word and are returned, for the caller
    /// to add to the shared statistics.
    Empty {
        /// Hits counted since they were last taken out.
        hits: u64,
    },
    /// The pin could not run the operation for this caller (a user-space
    /// pin on a thread it cannot place on a slot): nothing changed; the
    /// caller goes to the arena instead.
    Unpinned,
}

/// What [`CpuMags::push`] (and [`CpuPin::push`](super::CpuPin::push)) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The address is cached.
    Done,
    /// Both magazines are full: nothing changed. The caller takes the
    /// previous one out ([`CpuMags::spill`]) and pushes again.
    Full,
    /// As for [`Popped::Unpinned`]: nothing changed; the address is still
    /// the caller's.
    Unpinned,
}

impl CpuMags {
    /// Both magazines empty, no hits.
    pub const EMPTY: CpuMags = CpuMags { word: 0, rounds: [0; 2 * ROUNDS], _pad: [0; PAD] };

    /// log2 of the size of a `CpuMags` on 64-bit targets.
    pub const SIZE_SHIFT: u32 = 8;
    /// The size of a `CpuMags` on 64-bit targets: `1 << SIZE_SHIFT`.
    pub const SIZE: usize = 1 << Self::SIZE_SHIFT;

    /// Byte offset of the control word.
    pub const WORD_OFFSET: usize = 0;
    /// Byte offset of the rounds.
    pub const ROUNDS_OFFSET: usize = 8;
    /// Shift of the previous magazine's count in the word.
    pub const PREVIOUS_SHIFT: u32 = 8;
    /// Shift of the loaded magazine's base `B` in the word.
    pub const BASE_SHIFT: u32 = 16;
    /// Shift of the hit count in the word (one hit is `1 << HITS_SHIFT`).
    pub const HITS_SHIFT: u32 = 24;
    /// The bits of the word below the hit count.
    pub const COUNTS_MASK: u64 = (1 << Self::HITS_SHIFT) - 1;

    #[inline]
    fn top(w: u64) -> usize {
        (w & 0xff) as usize
    }

    #[inline]
    fn previous_count(w: u64) -> usize {
        ((w >> Self::PREVIOUS_SHIFT) & 0xff) as usize
    }

    #[inline]
    fn base(w: u64) -> usize {
        ((w >> Self::BASE_SHIFT) & 0xff) as usize
    }

    /// The word with the halves swapped: the other base, the loaded top at
    /// `loaded` rounds above it, the previous count `previous`, the hits
    /// kept.
    #[inline]
    fn swapped(w: u64, loaded: usize, previous: usize) -> u64 {
        let b = Self::base(w) ^ ROUNDS;
        (w & !Self::COUNTS_MASK)
            | ((b as u64) << Self::BASE_SHIFT)
            | ((previous as u64) << Self::PREVIOUS_SHIFT)
            | (b + loaded) as u64
    }

    /// Rounds held: loaded, previous.
    pub fn counts(&self) -> (usize, usize) {
        let w = self.word;
        (Self::top(w).saturating_sub(Self::base(w)), Self::previous_count(w))
    }

    /// Take a cached address: from the loaded magazine, else from the
    /// previous one after making it the loaded one (counting a hit); when
    /// both are empty, take the hit count out instead.
    #[inline]
    pub fn pop(&mut self) -> Popped {
        let mut w = self.word;
        if Self::top(w) == Self::base(w) {
            let m = Self::previous_count(w);
            if m == 0 {
                self.word = w & Self::COUNTS_MASK;
                return Popped::Empty { hits: w >> Self::HITS_SHIFT };
            }
            w = Self::swapped(w, m, 0);
        }
        let Some(&a) = Self::top(w).checked_sub(1).and_then(|j| self.rounds.get(j)) else {
            // Only a word that breaks the invariant gets here: miss rather
            // than read outside the rounds.
            return Popped::Empty { hits: 0 };
        };
        self.word = w.wrapping_add((1 << Self::HITS_SHIFT) - 1);
        Popped::Round(a)
    }

    /// Cache `addr`: onto the loaded magazine; when it is full, onto the
    /// empty previous one after swapping the two; when both are full,
    /// nothing changes ([`Pushed::Full`]).
    #[inline]
    pub fn push(&mut self, addr: usize) -> Pushed {
        let mut w = self.word;
        if Self::top(w) - Self::base(w) >= ROUNDS {
            if Self::previous_count(w) > 0 {
                return Pushed::Full;
            }
            w = Self::swapped(w, 0, ROUNDS);
        }
        self.rounds[Self::top(w)] = addr;
        self.word = w + 1;
        Pushed::Done
    }

    /// When both magazines are full, take the previous one out into `out`
    /// (for the depot) and make the loaded one the previous one, leaving the
    /// loaded one empty; `false`, and nothing changed, otherwise.
    #[inline]
    pub fn spill(&mut self, out: &mut Magazine) -> bool {
        let w = self.word;
        let m = Self::previous_count(w).min(ROUNDS);
        if Self::top(w) - Self::base(w) < ROUNDS || m == 0 {
            return false;
        }
        let b = Self::base(w) ^ ROUNDS;
        *out = Magazine::EMPTY;
        for &a in &self.rounds[b..b + m] {
            out.push(a);
        }
        self.word = Self::swapped(w, 0, ROUNDS);
        true
    }

    /// Install `mag` (fresh from the depot or the slabs, non-empty) as the
    /// loaded magazine if the loaded one or the previous one is empty (the
    /// loaded one becomes the previous one in the second case); `false`,
    /// and nothing changed, when neither is.
    #[inline]
    pub fn install(&mut self, mag: &Magazine) -> bool {
        let w = self.word;
        let n = Self::top(w) - Self::base(w);
        let w = if n == 0 {
            w
        } else if Self::previous_count(w) == 0 {
            Self::swapped(w, 0, n)
        } else {
            return false;
        };
        let (b, k) = (Self::base(w), mag.len());
        self.rounds[b..b + k].copy_from_slice(mag.rounds());
        self.word = w + k as u64;
        true
    }

    /// Take both magazines (loaded first) and the hit count out, leaving
    /// the pair empty.
    pub fn take(&mut self) -> ([Magazine; 2], u64) {
        let w = self.word;
        let mut out = [Magazine::EMPTY; 2];
        let (b, top) = (Self::base(w).min(ROUNDS), Self::top(w));
        let other = b ^ ROUNDS;
        let loaded = &self.rounds[b..top.clamp(b, b + ROUNDS)];
        let previous = &self.rounds[other..other + Self::previous_count(w).min(ROUNDS)];
        for (m, rounds) in out.iter_mut().zip([loaded, previous]) {
            for &a in rounds {
                m.push(a);
            }
        }
        *self = CpuMags::EMPTY;
        (out, w >> Self::HITS_SHIFT)
    }
}

/// The most bytes [`CpuCaches::new`](crate::sync::CpuCaches::new) commits
/// in its store for `classes` quantum-cache classes and `slots` pin slots
/// (a [`CpuMags`] a class and slot, line-aligned inside a store whose base
/// is [`STORE_ALIGN`](crate::arena::STORE_ALIGN)-aligned): reserve at least
/// this much, rounded up to the store's page. `None` if it does not fit a
/// `usize`.
pub const fn magazine_store_bytes(classes: usize, slots: usize) -> Option<usize> {
    match magazine_bytes(classes, slots) {
        Some(b) => b.checked_add(LINE - crate::arena::STORE_ALIGN),
        None => None,
    }
}

/// The magazines' bytes, without the alignment slack.
pub(crate) const fn magazine_bytes(classes: usize, slots: usize) -> Option<usize> {
    match classes.checked_mul(slots) {
        Some(n) => n.checked_mul(core::mem::size_of::<CpuMags>()),
        None => None,
    }
}

/// The magazines start at a cache line, so that (each `CpuMags` being a
/// multiple of a line) CPUs working on their own do not share lines.
pub(crate) const LINE: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn mag(from: usize, n: usize) -> Magazine {
        let mut m = Magazine::EMPTY;
        for i in 0..n {
            m.push(from + i);
        }
        m
    }

    #[test]
    fn layout_is_what_a_restartable_sequence_assumes() {
        assert_eq!(core::mem::offset_of!(CpuMags, word), CpuMags::WORD_OFFSET);
        assert_eq!(core::mem::offset_of!(CpuMags, rounds), CpuMags::ROUNDS_OFFSET);
        assert!(core::mem::size_of::<CpuMags>() >= 8 + 2 * ROUNDS * core::mem::size_of::<usize>());
        const { assert!(2 * ROUNDS < 256, "tops and bases are bytes") };
        #[cfg(target_pointer_width = "64")]
        assert_eq!(core::mem::size_of::<CpuMags>(), CpuMags::SIZE);
    }

    #[test]
    fn pops_swap_in_the_previous_magazine_then_miss_with_the_hits() {
        let mut p = CpuMags::EMPTY;
        assert_eq!(p.pop(), Popped::Empty { hits: 0 });
        assert!(p.install(&mag(100, ROUNDS)));
        assert!(p.install(&mag(200, 3)), "the loaded one moves to previous");
        assert_eq!(p.counts(), (3, ROUNDS));
        assert!(!p.install(&mag(300, 1)), "neither empty: refused");
        for i in (0..3).rev() {
            assert_eq!(p.pop(), Popped::Round(200 + i));
        }
        for i in (0..ROUNDS).rev() {
            assert_eq!(p.pop(), Popped::Round(100 + i));
        }
        assert_eq!(p.pop(), Popped::Empty { hits: ROUNDS as u64 + 3 });
        assert_eq!(p.pop(), Popped::Empty { hits: 0 }, "the hits were taken out");
    }

    #[test]
    fn pushes_fill_both_then_spill_the_older() {
        let mut p = CpuMags::EMPTY;
        let mut spill = Magazine::EMPTY;
        assert!(!p.spill(&mut spill), "nothing to spill");
        for i in 0..2 * ROUNDS {
            assert_eq!(p.push(i), Pushed::Done, "room at {i}");
            if i < 2 * ROUNDS - 1 {
                assert!(!p.spill(&mut spill), "not both full at {i}");
            }
        }
        assert_eq!(p.counts(), (ROUNDS, ROUNDS));
        assert_eq!(p.push(999), Pushed::Full);
        assert_eq!(p.counts(), (ROUNDS, ROUNDS), "nothing changed");
        assert!(p.spill(&mut spill));
        assert_eq!(spill.rounds(), mag(0, ROUNDS).rounds(), "the older magazine goes");
        assert_eq!(p.counts(), (0, ROUNDS));
        assert_eq!(p.push(999), Pushed::Done);
        assert_eq!(p.counts(), (1, ROUNDS));
        assert_eq!(p.pop(), Popped::Round(999));
        let ([loaded, previous], hits) = p.take();
        assert!(loaded.is_empty());
        assert_eq!(previous.rounds(), mag(ROUNDS, ROUNDS).rounds());
        assert_eq!(hits, 1);
        assert_eq!(p.counts(), (0, 0));
    }

    #[test]
    fn install_into_an_empty_loaded_keeps_the_previous() {
        let mut p = CpuMags::EMPTY;
        for i in 0..ROUNDS + 2 {
            p.push(i);
        }
        assert_eq!(p.counts(), (2, ROUNDS));
        p.pop();
        p.pop();
        assert!(p.install(&mag(50, 4)));
        assert_eq!(p.counts(), (4, ROUNDS));
        let ([loaded, previous], hits) = p.take();
        assert_eq!(loaded.rounds(), mag(50, 4).rounds());
        assert_eq!(previous.rounds(), mag(0, ROUNDS).rounds());
        assert_eq!(hits, 2);
    }
}
