// SPDX-License-Identifier: MIT OR Apache-2.0

//! The objects one open file owns: arenas (with or without a VM to import
//! from) and VMs, in a table of slots, named by ids private to the file.
//!
//! An id is the slot and the slot's generation, scrambled with a salt drawn
//! at random when the file is opened (so ids say nothing of kernel
//! addresses): an id outlives its object only as a stale generation, never
//! reused, and an id of another file names a slot of this one with
//! probability about 2^-26 (and then must also match that slot's
//! generation), so a handle or id passed between files is refused.
//!
//! The table keeps the file's charges against its [`Limits`]: tags of its
//! arenas, bytes its VMs and arena sources reserve.

use kernel::bindings;
use kernel::prelude::*;
use vmspace::arena::{Arena, NoSource, PageStore, Policy};
use vmspace::sources::VmSource;
use vmspace::vm::Vm;
use vmspace_abi::error::{WireError, DEV_BAD_ID, DEV_LIMIT, DEV_WRONG_KIND};

use crate::backends::{DevBackends, Limits};
use crate::encode;

/// Slots in a file's table (`Limits::max_objects` uses at most this many).
pub(crate) const MAX_SLOTS: usize = 64;
const SLOT_BITS: u32 = 6;
const GEN_MASK: u32 = (1 << (32 - SLOT_BITS)) - 1;

/// A metadata store of backend `B`.
pub(crate) type MetaStore<B> = PageStore<&'static <B as DevBackends>::Meta>;
/// A VM of backend `B`.
pub(crate) type DevVm<B> = Vm<&'static <B as DevBackends>::Vm>;
/// An arena's source: a VM of its own.
pub(crate) type Source<B> = VmSource<&'static <B as DevBackends>::Vm, MetaStore<B>>;

/// An arena, without or with a source.
#[expect(
    clippy::large_enum_variant,
    reason = "each object has a box of its own: a plain arena's is as large as one with a source"
)]
pub(crate) enum ArenaKind<B: DevBackends> {
    /// Spans only from `ARENA_ADD`/`ARENA_EXTEND`.
    Plain(Arena<MetaStore<B>, NoSource>),
    /// Importing from a VM of its own as well.
    Import(Arena<MetaStore<B>, Source<B>>),
}

/// Run `$body` with `$a` bound to the arena inside an [`ArenaKind`],
/// whichever its source.
macro_rules! with_arena {
    ($kind:expr, $a:ident => $body:expr) => {
        match $kind {
            $crate::objects::ArenaKind::Plain($a) => $body,
            $crate::objects::ArenaKind::Import($a) => $body,
        }
    };
}
pub(crate) use with_arena;

/// An arena and what the file is charged for it.
pub(crate) struct ArenaObj<B: DevBackends> {
    /// The arena.
    pub(crate) kind: ArenaKind<B>,
    /// The policy of `POLICY_DEFAULT` requests.
    pub(crate) default_policy: Policy,
    /// Its `max_tags`.
    pub(crate) tags: usize,
    /// Its source VM's charge ([`reservation_charge`]; 0 without one).
    pub(crate) import: usize,
}

/// A VM and what the file is charged for it.
pub(crate) struct VmObj<B: DevBackends> {
    /// The VM.
    pub(crate) vm: DevVm<B>,
    /// The address space it takes ([`reservation_charge`]).
    pub(crate) charge: usize,
}

/// The address space a VM of `size` bytes and grain `grain` may take: its
/// size rounded up to the grain, plus a grain (a backend reserves that much
/// more to align the base); `usize::MAX` if that overflows, which no bound
/// admits.
pub(crate) fn reservation_charge(size: usize, grain: usize) -> usize {
    let rounded = match grain.checked_sub(1) {
        Some(m) if grain.is_power_of_two() => size.checked_add(m).map(|s| s & !m),
        _ => Some(size),
    };
    rounded.and_then(|r| r.checked_add(grain)).unwrap_or(usize::MAX)
}

/// One object.
#[expect(
    clippy::large_enum_variant,
    reason = "each object has a box of its own: a VM's is as large as an arena's (under 1 KiB)"
)]
pub(crate) enum Object<B: DevBackends> {
    /// An arena.
    Arena(ArenaObj<B>),
    /// A VM.
    Vm(VmObj<B>),
}

