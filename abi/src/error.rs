//! The error record a failed command leaves in its argument's `err` field.
//!
//! A failure is a chain of codes, outermost first (for example an arena
//! whose VM source failed to map: [`ARENA_VM`], [`VM_BACKEND`],
//! [`SHIM_OUT_OF_MEMORY`]), terminated by [`NONE`], with the payload of the
//! innermost cause in `a`, `b`, `c`, `op`, `errno` and `msg`. Each code's
//! payload is documented beside it; fields a code does not name are zero,
//! but `msg`, which the device's own codes (`DEV_*`) always fill with a
//! sentence saying what went wrong.
//! Codes are `layer << 8 | kind`: the device itself (`0x01`), the arena
//! (`0x02`), the VM (`0x03`), errors the layers share (`0x04`) and the page
//! backend (`0x05`), mirroring `vmspace`'s `ArenaError`, `VmError`,
//! `CommonError` and `ShimError` variant for variant.

plain! {
    /// What went wrong (see the module documentation).
    pub struct WireError {
        /// The codes, outermost first; [`NONE`] after the last (all
        /// [`NONE`]: no error).
        pub chain: [u16; 4],
        /// A backend operation (`SHIM_OS`, `SHIM_INJECTED`): reserve 0,
        /// release 1, map 2, unmap 3, protect 4.
        pub op: u32,
        /// An errno (`SHIM_OS`), as the backend reported it (the kernel's
        /// backends report negative ones, `-EINVAL`).
        pub errno: i32,
        /// First payload value.
        pub a: u64,
        /// Second payload value.
        pub b: u64,
        /// Third payload value.
        pub c: u64,
        /// [`FLAG_C`] when `c` holds a value that may be absent.
        pub flags: u32,
        /// Bytes of `msg` used.
        pub msg_len: u32,
        /// A message (UTF-8, not NUL-terminated), for the codes that carry
        /// one.
        pub msg: [u8; 80],
    }
}

impl WireError {
    /// The innermost code of the chain ([`NONE`] for no error).
    pub fn innermost(&self) -> u16 {
        self.chain.iter().copied().take_while(|&c| c != NONE).last().unwrap_or(NONE)
    }

    /// Whether the record holds an error.
    pub fn is_error(&self) -> bool {
        self.chain[0] != NONE
    }

