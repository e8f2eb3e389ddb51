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

/// One line of output, NUL-terminated, cut to fit.
struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Line { buf: [0; 160], len: 0 }
    }

    /// Print the line through `pr` as `pr("%s", line)`.
    ///
    /// # Safety
    ///
    /// `pr` is a printf-like function.
    unsafe fn emit(&mut self, pr: unsafe extern "C" fn(*const c_char, ...) -> c_int) {
        let end = self.len.min(self.buf.len() - 1);
        self.buf[end] = 0;
        // SAFETY: a printf-like function given "%s" and a NUL-terminated
        // string (caller).
        unsafe { pr(cstr_ptr(c"%s"), self.buf.as_ptr().cast::<c_char>()) };
        self.len = 0;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = (self.buf.len() - 1).saturating_sub(self.len);
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
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
        let mut line = Line::new();
        // SAFETY: the caller's contract.
        let o = match unsafe { obj::<P, _>(addr as *const vmem_t) } {
            Ok(o) => o,
            Err(e) => {
                let _ = writeln!(line, "vmem {addr:#x}: not a live arena ({e})");
                // SAFETY: `pr` is printf-like (caller).
                return unsafe { line.emit(pr) };
            }
        };
        let name = o.name.iter().position(|&b| b == 0).map_or(&o.name[..], |n| &o.name[..n]);
        let name = core::str::from_utf8(name).unwrap_or("?");
        let (s, q, live) = o.shared.with(|a| (a.sizes(), a.quantum().0, a.live()));
        let _ = writeln!(
            line,
            "vmem {addr:#x} '{name}': quantum {q:#x} total {:#x} allocated {:#x} free {:#x} unflushed {:#x} imported {:#x} live {live}",
            s.total.0, s.allocated.0, s.free.0, s.unflushed.0, s.imported.0
        );
        // SAFETY: as above.
        unsafe { line.emit(pr) };
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
                let _ = writeln!(line, "  {kind:5} {:#x}-{end:#x} size {:#x}", c.start, c.size);
                // SAFETY: as above.
                unsafe { line.emit(pr) };
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
            let mut line = Line::new();
            let _ = writeln!(line, "vmem_printall: no list of arenas (use vmem_print)");
            // SAFETY: `pr` is printf-like (caller).
            unsafe { line.emit(pr) };
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
            let mut line = Line::new();
            let _ = writeln!(line, "vmem_whatis {addr:#x}: no list of arenas to search");
            // SAFETY: `pr` is printf-like (caller).
            unsafe { line.emit(pr) };
        }
    }

    /// `vmem_startup`: nothing to set up (no global state).
    ///
    /// # Safety
    ///
    /// None.
    pub unsafe fn vmem_startup() {}
}