/// What an object still held when it was destroyed: allocations (arena) or
/// mapped pages (VM), and their bytes.
#[derive(Clone, Copy, Default)]
pub(crate) struct Leak {
    pub(crate) count: usize,
    pub(crate) bytes: usize,
}

impl<B: DevBackends> Object<B> {
    /// What it still holds.
    pub(crate) fn held(&self) -> Leak {
        match self {
            Object::Arena(a) => with_arena!(&a.kind, x => Leak { count: x.live(), bytes: x.sizes().allocated.0 }),
            Object::Vm(v) => Leak { count: v.vm.mapped().0 / v.vm.page_size().0, bytes: v.vm.mapped().0 },
        }
    }
}

/// A file's objects.
///
/// # Invariants
///
/// `tags` is the sum of the `tags` of the arenas in `slots`, `reserved` the
/// sum of their `import`s and the `size`s of the VMs; both stay within the
/// build's [`Limits`]. A slot's generation only grows; an empty slot at
/// `GEN_MASK` is retired (never filled again), so an id is never reused.
pub(crate) struct Objects<B: DevBackends> {
    slots: [Option<KBox<Object<B>>>; MAX_SLOTS],
    gens: [u32; MAX_SLOTS],
    /// Scrambles the ids: random, drawn when the table was made.
    salt: u32,
    tags: usize,
    reserved: usize,
}

// SAFETY: the objects own their reservations and stores outright; the raw
// pointers inside them point into those, never to anything tied to a thread,
// and every access goes through the file's mutex. The backends are `Sync`,
// so the `&'static` references to them may move between threads.
unsafe impl<B: DevBackends> Send for Objects<B> {}

impl<B: DevBackends> Objects<B> {
    /// An empty table.
    pub(crate) fn new() -> Self {
        // SAFETY: get_random_u32 has no preconditions (it may sleep the
        // first time, before the pool is ready: `open` is task context).
        let salt = unsafe { bindings::get_random_u32() };
        Objects { slots: [const { None }; MAX_SLOTS], gens: [0; MAX_SLOTS], salt, tags: 0, reserved: 0 }
    }

    fn limits() -> Limits {
        B::LIMITS
    }

    fn id_of(&self, slot: usize) -> u32 {
        ((self.gens[slot] << SLOT_BITS) | slot as u32) ^ self.salt
    }

    fn slot_of(&self, id: u32) -> Option<usize> {
        let raw = id ^ self.salt;
        let slot = (raw & ((1 << SLOT_BITS) - 1)) as usize;
        (self.slots[slot].is_some() && self.gens[slot] == raw >> SLOT_BITS).then_some(slot)
    }

