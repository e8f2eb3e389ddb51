//! Outside review, round 41: every figure `vmspace replay --json` prints,
//! checked against an independent model of the trace. Placement is made
//! deterministic by placing every allocation with `xalloc ID SIZE exact=A`,
//! so the model knows every address; traces mix partial frees, resizes
//! (grow in place, shrink, and moves under the allocation's own `exact`
//! constraint), failed operations, skipped IDs and IDs reused after being
//! freed, with one span ending one quantum below 2^64.
//!
//! Contracts (README.md:59-70, `vmspace help replay`, src/cli/help.rs):
//! peak = "the most bytes live at once, the live allocations then, and
//! their address extent (lowest start to highest end) with the ratio
//! live/extent"; holes = "free bytes inside the extent (its bytes inside
//! spans - live)"; fragmentation "1 - largest free / all free, in per
//! mille"; `free ID OFFSET SIZE`: "OFFSET counts from where ID was
//! allocated or last resized"; `resize ID SIZE`: "grow or shrink ID in
//! place, or move it under its allocation's constraints when it cannot
//! grow in place".
//!
//! Result on the code reviewed: holds (400 random traces).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};

mod outside_common_rng;
use outside_common_rng::Rng;

#[derive(Default)]
struct Model {
    q: usize,
    spans: Vec<(usize, usize)>,
    /// ID -> (base, address it was placed with (exact or min), windowed,
    /// pieces start -> asked).
    ids: HashMap<String, (usize, usize, bool, BTreeMap<usize, usize>)>,
    failed: HashSet<String>,
    out: BTreeMap<&'static str, u64>,
    peak: (u64, usize, usize, Option<(usize, usize)>), // live, line, segments, extent
    peak_segments: (usize, usize),
}

impl Model {
    fn r(&self, n: usize) -> usize {
        n.div_ceil(self.q) * self.q
    }
    /// Live pieces: start -> rounded end.
    fn live(&self) -> BTreeMap<usize, usize> {
        let mut m = BTreeMap::new();
        for (_, _, _, p) in self.ids.values() {
            for (&a, &s) in p {
                m.insert(a, a + self.r(s));
            }
        }
        m
    }
    fn is_free(&self, a: usize, e: usize) -> bool {
        self.spans.iter().any(|&(s, t)| s <= a && e <= t)
            && self.live().iter().all(|(&s, &t)| t <= a || e <= s)
    }
    /// The lowest quantum-aligned place at or above `min` for `size`.
    fn first_fit(&self, min: usize, size: usize) -> Option<usize> {
        let r = self.r(size);
        for &(s, e) in &self.spans {
            let mut x = s.max(min);
            while x.checked_add(r).is_some_and(|end| end <= e) {
                if self.is_free(x, x + r) {
                    return Some(x);
                }
                x += self.q;
            }
        }
        None
    }
    fn bump(&mut self, k: &'static str) {
        *self.out.entry(k).or_default() += 1;
    }
    fn in_spans(&self, lo: usize, hi: usize) -> usize {
        self.spans.iter().map(|&(s, e)| e.min(hi).saturating_sub(s.max(lo))).sum()
    }
    fn observe(&mut self, line: usize) {
        let live = self.live();
        let bytes: usize = live.iter().map(|(a, e)| e - a).sum();
        if bytes as u64 > self.peak.0 {
            let ext = live.first_key_value().map(|(&a, _)| a).zip(live.values().max().copied());
            self.peak = (bytes as u64, line, live.len(), ext);
        }
        if live.len() > self.peak_segments.0 {
            self.peak_segments = (live.len(), line);
        }
    }
}

