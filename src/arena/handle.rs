//! Allocations freed by handle: no address lookup on either side.
//!
//! [`Arena::alloc`] enters every allocation in the address hash so that
//! [`Arena::free`] can find it from the address alone (vmem's interface).
//! A caller that keeps a record of each allocation anyway (a GPU heap, a
//! slab of objects, an offset allocator's user) can keep the boundary tag's
//! index in it instead: [`Arena::alloc_handle`] skips the hash and returns a
//! [`Handle`], and [`Arena::free_handle`] goes straight to the tag. That
//! saves the hash's work and, in a big arena, its cache misses (a bucket
//! write on allocation; a bucket and chain read on free).
//!
//! The free is still checked: the handle must come from this arena and its
//! tag must be a held segment at the handle's address, or the free is
//! refused and nothing changes. That is the guarantee a by-address free
//! gives: a stale handle is refused unless its tag has since been reused for
//! a new held allocation at the same address, which it then frees (as
//! `free(addr, size)` would).
//!
//! A handle carries a 32-bit fingerprint of the arena that made it (a hash
//! of the address of the arena's tag table, which no two live arenas share),
//! so a handle passed to another arena is refused even when that arena was
//! built alike and holds an allocation at the same address in the same tag.
//! Two live arenas have the same fingerprint with probability about 2^-32;
//! only then, and only if the tag and address match too, would a foreign
//! handle be taken for one of this arena's.
//!
//! An arena made after another is dropped may get the same tag table
//! address (its store reuses the memory), and so the dropped arena's
//! fingerprint: a handle kept past the drop would then be taken. The core
//! draws no random numbers (it has no source of them), so a caller that may
//! keep handles past an arena's life gives each arena a random salt with
//! [`Arena::salt_handles`]; the C API does, for every arena it makes.
//!
//! The two interfaces share the arena's space, policies, constraints,
//! imports, statistics and walks; an allocation is freed through the
//! interface that made it (a held segment is not in the hash, so
//! [`Arena::free`] of its address is a bad free).

use core::num::NonZeroU32;

use vmspace_shim::{Addr, Range, Size};

use super::constraints::{Constraints, Policy};
use super::source::Source;
use super::store::Store;
use super::tag::{Tag, K_HELD};
use super::{Arena, ArenaError};

/// One allocation made by [`Arena::alloc_handle`] or
/// [`Arena::xalloc_handle`]: its address and its boundary tag's index. Give
/// it back to [`Arena::free_handle`].
///
/// A handle is a plain value: the address, the tag index and the arena's
/// fingerprint, 16 bytes on 64-bit targets (tag 0 is the arena's list head,
/// never a segment, so `Option<Handle>` is no larger). A caller short of
/// room can keep the address and tag in a narrower form and rebuild the
/// handle with [`Arena::handle_from_parts`]: the free checks it either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle {
    addr: Addr,
    tag: NonZeroU32,
    arena: u32,
}

impl Handle {
    /// The allocation's address.
    #[inline]
    pub fn addr(&self) -> Addr {
        self.addr
    }

    /// The index of the allocation's boundary tag (meaningful only to the
    /// arena that made it).
    #[inline]
    pub fn tag(&self) -> u32 {
        self.tag.get()
    }

    /// The fingerprint of the arena that made the handle (see the module
    /// documentation): a caller that keeps handles in a narrower form of its
    /// own (the C API's `struct vmspace_handle`) keeps this too, so that a
    /// handle given to another arena is still refused.
    #[inline]
    pub fn arena(&self) -> u32 {
        self.arena
    }

    /// The handle with these parts, as [`addr`](Self::addr),
    /// [`tag`](Self::tag) and [`arena`](Self::arena) gave them; `None` for tag
    /// 0 (never a segment's). Nothing is looked up: the free checks the
    /// result, and refuses it unless it names a live held allocation of the
    /// arena it is given to.
    #[inline]
    pub fn from_parts(addr: Addr, tag: u32, arena: u32) -> Option<Handle> {
        NonZeroU32::new(tag).map(|tag| Handle { addr, tag, arena })
    }
}