    /// Bytes the file's VMs have mapped, with its arena sources' whole sizes.
    pub(crate) fn mapped(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|o| match &**o {
                // A source VM counts whole: all of its client range
                // (its size rounded up to its grain) may be imported.
                Object::Arena(a) => match &a.kind {
                    ArenaKind::Import(x) => x.source().vm().range().size().0,
                    ArenaKind::Plain(_) => 0,
                },
                Object::Vm(v) => v.vm.mapped().0,
            })
            .fold(0, usize::saturating_add)
    }

    /// Refuse (in `w`) unless one more object with `tags` tags reserving
    /// `reserve` bytes (and mapping as many up front) fits the limits.
    pub(crate) fn admit(&self, w: &mut WireError, tags: usize, reserve: usize) -> Result<usize> {
        let l = Self::limits();
        let n = l.max_objects.min(MAX_SLOTS);
        let slot = (0..n).find(|&s| self.slots[s].is_none() && self.gens[s] != GEN_MASK);
        let Some(slot) = slot else {
            // What the command asked for in all: one object more.
            let all = self.slots.iter().flatten().count().saturating_add(1);
            return Err(encode::device(w, DEV_LIMIT, "objects per file", l.max_objects as u64, all as u64));
        };
        if tags > l.max_tags_per_arena {
            return Err(encode::device(w, DEV_LIMIT, "tags per arena", l.max_tags_per_arena as u64, tags as u64));
        }
        let all = self.tags.saturating_add(tags);
        if all > l.max_tags_per_file {
            return Err(encode::device(w, DEV_LIMIT, "tags per file", l.max_tags_per_file as u64, all as u64));
        }
        let all = self.reserved.saturating_add(reserve);
        if all > l.max_reserved {
            return Err(encode::device(w, DEV_LIMIT, "reserved bytes per file", l.max_reserved as u64, all as u64));
        }
        self.admit_mapping(w, 0)?;
        Ok(slot)
    }

    /// Refuse (in `w`) unless `more` bytes more mapped fit the limits.
    pub(crate) fn admit_mapping(&self, w: &mut WireError, more: usize) -> Result {
        let max = Self::limits().max_mapped;
        let all = self.mapped().saturating_add(more);
        if all > max {
            return Err(encode::device(w, DEV_LIMIT, "mapped bytes per file", max as u64, all as u64));
        }
        Ok(())
    }

    /// Put `object` in `slot` (from [`admit`](Self::admit)); its id.
    pub(crate) fn insert(&mut self, slot: usize, object: Object<B>) -> Result<u32> {
        // Charged to the caller's memory cgroup: user space asked for it.
        let boxed = KBox::new(object, GFP_KERNEL_ACCOUNT)?;
        let (tags, reserved) = match &*boxed {
            Object::Arena(a) => (a.tags, a.import),
            Object::Vm(v) => (0, v.charge),
        };
        // INVARIANT: the charges follow the objects; `admit` checked the limits.
        self.tags += tags;
        self.reserved += reserved;
        self.slots[slot] = Some(boxed);
        Ok(self.id_of(slot))
    }

    /// Take the object `id` out of the table (its slot's generation moves on,
    /// so the id is stale from now on).
    pub(crate) fn remove(&mut self, w: &mut WireError, id: u32) -> Result<KBox<Object<B>>> {
        let Some(slot) = self.slot_of(id) else {
            return Err(encode::device(w, DEV_BAD_ID, "no such object in this file", u64::from(id), 0));
        };
        let Some(object) = self.slots[slot].take() else {
            return Err(encode::device(w, DEV_BAD_ID, "no such object in this file", u64::from(id), 0));
        };
        // INVARIANT: a slot whose generation reaches GEN_MASK is retired
        // (`admit` passes it over), so no generation comes round again and
        // no stale id ever names a newer object.
        self.gens[slot] = (self.gens[slot] + 1).min(GEN_MASK);
        // INVARIANT: the charges follow the objects.
        match &*object {
            Object::Arena(a) => {
                self.tags -= a.tags;
                self.reserved -= a.import;
            }
            Object::Vm(v) => self.reserved -= v.charge,
        }
        Ok(object)
    }

    fn get(&mut self, w: &mut WireError, id: u32) -> Result<&mut Object<B>> {
        match self.slot_of(id).and_then(|s| self.slots[s].as_deref_mut()) {
            Some(o) => Ok(o),
            None => Err(encode::device(w, DEV_BAD_ID, "no such object in this file", u64::from(id), 0)),
        }
    }

    /// The arena `id`, or a refusal in `w`.
    pub(crate) fn arena(&mut self, w: &mut WireError, id: u32) -> Result<&mut ArenaObj<B>> {
        match self.get(w, id)? {
            Object::Arena(a) => Ok(a),
            Object::Vm(_) => Err(encode::device(w, DEV_WRONG_KIND, "the object is a VM", u64::from(id), 0)),
        }
    }

    /// The VM `id`, or a refusal in `w`.
    pub(crate) fn vm(&mut self, w: &mut WireError, id: u32) -> Result<&mut VmObj<B>> {
        match self.get(w, id)? {
            Object::Vm(v) => Ok(v),
            Object::Arena(_) => Err(encode::device(w, DEV_WRONG_KIND, "the object is an arena", u64::from(id), 0)),
        }
    }
}

impl<B: DevBackends> Drop for Objects<B> {
    /// The file is closing: destroy every object, reporting in the kernel
    /// log what each still held.
    fn drop(&mut self) {
        for slot in 0..MAX_SLOTS {
            let id = self.id_of(slot);
            let Some(object) = self.slots[slot].take() else { continue };
            let leak = object.held();
            if leak.count > 0 {
                let what = match &*object {
                    Object::Arena(_) => "arena",
                    Object::Vm(_) => "VM",
                };
                let unit = match &*object {
                    Object::Arena(_) => "allocations",
                    Object::Vm(_) => "mapped pages",
                };
                pr_info!(
                    "/dev/{}: file closed with {what} {id:#x} still holding {} {unit} ({} bytes): freed\n",
                    B::DEVICE,
                    leak.count,
                    leak.bytes
                );
            }
            drop(object);
        }
    }
}
