//! The magic word that tells a live object of the API (an arena, a VM) from
//! anything else a C caller may pass: the object's address XORed with a key
//! of its type, published when the object is complete and cleared when its
//! destroy starts. A copy of an object at another address, an object of the
//! other type, zeroed storage and a destroyed object (while its memory is
//! untouched) all fail the check.

use core::ffi::c_int;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::errno::code;

/// The word of a destroyed object (and of zeroed storage).
const DEAD: usize = 0;

/// The key of arena objects.
pub(crate) const ARENA_KEY: usize = 0x766d_7370;
/// The key of VM objects: not the arena's, so neither is taken for the
/// other.
pub(crate) const VM_KEY: usize = 0x766d_766d;

/// An object's magic word: the first field of every object type
/// (`#[repr(C)]`), so that it is read from a pointer to the object alone.
///
/// # Invariants
///
/// The word is [`DEAD`] or the live word of the object holding it.
#[derive(Debug)]
pub(crate) struct Magic(AtomicUsize);

/// The live word of an object at `p` whose type has `key`.
#[inline]
fn live<T>(p: *const T, key: usize) -> usize {
    (p as usize) ^ key
}

impl Magic {
    /// The word of an object not live yet.
    pub(crate) const fn dead() -> Self {
        Magic(AtomicUsize::new(DEAD))
    }

    /// Say that the object at `p` (holding this word, of the type of `key`)
    /// is complete: calls checking it find it live from now on.
    pub(crate) fn publish<T>(&self, p: *const T, key: usize) {
        self.0.store(live(p, key), Ordering::Release);
    }

    /// Start destroying the object at `p`: whether this call won (the word
    /// was live and is now dead). Of two racing destroys, one wins.
    pub(crate) fn kill<T>(&self, p: *const T, key: usize) -> bool {
        self.0.compare_exchange(live(p, key), DEAD, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// The live object of type `O` (with `key`) at `p`, or `-EINVAL` for null
/// and `-EBADF` for a misaligned pointer or a first word that is not the
/// live word of an `O` at `p`.
///
/// # Safety
///
/// `O` is `#[repr(C)]` with a [`Magic`] as its first field, kept as that
/// type's invariants say. `p` is null, or points to memory readable for a
/// word (an `O`, live or destroyed but not reused, or anything else
/// readable that long), and an object found live stays live while the
/// returned reference is used.
#[inline]
pub(crate) unsafe fn live_object<'a, O, T>(p: *const T, key: usize) -> Result<&'a O, c_int> {
    if p.is_null() {
        return Err(-code::EINVAL);
    }
    let obj = p.cast::<O>();
    if !obj.is_aligned() {
        return Err(-code::EBADF);
    }
    // SAFETY: aligned for `O` (so for its first field) and readable for a
    // word (caller); the word is atomic, so reading it races with nothing.
    let magic = unsafe { &*obj.cast::<Magic>() };
    if magic.0.load(Ordering::Acquire) != live(obj, key) {
        return Err(-code::EBADF);
    }
    // SAFETY: the word is live, so the object is (the invariant of `O`'s
    // magic word), and it stays live while used (caller).
    Ok(unsafe { &*obj })
}
