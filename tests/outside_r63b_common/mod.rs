//! What round 63b's fault searches share.

/// Seeds `1..n`, a quarter of them under AddressSanitizer (`make asan`
/// sets `VMSPACE_ASAN`), where each runs several times slower: the same
/// paths, fewer schedules.
pub fn seeds(n: u64) -> std::ops::Range<u64> {
    let n = if std::env::var_os("VMSPACE_ASAN").is_some() { (n / 4).max(2) } else { n };
    1..n
}
