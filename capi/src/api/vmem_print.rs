//! vmem(9)'s debugging output: `vmem_print` of one arena through a
//! printf-like function; `vmem_printall` and `vmem_whatis`, which need a
//! list of every arena (global state vmspace does not keep), say so.

use core::ffi::{c_char, c_int};
use core::fmt::{self, Write};

use vmspace::arena::SegmentKinds;

use super::info::segment;
use super::{obj, Api};
use crate::ctypes::*;
use crate::errno::cstr_ptr;
use crate::platform::Platform;

/// The printf-like function `vmem_print` writes through.
type Printf = unsafe extern "C" fn(*const c_char, ...) -> c_int;

/// Output through a printf-like function, a buffer at a time: a line longer
/// than the buffer goes out in pieces, none of it lost.
///
/// # Invariants
///
/// `pr` is a printf-like function; `len < buf.len()`.
struct Out {
    pr: Printf,
    buf: [u8; 160],
    len: usize,
}

impl Out {
    /// Output through `pr`.
    ///
    /// # Safety
    ///
    /// `pr` is a printf-like function.
    unsafe fn new(pr: Printf) -> Self {
        // INVARIANT: `pr` as the caller promises; nothing buffered.
        Out { pr, buf: [0; 160], len: 0 }
    }

    /// Print what is buffered, as `pr("%s", buffered)`.
    fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        self.buf[self.len] = 0;
        // SAFETY: a printf-like function (type invariant) given "%s" and a
        // NUL-terminated string.
        unsafe { (self.pr)(cstr_ptr(c"%s"), self.buf.as_ptr().cast::<c_char>()) };
        self.len = 0;
    }

    /// Write `bytes` as they are (an arena's name: C's bytes, UTF-8 or not;
    /// NUL never among them).
    fn bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == self.buf.len() - 1 {
                self.flush();
            }
            let n = bytes.len().min(self.buf.len() - 1 - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
    }
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

impl<P: Platform> Api<P> {
    /// `vmem_print`: the arena at `addr` (a `vmem_t *` as an address), its
    /// sizes and every span and segment, one line each through `pr`.
    ///
    /// # Safety
    ///
    /// `addr` is 0 or an arena's address, as for every `vmem_t *`; `pr` is
    /// NULL or a printf-like function.
    pub unsafe fn vmem_print(addr: vmem_addr_t, modif: *const c_char, pr: vmem_printf_t) {
        let _ = modif;
        let Some(pr) = pr else { return };
        // SAFETY: `pr` is printf-like (caller).
        let mut out = unsafe { Out::new(pr) };
        // SAFETY: the caller's contract.
        let o = match unsafe { obj::<P, _>(addr as *const vmem_t) } {
            Ok(o) => o,
            Err(e) => {
                let _ = writeln!(out, "vmem {addr:#x}: not a live arena ({e})");
                return out.flush();
            }
        };
        let name = o.name.iter().position(|&b| b == 0).map_or(&o.name[..], |n| &o.name[..n]);
        let (s, q, live) = o.shared.with(|a| (a.sizes(), a.quantum().0, a.live()));
        let _ = write!(out, "vmem {addr:#x} '");
        out.bytes(name);
        let _ = writeln!(
            out,
            "': quantum {q:#x} total {:#x} allocated {:#x} free {:#x} unflushed {:#x} imported {:#x} live {live}",
            s.total.0, s.allocated.0, s.free.0, s.unflushed.0, s.imported.0
        );
        out.flush();
        o.shared.with(|a| {
            for seg in a.walk(SegmentKinds::ALL) {
                let c = segment(&seg);
                let kind = match c.kind {
                    VMSPACE_SEG_SPAN => "span",
                    VMSPACE_SEG_FREE => "free",
                    VMSPACE_SEG_UNFLUSHED => "unfl",
                    _ => "alloc",
                };
                let end = c.start.wrapping_add(c.size);
                let _ = writeln!(out, "  {kind:5} {:#x}-{end:#x} size {:#x}", c.start, c.size);
                out.flush();
            }
        });
    }

    /// `vmem_printall`: vmspace keeps no list of arenas; prints one line
    /// saying so.
    ///
    /// # Safety
    ///
    /// `pr` is NULL or a printf-like function.
    pub unsafe fn vmem_printall(modif: *const c_char, pr: vmem_printf_t) {
        let _ = modif;
        if let Some(pr) = pr {
            // SAFETY: `pr` is printf-like (caller).
            let mut out = unsafe { Out::new(pr) };
            let _ = writeln!(out, "vmem_printall: no list of arenas (use vmem_print)");
            out.flush();
        }
    }

    /// `vmem_whatis`: vmspace keeps no list of arenas to search; prints one
    /// line saying so.
    ///
    /// # Safety
    ///
    /// `pr` is NULL or a printf-like function.
    pub unsafe fn vmem_whatis(addr: vmem_addr_t, pr: vmem_printf_t) {
        if let Some(pr) = pr {
            // SAFETY: `pr` is printf-like (caller).
            let mut out = unsafe { Out::new(pr) };
            let _ = writeln!(out, "vmem_whatis {addr:#x}: no list of arenas to search");
            out.flush();
        }
    }

    /// `vmem_startup`: nothing to set up (no global state).
    ///
    /// # Safety
    ///
    /// None.
    pub unsafe fn vmem_startup() {}
}
