//! Allocation policies and the constraints of `xalloc`.

use vmspace_shim::{align, Addr, Size};

use super::ArenaError;

/// How an arena chooses the free segment an allocation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// The first segment on the first free list whose members are all large
    /// enough: O(1) for unconstrained requests (vmem's default). Falls back to
    /// searching the next-smaller list, so it fails only when nothing fits.
    #[default]
    InstantFit,
    /// The smallest free segment that fits (searching the free lists from the
    /// smallest that can hold a fit).
    BestFit,
    /// The lowest-addressed free segment that fits (the highest-addressed one
    /// when allocating from the top). O(segments).
    FirstFit,
    /// The first fit at or after the rotor, the address where the last
    /// next-fit allocation ended (whether or not it has been freed since),
    /// in address order, wrapping round to the lowest when there is none:
    /// addresses are reused as late as possible (process IDs, catching use
    /// after free). O(segments) worst case.
    NextFit,
}

impl Policy {
    /// Every policy.
    pub const ALL: [Policy; 4] =
        [Policy::InstantFit, Policy::BestFit, Policy::FirstFit, Policy::NextFit];
}

/// The constraints of a constrained allocation ([`Arena::xalloc`]).
///
/// Built with chained setters; everything but the size is optional:
///
/// ```
/// use vmspace::arena::{Constraints, Policy};
/// use vmspace::{Addr, Size};
/// let c = Constraints::new(Size(0x3000))
///     .align(Size(0x4000))
///     .phase(Size(0x1000))
///     .nocross(Size(0x10000))
///     .min_addr(Addr(0x100000))
///     .max_addr(Addr(0x200000))
///     .policy(Policy::BestFit);
/// assert_eq!(c.size(), Size(0x3000));
/// ```
///
/// [`Arena::xalloc`]: super::Arena::xalloc
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constraints {
    size: Size,
    align: Size,
    phase: Size,
    nocross: Size,
    min: Option<Addr>,
    max: Option<Addr>,
    exact: Option<Addr>,
    policy: Policy,
    top: bool,
}

impl Constraints {
    /// `size` units, aligned to the quantum, anywhere.
    pub const fn new(size: Size) -> Self {
        Constraints {
            size,
            align: Size(0),
            phase: Size(0),
            nocross: Size(0),
            min: None,
            max: None,
            exact: None,
            policy: Policy::InstantFit,
            top: false,
        }
    }

    /// The address must be `phase` more than a multiple of `align` (a power
    /// of two; smaller than the quantum means the quantum).
    pub const fn align(mut self, align: Size) -> Self {
        self.align = align;
        self
    }

    /// Offset from the alignment (a multiple of the quantum below `align`).
    pub const fn phase(mut self, phase: Size) -> Self {
        self.phase = phase;
        self
    }

    /// The allocation must not straddle a multiple of `boundary` (a power of
    /// two, at least the quantum).
    pub const fn nocross(mut self, boundary: Size) -> Self {
        self.nocross = boundary;
        self
    }

    /// The allocation must start at or above `addr`. A window that leaves
    /// some address out is served from the arena's spans, never imported
    /// (see [`Arena::xalloc`](super::Arena::xalloc)).
    pub const fn min_addr(mut self, addr: Addr) -> Self {
        self.min = Some(addr);
        self
    }

    /// The allocation must end at or below `addr` (exclusive limit). Never
    /// imported, as [`min_addr`](Self::min_addr).
    pub const fn max_addr(mut self, addr: Addr) -> Self {
        self.max = Some(addr);
        self
    }

    /// The allocation must start exactly at `addr`. Never imported, as
    /// [`min_addr`](Self::min_addr).
    pub const fn exact(mut self, addr: Addr) -> Self {
        self.exact = Some(addr);
        self
    }

    /// Choose the segment with `policy`.
    pub const fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// With `top` true, place the allocation at the highest suitable
    /// address of the segment chosen (and make first-fit choose the highest
    /// segment); false (the default) places it at the lowest.
    pub const fn from_top(mut self, top: bool) -> Self {
        self.top = top;
        self
    }

    /// The size asked for.
    pub const fn size(&self) -> Size {
        self.size
    }

    /// The policy.
    pub const fn chosen_policy(&self) -> Policy {
        self.policy
    }

