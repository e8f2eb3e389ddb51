//! [`Refused`]: a constructor's or a teardown's error with what it was
//! given back, so a refusal loses nothing the caller owned.

use core::fmt;

use super::ArenaError;

/// A constructor or a teardown refused: why, and the value it took that
/// holds the caller's state, given back.
///
/// Which value comes back is each call's to say: a constructor gives back
/// the source of an [`Arena`](super::Arena) (a `VmSource` holds a
/// reservation, a parent arena's imports may be outstanding through it),
/// the `Vm` of a [`VmSource`](crate::sources::VmSource), the arena of a
/// [`SyncArena`](crate::sync::SyncArena) given quantum caches (with its
/// spans and allocations); stores made for the new structure hold nothing
/// of the caller's yet and are released. A teardown that finds what it
/// would give back still in use ([`Arena::into_source`](super::Arena::into_source),
/// [`KeepFree::into_inner`](crate::sources::KeepFree::into_inner),
/// [`VmSource::into_vm`](crate::sources::VmSource::into_vm),
/// [`SyncArena::into_inner`](crate::sync::SyncArena::into_inner)) gives
/// back itself, with [`ArenaError::InUse`] saying what holds it.
///
/// A `Refused` converts into its [`ArenaError`] (`?` in a function
/// returning `ArenaError` drops the value, as before); its `Debug` shows the
/// error alone, so `unwrap` works whatever the value, as for
/// `std::sync::PoisonError`.
pub struct Refused<T> {
    error: ArenaError,
    value: T,
}

impl<T> Refused<T> {
    /// `value` given back for `error`.
    pub(crate) fn new(error: ArenaError, value: T) -> Self {
        Refused { error, value }
    }

    /// Why the call refused.
    pub fn error(&self) -> ArenaError {
        self.error
    }

    /// The value given back.
    pub fn get_ref(&self) -> &T {
        &self.value
    }

    /// The value given back, taken.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The error and the value.
    pub fn into_parts(self) -> (ArenaError, T) {
        (self.error, self.value)
    }
}

impl<T> From<Refused<T>> for ArenaError {
    fn from(r: Refused<T>) -> Self {
        r.error
    }
}

impl<T> fmt::Debug for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused").field("error", &self.error).finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

#[cfg(feature = "std")]
impl<T> std::error::Error for Refused<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::string::ToString;

    use super::*;

    /// Not `Debug`: a `Refused` of it is.
    struct Opaque(u32);

    #[test]
    fn gives_the_value_back_and_reads_as_its_error() {
        let e = ArenaError::InvalidArgument("x");
        let r = Refused::new(e, Opaque(7));
        assert_eq!(r.error(), e);
        assert_eq!(r.get_ref().0, 7);
        assert_eq!(r.to_string(), e.to_string());
        assert_eq!(format!("{r:?}"), "Refused { error: InvalidArgument(\"x\"), .. }");
        let (error, value) = r.into_parts();
        assert_eq!((error, value.0), (e, 7));
        assert_eq!(
            ArenaError::from(Refused::new(ArenaError::Overflow, Opaque(0))),
            ArenaError::Overflow
        );
        assert_eq!(Refused::new(e, Opaque(3)).into_inner().0, 3);
    }
}