impl<S: Store, I: Source> Arena<S, I> {
    /// Mix `salt` into the fingerprint this arena's handles carry, so that
    /// an arena made at the address of a dropped one (same tag table) does
    /// not take the dropped one's handles: give each arena a random salt
    /// (`getrandom`, `get_random_u32`). Refused with
    /// [`InvalidArgument`](ArenaError::InvalidArgument) while a handle of
    /// this arena holds an allocation (it would be refused afterwards);
    /// salting again replaces the salt.
    pub fn salt_handles(&mut self, salt: u32) -> Result<(), ArenaError> {
        if self.held != 0 {
            return Err(ArenaError::InvalidArgument("handles of this arena hold allocations"));
        }
        self.id = fingerprint(self.tags.base()) ^ salt;
        Ok(())
    }

    /// The handle of this arena with these parts, `None` for tag 0 (never a
    /// segment's): how a caller that kept only a handle's address and tag
    /// rebuilds it. Nothing is looked up; [`free_handle`](Self::free_handle)
    /// checks the result.
    #[inline]
    pub fn handle_from_parts(&self, addr: Addr, tag: u32) -> Option<Handle> {
        Handle::from_parts(addr, tag, self.id)
    }

    /// Allocate `size` units (rounded up to the quantum) under `policy`, as
    /// [`alloc`](Self::alloc) does, but held by the returned [`Handle`]
    /// instead of entered in the address hash. Free it with
    /// [`free_handle`](Self::free_handle).
    #[inline]
    pub fn alloc_handle(&mut self, size: Size, policy: Policy) -> Result<Handle, ArenaError> {
        let id = self.id;
        self.alloc_plain(size, policy, true).map(|at| held(at, id))
    }

    /// Allocate under `constraints`, as [`xalloc`](Self::xalloc) does, but
    /// held by the returned [`Handle`].
    pub fn xalloc_handle(&mut self, constraints: &Constraints) -> Result<Handle, ArenaError> {
        let id = self.id;
        self.alloc_constrained(constraints, true).map(|at| held(at, id))
    }

    /// Free the allocation `handle` holds, in O(1) without an address
    /// lookup, and return the size it was allocated with. A handle that
    /// holds no live allocation of this arena (a stale one, another
    /// arena's) is refused with
    /// [`ArenaError::BadHandle`] and nothing changes but the bad-free
    /// counter.
    #[inline]
    pub fn free_handle(&mut self, handle: Handle) -> Result<Size, ArenaError> {
        let t = self.take_held(handle)?;
        self.free_segment(handle.tag(), &t);
        Ok(Size(t.requested()))
    }

    /// The held segment `handle` names, no longer counted as held (the
    /// caller frees or defers it); a handle that holds no live allocation
    /// of this arena is [`ArenaError::BadHandle`], counted as a bad free.
    /// As [`take_live`](Self::take_live) is for an address.
    #[inline(always)]
    pub(crate) fn take_held(&mut self, handle: Handle) -> Result<Tag, ArenaError> {
        let Some(t) = self.held_tag(handle).copied() else {
            self.counters.bad_frees += 1;
            return Err(ArenaError::BadHandle { addr: handle.addr, tag: handle.tag() });
        };
        self.held -= 1;
        Ok(t)
    }

    /// The live allocation `handle` holds, if it does: its range and the
    /// size asked for (as [`lookup`](Self::lookup) gives for an address).
    pub fn lookup_handle(&self, handle: Handle) -> Option<(Range, Size)> {
        super::stats::allocation(self.held_tag(handle)?)
    }

    /// The held segment's tag `handle` names, if the handle is this arena's
    /// and the tag a held segment at its address.
    #[inline]
    fn held_tag(&self, handle: Handle) -> Option<&Tag> {
        if handle.arena != self.id {
            return None;
        }
        let t = self.tags.try_get(handle.tag())?;
        (t.kind() == K_HELD && t.start == handle.addr.0).then_some(t)
    }
}

/// The handle of the held segment at `addr` in tag `tag` (never 0, the
/// list head; `u32::MAX`, never a tag, would stand in) of arena `id`.
#[inline]
fn held((addr, tag): (usize, u32), arena: u32) -> Handle {
    Handle { addr: Addr(addr), tag: NonZeroU32::new(tag).unwrap_or(NonZeroU32::MAX), arena }
}