fn gen(seed: u64) -> (String, Model) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let q = [1usize, 16, 4096][rng.below(3) as usize];
    let mut m = Model { q, ..Model::default() };
    let low = (0x10_0000, 0x10_0000 + 48 * q);
    let top_end = usize::MAX - q + 1;
    let high = (top_end - 48 * q, top_end);
    m.spans = vec![low, high];
    let mut text = format!(
        "quantum {q:#x}\nadd {:#x} {:#x}\nadd {:#x} {:#x}\n",
        low.0,
        low.1 - low.0,
        high.0,
        high.1 - high.0
    );
    let mut line = 3;
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    for _ in 0..60 {
        line += 1;
        let id = names[rng.below(names.len() as u64) as usize].to_string();
        let live_id = m.ids.contains_key(&id);
        let span = if rng.below(2) == 0 { low } else { high };
        if !live_id && (!m.failed.contains(&id) || rng.below(2) == 0) {
            let at = span.0 + rng.below(46) as usize * q;
            let size = (1 + rng.below(4) as usize) * q - rng.below(q as u64) as usize;
            let window = rng.below(2) == 0;
            m.failed.remove(&id);
            let placed = if window {
                // First fit at or above `at`: deterministic too.
                text += &format!("xalloc {id} {size:#x} min={at:#x} policy=first\n");
                m.first_fit(at, size)
            } else {
                text += &format!("xalloc {id} {size:#x} exact={at:#x}\n");
                at.checked_add(m.r(size)).is_some_and(|e| m.is_free(at, e)).then_some(at)
            };
            if let Some(x) = placed {
                m.ids.insert(id.clone(), (x, at, window, BTreeMap::from([(x, size)])));
                m.bump("allocs");
            } else {
                m.failed.insert(id.clone());
                // Past 2^64: an overflow (exact) or no address at all
                // (window), counted as refused.
                m.bump(if at.checked_add(m.r(size)).is_none() { "refused" } else { "no_space" });
                m.bump("failed");
            }
        } else if !live_id {
            // A failed ID: skipped.
            text += &if rng.below(2) == 0 {
                format!("free {id}\n")
            } else {
                format!("resize {id} 0x10\n")
            };
            m.bump("skipped");
        } else {
            let (base, exact, window, pieces) = m.ids[&id].clone();
            match rng.below(4) {
                0 => {
                    text += &format!("free {id}\n");
                    m.ids.remove(&id);
                    m.bump("frees");
                }
                1 | 2 => {
                    let (&a, &asked) =
                        pieces.iter().nth(rng.below(pieces.len() as u64) as usize).unwrap();
                    let off_in = rng.below(asked as u64) as usize / q * q;
                    let size = if rng.below(2) == 0 { asked - off_in } else { q };
                    let at = a + off_in;
                    text += &format!("free {id} {:#x} {size:#x}\n", at - base);
                    let end = at + size;
                    if end <= a + asked && (end == a + asked || end % q == 0) {
                        let p = &mut m.ids.get_mut(&id).unwrap().3;
                        p.remove(&a);
                        if at > a {
                            p.insert(a, at - a);
                        }
                        if end < a + asked {
                            p.insert(end, a + asked - end);
                        }
                        if p.is_empty() {
                            m.ids.remove(&id);
                        }
                        m.bump("partial_frees");
                    } else {
                        m.bump("failed");
                    }
                }
                _ => {
                    let new = (1 + rng.below(6) as usize) * q - rng.below(q as u64) as usize;
                    text += &format!("resize {id} {new:#x}\n");
                    if pieces.len() != 1 {
                        m.bump("failed");
                        continue;
                    }
                    let (&a, &old) = pieces.iter().next().unwrap();
                    let old_end = a + m.r(old);
                    let new_end = a.checked_add(m.r(new));
                    let moved_end = exact.checked_add(m.r(new));
                    if new_end.is_some_and(|e| e <= old_end || m.is_free(old_end, e)) {
                        m.ids.insert(id.clone(), (a, exact, window, BTreeMap::from([(a, new)])));
                        m.bump("resized_in_place");
                    } else if let Some(x) = if window {
                        m.first_fit(exact, new)
                    } else {
                        moved_end.is_some_and(|e| m.is_free(exact, e)).then_some(exact)
                    } {
                        m.ids.insert(id.clone(), (x, exact, window, BTreeMap::from([(x, new)])));
                        m.bump("moved");
                    } else {
                        m.bump("failed");
                    }
                }
            }
        }
        m.observe(line);
    }
    (text, m)
}