    /// The message, as far as it is valid UTF-8.
    pub fn message(&self) -> &str {
        let bytes = &self.msg[..(self.msg_len as usize).min(self.msg.len())];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// Store `text` in `msg`, cut at a character boundary if too long.
    pub fn set_message(&mut self, text: &str) {
        let mut n = text.len().min(self.msg.len());
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        self.msg[..n].copy_from_slice(&text.as_bytes()[..n]);
        self.msg_len = n as u32;
    }
}

/// `c` holds a value (`ARENA_BAD_FREE`: the live allocation's size).
pub const FLAG_C: u32 = 1;

/// No (further) error.
pub const NONE: u16 = 0;

/// The id names no object of this file (freed, never made, or another
/// file's). `a`: the id.
pub const DEV_BAD_ID: u16 = 0x0101;
/// A field is out of its domain; `msg` names it.
pub const DEV_BAD_FIELD: u16 = 0x0102;
/// The file would exceed one of its resource bounds; `msg` names it, `a`
/// is the bound, `b` what the command asked for in all.
pub const DEV_LIMIT: u16 = 0x0103;
/// The id names an object of the other kind (an arena for a VM command, or
/// the reverse). `a`: the id.
pub const DEV_WRONG_KIND: u16 = 0x0104;
/// A read or write through the file reached a page that is not mapped
/// with the access it needs (unmapped, or protected). `a`: the page.
pub const DEV_NOT_ACCESSIBLE: u16 = 0x0105;

/// `ArenaError::Overflow`.
pub const ARENA_OVERFLOW: u16 = 0x0201;
/// `ArenaError::InvalidArgument`: `msg`.
pub const ARENA_INVALID_ARGUMENT: u16 = 0x0202;
/// `ArenaError::Misaligned`: `a` value, `b` alignment.
pub const ARENA_MISALIGNED: u16 = 0x0203;
/// `ArenaError::OverConstrained`: `msg`.
pub const ARENA_OVER_CONSTRAINED: u16 = 0x0204;
/// `ArenaError::NoSpace`: `a` size.
pub const ARENA_NO_SPACE: u16 = 0x0205;
/// `ArenaError::BadFree`: `a` address, `b` size, `c` the allocated size
/// when [`FLAG_C`].
pub const ARENA_BAD_FREE: u16 = 0x0206;
/// `ArenaError::BadHandle`: `a` address, `b` tag.
pub const ARENA_BAD_HANDLE: u16 = 0x0207;
/// `ArenaError::SpanOverlap`: `a` base, `b` limit.
pub const ARENA_SPAN_OVERLAP: u16 = 0x0208;
/// `ArenaError::NotAdjacent`: `a` base, `b` limit.
pub const ARENA_NOT_ADJACENT: u16 = 0x0209;
/// `ArenaError::TagsExhausted`.
pub const ARENA_TAGS_EXHAUSTED: u16 = 0x020a;
/// `ArenaError::Backing`: a `SHIM_*` code follows.
pub const ARENA_BACKING: u16 = 0x020b;
/// `ArenaError::Vm`: a `VM_*` code follows.
pub const ARENA_VM: u16 = 0x020c;
/// `ArenaError::BadImport`: `a` base, `b` limit.
pub const ARENA_BAD_IMPORT: u16 = 0x020d;
/// `ArenaError::SourceBusy`.
pub const ARENA_SOURCE_BUSY: u16 = 0x020e;
/// `ArenaError::Injected`.
pub const ARENA_INJECTED: u16 = 0x020f;
/// `ArenaError::Corrupt`: `msg`, `a` tag.
pub const ARENA_CORRUPT: u16 = 0x0210;
/// An arena error this ABI version does not know: `msg` is its text.
pub const ARENA_OTHER: u16 = 0x02ff;

/// `VmError::Backend`: a `SHIM_*` code follows.
pub const VM_BACKEND: u16 = 0x0301;
/// `VmError::Common`: a `COMMON_*` code follows.
pub const VM_COMMON: u16 = 0x0302;
/// `VmError::AlreadyMapped`: `a` base, `b` limit.
pub const VM_ALREADY_MAPPED: u16 = 0x0303;
/// `VmError::NotMapped`: `a` base, `b` limit.
pub const VM_NOT_MAPPED: u16 = 0x0304;

/// `CommonError::Overflow`.
pub const COMMON_OVERFLOW: u16 = 0x0401;
/// `CommonError::InvalidArgument`: `msg`.
pub const COMMON_INVALID_ARGUMENT: u16 = 0x0402;
/// `CommonError::Misaligned`: `a` value, `b` alignment.
pub const COMMON_MISALIGNED: u16 = 0x0403;
/// `CommonError::OutOfRange`: `a` base, `b` limit.
pub const COMMON_OUT_OF_RANGE: u16 = 0x0404;
/// `CommonError::Corrupt`: `msg`.
pub const COMMON_CORRUPT: u16 = 0x0405;
/// A common error this ABI version does not know: `msg` is its text.
pub const COMMON_OTHER: u16 = 0x04ff;

/// `ShimError::Overflow`.
pub const SHIM_OVERFLOW: u16 = 0x0501;
/// `ShimError::Misaligned`: `a` value, `b` alignment.
pub const SHIM_MISALIGNED: u16 = 0x0502;
/// `ShimError::InvalidArgument`: `msg`.
pub const SHIM_INVALID_ARGUMENT: u16 = 0x0503;
/// `ShimError::NotReserved`: `a` base, `b` limit.
pub const SHIM_NOT_RESERVED: u16 = 0x0504;
/// `ShimError::AlreadyMapped`: `a` base, `b` limit.
pub const SHIM_ALREADY_MAPPED: u16 = 0x0505;
/// `ShimError::NotMapped`: `a` base, `b` limit.
pub const SHIM_NOT_MAPPED: u16 = 0x0506;
/// `ShimError::OutOfAddressSpace`: `a` size.
pub const SHIM_OUT_OF_ADDRESS_SPACE: u16 = 0x0507;
/// `ShimError::OutOfMemory`: `a` base, `b` limit.
pub const SHIM_OUT_OF_MEMORY: u16 = 0x0508;
/// `ShimError::Os`: `op`, `errno`.
pub const SHIM_OS: u16 = 0x0509;
/// `ShimError::Injected`: `op`.
pub const SHIM_INJECTED: u16 = 0x050a;
/// `ShimError::Unflushed`: `a` base, `b` limit.
pub const SHIM_UNFLUSHED: u16 = 0x050b;
/// A backend error this ABI version does not know: `msg` is its text.
pub const SHIM_OTHER: u16 = 0x05ff;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_at_character_boundaries() {
        let mut e = WireError::ZERO;
        assert!(!e.is_error());
        e.set_message("short");
        assert_eq!(e.message(), "short");
        let long = "é".repeat(60); // 120 bytes
        e.set_message(&long);
        assert_eq!(e.message(), "é".repeat(40));
        e.msg_len = 1000;
        assert_eq!(e.message().len(), 80);
        e.chain = [ARENA_VM, VM_BACKEND, SHIM_OS, NONE];
        assert_eq!(e.innermost(), SHIM_OS);
        assert!(e.is_error());
    }
}
