//! The C declarations the headers must match, recorded on the Rust side:
//! every function's signature, every callback type, every structure's
//! fields and every constant, as the macros that define them wrote them.
//!
//! The header test (`capi/tests/header.rs`) parses `vmspace.h` and
//! `vmspace/vmem.h` and compares them with these lists both ways; the C
//! test build (`capi/ctest/build.rs`) writes a C file that assigns every
//! function to a pointer of the type these lists give, compiled against the
//! headers with incompatible pointer types as errors. A declaration that
//! drifts on either side fails the build or the test.

use core::fmt::{self, Write};

/// One function or callback type: name, return type and argument types, as
/// Rust type text (`stringify!` of the definition).
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// The C name.
    pub name: &'static str,
    /// The return type (`()` for `void`).
    pub ret: &'static str,
    /// The argument types, in order.
    pub args: &'static [&'static str],
}

/// One `#[repr(C)]` structure: its C tag, size and fields.
#[derive(Debug, Clone, Copy)]
pub struct Struct {
    /// The structure's tag (`struct NAME` in C).
    pub name: &'static str,
    /// Its size in bytes.
    pub size: usize,
    /// `(field, Rust type text, offset)`, in order.
    pub fields: &'static [(&'static str, &'static str, usize)],
}

/// One constant: its name and value (as a `u64`, two's complement).
#[derive(Debug, Clone, Copy)]
pub struct Const {
    /// The macro name in C.
    pub name: &'static str,
    /// The value.
    pub value: u64,
}

/// A Rust type as written by the macros, without spaces: `*const c_char`
/// becomes `*constc_char`.
fn squeeze(ty: &str) -> impl Iterator<Item = char> + '_ {
    ty.chars().filter(|c| !c.is_whitespace())
}

/// Write the C spelling of the Rust type text `ty` (one of the forms the
/// API uses: a `c_*` type, an alias named as in C, a structure, a callback
/// alias, or raw pointers to those) to `out`. `structs` and `callbacks`
/// name the structures (written `struct NAME`) and the callback aliases
/// (written `NAME *`).
pub fn c_type(
    ty: &str,
    structs: &[Struct],
    callbacks: &[Signature],
    out: &mut dyn Write,
) -> fmt::Result {
    let mut buf = [0u8; 96];
    let mut len = 0;
    for c in squeeze(ty) {
        let mut b = [0u8; 4];
        for &x in c.encode_utf8(&mut b).as_bytes() {
            if len == buf.len() {
                return Err(fmt::Error);
            }
            buf[len] = x;
            len += 1;
        }
    }
    let s = core::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?;
    c_type_squeezed(s, structs, callbacks, out)
}

fn c_type_squeezed(
    s: &str,
    structs: &[Struct],
    callbacks: &[Signature],
    out: &mut dyn Write,
) -> fmt::Result {
    if let Some(rest) = s.strip_prefix("*const") {
        out.write_str("const ")?;
        c_type_squeezed(rest, structs, callbacks, out)?;
        return out.write_str(" *");
    }
    if let Some(rest) = s.strip_prefix("*mut") {
        c_type_squeezed(rest, structs, callbacks, out)?;
        return out.write_str(" *");
    }
    match s {
        "()" | "c_void" => out.write_str("void"),
        "c_int" => out.write_str("int"),
        "c_uint" => out.write_str("unsigned int"),
        "c_char" => out.write_str("char"),
        "u64" => out.write_str("uint64_t"),
        "u32" => out.write_str("uint32_t"),
        _ if structs.iter().any(|t| t.name == s) => write!(out, "struct {s}"),
        _ if callbacks.iter().any(|c| c.name == s) => write!(out, "{s} *"),
        _ => out.write_str(s),
    }
}