    /// Check the constraints against an arena's `quantum` (a power of two)
    /// and turn them into the [`Request`] the arena places: the size rounded
    /// up to the quantum, the alignment at least the quantum, the address
    /// window narrowed to an exact address. The errors are the ones
    /// [`Arena::xalloc`](super::Arena::xalloc) returns for these constraints.
    pub fn validate(&self, quantum: usize) -> Result<Request, ArenaError> {
        if self.size.is_zero() {
            return Err(ArenaError::InvalidArgument("size is zero"));
        }
        let size = align::align_up(self.size.0, quantum)?;
        // Slack below the quantum (<= 2^31) fits a u32.
        let slack = (size - self.size.0) as u32;
        let mut align_v = self.align.0;
        if align_v != 0 && !align::is_power_of_two(align_v) {
            return Err(ArenaError::InvalidArgument("alignment is not a power of two"));
        }
        if align_v < quantum {
            align_v = quantum;
        }
        let phase = self.phase.0;
        if !align::is_aligned(phase, quantum) {
            return Err(ArenaError::Misaligned { value: phase, align: quantum });
        }
        if phase >= align_v {
            return Err(ArenaError::InvalidArgument("phase is not below the alignment"));
        }
        let nocross = self.nocross.0;
        if nocross != 0 {
            if !align::is_power_of_two(nocross) {
                return Err(ArenaError::InvalidArgument("nocross is not a power of two"));
            }
            if nocross < quantum {
                return Err(ArenaError::Misaligned { value: nocross, align: quantum });
            }
            // The offset inside a nocross block is at least phase % nocross.
            if (phase % nocross).checked_add(size).is_none_or(|e| e > nocross) {
                return Err(ArenaError::OverConstrained("size and phase exceed nocross"));
            }
        }
        let mut lo = self.min.map_or(0, |a| a.0);
        let mut hi = self.max.map_or(usize::MAX, |a| a.0);
        if let Some(a) = self.exact {
            let a = a.0;
            if !align::is_aligned(a, quantum) {
                return Err(ArenaError::Misaligned { value: a, align: quantum });
            }
            if align::align_up_with_phase(a, align_v, phase) != Ok(a) {
                return Err(ArenaError::OverConstrained("exact address breaks align/phase"));
            }
            let end = a.checked_add(size).ok_or(ArenaError::Overflow)?;
            if nocross != 0 && align::crosses_boundary(a, size, nocross) {
                return Err(ArenaError::OverConstrained("exact address crosses nocross"));
            }
            lo = lo.max(a);
            hi = hi.min(end);
        }
        if hi <= lo || hi - lo < size {
            return Err(ArenaError::OverConstrained("address window smaller than size"));
        }
        let constrained = align_v != quantum || nocross != 0 || lo != 0 || hi != usize::MAX;
        let req = Request {
            size,
            slack,
            align: align_v,
            phase,
            nocross,
            lo,
            hi,
            policy: self.policy,
            top: self.top,
            constrained,
            windowed: lo != 0 || hi != usize::MAX,
            held: false,
        };
        // Constraints that no address meets can never be met, however much
        // is freed: say so now rather than fail with `NoSpace` (which a
        // waiting caller would wait on for ever). An exact address was
        // checked above. Without a window the lowest candidate is the
        // phase itself (below the alignment, and clear of nocross by the
        // check above), so only its end can fail. A window (min or max) is
        // searched as a segment would be: the lowest placement in it is
        // the lowest in any segment of it. (Only then: the search costs
        // about a tenth of a constrained allocation.)
        if self.exact.is_none() {
            let none = if req.windowed {
                (Request { top: false, ..req }).place(lo, hi).is_none()
            } else {
                phase.checked_add(size).is_none()
            };
            if none {
                return Err(ArenaError::OverConstrained("no address meets the constraints"));
            }
        }
        Ok(req)
    }
}

/// Everything a [`Constraints`] holds, as given (nothing validated or
/// rounded): for callers that carry constraints elsewhere, such as the
/// `/dev/vmspace` client, which passes them to the kernel field by field.
/// [`Constraints::from`] rebuilds the same constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConstraintParts {
    /// The size asked for.
    pub size: Size,
    /// The alignment (0: the quantum).
    pub align: Size,
    /// The phase.
    pub phase: Size,
    /// The boundary not to cross (0: none).
    pub nocross: Size,
    /// The lowest address, if set.
    pub min: Option<Addr>,
    /// The address to end at or below, if set.
    pub max: Option<Addr>,
    /// The exact address, if set.
    pub exact: Option<Addr>,
    /// The policy.
    pub policy: Policy,
    /// Whether the highest placement is wanted.
    pub top: bool,
}

impl Constraints {
    /// The constraints as given, field by field.
    pub const fn parts(&self) -> ConstraintParts {
        ConstraintParts {
            size: self.size,
            align: self.align,
            phase: self.phase,
            nocross: self.nocross,
            min: self.min,
            max: self.max,
            exact: self.exact,
            policy: self.policy,
            top: self.top,
        }
    }
}

