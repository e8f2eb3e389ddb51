//! Sharing arenas between threads: the lock and waiting the core needs
//! ([`RawLock`], [`Waiter`]), supplied by the build; [`SyncArena`], an
//! arena behind such a lock with quantum caches ([`QCache`]) and waiting
//! for space; and the magazines in front of its caches, per thread
//! ([`CacheHandle`]) or per CPU ([`CpuCaches`]).
//!
//! [`QCache`]: crate::qcache::QCache
//!
//! ```
//! use vmspace::arena::{Arena, NoSource, Policy, SliceStore};
//! use vmspace::qcache::QCacheConfig;
//! use vmspace::sync::{CacheHandle, NoWait, SpinLock, SyncArena, Wait};
//! use vmspace::{Addr, Size};
//!
//! let (mut tags, mut hash, mut qc) = ([0u8; 1 << 14], [0u8; 1 << 14], vec![0u8; 1 << 16]);
//! let mut arena = Arena::new("shared", Size(16), SliceStore::new(&mut tags),
//!                            SliceStore::new(&mut hash), NoSource).unwrap();
//! arena.add(Addr(1 << 20), Size(1 << 20)).unwrap();
//! let caches = QCacheConfig::new(4, SliceStore::new(&mut qc));
//! let shared: SyncArena<SpinLock, NoWait, _, _> =
//!     SyncArena::with_quantum_caches(arena, caches).unwrap();
//! let mut cache = CacheHandle::new(&shared);
//! let a = cache.alloc(Size(32)).unwrap(); // a quantum-cache class
//! cache.free(a, Size(32)).unwrap();
//! assert!(cache.free(a, Size(32)).is_err()); // double free: refused
//! let b = shared.alloc(Size(4096), Policy::BestFit, Wait::No).unwrap();
//! shared.free(b, Size(4096)).unwrap();
//! drop(cache);
//! shared.reclaim();
//! shared.check().unwrap();
//! assert_eq!(shared.with(|a| a.sizes().allocated), Size(0));
//! ```

mod arena;
mod handle;
mod lock;
mod percpu;
mod retrying;
mod source;
mod wait;

pub use arena::SyncArena;
pub use handle::CacheHandle;
pub use lock::{RawLock, SpinLock};
pub use percpu::CpuCaches;
pub use retrying::Retrying;
pub use wait::{NoWait, Wait, Waiter};

#[cfg(test)]
mod percpu_tests;
#[cfg(test)]
pub(crate) mod tests;
