//! The arena object C callers hold a pointer to: a thread-safe arena with
//! per-CPU quantum caches, its name and a magic word checked on entry.

use core::alloc::Layout;
use core::ffi::{c_char, c_int, c_void};
use core::ptr::{self, addr_of, addr_of_mut, NonNull};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use vmspace::arena::{Arena, PageStore, Policy};
use vmspace::qcache::{QCacheConfig, MAX_CLASSES, MAX_QUANTUM};
use vmspace::sync::{CpuCaches, SyncArena};
use vmspace::ArenaError;
use vmspace_shim::{Addr, Size};

use crate::ctypes::{vmspace_params, VMSPACE_DEFAULT_TAGS, VMSPACE_NAME_MAX};
use crate::errno::{code, errno};
use crate::magic::{live_object, Magic, ARENA_KEY};
use crate::platform::Platform;
use crate::source::{CSource, Import};

mod wait;

pub(crate) use wait::WaitAt;

/// The store of every table of an arena.
pub(crate) type Store<P> = PageStore<<P as Platform>::Pages>;
/// The shared arena.
pub(crate) type Shared<P> =
    SyncArena<<P as Platform>::Lock, <P as Platform>::Waiter, Store<P>, CSource<P>>;
/// Its per-CPU quantum caches, which borrow it from inside the same object.
pub(crate) type Caches<P> = CpuCaches<
    'static,
    <P as Platform>::Lock,
    <P as Platform>::Waiter,
    Store<P>,
    CSource<P>,
    <P as Platform>::Pin,
>;

/// Address space reserved for the quantum caches' tables (mapped as used).
const QCACHE_TABLE_BYTES: usize = 1 << 20;
/// Address space reserved for the per-CPU magazines (mapped as used: one
/// stride of at most 2 KiB per CPU, so room for 16K CPUs, and a page for
/// the alignment slack).
const MAGAZINE_BYTES: usize = (1 << 25) + (1 << 12);

const _: () = assert!(vmspace::qcache::table_store_bytes(MAX_CLASSES) <= QCACHE_TABLE_BYTES);
const _: () = assert!(match vmspace::qcache::magazine_store_bytes(MAX_CLASSES, 1 << 14) {
    Some(b) => b <= MAGAZINE_BYTES,
    None => false,
});

/// An arena as C holds it.
///
/// # Invariants
///
/// - `magic` is live (for [`ARENA_KEY`]) exactly while the object is live: from
///   the end of its construction to the start of its destruction; the
///   object never moves meanwhile.
/// - `caches`, when present, borrow `shared` in this same object (the
///   `'static` is a lie told to the type system: they are dropped first,
///   field order, before `shared`).
/// - `children` counts the live arenas whose source is this one.
/// - `root` is `None` for an arena without a parent, else the root of its
///   tree of parents (its parent's `root`, or the parent when that has
///   none): an ancestor, live while this object is (an arena with children
///   refuses to be destroyed). A waiting allocation of a child waits there,
///   so whatever returns space to an arena of a tree wakes its root's
///   waiters.
#[repr(C)]
pub(crate) struct ArenaObj<P: Platform> {
    magic: Magic,
    pub(crate) caches: Option<Caches<P>>,
    pub(crate) shared: Shared<P>,
    pub(crate) name: [u8; VMSPACE_NAME_MAX + 1],
    /// The policy of allocations whose flags name none.
    pub(crate) policy: Policy,
    pub(crate) children: AtomicUsize,
    /// The root of this arena's tree of parents, if it has a parent.
    root: Option<NonNull<ArenaObj<P>>>,
    /// The arena's quantum (fixed), for the vmem(9) calls' rounding.
    pub(crate) quantum: usize,
    /// Whether destroying frees the memory (not for `vmem_init` storage).
    owned: bool,
    /// Whether the arena imports through the caller's functions (set with
    /// them), so that its tree's waiting allocations try again now and then.
    pub(crate) polls: AtomicBool,
}

/// The quantum-cache classes for `qcache_max`: a hint, rounded down to
/// whole quanta and to at most [`MAX_CLASSES`]; none for quanta the caches
/// do not take.
fn classes(quantum: usize, qcache_max: usize) -> usize {
    if quantum == 0 || quantum > MAX_QUANTUM {
        return 0;
    }
    (qcache_max / quantum).min(MAX_CLASSES)
}

/// Copy the NUL-terminated string at `name` (if not null), cut to
/// [`VMSPACE_NAME_MAX`] bytes.
///
/// # Safety
///
/// `name` is null or points to a NUL-terminated string.
unsafe fn copy_name(name: *const c_char) -> [u8; VMSPACE_NAME_MAX + 1] {
    let mut out = [0u8; VMSPACE_NAME_MAX + 1];
    if name.is_null() {
        return out;
    }
    for (i, b) in out.iter_mut().take(VMSPACE_NAME_MAX).enumerate() {
        // SAFETY: the string is NUL-terminated (caller) and we stop at the
        // NUL, so every byte read is inside it.
        let c = unsafe { name.add(i).read() } as u8;
        if c == 0 {
            break;
        }
        *b = c;
    }
    out
}

