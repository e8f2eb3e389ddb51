//! Round 61's shared arena: a `UserArena` of 16-unit quanta with quantum
//! caches of 8 classes over mmap stores, and per-CPU caches on it.

#![allow(dead_code)]

use vmspace::arena::{Arena, NoSource, PageStore};
use vmspace::qcache::{magazine_store_bytes, CpuPin, QCacheConfig};
use vmspace::{Addr, Size};
use vmspace_user::{MmapBackend, UserArena, UserCpuCaches};

pub type Store = PageStore<MmapBackend>;
pub type Shared = UserArena<Store, NoSource>;

/// The arena's quantum.
pub const Q: usize = 16;
/// Its quantum-cache classes.
pub const CLASSES: usize = 8;
/// The span [`shared`] adds, unless told otherwise.
pub const BASE: usize = 1 << 40;
pub const SPAN: usize = 1 << 22;

pub fn store() -> Store {
    PageStore::new(MmapBackend::new(), Size(16 << 20)).unwrap()
}

/// The shared arena, with the span `[base, base + span)`.
pub fn shared_at(base: usize, span: usize) -> Shared {
    let mut a = Arena::new("r61", Size(Q), store(), store(), NoSource).unwrap();
    a.add(Addr(base), Size(span)).unwrap();
    UserArena::with_quantum_caches(a, QCacheConfig::new(CLASSES, store())).unwrap()
}

/// The shared arena, with the span `[BASE, BASE + SPAN)`.
pub fn shared() -> Shared {
    shared_at(BASE, SPAN)
}

/// Per-CPU caches on `s` through `pin`.
pub fn caches<P: CpuPin>(s: &Shared, pin: P) -> UserCpuCaches<'_, Store, NoSource, P> {
    let bytes = magazine_store_bytes(CLASSES, pin.slots()).unwrap();
    UserCpuCaches::new(s, pin, PageStore::new(MmapBackend::new(), Size(bytes)).unwrap()).unwrap()
}
