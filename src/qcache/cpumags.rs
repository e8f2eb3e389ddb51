//! [`CpuMags`]: one size class's pair of magazines on one CPU, laid out so
//! that every change to it commits with a single store.
//!
//! [`CpuCaches`](crate::sync::CpuCaches) keeps one `CpuMags` per class per
//! slot of its [`CpuPin`](super::CpuPin), and touches them only through the
//! pin's [`pop`](super::CpuPin::pop), [`push`](super::CpuPin::push) and
//! [`install`](super::CpuPin::install). By default those pin the slot and
//! run the methods below (the kernel's pin: preemption off). A pin for user
//! space can run the same steps as a restartable sequence instead (Linux
//! rseq, as tcmalloc's per-CPU caches do): the steps read the slot's word
//! and rounds, may write rounds past the counts the word gives (which no
//! one reads), and finish with one store of the new word, so a sequence
//! interrupted before that store can simply start again. The layout
//! constants below are what such a sequence needs.

use super::magazine::{Magazine, ROUNDS};

/// One class's two magazines (Bonwick and Adams' *loaded* and *previous*)
/// on one CPU, and its hit count, in one 64-bit control word and two
/// arrays of rounds.
///
/// The word holds, from bit 0: the loaded magazine's count (8 bits,
/// at most [`ROUNDS`]), the previous magazine's count (8 bits), which of
/// the two arrays is the loaded one (1 bit), and the hits counted since they
/// were last taken out (the remaining 47 bits, wrapping). Array `k`'s
/// round `j` is at byte offset [`ROUNDS_OFFSET`](Self::ROUNDS_OFFSET) `+ 8 *
/// (ROUNDS * k + j)` on 64-bit targets.
///
/// # Invariants
///
/// Both counts are at most [`ROUNDS`]; the rounds below each count are
/// cached objects of the class (the owner's invariant: this type only moves
/// addresses around). All-zero is a valid, empty value.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct CpuMags {
    word: u64,
    rounds: [[usize; ROUNDS]; 2],
}

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
    /// The address is cached, after both magazines were found full: the
    /// previous one was taken out into the caller's spill magazine (for the
    /// depot), the loaded one became the previous one, and the address
    /// started a new loaded one.
    Spilled,
    /// As for [`Popped::Unpinned`]: nothing changed; the address is still
    /// the caller's.
    Unpinned,
}

impl CpuMags {
    /// Both magazines empty, no hits.
    pub const EMPTY: CpuMags = CpuMags { word: 0, rounds: [[0; ROUNDS]; 2] };

    /// Byte offset of the control word.
    pub const WORD_OFFSET: usize = 0;
    /// Byte offset of the first array of rounds.
    pub const ROUNDS_OFFSET: usize = 8;
    /// Shift of the previous magazine's count in the word.
    pub const PREVIOUS_SHIFT: u32 = 8;
    /// Bit of the word that says array 1 (not 0) is the loaded one.
    pub const WHICH_BIT: u64 = 1 << 16;
    /// Shift of the hit count in the word (one hit is `1 << HITS_SHIFT`).
    pub const HITS_SHIFT: u32 = 17;
    /// The bits of the word below the hit count.
    pub const COUNTS_MASK: u64 = (1 << Self::HITS_SHIFT) - 1;

    #[inline]
    fn loaded_count(w: u64) -> usize {
        (w & 0xff) as usize
    }

    #[inline]
    fn previous_count(w: u64) -> usize {
        ((w >> Self::PREVIOUS_SHIFT) & 0xff) as usize
    }

    #[inline]
    fn which(w: u64) -> usize {
        usize::from(w & Self::WHICH_BIT != 0)
    }

    /// The word with the loaded array flipped and the counts set.
    #[inline]
    fn swapped(w: u64, loaded: usize, previous: usize) -> u64 {
        ((w & !Self::COUNTS_MASK) | ((w & Self::WHICH_BIT) ^ Self::WHICH_BIT))
            | ((previous as u64) << Self::PREVIOUS_SHIFT)
            | loaded as u64
    }

