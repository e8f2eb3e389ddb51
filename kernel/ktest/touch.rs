// SPDX-License-Identifier: MIT OR Apache-2.0

//! Writing and reading back every page of a mapped range.
//!
//! Each page gets three words stamped with a value derived from its address
//! and a salt: the first, one in the middle and the last, so that a page
//! mapped twice, a page mapped at the wrong address and a page that was not
//! zeroed all show up.

use vmspace_shim::{Range, Size};

use crate::outcome::{Failure, Outcome};

/// The word stamped at `addr` for `salt`.
fn stamp(addr: usize, salt: u64) -> u64 {
    (addr as u64).rotate_left(17) ^ salt ^ 0xA5A5_5A5A_0F0F_F0F0
}

/// Offsets of the stamped words in a page of `page` bytes.
fn offsets(page: Size) -> [usize; 3] {
    [0, page.0 / 2, page.0 - 8]
}

/// Stamp every page of `range`. Returns the pages written.
///
/// # Safety
///
/// `range` is page-aligned (pages of `page` bytes), mapped read-write, and no
/// one else accesses it.
pub unsafe fn stamp_pages(range: Range, page: Size, salt: u64) -> usize {
    let mut n = 0;
    let mut a = range.base().0;
    while a < range.limit().0 {
        for off in offsets(page) {
            let p = (a + off) as *mut u64;
            // SAFETY: `p` is an aligned word inside a page of `range`, which
            // the caller guarantees is mapped read-write and ours alone.
            unsafe { p.write_volatile(stamp(a + off, salt)) };
        }
        n += 1;
        a += page.0;
    }
    n
}

/// Check every page of `range` holds the stamps of `salt` (or zeros, when
/// `salt` is `None`). Returns the pages read.
///
/// # Safety
///
/// As for [`stamp_pages`].
pub unsafe fn verify_pages(range: Range, page: Size, salt: Option<u64>) -> Result<usize, Failure> {
    let mut n = 0;
    let mut a = range.base().0;
    while a < range.limit().0 {
        for off in offsets(page) {
            let p = (a + off) as *const u64;
            // SAFETY: as in `stamp_pages`.
            let got = unsafe { p.read_volatile() };
            match salt {
                None if got != 0 => return Err(Failure::new("a freshly mapped page does not read zero")),
                Some(s) if got != stamp(a + off, s) => {
                    return Err(Failure::new("a mapped page does not hold what was written to it"))
                }
                _ => {}
            }
        }
        n += 1;
        a += page.0;
    }
    Ok(n)
}

/// Check `range` reads zero, stamp it and read the stamps back.
///
/// # Safety
///
/// As for [`stamp_pages`].
pub unsafe fn zero_stamp_verify(range: Range, page: Size, salt: u64) -> Outcome {
    // SAFETY: forwarded from the caller.
    unsafe {
        verify_pages(range, page, None)?;
        stamp_pages(range, page, salt);
        verify_pages(range, page, Some(salt))?;
    }
    Ok(())
}
