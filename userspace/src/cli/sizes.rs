//! Sizes for people: bytes in binary units, and the free-size histogram's
//! classes with their labels.

use serde::Serialize;
use vmspace::arena::FREE_LISTS;

/// Bytes in the largest binary unit they reach (up to EiB), two decimals
/// when not a whole number of it. Takes a `u128` so that 2^64 (the top size
/// class's upper bound) has a name.
pub fn human(n: u128) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = None;
    for (i, name) in UNITS.iter().enumerate() {
        if n >= 1u128 << (10 * (i + 1)) {
            unit = Some((name, 10 * (i as u32 + 1)));
        }
    }
    match unit {
        None => format!("{n} B"),
        Some((name, shift)) if n % (1 << shift) == 0 => format!("{} {name}", n >> shift),
        Some((name, shift)) => {
            let hundredths = ((n % (1 << shift)) * 100) >> shift;
            format!("{}.{hundredths:02} {name}", n >> shift)
        }
    }
}

/// One size class of the free-size histogram: `[from, to)` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bin {
    /// Smallest size in the class.
    pub from: u128,
    /// One past the largest.
    pub to: u128,
    /// Free segments in the class.
    pub count: usize,
}

impl Bin {
    /// `[4 KiB, 8 KiB)`.
    pub fn label(&self) -> String {
        format!("[{}, {})", human(self.from), human(self.to))
    }
}

/// The non-empty classes of an arena's free-size histogram.
pub fn bins(h: &[usize; FREE_LISTS]) -> Vec<Bin> {
    h.iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(k, &count)| Bin { from: 1u128 << k, to: 1u128 << (k + 1), count })
        .collect()
}

/// The histogram on one line.
pub fn histogram_line(bins: &[Bin]) -> String {
    if bins.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = bins.iter().map(|b| format!("{}: {}", b.label(), b.count)).collect();
    parts.join("  ")
}