impl From<ConstraintParts> for Constraints {
    fn from(p: ConstraintParts) -> Self {
        Constraints {
            size: p.size,
            align: p.align,
            phase: p.phase,
            nocross: p.nocross,
            min: p.min,
            max: p.max,
            exact: p.exact,
            policy: p.policy,
            top: p.top,
        }
    }
}

/// Validated constraints, sizes rounded to the quantum: what the arena
/// places ([`Constraints::validate`]). Reference models and callers that
/// want to predict a placement read it through its accessors.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub(crate) size: usize,
    pub(crate) slack: u32,
    pub(crate) align: usize,
    pub(crate) phase: usize,
    pub(crate) nocross: usize,
    pub(crate) lo: usize,
    pub(crate) hi: usize,
    pub(crate) policy: Policy,
    pub(crate) top: bool,
    /// Anything beyond size (the quantum alignment is implicit).
    pub(crate) constrained: bool,
    /// A min or max address is set.
    pub(crate) windowed: bool,
    /// The result is held by a [`Handle`](super::Handle), not hashed.
    pub(crate) held: bool,
}

impl Request {
    /// The size placed: the size asked for, rounded up to the quantum.
    pub fn size(&self) -> Size {
        Size(self.size)
    }

    /// The alignment (a power of two, at least the quantum).
    pub fn align(&self) -> Size {
        Size(self.align)
    }

    /// The phase: placements are `align * k + phase`.
    pub fn phase(&self) -> Size {
        Size(self.phase)
    }

    /// The boundary the allocation may not cross (0: none).
    pub fn nocross(&self) -> Size {
        Size(self.nocross)
    }

    /// The lowest address the allocation may start at.
    pub fn min(&self) -> Addr {
        Addr(self.lo)
    }

    /// The address the allocation must end at or below (`usize::MAX`: none).
    pub fn max(&self) -> Addr {
        Addr(self.hi)
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Whether the highest placement is wanted.
    pub fn from_top(&self) -> bool {
        self.top
    }

    /// A plain request: `size` (already a multiple of the quantum).
    #[inline]
    pub(crate) fn plain(size: usize, slack: u32, quantum: usize, policy: Policy) -> Self {
        Request {
            size,
            slack,
            align: quantum,
            phase: 0,
            nocross: 0,
            lo: 0,
            hi: usize::MAX,
            policy,
            top: false,
            constrained: false,
            windowed: false,
            held: false,
        }
    }

    /// Where in the free segment `[s, e)` this request goes, if it fits.
    #[inline]
    pub(crate) fn place(&self, s: usize, e: usize) -> Option<usize> {
        let start = s.max(self.lo);
        let end = e.min(self.hi);
        if end <= start || end - start < self.size {
            return None;
        }
        if !self.constrained {
            return Some(if self.top { end - self.size } else { start });
        }
        let t = if self.top { self.place_down(end) } else { self.place_up(start) }?;
        (t >= start && t.checked_add(self.size)? <= end).then_some(t)
    }

    fn place_up(&self, start: usize) -> Option<usize> {
        let mut t = align::align_up_with_phase(start, self.align, self.phase).ok()?;
        if self.nocross != 0 && align::crosses_boundary(t, self.size, self.nocross) {
            let b = align::next_boundary(t, self.nocross).ok()?;
            t = align::align_up_with_phase(b, self.align, self.phase).ok()?;
            if align::crosses_boundary(t, self.size, self.nocross) {
                return None;
            }
        }
        Some(t)
    }

    fn place_down(&self, end: usize) -> Option<usize> {
        let mut t = align::align_down_with_phase(end - self.size, self.align, self.phase)?;
        if self.nocross != 0 && align::crosses_boundary(t, self.size, self.nocross) {
            // The boundary inside the allocation; end at or below it.
            let b = align::align_down(t + self.size - 1, self.nocross)?;
            t = align::align_down_with_phase(b.checked_sub(self.size)?, self.align, self.phase)?;
            if align::crosses_boundary(t, self.size, self.nocross) {
                return None;
            }
        }
        Some(t)
    }

    /// Whether `t` satisfies every constraint (for tests).
    #[cfg(test)]
    pub(crate) fn satisfied_by(&self, t: usize) -> bool {
        t >= self.lo
            && t.checked_add(self.size).is_some_and(|e| e <= self.hi)
            && align::align_up_with_phase(t, self.align, self.phase) == Ok(t)
            && (self.nocross == 0 || !align::crosses_boundary(t, self.size, self.nocross))
    }
}

#[cfg(test)]
mod tests;
