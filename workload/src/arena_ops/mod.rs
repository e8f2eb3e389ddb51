//! Operation sequences for an [`Arena`], checked against a reference model.
//!
//! [`ArenaOpGen`] turns a seed into [`ArenaOp`]s (adds, extends, allocations
//! under every policy, constrained allocations with random constraints, frees,
//! deferred frees and flushes, partial frees and resizes, and deliberately
//! bad frees); [`ArenaOp::decode`] turns fuzzer bytes into the same
//! operations. [`ArenaDriver`] applies them to an arena and to a model (the
//! added spans, the live allocations and the ranges freed but not flushed,
//! in fixed arrays: no heap) and after every step checks that:
//!
//! - the outcome is the one the model predicts (bad frees, overlapping adds,
//!   over-constrained requests fail; so does every free, partial free or
//!   resize of a range freed but not flushed; an allocation fails only when
//!   no free range can hold it, or for a resource reason: tags, source,
//!   injected fault, and then the arena is unchanged);
//! - every allocation lies in a span, overlaps nothing live and nothing
//!   freed but not flushed, and satisfies its constraints; first fit returns
//!   the lowest (or highest) fit and best fit comes from the smallest free
//!   range that fits;
//! - sizes, counts, counters and the unflushed segments agree with the
//!   model, and `check()` passes.
//!
//! The driver works on any [`ArenaTarget`]: the in-process [`Arena`], or an
//! arena in the kernel reached through `/dev/vmspace`.

mod driver;
mod model;
mod target;

use vmspace_shim::{Addr, Size};

use super::Rng;
use vmspace::arena::{Arena, Constraints, Policy, Source, Store};

pub use driver::{ArenaDriver, ArenaRunError, ArenaRunStats};
pub use model::ArenaModel;
pub use target::ArenaTarget;

/// One operation on an arena. Addresses are absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArenaOp {
    /// [`Arena::add`].
    Add {
        /// First address.
        base: usize,
        /// Size.
        size: usize,
    },
    /// [`Arena::extend`].
    Extend {
        /// First address.
        base: usize,
        /// Size.
        size: usize,
    },
    /// [`Arena::alloc`], or [`Arena::alloc_handle`] when `held`.
    Alloc {
        /// Size asked for.
        size: usize,
        /// Policy.
        policy: Policy,
        /// Held by a handle rather than entered in the address hash.
        held: bool,
    },
    /// [`Arena::xalloc`], or [`Arena::xalloc_handle`] when `held`.
    XAlloc {
        /// The constraints.
        constraints: Constraints,
        /// Held by a handle rather than entered in the address hash.
        held: bool,
    },
    /// Free taken range number `pick % occupied` (in address order: live
    /// allocations and ranges freed but not flushed), through the interface
    /// that allocated it, with `deferred` into the freed-but-not-flushed
    /// state ([`Arena::free_deferred`], or [`Arena::free_handle_deferred`]
    /// for an allocation held by a handle, which by address is refused).
    /// Any free of a range freed but not flushed is refused.
    Free {
        /// Which one.
        pick: usize,
        /// Into the freed-but-not-flushed state.
        deferred: bool,
    },
    /// [`Arena::flushed`]: every range freed but not flushed becomes free.
    Flush,
    /// [`Arena::free_part`] of taken range `pick % occupied` (refused when
    /// it waits for its flush, as for [`Free`](Self::Free)): the piece
    /// starts `offset % units` quanta in (`units`: its size in quanta) plus
    /// `skew` units, and is `size % units + 1` quanta long, or reaches the
    /// end of the size asked for when `size % 4 == 0`. With `inside` the
    /// address passed is one quantum into the allocation (not a start, unless
    /// another allocation starts there). The model knows which are bad.
    FreePart {
        /// Which allocation.
        pick: usize,
        /// Where the piece starts, in quanta (modulo the allocation's).
        offset: usize,
        /// How long the piece is, in quanta (modulo), or to the end.
        size: usize,
        /// Units added to the offset (non-zero: usually a bad piece).
        skew: usize,
        /// Pass an address inside the allocation rather than its start.
        inside: bool,
    },
    /// [`Arena::resize`] of taken range `pick % occupied` (refused when it
    /// waits for its flush) to `size`, its old size claimed as the size
    /// asked for plus `claim` (non-zero: a bad claim). The model predicts
    /// whether it grows in place (never into a range waiting for its flush).
    Resize {
        /// Which allocation.
        pick: usize,
        /// The new size (zero: refused).
        size: usize,
        /// Added to the old size claimed.
        claim: usize,
    },
    /// A free by address that may well be bad: the model knows (a held
    /// allocation's address is one).
    BadFree {
        /// Address.
        addr: usize,
        /// Size.
        size: usize,
    },
    /// [`Arena::free_handle`] of a handle that may well be bad: the address
    /// of taken range `pick % occupied` with the handle tag of taken range
    /// `tag_of % occupied` (its own when `tag_of` is `usize::MAX`) plus
    /// `offset`. The model knows whether that names a held allocation.
    BadHandle {
        /// Whose address.
        pick: usize,
        /// Whose tag (`usize::MAX`: the same allocation's).
        tag_of: usize,
        /// Added to the tag.
        offset: u32,
    },
}