fn replay(trace: &str) -> serde_json::Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmspace"))
        .args(["replay", "-", "--json", "--check"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(trace.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{trace}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Contract check: the report's figures equal the model's.
#[test]
fn replay_figures_match_an_independent_model() {
    for seed in 1..=400 {
        let (trace, m) = gen(seed);
        let v = replay(&trace);
        let ctx = format!("seed {seed}\n{trace}\n{v:#}");
        let o = &v["outcomes"];
        for k in [
            "allocs",
            "no_space",
            "refused",
            "frees",
            "partial_frees",
            "resized_in_place",
            "moved",
            "skipped",
            "failed",
        ] {
            assert_eq!(o[k].as_u64().unwrap(), m.out.get(k).copied().unwrap_or(0), "{k}: {ctx}");
        }
        let (live, pline, psegs, pext) = m.peak;
        assert_eq!(v["peak"]["live_bytes"].as_u64().unwrap(), live, "{ctx}");
        if live > 0 {
            assert_eq!(v["peak"]["line"].as_u64().unwrap() as usize, pline, "{ctx}");
            assert_eq!(v["peak"]["segments"].as_u64().unwrap() as usize, psegs, "{ctx}");
            let (lo, hi) = pext.unwrap();
            assert_eq!(v["peak"]["extent_start"].as_u64().unwrap() as usize, lo, "{ctx}");
            assert_eq!(v["peak"]["extent_end"].as_u64().unwrap() as usize, hi, "{ctx}");
            assert_eq!(v["peak"]["extent_bytes"].as_u64().unwrap() as usize, hi - lo, "{ctx}");
            let holes = m.in_spans(lo, hi) - live as usize;
            assert_eq!(v["peak"]["holes_bytes"].as_u64().unwrap() as usize, holes, "{ctx}");
        }
        assert_eq!(v["peak_segments"].as_u64().unwrap() as usize, m.peak_segments.0, "{ctx}");
        // The end: live, free, largest free, fragmentation.
        let live_end = m.live();
        let end_bytes: usize = live_end.iter().map(|(a, e)| e - a).sum();
        assert_eq!(v["end"]["live_bytes"].as_u64().unwrap() as usize, end_bytes, "{ctx}");
        assert_eq!(v["end"]["segments"].as_u64().unwrap() as usize, live_end.len(), "{ctx}");
        let mut gaps = vec![];
        for &(s, e) in &m.spans {
            let mut at = s;
            for (&a, &t) in live_end.range(s..e) {
                if a > at {
                    gaps.push(a - at);
                }
                at = t;
            }
            if e > at {
                gaps.push(e - at);
            }
        }
        let free: usize = gaps.iter().sum();
        let largest = gaps.iter().copied().max().unwrap_or(0);
        assert_eq!(v["free_bytes"].as_u64().unwrap() as usize, free, "{ctx}");
        assert_eq!(v["largest_free"].as_u64().unwrap() as usize, largest, "{ctx}");
        let frag =
            if free == 0 { 0 } else { 1000 - (largest as u128 * 1000 / free as u128) as u64 };
        assert_eq!(v["fragmentation_per_mille"].as_u64().unwrap(), frag, "{ctx}");
        let bins: u64 = v["free_histogram"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum();
        assert_eq!(bins as usize, gaps.len(), "{ctx}");
        assert_eq!(
            v["failures"].as_array().unwrap().len() as u64,
            m.out.get("failed").copied().unwrap_or(0)
        );
    }
}
