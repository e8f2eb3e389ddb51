//! Sharing arenas between threads: the lock and waiting the core needs
//! ([`RawLock`], [`Waiter`]), supplied by the build, and [`SyncArena`], an
//! arena behind such a lock with quantum caches
//! ([`CacheHandle`](crate::qcache::CacheHandle)) and waiting for space.
//!
//! ```
//! use vmspace::arena::{Arena, NoSource, Policy, SliceStore};
//! use vmspace::sync::{NoWait, SpinLock, SyncArena, Wait};
//! use vmspace::qcache::CacheHandle;
//! use vmspace::{Addr, Size};
//!
//! let (mut tags, mut hash, mut qc) = ([0u8; 1 << 14], [0u8; 1 << 14], vec![0u8; 1 << 16]);
//! let mut arena = Arena::new("shared", Size(16), SliceStore::new(&mut tags),
//!                            SliceStore::new(&mut hash), NoSource).unwrap();
//! arena.add(Addr(1 << 20), Size(1 << 20)).unwrap();
//! let shared = SyncArena::new(arena, SpinLock::new(), NoWait::default(),
//!                             Some((4, SliceStore::new(&mut qc)))).unwrap();
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

pub(crate) mod arena;
mod lock;
mod wait;

pub use arena::SyncArena;
pub use lock::{RawLock, SpinLock};
pub use wait::{NoWait, Wait, Waiter};

#[cfg(test)]
pub(crate) mod tests;