/// Where the generated operations aim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaOpConfig {
    /// Start of the address window spans are added in.
    pub base: usize,
    /// Size of that window.
    pub extent: usize,
    /// The arena's quantum.
    pub quantum: usize,
    /// The largest ordinary allocation size, in quanta (allocations, resizes
    /// and constrained allocations; at least 1, and at most half the address
    /// space in bytes).
    pub max_quanta: usize,
    /// Whether to generate adds and extends (without them, an arena with a
    /// source lives on imports alone).
    pub spans: bool,
    /// Frees that are deferred (by [`Arena::free_deferred`] or
    /// [`Arena::free_handle_deferred`]), per mille.
    pub deferred: u32,
}

impl ArenaOpConfig {
    /// A window of `extent` units at `base` for an arena of `quantum`.
    pub const fn new(base: usize, extent: usize, quantum: usize) -> Self {
        ArenaOpConfig { base, extent, quantum, max_quanta: 64, spans: true, deferred: 250 }
    }

    /// The same, generating adds and extends or not.
    pub const fn with_spans(mut self, spans: bool) -> Self {
        self.spans = spans;
        self
    }

    /// The same, deferring `per_mille` of the frees (a quarter by default;
    /// at most all of them). More deferred frees also mean more flushes:
    /// one operation in a hundred by default, one in twenty from half the
    /// frees deferred.
    pub const fn with_deferred(mut self, per_mille: u32) -> Self {
        self.deferred = if per_mille > 1000 { 1000 } else { per_mille };
        self
    }

    fn quanta(&self) -> usize {
        (self.extent / self.quantum.max(1)).max(1)
    }

    /// The configuration the operations are made for: a quantum of 0 taken
    /// as 1 and one above 2^27 (the arena's largest) as 2^27, a window
    /// running past the top of the address space cut at it, and
    /// `max_quanta` between 1 and half the address space in quanta, so that
    /// no address or size an operation computes overflows (the fields are
    /// public: any values may come in).
    fn sane(&self) -> Self {
        let quantum = self.quantum.clamp(1, 1 << 27);
        let extent = self.extent.min(usize::MAX - self.base).min(usize::MAX - 1);
        let max_quanta = self.max_quanta.clamp(1, (usize::MAX >> 1) / quantum);
        ArenaOpConfig { quantum, extent, max_quanta, ..*self }
    }
}

fn policy_of(x: usize) -> Policy {
    Policy::ALL[x % Policy::ALL.len()]
}