/// The fingerprint of the arena whose tag table starts at `base`: the high
/// half of a multiplicative hash (Fibonacci hashing) of the address, so
/// tables at nearby addresses get unrelated fingerprints.
pub(crate) fn fingerprint(base: *const u8) -> u32 {
    ((base as usize as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::cell::Cell;
    use core::mem::size_of;
    use std::vec;

    use super::*;
    use crate::arena::{NoSource, SegmentKinds, SliceStore};

    fn arena<'a>(tb: &'a mut [u8], hb: &'a mut [u8]) -> Arena<SliceStore<'a>, NoSource> {
        let mut a =
            Arena::new("h", Size(16), SliceStore::new(tb), SliceStore::new(hb), NoSource).unwrap();
        a.add(Addr(0x1000), Size(0x1000)).unwrap();
        a
    }

    #[test]
    fn handles_allocate_free_and_coalesce_without_the_hash() {
        let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 4096]);
        let mut a = arena(&mut tb, &mut hb);
        let h = a.alloc_handle(Size(10), Policy::InstantFit).unwrap();
        let x = a.alloc(Size(32), Policy::InstantFit).unwrap();
        let c = Constraints::new(Size(40)).align(Size(256)).phase(Size(32));
        let k = a.xalloc_handle(&c).unwrap();
        assert_eq!(k.addr().0 % 256, 32);
        a.check().unwrap();
        assert_eq!(a.live(), 3);
        assert_eq!(a.sizes().allocated, Size(16 + 32 + 48));
        let range = |h: Handle, n| Range::from_size(h.addr(), Size(n)).unwrap();
        assert_eq!(a.lookup_handle(h), Some((range(h, 16), Size(10))));
        assert_eq!(a.lookup_handle(k), Some((range(k, 48), Size(40))));
        // Held segments are not in the hash; hashed ones have no handle.
        assert_eq!(a.lookup(h.addr()), None);
        let held: vec::Vec<bool> = a.walk(SegmentKinds::ALLOCATED).map(|s| s.held).collect();
        assert_eq!(held.iter().filter(|&&b| b).count(), 2);
        assert_eq!(a.free_handle(h), Ok(Size(10)));
        assert_eq!(a.free_handle(k), Ok(Size(40)));
        a.free(x, Size(32)).unwrap();
        a.check().unwrap();
        assert_eq!(a.walk(SegmentKinds::FREE).count(), 1, "everything coalesced");
        assert_eq!(a.counters().frees, 3);
        assert_eq!(a.counters().lookups, 1, "only the by-address free looked up");
    }

    #[test]
    fn bad_handles_and_mixed_interfaces_change_nothing() {
        let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 4096]);
        let mut a = arena(&mut tb, &mut hb);
        let h = a.alloc_handle(Size(16), Policy::FirstFit).unwrap();
        let x = a.alloc(Size(16), Policy::FirstFit).unwrap();
        let before = (a.sizes(), a.live());
        // A held allocation is not freed by address.
        let e = a.free(h.addr(), Size(16));
        assert!(matches!(e, Err(ArenaError::BadFree { allocated: None, .. })));
        // Handles to the wrong address, to a hashed segment, to a tag past
        // the table, to a free list's sentinel (tag 1, at address 0), with
        // tag 0.
        let wrong = [
            a.handle_from_parts(x, h.tag()).unwrap(),
            a.handle_from_parts(Addr(h.addr().0 + 16), h.tag()).unwrap(),
            a.handle_from_parts(h.addr(), h.tag() + 1).unwrap(),
            a.handle_from_parts(h.addr(), u32::MAX).unwrap(),
            a.handle_from_parts(Addr(0), 1).unwrap(),
            a.handle_from_parts(h.addr(), 1).unwrap(),
        ];
        for w in wrong {
            assert_eq!(a.lookup_handle(w), None);
            assert_eq!(
                a.free_handle(w),
                Err(ArenaError::BadHandle { addr: w.addr(), tag: w.tag() })
            );
        }
        assert_eq!(a.handle_from_parts(h.addr(), 0), None);
        assert_eq!(a.handle_from_parts(h.addr(), h.tag()), Some(h), "rebuilt whole");
        assert_eq!((a.sizes(), a.live()), before);
        assert_eq!(a.counters().bad_frees, 7);
        a.check().unwrap();
        // Freed once, a handle is stale: refused the second time.
        assert_eq!(a.free_handle(h), Ok(Size(16)));
        assert!(matches!(a.free_handle(h), Err(ArenaError::BadHandle { .. })));
        a.check().unwrap();
    }

    #[test]
    fn failures_count_and_leaks_include_held_segments() {
        let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 4096]);
        let mut a = arena(&mut tb, &mut hb);
        assert_eq!(
            a.alloc_handle(Size(0), Policy::InstantFit),
            Err(ArenaError::InvalidArgument("size is zero"))
        );
        assert!(matches!(
            a.alloc_handle(Size(0x2000), Policy::BestFit),
            Err(ArenaError::NoSpace { .. })
        ));
        let c = Constraints::new(Size(64)).nocross(Size(32));
        assert!(matches!(a.xalloc_handle(&c), Err(ArenaError::OverConstrained(_))));
        assert_eq!(a.counters().failures, 3);
        a.check().unwrap();
        std::thread_local!(static LEAKED: Cell<usize> = const { Cell::new(0) });
        fn hook(_: &'static str, r: Range) {
            LEAKED.with(|l| l.set(l.get() + r.size().0));
        }
        a.set_leak_hook(Some(hook));
        let _kept = a.alloc_handle(Size(40), Policy::InstantFit).unwrap();
        drop(a);
        assert_eq!(LEAKED.with(Cell::get), 40, "the size asked, not the segment's 48");
    }

    #[test]
    fn a_handle_of_another_arena_is_refused() {
        // Two arenas built alike: the same spans, the same tags in use.
        let (mut ta, mut ha) = (vec![0u8; 1 << 16], vec![0u8; 4096]);
        let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 4096]);
        let mut a = arena(&mut ta, &mut ha);
        let mut b = arena(&mut tb, &mut hb);
        let ha = a.alloc_handle(Size(16), Policy::InstantFit).unwrap();
        let hb = b.alloc_handle(Size(48), Policy::InstantFit).unwrap();
        assert_eq!((ha.addr(), ha.tag()), (hb.addr(), hb.tag()), "alike, part for part");
        assert_eq!(b.lookup_handle(ha), None);
        assert_eq!(
            b.free_handle(ha),
            Err(ArenaError::BadHandle { addr: ha.addr(), tag: ha.tag() })
        );
        assert_eq!(b.live(), 1, "B's allocation is still live");
        assert_eq!(b.free_handle(hb), Ok(Size(48)));
        assert_eq!(a.free_handle(ha), Ok(Size(16)));
        a.check().unwrap();
        b.check().unwrap();
    }

    /// An arena made on the store of a dropped one has its fingerprint
    /// (the same tag table address) and takes its handles, unless salted;
    /// with another salt it refuses them. A salt is refused while handles
    /// hold allocations.
    #[test]
    fn a_salt_tells_an_arena_from_a_dropped_one_at_its_address() {
        let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 4096]);
        let old = {
            let mut a = arena(&mut tb, &mut hb);
            a.salt_handles(0x1234_5678).unwrap();
            a.alloc_handle(Size(16), Policy::InstantFit).unwrap()
        };
        let mut b = arena(&mut tb, &mut hb);
        let unsalted = b.alloc_handle(Size(16), Policy::InstantFit).unwrap();
        assert_eq!((unsalted.addr(), unsalted.tag()), (old.addr(), old.tag()));
        assert_ne!(unsalted.arena(), old.arena());
        assert_eq!(
            b.salt_handles(7),
            Err(ArenaError::InvalidArgument("handles of this arena hold allocations"))
        );
        b.free_handle(unsalted).unwrap();
        // The same salt as the dropped arena: its handles are taken (why
        // salts must be random).
        b.salt_handles(0x1234_5678).unwrap();
        let same = b.alloc_handle(Size(16), Policy::InstantFit).unwrap();
        assert_eq!(same, old);
        b.free_handle(same).unwrap();
        b.salt_handles(0x9abc_def0).unwrap();
        let cur = b.alloc_handle(Size(16), Policy::InstantFit).unwrap();
        assert_eq!((cur.addr(), cur.tag()), (old.addr(), old.tag()));
        assert_eq!(
            b.free_handle(old),
            Err(ArenaError::BadHandle { addr: old.addr(), tag: old.tag() })
        );
        assert_eq!(b.live(), 1);
        b.free_handle(cur).unwrap();
        b.check().unwrap();
    }

    #[test]
    fn an_optional_handle_is_no_larger() {
        assert_eq!(size_of::<Option<Handle>>(), size_of::<Handle>());
    }
}
