//! One sequence run against the arena, the oracle and the model.

use super::*;

pub(crate) fn run(q: usize, base: usize, spans: &[(u16, u16)], ops: &[Op]) {
    run_with(q, base, spans, ops, None, 0)
}

/// With `extra_tags`: a tag store of MIN_TAGS + extra tags and the smallest
/// hash store, so that TagsExhausted happens and the hash cannot grow.
pub(crate) fn run_with(
    q: usize,
    base: usize,
    spans: &[(u16, u16)],
    ops: &[Op],
    extra_tags: Option<usize>,
    mtbf: u32,
) {
    let (mut tb, mut hb) = match extra_tags {
        None => bufs(),
        Some(k) => {
            (vec![0u8; (vmspace::arena::MIN_TAGS + k) * vmspace::arena::TAG_BYTES], vec![0u8; 64])
        }
    };
    let tight = extra_tags.is_some();
    let inj = mtbf != 0;
    let mut a = arena(&mut tb, &mut hb, q);
    let mut m = Model {
        q,
        spans: vec![],
        live: BTreeMap::new(),
        allocs: 0,
        frees: 0,
        failures: 0,
        bad_frees: 0,
        rotor: 0,
        unflushed: BTreeMap::new(),
        injected: 0,
        dead_handles: Vec::new(),
        deferred: 0,
        flushes: 0,
    };
    // Spans: disjoint pieces of [0, 4096), each a multiple of q.
    let mut cursor = 0usize;
    for &(gap, len) in spans {
        let b = up(cursor + (gap as usize % 512) * sc(), q);
        let len = up((1 + len as usize % 1024) * sc(), q);
        if b + len > 4096 * sc() {
            break;
        }
        match a.add(Addr(base + b), Size(len)) {
            Ok(()) => {}
            Err(ArenaError::TagsExhausted) if tight => {
                m.failures += 1;
                break;
            }
            Err(e) => panic!("add: {e:?}"),
        }
        m.spans.push((base + b, base + b + len));
        cursor = b + len;
    }
    // Near the top: one more span up to the end of the window (usize::MAX
    // itself for quantum 1).
    let top_b = up(cursor, q);
    if base != 0 && top_b < 4096 * sc() && m.failures == 0 {
        a.add(Addr(base + top_b), Size(4096 * sc() - top_b)).unwrap();
        m.spans.push((base + top_b, base + 4096 * sc()));
    }
    a.set_mtbf(0x5eed_u64 + mtbf as u64, mtbf);
    m.compare(&a, "after add");
    for (step, o) in ops.iter().enumerate() {
        let ctx = format!("q={q} step {step} {o:?}");
        match o {
            Op::X { handle, .. } => {
                let Some(c) = make_c(q, base, o) else { continue };
                let segs = free_segments(&a);
                let or = oracle(&segs, &c, q, m.rotor);
                let cons = c.to_constraints();
                // The public Request is what the arena places.
                if let Ok(req) = cons.validate(q) {
                    let r = up(c.size, q);
                    let lo = c.min.unwrap_or(0).max(c.exact.unwrap_or(0));
                    let hi = c.max.unwrap_or(usize::MAX).min(c.exact.map_or(usize::MAX, |e| e + r));
                    assert_eq!(
                        (
                            req.size().0,
                            req.align().0,
                            req.phase().0,
                            req.nocross().0,
                            req.min().0,
                            req.max().0,
                            req.policy(),
                            req.from_top()
                        ),
                        (r, c.align.max(q), c.phase, c.nocross, lo, hi, c.policy, c.top),
                        "{ctx}: validate() request for {c:?}"
                    );
                }
                let plain_req = c.align <= q
                    && c.phase == 0
                    && c.nocross == 0
                    && c.min.is_none()
                    && c.max.is_none()
                    && c.exact.is_none()
                    && !c.top;
                // Plain requests go through alloc / alloc_handle half the time.
                let got = match (*handle, plain_req && c.size % 2 == 0) {
                    (true, true) => {
                        a.alloc_handle(Size(c.size), c.policy).map(|h| (h.addr().0, Some(h)))
                    }
                    (false, true) => a.alloc(Size(c.size), c.policy).map(|x| (x.0, None)),
                    (true, false) => a.xalloc_handle(&cons).map(|h| (h.addr().0, Some(h))),
                    (false, false) => a.xalloc(&cons).map(|x| (x.0, None)),
                };
                let ctx = format!("{ctx} c={c:?} segs={segs:?} rotor={}", m.rotor);
                match got {
                    Ok((t, h)) => {
                        assert!(or.any, "{ctx}: allocated {t:#x} where no placement exists");
                        let r = up(c.size, q);
                        assert!(c.ok_at(t, q), "{ctx}: {t:#x} breaks a constraint");
                        let seg = segs
                            .iter()
                            .find(|&&(s, e)| s <= t && t.checked_add(r).is_some_and(|x| x <= e));
                        let &(s, e) =
                            seg.unwrap_or_else(|| panic!("{ctx}: {t:#x} not in a free segment"));
                        let pl = c.placements(s, e, q);
                        match c.policy {
                            Policy::NextFit => {
                                assert_eq!(Some(t), or.exact, "{ctx}: next fit choice");
                            }
                            Policy::FirstFit => {
                                assert_eq!(Some(t), or.exact, "{ctx}: first fit choice")
                            }
                            Policy::BestFit => {
                                assert_eq!(
                                    Some(e - s),
                                    or.best_size,
                                    "{ctx}: best fit segment size"
                                );
                                assert_eq!(
                                    t,
                                    extreme(&pl, c.top),
                                    "{ctx}: best fit placement in segment"
                                );
                            }
                            Policy::InstantFit => {
                                assert_eq!(
                                    t,
                                    extreme(&pl, c.top),
                                    "{ctx}: instant fit placement in segment"
                                );
                                let plain = c.align <= q
                                    && c.nocross == 0
                                    && c.min.is_none()
                                    && c.max.is_none()
                                    && c.exact.is_none();
                                if plain {
                                    // "The first segment on the first free list
                                    // whose members are all large enough", else
                                    // the next-smaller list.
                                    let x = r / q;
                                    let k = instant_list(x);
                                    let lists: Vec<usize> =
                                        segs.iter().map(|(s, e)| list_of((e - s) / q)).collect();
                                    let want = lists
                                        .iter()
                                        .copied()
                                        .filter(|&l| l >= k)
                                        .min()
                                        .unwrap_or(list_of(x));
                                    assert_eq!(
                                        list_of((e - s) / q),
                                        want,
                                        "{ctx}: instant fit list"
                                    );
                                }
                            }
                        }
                        if c.policy == Policy::NextFit {
                            m.rotor = t + r;
                        }
                        m.allocs += 1;
                        m.live.insert(t, Live { asked: c.size, rounded: r, handle: h });
                    }
                    Err(ArenaError::TagsExhausted) if tight => {
                        m.failures += 1;
                        assert_eq!(
                            free_segments(&a),
                            segs,
                            "{ctx}: TagsExhausted changed the arena"
                        );
                    }
                    Err(ArenaError::Injected) if inj => {
                        m.failures += 1;
                        m.injected += 1;
                        assert_eq!(free_segments(&a), segs, "{ctx}: Injected changed the arena");
                    }
                    Err(e) => {
                        assert!(!or.any, "{ctx}: failed with {e:?} but a placement exists");
                        let possible = base != 0 || abstractly_possible(&c, q);
                        match e {
                            ArenaError::NoSpace { .. } => assert!(
                                possible,
                                "{ctx}: NoSpace for constraints no address meets (docs: OverConstrained)"
                            ),
                            ArenaError::OverConstrained(_) => assert!(
                                base != 0 || !possible,
                                "{ctx}: OverConstrained but some address meets the constraints"
                            ),
                            e => panic!("{ctx}: unexpected error {e:?}"),
                        }
                        m.failures += 1;
                    }
                }
            }
            Op::Free { idx, wrong } => {
                if m.live.is_empty() {
                    continue;
                }
                let (&addr, &l) = m.live.iter().nth(*idx as usize % m.live.len()).unwrap();
                let before = free_segments(&a);
                match (l.handle, *wrong) {
                    (Some(h), 0..=3) => {
                        assert_eq!(a.free_handle(h), Ok(Size(l.asked)), "{ctx}");
                        m.dead_handles.push(h);
                        m.live.remove(&addr);
                        m.frees += 1;
                    }
                    (Some(h), _) => {
                        // By address: refused (held segments are not hashed).
                        let r = a.free(h.addr(), Size(l.asked));
                        assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{ctx}: {r:?}");
                        m.bad_frees += 1;
                        assert_eq!(free_segments(&a), before, "{ctx}");
                    }
                    (None, 0..=2) => {
                        a.free(Addr(addr), Size(l.asked))
                            .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                        m.live.remove(&addr);
                        m.frees += 1;
                    }
                    (None, 3) => {
                        // A different size in the same rounding class: refused.
                        let other = if l.asked % q == 0 { l.asked - 1 } else { l.asked + 1 };
                        if other == 0 {
                            continue;
                        }
                        let r = a.free(Addr(addr), Size(other));
                        assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{ctx}: {r:?}");
                        m.bad_frees += 1;
                    }
                    (None, 4) => {
                        // Not the start of an allocation.
                        let r = a.free(Addr(addr + q), Size(l.asked));
                        if m.live.contains_key(&(addr + q)) {
                            // Might be a live one with another size.
                            if r.is_ok() {
                                let l2 = m.live.remove(&(addr + q)).unwrap();
                                assert_eq!(l2.asked, l.asked, "{ctx}");
                                m.frees += 1;
                            } else {
                                m.bad_frees += 1;
                            }
                        } else {
                            assert!(matches!(r, Err(ArenaError::BadFree { .. })), "{ctx}: {r:?}");
                            m.bad_frees += 1;
                        }
                    }
                    (None, _) => {
                        // Double free: free, then again.
                        a.free(Addr(addr), Size(l.asked)).unwrap();
                        m.live.remove(&addr);
                        m.frees += 1;
                        let r = a.free(Addr(addr), Size(l.asked));
                        assert!(
                            matches!(r, Err(ArenaError::BadFree { .. })),
                            "{ctx}: double free {r:?}"
                        );
                        m.bad_frees += 1;
                    }
                }
            }
            Op::Part { idx, off, len } => {
                let hashed: Vec<(usize, Live)> = m
                    .live
                    .iter()
                    .filter(|(_, l)| l.handle.is_none())
                    .map(|(&k, &l)| (k, l))
                    .collect();
                if hashed.is_empty() {
                    continue;
                }
                let (addr, l) = hashed[*idx as usize % hashed.len()];
                let off =
                    (*off as usize * sc() % (l.asked + 1)) / q * q * usize::from(*off % 3 != 0)
                        + usize::from(*off % 7 == 0);
                let len = (*len as usize * sc()) % (l.asked + 2)
                    + usize::from(*len % 5 == 0) * (*len as usize % 3);
                // (Round 24, found by CI: `addr + off` overflowed in this
                // oracle when an allocation ended at usize::MAX and `off`
                // was one past its size; such a piece is illegal.)
                let pa = addr.wrapping_add(off);
                let pb = pa.saturating_add(len);
                let asked_end = addr + l.asked;
                let legal = addr.checked_add(off).and_then(|p| p.checked_add(len)).is_some()
                    && pa < pb
                    && pb <= asked_end
                    && pa % q == 0
                    && (pb == asked_end || pb % q == 0);
                let r = a.free_part(Addr(addr), Size(off), Size(len));
                if !legal {
                    assert!(
                        matches!(r, Err(ArenaError::BadFree { .. })),
                        "{ctx}: illegal piece {r:?}"
                    );
                    m.bad_frees += 1;
                } else if tight && r == Err(ArenaError::TagsExhausted) {
                    m.failures += 1;
                } else if inj && r == Err(ArenaError::Injected) {
                    assert!(
                        pa != addr || pb != asked_end,
                        "{ctx}: a whole free is a free: no fault to inject"
                    );
                    m.failures += 1;
                    m.injected += 1;
                } else {
                    r.unwrap_or_else(|e| panic!("{ctx}: legal piece refused: {e:?}"));
                    m.live.remove(&addr);
                    let seg_end = addr + l.rounded;
                    let pb_seg = if pb == asked_end { seg_end } else { pb };
                    if pa > addr {
                        m.live.insert(
                            addr,
                            Live { asked: pa - addr, rounded: pa - addr, handle: None },
                        );
                    }
                    if pb_seg < seg_end {
                        m.live.insert(
                            pb,
                            Live { asked: asked_end - pb, rounded: seg_end - pb, handle: None },
                        );
                    }
                    if pa == addr && pb_seg == seg_end {
                        m.frees += 1;
                    }
                }
            }
            Op::Defer { idx } => {
                if m.live.is_empty() {
                    continue;
                }
                let (&addr, &l) = m.live.iter().nth(*idx as usize % m.live.len()).unwrap();
                match l.handle {
                    Some(h) => {
                        assert_eq!(a.free_handle_deferred(h), Ok(Size(l.asked)), "{ctx}");
                        m.dead_handles.push(h);
                    }
                    None => a
                        .free_deferred(Addr(addr), Size(l.asked))
                        .unwrap_or_else(|e| panic!("{ctx}: {e:?}")),
                }
                m.live.remove(&addr);
                m.unflushed.insert(addr, l.rounded);
                m.frees += 1;
                m.deferred += 1;
            }
            Op::Stale { idx, forge } => {
                // A freed handle, or one forged from parts: refused unless
                // it names a live held allocation (same tag, same address),
                // which it then frees.
                let h = match forge {
                    None => {
                        if m.dead_handles.is_empty() {
                            continue;
                        }
                        m.dead_handles[*idx as usize % m.dead_handles.len()]
                    }
                    Some(tag) => {
                        let addr = m
                            .live
                            .keys()
                            .nth(*idx as usize % m.live.len().max(1))
                            .copied()
                            .unwrap_or(base);
                        match a.handle_from_parts(Addr(addr), *tag as u32) {
                            Some(h) => h,
                            None => continue,
                        }
                    }
                };
                let owner = m
                    .live
                    .iter()
                    .find(|(_, l)| {
                        l.handle.is_some_and(|x| x.tag() == h.tag() && x.addr() == h.addr())
                    })
                    .map(|(&k, &l)| (k, l));
                let before = free_segments(&a);
                let r = a.free_handle(h);
                match owner {
                    Some((k, l)) => {
                        assert_eq!(
                            r,
                            Ok(Size(l.asked)),
                            "{ctx}: a handle naming a live held allocation frees it"
                        );
                        m.live.remove(&k);
                        m.dead_handles.push(h);
                        m.frees += 1;
                    }
                    None => {
                        assert!(
                            matches!(r, Err(ArenaError::BadHandle { .. })),
                            "{ctx}: stale/forged handle {h:?}: {r:?}"
                        );
                        assert_eq!(free_segments(&a), before, "{ctx}");
                        m.bad_frees += 1;
                    }
                }
            }
            Op::Flush => {
                let want: usize = m.unflushed.values().sum();
                assert_eq!(a.flushed(), Size(want), "{ctx}: flushed()");
                if !m.unflushed.is_empty() {
                    m.flushes += 1;
                }
                m.unflushed.clear();
            }
            Op::Extend { span, up: upward, len } => {
                if m.spans.is_empty() {
                    continue;
                }
                let k = *span as usize % m.spans.len();
                let (s0, e0) = m.spans[k];
                let len = up(*len as usize * sc(), q);
                let (b, e) = if *upward {
                    let limit = m.spans.get(k + 1).map_or(base + 4096 * sc(), |x| x.0);
                    let e = e0.saturating_add(len).min(limit);
                    (e0, e)
                } else {
                    let limit = if k == 0 { base } else { m.spans[k - 1].1 };
                    let b = s0.saturating_sub(len).max(limit);
                    (b, s0)
                };
                if b >= e {
                    continue;
                }
                match a.extend(Addr(b), Size(e - b)) {
                    Ok(()) => {}
                    Err(ArenaError::TagsExhausted) if tight => {
                        m.failures += 1;
                        m.compare(&a, &ctx);
                        continue;
                    }
                    Err(ArenaError::Injected) if inj => {
                        m.failures += 1;
                        m.injected += 1;
                        m.compare(&a, &ctx);
                        continue;
                    }
                    Err(err) => panic!("{ctx}: extend {b:#x}..{e:#x}: {err:?}"),
                }
                // Merge the spans the range touches.
                let mut v = m.spans.clone();
                v.push((b, e));
                v.sort();
                let mut merged: Vec<(usize, usize)> = Vec::new();
                for (s1, e1) in v {
                    match merged.last_mut() {
                        Some(last) if last.1 == s1 && (s1 == b || s1 == e) => last.1 = e1,
                        _ => merged.push((s1, e1)),
                    }
                }
                m.spans = merged;
            }
            Op::Resize { idx, new } => {
                let hashed: Vec<(usize, Live)> = m
                    .live
                    .iter()
                    .filter(|(_, l)| l.handle.is_none())
                    .map(|(&k, &l)| (k, l))
                    .collect();
                if hashed.is_empty() {
                    continue;
                }
                let (addr, l) = hashed[*idx as usize % hashed.len()];
                let new = *new as usize * sc() - (*new as usize % 2) * (sc() / 2);
                let nr = up(new, q);
                let room = m.room_after(addr + l.rounded);
                let r = a.resize(Addr(addr), Size(l.asked), Size(new));
                if tight && r == Err(ArenaError::TagsExhausted) {
                    assert!(nr < l.rounded, "{ctx}: only a shrink needs a tag");
                    m.failures += 1;
                } else if inj && r == Err(ArenaError::Injected) {
                    assert!(
                        nr != l.rounded,
                        "{ctx}: a resize within the rounding needs no tag and does not grow"
                    );
                    m.failures += 1;
                    m.injected += 1;
                } else if nr <= l.rounded || addr.checked_add(nr).is_some_and(|x| x <= room) {
                    r.unwrap_or_else(|e| panic!("{ctx}: resize refused: {e:?} room={room:#x}"));
                    m.live.insert(addr, Live { asked: new, rounded: nr, handle: None });
                } else {
                    assert!(matches!(r, Err(ArenaError::NoSpace { .. })), "{ctx}: {r:?}");
                    m.failures += 1;
                }
            }
        }
        m.compare(&a, &ctx);
    }
    // Flush, free everything: the arena is whole again.
    a.flushed();
    if !m.unflushed.is_empty() {
        m.flushes += 1;
    }
    m.unflushed.clear();
    let live: Vec<(usize, Live)> = m.live.iter().map(|(&k, &l)| (k, l)).collect();
    for (addr, l) in live {
        match l.handle {
            Some(h) => assert_eq!(a.free_handle(h), Ok(Size(l.asked))),
            None => a.free(Addr(addr), Size(l.asked)).unwrap(),
        }
        m.live.remove(&addr);
        m.frees += 1;
    }
    m.compare(&a, "after freeing everything");
    let segs = free_segments(&a);
    assert_eq!(segs, m.spans, "free space is the spans again");
}
