//! [`ArenaTarget`]: what [`ArenaDriver`](super::ArenaDriver) needs of an
//! arena, so the same model-checked sequences drive the in-process
//! [`Arena`] and an arena that lives elsewhere (the kernel's, through
//! `/dev/vmspace`: `vmspace_user::kdev::DevArena`).

use vmspace_shim::{Addr, Range, Size};

use vmspace::arena::{
    Arena, ArenaError, Constraints, Counters, Handle, Policy, Segment, SegmentKinds, Sizes, Source,
    Store,
};

/// An arena the driver can drive: the operations and observations of
/// [`Arena`] the model checks, with the same meanings and errors.
pub trait ArenaTarget {
    /// What [`alloc_handle`](Self::alloc_handle) returns.
    type Handle: Copy;
    /// What [`walk`](Self::walk) returns.
    type Walk<'a>: Iterator<Item = Segment>
    where
        Self: 'a;

    /// [`Arena::quantum`].
    fn quantum(&self) -> Size;
    /// [`Arena::walk`].
    fn walk(&self, kinds: SegmentKinds) -> Self::Walk<'_>;
    /// [`Arena::add`].
    fn add(&mut self, base: Addr, size: Size) -> Result<(), ArenaError>;
    /// [`Arena::extend`].
    fn extend(&mut self, base: Addr, size: Size) -> Result<(), ArenaError>;
    /// [`Arena::alloc`].
    fn alloc(&mut self, size: Size, policy: Policy) -> Result<Addr, ArenaError>;
    /// [`Arena::xalloc`].
    fn xalloc(&mut self, constraints: &Constraints) -> Result<Addr, ArenaError>;
    /// [`Arena::alloc_handle`].
    fn alloc_handle(&mut self, size: Size, policy: Policy) -> Result<Self::Handle, ArenaError>;
    /// [`Arena::xalloc_handle`].
    fn xalloc_handle(&mut self, constraints: &Constraints) -> Result<Self::Handle, ArenaError>;
    /// [`Arena::handle_from_parts`].
    fn handle_from_parts(&self, addr: Addr, tag: u32) -> Option<Self::Handle>;
    /// A handle's address and tag ([`Handle::addr`], [`Handle::tag`]).
    fn handle_parts(handle: Self::Handle) -> (Addr, u32);
    /// [`Arena::free`].
    fn free(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError>;
    /// [`Arena::free_handle`].
    fn free_handle(&mut self, handle: Self::Handle) -> Result<Size, ArenaError>;
    /// [`Arena::free_part`].
    fn free_part(&mut self, alloc: Addr, offset: Size, size: Size) -> Result<(), ArenaError>;
    /// [`Arena::resize`].
    fn resize(&mut self, addr: Addr, old_size: Size, new_size: Size) -> Result<(), ArenaError>;
    /// [`Arena::free_deferred`].
    fn free_deferred(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError>;
    /// [`Arena::free_handle_deferred`].
    fn free_handle_deferred(&mut self, handle: Self::Handle) -> Result<Size, ArenaError>;
    /// [`Arena::flushed`].
    fn flushed(&mut self) -> Size;
    /// [`Arena::lookup`].
    fn lookup(&self, addr: Addr) -> Option<(Range, Size)>;
    /// [`Arena::lookup_handle`].
    fn lookup_handle(&self, handle: Self::Handle) -> Option<(Range, Size)>;
    /// [`Arena::sizes`].
    fn sizes(&self) -> Sizes;
    /// [`Arena::counters`].
    fn counters(&self) -> Counters;
    /// [`Arena::live`].
    fn live(&self) -> usize;
    /// [`Arena::span_count`].
    fn span_count(&self) -> usize;
    /// [`Arena::check`].
    fn check(&self) -> Result<(), ArenaError>;
}

impl<S: Store, I: Source> ArenaTarget for Arena<S, I> {
    type Handle = Handle;
    type Walk<'a>
        = vmspace::arena::Walk<'a, S, I>
    where
        Self: 'a;

    fn quantum(&self) -> Size {
        Arena::quantum(self)
    }
    fn walk(&self, kinds: SegmentKinds) -> Self::Walk<'_> {
        Arena::walk(self, kinds)
    }
    fn add(&mut self, base: Addr, size: Size) -> Result<(), ArenaError> {
        Arena::add(self, base, size)
    }
    fn extend(&mut self, base: Addr, size: Size) -> Result<(), ArenaError> {
        Arena::extend(self, base, size)
    }
    fn alloc(&mut self, size: Size, policy: Policy) -> Result<Addr, ArenaError> {
        Arena::alloc(self, size, policy)
    }
    fn xalloc(&mut self, constraints: &Constraints) -> Result<Addr, ArenaError> {
        Arena::xalloc(self, constraints)
    }
    fn alloc_handle(&mut self, size: Size, policy: Policy) -> Result<Handle, ArenaError> {
        Arena::alloc_handle(self, size, policy)
    }
    fn xalloc_handle(&mut self, constraints: &Constraints) -> Result<Handle, ArenaError> {
        Arena::xalloc_handle(self, constraints)
    }
    fn handle_from_parts(&self, addr: Addr, tag: u32) -> Option<Handle> {
        Arena::handle_from_parts(self, addr, tag)
    }
    fn handle_parts(handle: Handle) -> (Addr, u32) {
        (handle.addr(), handle.tag())
    }
    fn free(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        Arena::free(self, addr, size)
    }
    fn free_handle(&mut self, handle: Handle) -> Result<Size, ArenaError> {
        Arena::free_handle(self, handle)
    }
    fn free_part(&mut self, alloc: Addr, offset: Size, size: Size) -> Result<(), ArenaError> {
        Arena::free_part(self, alloc, offset, size)
    }
    fn resize(&mut self, addr: Addr, old_size: Size, new_size: Size) -> Result<(), ArenaError> {
        Arena::resize(self, addr, old_size, new_size)
    }
    fn free_deferred(&mut self, addr: Addr, size: Size) -> Result<(), ArenaError> {
        Arena::free_deferred(self, addr, size)
    }
    fn free_handle_deferred(&mut self, handle: Handle) -> Result<Size, ArenaError> {
        Arena::free_handle_deferred(self, handle)
    }
    fn flushed(&mut self) -> Size {
        Arena::flushed(self)
    }
    fn lookup(&self, addr: Addr) -> Option<(Range, Size)> {
        Arena::lookup(self, addr)
    }
    fn lookup_handle(&self, handle: Handle) -> Option<(Range, Size)> {
        Arena::lookup_handle(self, handle)
    }
    fn sizes(&self) -> Sizes {
        Arena::sizes(self)
    }
    fn counters(&self) -> Counters {
        Arena::counters(self)
    }
    fn live(&self) -> usize {
        Arena::live(self)
    }
    fn span_count(&self) -> usize {
        Arena::span_count(self)
    }
    fn check(&self) -> Result<(), ArenaError> {
        Arena::check(self)
    }
}