impl<P: Platform> ArenaObj<P> {
    /// The live object at `p`, or `-EINVAL` for null and `-EBADF` for
    /// anything whose magic word is not a live arena's.
    ///
    /// # Safety
    ///
    /// `p` is null, or points to memory that is readable for the object's
    /// first word (an arena object, live or destroyed but not reused, or
    /// `vmem_t` storage), and a live object stays live while the returned
    /// reference is used (nobody destroys an arena in use).
    #[inline]
    pub(crate) unsafe fn from_ptr<'a, T>(p: *const T) -> Result<&'a Self, c_int> {
        // SAFETY: the caller's contract; `ArenaObj` is `repr(C)` with its
        // magic word first, live exactly while the object is (invariant).
        unsafe { live_object(p, ARENA_KEY) }
    }

    /// The layout of an object (for platforms and `vmem_init` storage).
    pub(crate) fn layout() -> Layout {
        Layout::new::<Self>()
    }

    /// Make an arena as `p` asks in `place`, which is uninitialized memory
    /// for one object; on success the object is live there.
    ///
    /// # Safety
    ///
    /// `place` is valid for writes of [`layout`](Self::layout) and not
    /// moved or reused while the object is live; `p.name` is null or a
    /// NUL-terminated string; `p.parent` is null or as for
    /// [`from_ptr`](Self::from_ptr).
    pub(crate) unsafe fn init(place: *mut Self, p: &vmspace_params, owned: bool) -> c_int {
        // Every creation (native, vmem(9)'s create and init) checks the
        // caller's context here.
        P::enter();
        let parent = match NonNull::new(p.parent) {
            None => None,
            // SAFETY: the caller's contract for the parent.
            Some(pp) => match unsafe { Self::from_ptr(pp.as_ptr()) } {
                Ok(parent) => Some(parent),
                Err(e) => return e,
            },
        };
        let Some(policy) = crate::flags::create_policy(p.flags) else {
            return -code::EINVAL;
        };
        if p.reserved != 0 {
            return -code::EINVAL;
        }
        let max_tags = if p.max_tags == 0 { VMSPACE_DEFAULT_TAGS } else { p.max_tags };
        let quantum = Size(p.quantum);
        let mut arena = match Arena::on_pages("capi", quantum, P::pages(), max_tags, CSource::new())
        {
            Ok(a) => a,
            Err(refused) => return errno(&refused.error()),
        };
        // A fresh arena may get the tag table of a destroyed one, and with
        // it the destroyed arena's fingerprint: salted, a handle kept past
        // the destroy is refused (-ENOENT) as vmspace.h promises. (Refused
        // only while handles hold allocations, which a fresh arena has not.)
        let salted = arena.salt_handles(P::random_u32());
        debug_assert!(salted.is_ok());
        if let Some(parent) = parent {
            let q = parent.shared.with(|a| a.quantum().0);
            arena.source_mut().import = Import::Parent { arena: NonNull::from(parent), quantum: q };
        }
        if p.size != 0 {
            if let Err(e) = arena.add(Addr(p.base), Size(p.size)) {
                return errno(&e);
            }
            arena.source_mut().added = p.size;
        }
        let arena_quantum = arena.quantum().0;
        let (Some(lock), Some(waiter)) = (P::lock(), P::waiter()) else {
            return -code::ENOMEM;
        };
        let classes = classes(p.quantum, p.qcache_max);
        let shared = if classes == 0 {
            SyncArena::with_lock(arena, lock, waiter)
        } else {
            let made = PageStore::new(P::pages(), Size(QCACHE_TABLE_BYTES)).and_then(|store| {
                SyncArena::with_lock_and_caches(
                    arena,
                    lock,
                    waiter,
                    QCacheConfig::new(classes, store),
                )
                .map_err(ArenaError::from)
            });
            match made {
                Ok(s) => s,
                Err(e) => return errno(&e),
            }
        };
        let obj = ArenaObj {
            magic: Magic::dead(),
            caches: None,
            shared,
            // SAFETY: the caller's contract for the name.
            name: unsafe { copy_name(p.name) },
            policy,
            children: AtomicUsize::new(0),
            root: parent.map(|p| p.root.unwrap_or(NonNull::from(p))),
            quantum: arena_quantum,
            owned,
            polls: AtomicBool::new(false),
        };
        // SAFETY: `place` is valid for writes of an object (caller).
        unsafe { place.write(obj) };
        if classes != 0 {
            // SAFETY: the object was just written and does not move while
            // live (caller), so the reference stays valid for as long as
            // the caches, which are dropped first.
            let shared: &'static Shared<P> = unsafe { &*addr_of!((*place).shared) };
            let made = match (P::pin(), PageStore::new(P::pages(), Size(MAGAZINE_BYTES))) {
                (Some(pin), Ok(store)) => CpuCaches::new(shared, pin, store),
                (None, _) => Err(vmspace::ArenaError::InvalidArgument("no CPU pin")),
                (_, Err(e)) => Err(e),
            };
            match made {
                // SAFETY: the field is initialized (to `None`, nothing to drop).
                Ok(c) => unsafe { addr_of_mut!((*place).caches).write(Some(c)) },
                Err(e) => {
                    // SAFETY: the object is initialized and not live yet.
                    unsafe { ptr::drop_in_place(place) };
                    return match e {
                        vmspace::ArenaError::InvalidArgument(_) => -code::ENOMEM,
                        e => errno(&e),
                    };
                }
            }
        }
        if let Some(parent) = parent {
            parent.children.fetch_add(1, Ordering::AcqRel);
        }
        // SAFETY: initialized above.
        let magic = unsafe { &*addr_of!((*place).magic) };
        // INVARIANT: the object is complete and stays at `place`.
        magic.publish(place, ARENA_KEY);
        0
    }