    /// Rounds held: loaded, previous.
    pub fn counts(&self) -> (usize, usize) {
        (Self::loaded_count(self.word), Self::previous_count(self.word))
    }

    /// Take a cached address: from the loaded magazine, else from the
    /// previous one after making it the loaded one (counting a hit); when
    /// both are empty, take the hit count out instead.
    #[inline]
    pub fn pop(&mut self) -> Popped {
        let mut w = self.word;
        let mut n = Self::loaded_count(w);
        if n == 0 {
            let m = Self::previous_count(w);
            if m == 0 {
                self.word = w & Self::COUNTS_MASK;
                return Popped::Empty { hits: w >> Self::HITS_SHIFT };
            }
            w = Self::swapped(w, m, 0);
            n = m;
        }
        let Some(&a) = self.rounds[Self::which(w)].get(n - 1) else {
            // A count above ROUNDS breaks the invariant; miss rather than
            // read past the array.
            return Popped::Empty { hits: 0 };
        };
        self.word = w.wrapping_add((1 << Self::HITS_SHIFT) - 1);
        Popped::Round(a)
    }

    /// Cache `addr`: onto the loaded magazine; when it is full, onto the
    /// empty previous one after swapping the two; when both are full, the
    /// previous one is taken out into `spill` first.
    #[inline]
    pub fn push(&mut self, addr: usize, spill: &mut Magazine) -> Pushed {
        let mut w = self.word;
        let mut n = Self::loaded_count(w);
        let mut pushed = Pushed::Done;
        if n >= ROUNDS {
            let m = Self::previous_count(w);
            if m > 0 {
                let out = &self.rounds[1 - Self::which(w)];
                *spill = Magazine::EMPTY;
                for &a in &out[..m.min(ROUNDS)] {
                    spill.push(a);
                }
                pushed = Pushed::Spilled;
            }
            w = Self::swapped(w, 0, ROUNDS);
            n = 0;
        }
        self.rounds[Self::which(w)][n] = addr;
        self.word = w + 1;
        pushed
    }

    /// Install `mag` (fresh from the depot or the slabs, non-empty) as the
    /// loaded magazine if the loaded one or the previous one is empty (the
    /// loaded one becomes the previous one in the second case); `false`,
    /// and nothing changed, when neither is.
    #[inline]
    pub fn install(&mut self, mag: &Magazine) -> bool {
        let w = self.word;
        let (n, m) = (Self::loaded_count(w), Self::previous_count(w));
        let w = if n == 0 {
            w & !0xff
        } else if m == 0 {
            Self::swapped(w, 0, n)
        } else {
            return false;
        };
        let k = mag.len();
        self.rounds[Self::which(w)][..k].copy_from_slice(mag.rounds());
        self.word = w | k as u64;
        true
    }

    /// Take both magazines (loaded first) and the hit count out, leaving
    /// the pair empty.
    pub fn take(&mut self) -> ([Magazine; 2], u64) {
        let w = self.word;
        let mut out = [Magazine::EMPTY; 2];
        let counts = [Self::loaded_count(w), Self::previous_count(w)];
        let which = [Self::which(w), 1 - Self::which(w)];
        for ((m, &n), &k) in out.iter_mut().zip(&counts).zip(&which) {
            for &a in &self.rounds[k][..n.min(ROUNDS)] {
                m.push(a);
            }
        }
        *self = CpuMags::EMPTY;
        (out, w >> Self::HITS_SHIFT)
    }
}

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
        assert_eq!(core::mem::size_of::<CpuMags>(), 8 + 2 * ROUNDS * core::mem::size_of::<usize>());
        const { assert!(ROUNDS < 256, "counts are bytes") };
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
        for i in 0..2 * ROUNDS {
            assert_eq!(p.push(i, &mut spill), Pushed::Done, "room at {i}");
        }
        assert_eq!(p.counts(), (ROUNDS, ROUNDS));
        assert_eq!(p.push(999, &mut spill), Pushed::Spilled);
        assert_eq!(spill.rounds(), mag(0, ROUNDS).rounds(), "the older magazine goes");
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
        let mut spill = Magazine::EMPTY;
        for i in 0..ROUNDS + 2 {
            p.push(i, &mut spill);
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
