//! [`Overflow`]: the one error of checked arithmetic, below both the typed
//! addresses ([`addr`](crate::addr)) and the alignment math
//! ([`align`](crate::align)) that report it.

use core::fmt;

/// An arithmetic step overflowed (or an alignment was not a power of two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("address arithmetic overflowed")
    }
}

/// `?` on an [`Overflow`] works in a function returning
/// `Result<_, Box<dyn std::error::Error>>`.
#[cfg(feature = "std")]
impl std::error::Error for Overflow {}