impl ArenaOp {
    /// Decode one operation from fuzzer bytes (consuming up to 12 of them);
    /// `None` when they run out.
    pub fn decode(bytes: &mut &[u8], cfg: &ArenaOpConfig) -> Option<ArenaOp> {
        let cfg = &cfg.sane();
        let (head, rest) = bytes.split_first_chunk::<12>()?;
        *bytes = rest;
        let mut rng = Rng::new(u64::from_le_bytes(head[4..12].try_into().ok()?));
        let sel = head[0];
        let a = head[1] as usize;
        let b = head[2] as usize;
        let c = head[3] as usize;
        let q = cfg.quantum;
        Some(match sel % 16 {
            0 => ArenaOp::Add { base: cfg.base + (a * 97 % cfg.quanta()) * q, size: (b + 1) * q },
            1 => {
                ArenaOp::Extend { base: cfg.base + (a * 97 % cfg.quanta()) * q, size: (b + 1) * q }
            }
            2..=6 => ArenaOp::Alloc {
                size: (a % cfg.max_quanta.max(1) + 1) * q - (c % q),
                policy: policy_of(b),
                held: sel & 0x80 != 0,
            },
            7..=10 => ArenaOp::XAlloc {
                constraints: random_constraints(&mut rng, cfg),
                held: sel & 0x80 != 0,
            },
            11..=14 if sel & 0x80 == 0 => {
                ArenaOp::Free { pick: a | (b << 8), deferred: sel & 0x40 != 0 }
            }
            11..=14 if sel & 0x40 == 0 => free_part_op(&mut rng, a | (b << 8)),
            11..=14 => resize_op(&mut rng, cfg, a | (b << 8)),
            _ if sel & 0x80 != 0 => {
                let tag_of = if c & 0x40 != 0 { usize::MAX } else { b };
                ArenaOp::BadHandle { pick: a, tag_of, offset: bad_tag_offset(c) }
            }
            _ if sel & 0x40 != 0 => ArenaOp::Flush,
            _ => ArenaOp::BadFree {
                addr: cfg.base + (a * 31 % cfg.quanta()) * q,
                size: (b % 8 + 1) * q,
            },
        })
    }
}

/// What a bad-handle operation adds to a live handle's tag: mostly nothing
/// (valid when the address is that allocation's), one either way, or far.
fn bad_tag_offset(x: usize) -> u32 {
    match x % 8 {
        0..=3 => 0,
        4 => 1,
        5 => u32::MAX,
        _ => (x as u32).wrapping_mul(0x9e37_79b9),
    }
}

/// A partial free of allocation `pick`: mostly good pieces (middle, start,
/// end), some bad on purpose.
fn free_part_op(r: &mut Rng, pick: usize) -> ArenaOp {
    let skew = if r.chance(100) { 1 + r.below(64) } else { 0 };
    ArenaOp::FreePart {
        pick,
        offset: if r.chance(300) { 0 } else { r.below(64) },
        size: r.below(64),
        skew,
        inside: r.chance(50),
    }
}

/// A resize of allocation `pick`: shrinking or growing, some bad claims and
/// zero sizes.
fn resize_op(r: &mut Rng, cfg: &ArenaOpConfig, pick: usize) -> ArenaOp {
    let q = cfg.quantum;
    let size = match r.below(100) {
        0..=2 => 0,
        3..=89 => {
            r.between(1, 8.min(cfg.max_quanta)) * q - if r.chance(300) { r.below(q) } else { 0 }
        }
        _ => r.between(1, cfg.max_quanta.max(1)) * q,
    };
    ArenaOp::Resize { pick, size, claim: if r.chance(50) { 1 + r.below(q) } else { 0 } }
}

/// Random constraints within the configured window, some of them
/// over-constrained or impossible on purpose.
fn random_constraints(r: &mut Rng, cfg: &ArenaOpConfig) -> Constraints {
    let q = cfg.quantum;
    let size = r.between(1, cfg.max_quanta.max(1)) * q - if r.chance(300) { r.below(q) } else { 0 };
    let mut c = Constraints::new(Size(size)).policy(policy_of(r.below(4))).from_top(r.chance(300));
    if r.chance(500) {
        let align = q << r.below(6);
        c = c.align(Size(align));
        if r.chance(400) {
            c = c.phase(Size(r.below(align / q) * q));
        }
    }
    if r.chance(300) {
        c = c.nocross(Size(q << r.between(2, 9)));
    }
    if r.chance(300) {
        c = c.min_addr(Addr(cfg.base + r.below(cfg.extent)));
    }
    if r.chance(300) {
        c = c.max_addr(Addr(cfg.base + r.below(cfg.extent + 1)));
    }
    if r.chance(100) {
        c = c.exact(Addr(cfg.base + r.below(cfg.quanta()) * q));
    }
    c
}

/// Generates [`ArenaOp`]s for a configured window.
#[derive(Debug, Clone)]
pub struct ArenaOpGen {
    rng: Rng,
    cfg: ArenaOpConfig,
}

