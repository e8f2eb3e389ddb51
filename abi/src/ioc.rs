//! The `_IOC` encoding of ioctl numbers (asm-generic, as on x86 and UML):
//! direction in bits 30–31, argument size in bits 16–29, type in bits 8–15,
//! number in bits 0–7. The kernel side builds the same numbers with
//! `kernel::ioctl::_IOWR` and the client with `nix`'s macros; both check
//! that they agree with these.

/// The argument is written by user space (read by the kernel).
pub const WRITE: u32 = 1;
/// The argument is read by user space (written by the kernel).
pub const READ: u32 = 2;

const NR_BITS: u32 = 8;
const TYPE_BITS: u32 = 8;
const SIZE_BITS: u32 = 14;
const TYPE_SHIFT: u32 = NR_BITS;
const SIZE_SHIFT: u32 = TYPE_SHIFT + TYPE_BITS;
const DIR_SHIFT: u32 = SIZE_SHIFT + SIZE_BITS;

/// The largest argument size the encoding holds.
pub const MAX_SIZE: usize = (1 << SIZE_BITS) - 1;

/// The number of a command of direction `dir`, type `ty`, number `nr` and
/// argument size `size` (at most [`MAX_SIZE`]; larger sizes do not
/// compile when used in a constant).
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    assert!(size <= MAX_SIZE && ty < (1 << TYPE_BITS) && nr < (1 << NR_BITS) && dir < 4);
    (dir << DIR_SHIFT) | ((size as u32) << SIZE_SHIFT) | (ty << TYPE_SHIFT) | nr
}

/// A read-write command with argument `T`.
pub const fn iowr<T>(nr: u32) -> u32 {
    ioc(READ | WRITE, crate::IOCTL_TYPE, nr, core::mem::size_of::<T>())
}

/// A read-only command (the kernel fills the argument) with argument `T`.
pub const fn ior<T>(nr: u32) -> u32 {
    ioc(READ, crate::IOCTL_TYPE, nr, core::mem::size_of::<T>())
}

/// The direction bits of `cmd`.
pub const fn dir(cmd: u32) -> u32 {
    cmd >> DIR_SHIFT
}

/// The type byte of `cmd`.
pub const fn ty(cmd: u32) -> u32 {
    (cmd >> TYPE_SHIFT) & ((1 << TYPE_BITS) - 1)
}

/// The number of `cmd`.
pub const fn nr(cmd: u32) -> u32 {
    cmd & ((1 << NR_BITS) - 1)
}

/// The argument size encoded in `cmd`.
pub const fn size(cmd: u32) -> usize {
    ((cmd >> SIZE_SHIFT) & ((1 << SIZE_BITS) - 1)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let c = ioc(READ | WRITE, 0xBB, 0x17, 176);
        assert_eq!((dir(c), ty(c), nr(c), size(c)), (3, 0xBB, 0x17, 176));
        // The value Linux's _IOWR(0xBB, 0x17, 176 bytes) has.
        assert_eq!(c, 0xC0B0_BB17);
    }
}
