//! The API's functions, generic over the [`Platform`]: [`Api<P>`] holds one
//! associated function per C function, with its C name and signature;
//! [`export_native!`](crate::export_native) and
//! [`export_vmem!`](crate::export_vmem) make the `extern "C"` symbols that
//! call them. Each checks every pointer and value it is given before it
//! changes anything, and never panics.

mod arena;
mod info;
mod memory;
mod vm;
mod vmem;
mod vmem_print;

use core::ffi::c_int;
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::errno::{code, errno};
use crate::object::ArenaObj;
use crate::platform::Platform;

/// The C API over the platform `P` (see the crate docs and the headers).
pub struct Api<P>(PhantomData<P>);

/// The live arena object at `p` (see [`ArenaObj::from_ptr`]).
///
/// # Safety
///
/// As for [`ArenaObj::from_ptr`].
#[inline]
unsafe fn obj<'a, P: Platform, T>(p: *const T) -> Result<&'a ArenaObj<P>, c_int> {
    P::enter();
    // SAFETY: the caller's contract.
    unsafe { ArenaObj::from_ptr(p) }
}

/// An out pointer the caller gave: non-null and aligned, or `-EINVAL`.
#[inline]
fn out<T>(p: *mut T) -> Result<NonNull<T>, c_int> {
    NonNull::new(p).filter(|p| p.as_ptr().is_aligned()).ok_or(-code::EINVAL)
}

/// An optional out pointer the caller gave: NULL (`None`: nothing is to be
/// written), or non-null and aligned; misaligned is `-EINVAL`.
#[inline]
fn out_opt<T>(p: *mut T) -> Result<Option<NonNull<T>>, c_int> {
    if p.is_null() {
        Ok(None)
    } else {
        out(p).map(Some)
    }
}

/// 0 for `Ok`, the error otherwise.
#[inline]
fn status(r: Result<(), c_int>) -> c_int {
    r.err().unwrap_or(0)
}

/// An arena error as a C status.
fn fail(e: vmspace::ArenaError) -> c_int {
    errno(&e)
}