    /// Make an arena in memory from the platform.
    ///
    /// # Safety
    ///
    /// As for [`init`](Self::init), for the pointers in `p`.
    pub(crate) unsafe fn create(p: &vmspace_params) -> Result<NonNull<Self>, c_int> {
        let place = P::alloc_object(Self::layout()).cast::<Self>();
        let Some(place) = NonNull::new(place) else { return Err(-code::ENOMEM) };
        // SAFETY: fresh memory of the object's layout that nothing else
        // uses (`Platform` contract); pointers in `p` as the caller says.
        match unsafe { Self::init(place.as_ptr(), p, true) } {
            0 => Ok(place),
            e => {
                // SAFETY: from `alloc_object` with this layout; unused now.
                unsafe { P::free_object(place.as_ptr().cast(), Self::layout()) };
                Err(e)
            }
        }
    }

    /// Destroy the arena at `p`: `-EBUSY` (nothing changed) while other
    /// arenas import from it; otherwise its caches are flushed, its
    /// imported spans given back, its memory freed if the platform gave it.
    /// Of two racing destroys of an arena in the caller's storage, one
    /// succeeds and the other gets `-EBADF`; of one the platform gave, the
    /// loser may read freed memory (undefined, as the header says).
    ///
    /// # Safety
    ///
    /// As for [`from_ptr`](Self::from_ptr); nobody else uses the arena
    /// during or after this call (a use after destroy is undefined once
    /// the memory is reused).
    pub(crate) unsafe fn destroy(p: *mut c_void) -> c_int {
        P::enter();
        // SAFETY: the caller's contract.
        let obj = match unsafe { Self::from_ptr(p) } {
            Ok(o) => o,
            Err(e) => return e,
        };
        if obj.children.load(Ordering::Acquire) != 0 {
            return -code::EBUSY;
        }
        if !obj.magic.kill(obj, ARENA_KEY) {
            return -code::EBADF;
        }
        let parent = obj.shared.with(|a| match a.source().import {
            Import::Parent { arena, .. } => Some(arena),
            _ => None,
        });
        let owned = obj.owned;
        let root = obj.root;
        let place = p.cast::<Self>();
        // SAFETY: we won the destroy: nobody else uses the object (caller).
        // The caches borrow `shared` in this same object, so they are taken
        // out through a pointer to their field alone, and dropped (which
        // flushes them), before anything takes the object whole as `&mut`
        // (which would claim what they still borrow).
        drop(unsafe { ptr::replace(ptr::addr_of_mut!((*place).caches), None) });
        // SAFETY: as above; nothing borrows into the object any more.
        unsafe { (*place).report_leaks() };
        // SAFETY: we won the destroy, so the object is ours alone (nobody
        // uses an arena being destroyed: caller); fields drop in order,
        // the caches (which borrow `shared`) first. The magic word stays
        // dead in what remains.
        unsafe { ptr::drop_in_place(place) };
        if let Some(parent) = parent {
            // SAFETY: the parent is live while it has children (it refuses
            // to be destroyed), and this was one of them until now.
            unsafe { parent.as_ref() }.children.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(root) = root {
            // SAFETY: the root outlived this child (type invariant): it is
            // live until its last child is gone, and another child may keep
            // it so; what the child gave back to its parent is space that
            // allocations waiting at the root may take.
            unsafe { root.as_ref() }.shared.wake_waiters();
        }
        if owned {
            // SAFETY: an owned object came from `alloc_object` with this
            // layout (`create`), and is not used after this.
            unsafe { P::free_object(place.cast(), Self::layout()) };
        }
        0
    }

    /// Reclaim, then tell the platform what is still allocated
    /// ([`Platform::leaked`]), if anything: for the destroy that owns the
    /// object, once its per-CPU caches are gone (flushed as they dropped).
    fn report_leaks(&mut self) {
        debug_assert!(self.caches.is_none(), "the caches borrow `shared`: drop them first");
        self.shared.reclaim();
        let (live, sizes) = self.shared.with(|a| (a.live(), a.sizes()));
        if live > 0 || !sizes.unflushed.is_zero() {
            let name =
                core::str::from_utf8(&self.name).map(|n| n.trim_end_matches('\0')).unwrap_or("?");
            P::leaked(name, live, sizes.allocated.0, sizes.unflushed.0);
        }
    }

    /// The name as a C string (NUL-terminated, inside the object).
    pub(crate) fn name_ptr(&self) -> *const c_char {
        self.name.as_ptr().cast()
    }
}
