//! Helpers shared by the integration tests.

/// Byte offsets at which fault tests place the simulated backend's buffer
/// within a larger allocation: page multiples and odd shifts of a 256-byte
/// page, so that reservations land at different addresses relative to every
/// larger alignment (grains, zones, table pages). A result must not depend
/// on where memory happens to land.
pub const OFFSETS: [usize; 8] =
    [0, 8, 256, 3 * 256 + 40, 5 * 256, 13 * 256 + 200, 31 * 256, 64 * 256];

/// The largest of [`OFFSETS`], for sizing buffers.
pub const MAX_OFFSET: usize = 64 * 256;

/// Run `f` once per offset in [`OFFSETS`] on a fresh zeroed buffer of `len`
/// bytes that starts that far into a larger allocation; `f` gets the offset
/// (for its messages) and the buffer.
pub fn at_offsets(len: usize, mut f: impl FnMut(usize, &mut [u8])) {
    for off in OFFSETS {
        let mut buf = vec![0u8; len + MAX_OFFSET];
        f(off, &mut buf[off..off + len]);
    }
}
