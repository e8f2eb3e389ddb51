//! # vmspace-shim
//!
//! The only door from vmspace to the operating system: the [`PageOps`] trait
//! (reserve, map, unmap, protect, release pages of address space), the typed
//! addresses and sizes every layer uses ([`Addr`], [`Size`], [`Pages`],
//! [`Range`]) with checked arithmetic, the one place alignment math lives
//! ([`align`]), the shim's error type [`ShimError`], a [`FaultInjector`] that
//! wraps any backend, and (feature `sim`) a simulated backend,
//! `sim::SimBackend`, that checks every contract. Feature `std` implements
//! `std::error::Error` for [`ShimError`] and [`Overflow`].
//!
//! `#![no_std]`, no `alloc`, no dependencies: it compiles unchanged in the
//! Linux kernel.
//!
//! ```
//! use vmspace_shim::{Addr, Range, Size};
//! let r = Range::from_size(Addr(0x10000), Size(0x4000)).unwrap();
//! assert!(r.is_aligned(Size(0x1000)));
//! assert_eq!(Addr(usize::MAX).checked_add(Size(1)), Err(vmspace_shim::Overflow));
//! ```

#![no_std]

#[cfg(feature = "std")]
extern crate std;

pub mod addr;
pub mod align;
mod error;
mod fault;
mod ops;
mod overflow;
mod range;
#[cfg(feature = "sim")]
pub mod sim;

pub use addr::{Addr, Pages, Size};
pub use error::{Op, ShimError};
pub use fault::{seed_mix, FaultInjector, FaultShape, InjectedError, SEED_STEP};
pub use ops::{check_page_range, check_reserve_args, PageOps, Protection};
pub use overflow::Overflow;
pub use range::Range;
