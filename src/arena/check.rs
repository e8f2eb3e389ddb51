//! The consistency check: walk every structure, verify every invariant.

use vmspace_shim::align;

use super::source::Source;
use super::store::Store;
use super::tag::{Tag, HEAD, K_ALLOC, K_FREE, K_HELD, K_SPAN, K_UNFLUSHED};
use super::{Arena, ArenaError, BASE_TAGS};

/// Running totals gathered on the address-list walk.
#[derive(Default)]
struct Tally {
    spans: usize,
    free: usize,
    alloc: usize,
    held: usize,
    unflushed: usize,
    unflushed_bytes: usize,
    free_bytes: usize,
    alloc_bytes: usize,
    total: usize,
    imported: usize,
}

impl<S: Store, I: Source> Arena<S, I> {
    /// Verify every invariant of the arena: the address list tiles each span
    /// exactly with quantum-aligned segments in order, spans are ordered and
    /// disjoint and agree with the span list, no two free segments touch
    /// inside a span, every free segment is on the right free list (and the
    /// freemap agrees), every allocated segment is in the right hash bucket
    /// or (held by a handle) counted as held, every unflushed segment is on
    /// the unflushed list and nothing else is,
    /// tags in use and on the free-tag list add up, and the sizes, counts and
    /// rotor agree with what the walk finds. Returns the first violation.
    pub fn check(&self) -> Result<(), ArenaError> {
        self.tags.check()?;
        let written = self.tags.all().len();
        let bad = |what, tag| Err(ArenaError::Corrupt { what, tag });
        let q = self.quantum.get();
        let mut n = Tally::default();
        let mut prev = HEAD;
        let mut prev_kind = self.tags.get(HEAD).kind();
        let mut i = self.tags.get(HEAD).anext;
        let mut span: Option<Tag> = None;
        let mut pos = 0usize;
        let mut last_end = 0usize;
        let mut span_cursor = self.tags.get(HEAD).knext;
        let mut rotor_seen = self.rotor == HEAD;
        let mut steps = 0usize;
        while i != HEAD {
            if i as usize >= written {
                return bad("address-list link out of range", i);
            }
            steps += 1;
            if steps > written {
                return bad("address list has a cycle", i);
            }
            let t = *self.tags.get(i);
            if t.aprev != prev {
                return bad("address-list back link broken", i);
            }
            rotor_seen |= i == self.rotor;
            match t.kind() {
                K_SPAN => {
                    if span.is_some_and(|s| pos != s.end) {
                        return bad("span not tiled by its segments", i);
                    }
                    if t.start >= t.end || !align::is_aligned(t.start | t.end, q) {
                        return bad("span empty or not quantum-aligned", i);
                    }
                    if n.spans > 0 && t.start < last_end {
                        return bad("spans overlap or out of address order", i);
                    }
                    if i != span_cursor {
                        return bad("span list disagrees with address list", i);
                    }
                    if t.knext as usize >= written || self.tags.get(t.knext).kprev() != i {
                        return bad("span-list link broken", i);
                    }
                    span_cursor = t.knext;
                    span = Some(t);
                    pos = t.start;
                    last_end = t.end;
                    n.spans += 1;
                    n.total += t.size();
                    if t.imported() {
                        n.imported += t.size();
                    }
                }
                K_FREE | K_ALLOC | K_HELD | K_UNFLUSHED => {
                    let Some(s) = span else { return bad("segment outside any span", i) };
                    if t.start != pos || t.end > s.end || t.start >= t.end {
                        return bad("segments do not tile their span", i);
                    }
                    if !align::is_aligned(t.start | t.end, q) {
                        return bad("segment not quantum-aligned", i);
                    }
                    if t.kind() == K_FREE {
                        if prev_kind == K_FREE {
                            return bad("adjacent free segments not coalesced", i);
                        }
                        n.free += 1;
                        n.free_bytes += t.size();
                    } else if t.kind() == K_UNFLUSHED {
                        n.unflushed += 1;
                        n.unflushed_bytes += t.size();
                    } else {
                        if t.kprev() as usize >= q || t.kprev() as usize >= t.size() {
                            return bad("allocated segment's slack out of range", i);
                        }
                        if t.kind() == K_ALLOC {
                            n.alloc += 1;
                        } else {
                            n.held += 1;
                        }
                        n.alloc_bytes += t.size();
                    }
                    pos = t.end;
                }
                _ => return bad("unexpected tag kind on the address list", i),
            }
            prev = i;
            prev_kind = t.kind();
            i = t.anext;
        }
        if self.tags.get(HEAD).aprev != prev {
            return bad("address-list tail link broken", HEAD);
        }
        if span.is_some_and(|s| pos != s.end) {
            return bad("last span not tiled by its segments", prev);
        }
        if span_cursor != HEAD {
            return bad("span list longer than the address list's spans", span_cursor);
        }
        if !rotor_seen {
            return bad("rotor is not on the address list", self.rotor);
        }
        let (listed, listed_bytes) = self.lists.check(&self.tags)?;
        if listed != n.free || listed_bytes != n.free_bytes {
            return bad("free lists disagree with the free segments", HEAD);
        }
        self.hash.check(&self.tags)?;
        if self.hash.len() != n.alloc {
            return bad("hash disagrees with the allocated segments", HEAD);
        }
        self.check_unflushed(n.unflushed, n.unflushed_bytes)?;
        if self.held != n.held {
            return bad("held count disagrees with the held segments", HEAD);
        }
        if self.tags.in_use() as usize
            != BASE_TAGS + n.spans + n.free + n.alloc + n.held + n.unflushed
        {
            return bad("tags in use disagree with the walk", HEAD);
        }
        if self.spans != n.spans
            || self.sizes.allocated.0 != n.alloc_bytes
            || self.sizes.free.0 != n.free_bytes
            || self.sizes.unflushed.0 != n.unflushed_bytes
            || self.sizes.total.0 != n.total
            || self.sizes.imported.0 != n.imported
            || n.total != n.alloc_bytes + n.free_bytes + n.unflushed_bytes
        {
            return bad("size or span counters disagree with the walk", HEAD);
        }
        Ok(())
    }
}
