//! Where an [`Arena`](crate::arena::Arena) imports from, beyond another
//! arena: the adapters that make the other structures a
//! [`Source`](crate::arena::Source). They sit above both sides, so the arena
//! knows nothing of the VM arena and the VM arena nothing of the arena.
//!
//! - [`VmSource`]: pages of a [`Vm`](crate::vm::Vm), mapped on import and
//!   unmapped on give-back;
//! - a [`VmArena`](crate::vmarena::VmArena) itself: runs of tracts owned by
//!   [`IMPORT_OWNER`];
//!
//! and one that sits on any source: [`KeepFree`], an import quantum and
//! spans given back kept for the next imports of their size.

mod keep;
mod vm;
mod vmarena;

#[cfg(test)]
mod keep_tests;

pub use keep::{KeepCounts, KeepFree, MAX_KEPT};
pub use vm::{VmSource, DEFAULT_TRIM_SLACK};
pub use vmarena::IMPORT_OWNER;