impl ArenaOpGen {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64, cfg: ArenaOpConfig) -> Self {
        ArenaOpGen { rng: Rng::new(seed), cfg: cfg.sane() }
    }

    /// The next operation. `occupied` (the model's taken ranges:
    /// [`ArenaModel::occupied`]) steers the mix towards frees when it nears
    /// `capacity`.
    pub fn next_op(&mut self, occupied: usize, capacity: usize) -> ArenaOp {
        let r = &mut self.rng;
        let cfg = &self.cfg;
        let q = cfg.quantum;
        let full = occupied * 4 >= capacity * 3;
        let roll = match r.below(100) {
            0..=5 if !cfg.spans => 50,
            x => x,
        };
        match roll {
            0..=3 => {
                let quanta = r.between(1, (cfg.quanta() / 4).max(1));
                let at = r.below(cfg.quanta() - quanta.min(cfg.quanta()) + 1);
                ArenaOp::Add { base: cfg.base + at * q, size: quanta * q }
            }
            4..=5 => ArenaOp::Extend {
                base: cfg.base + r.below(cfg.quanta()) * q,
                size: r.between(1, 16) * q,
            },
            6..=7 => {
                let addr = cfg.base + r.below(cfg.quanta()) * q;
                ArenaOp::BadFree { addr, size: r.between(1, 8) * q }
            }
            8 => ArenaOp::BadHandle {
                pick: r.below(usize::MAX),
                tag_of: if r.chance(500) { usize::MAX } else { r.below(usize::MAX) },
                offset: bad_tag_offset(r.below(usize::MAX)),
            },
            9 => ArenaOp::Flush,
            90..=93 if cfg.deferred >= 500 => ArenaOp::Flush,
            _ if full || (occupied > 0 && roll < 33) => {
                ArenaOp::Free { pick: r.below(usize::MAX), deferred: r.chance(cfg.deferred) }
            }
            64..=69 if occupied > 0 => {
                let pick = r.below(usize::MAX);
                free_part_op(r, pick)
            }
            94..=99 if occupied > 0 => {
                let pick = r.below(usize::MAX);
                resize_op(r, cfg, pick)
            }
            33..=69 => {
                // Small sizes nine times in ten (the same draws whenever
                // max_quanta is at least 9), never above max_quanta.
                let max = cfg.max_quanta;
                let quanta = if r.chance(900) {
                    r.between(1, 8.min(max))
                } else {
                    r.between(9.min(max), max)
                };
                let size = quanta * q - if r.chance(300) { r.below(q) } else { 0 };
                ArenaOp::Alloc { size, policy: policy_of(r.below(4)), held: r.chance(300) }
            }
            _ => ArenaOp::XAlloc { constraints: random_constraints(r, cfg), held: r.chance(300) },
        }
    }
}

/// Generate `steps` operations from `seed` and drive them through `arena`
/// (which must start empty) with a model of `N` allocations and `M` spans.
// The error carries the operation for the report; there is no heap to box it in.
#[allow(clippy::result_large_err)]
pub fn run<S: Store, I: Source, const N: usize, const M: usize>(
    arena: &mut Arena<S, I>,
    cfg: ArenaOpConfig,
    seed: u64,
    steps: usize,
) -> Result<ArenaRunStats, ArenaRunError> {
    run_on::<_, N, M>(arena, cfg, seed, steps)
}

/// [`run`] on any [`ArenaTarget`].
// The error carries the operation for the report; there is no heap to box it in.
#[allow(clippy::result_large_err)]
pub fn run_on<A: ArenaTarget, const N: usize, const M: usize>(
    arena: &mut A,
    cfg: ArenaOpConfig,
    seed: u64,
    steps: usize,
) -> Result<ArenaRunStats, ArenaRunError> {
    let mut driver = ArenaDriver::<N, M>::new();
    driver.run(arena, &mut ArenaOpGen::new(seed, cfg), steps)?;
    Ok(driver.stats())
}

impl<const N: usize, const M: usize> ArenaDriver<N, M> {
    /// Apply the next `steps` operations of `gen` (steered by the model's
    /// occupancy against `N`), each checked.
    // The error carries the operation for the report; there is no heap to box it in.
    #[allow(clippy::result_large_err)]
    pub fn run<A: ArenaTarget>(
        &mut self,
        arena: &mut A,
        gen: &mut ArenaOpGen,
        steps: usize,
    ) -> Result<(), ArenaRunError> {
        for _ in 0..steps {
            let op = gen.next_op(self.model().occupied(), N);
            self.step(arena, &op)?;
        }
        Ok(())
    }
}
