//! Replays of small traces on an arena in a buffer, counted exactly.

use vmspace::arena::{Arena, NoSource, SliceStore};
use vmspace::Size;

use super::engine::{Outcomes, Replay, Setup};
use vmspace_user::trace;

/// What a test replay returns: outcomes, failures (line, reason) and the
/// peak (line, live, extent).
type Replayed = (Outcomes, Vec<(usize, String)>, (usize, usize, usize));

/// Replay `text` with quantum `q`; the outcomes, failures (line, reason)
/// and peak (line, live, extent), after checking the arena after each step.
fn run_q(text: &str, q: usize) -> Result<Replayed, String> {
    let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let a = Arena::new("t", Size(q), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
        .map_err(|e| e.to_string())?;
    let t = trace::parse(text).map_err(|e| e.to_string())?;
    let mut r = Replay::new(a, Setup { check: true, ..Setup::default() });
    r.run(&t.ops, &mut |_| {})?;
    r.arena.check().map_err(|e| e.to_string())?;
    let failures = r.failures.iter().map(|f| (f.line, f.reason.clone())).collect();
    let extent = r.peak.extent.map_or(0, |(lo, hi)| hi - lo);
    Ok((r.outcomes.clone(), failures, (r.peak.line, r.peak.live, extent)))
}

fn run_text(text: &str) -> Result<Replayed, String> {
    run_q(text, 1)
}

#[test]
fn counts_successes_failures_and_skips() {
    let (o, failures, _) = run_text(
        "add 0 100\nalloc a 60\nalloc b 60\nfree b\nxalloc c 10 align=3\nfree a\nalloc d 10\n",
    )
    .unwrap();
    let want = Outcomes {
        ops: 7,
        allocs: 2,
        no_space: 1,
        refused: 1,
        frees: 1,
        skipped: 1,
        failed: 2,
        ..Outcomes::default()
    };
    assert_eq!(o, want);
    assert_eq!(failures.iter().map(|f| f.0).collect::<Vec<_>>(), [3, 5]);
    assert!(failures[0].1.contains("no free segment"), "{failures:?}");
    assert!(failures[1].1.contains("alignment"), "{failures:?}");
}

#[test]
fn churn_trace_replays_to_its_live_count() {
    let (o, _, _) = run_text(&trace::churn_text(20, 200).unwrap()).unwrap();
    assert_eq!((o.allocs, o.frees, o.no_space + o.refused), (220, 200, 0));
}

#[test]
fn trace_mistakes_name_their_line() {
    let e = run_text("add 0 100\nalloc a 10\nalloc a 10\n").unwrap_err();
    assert!(e.starts_with("trace line 3:") && e.contains("already live"), "{e}");
    let e = run_text("add 0 100\nfree z\n").unwrap_err();
    assert!(e.starts_with("trace line 2:") && e.contains("never allocated"), "{e}");
    let e = run_text("add 0 100\nalloc a 10\nfree a 0 1\nfree a\nfree a 2 1\n").unwrap_err();
    assert!(e.starts_with("trace line 5:") && e.contains("is not live"), "{e}");
}

#[test]
fn an_overlapping_add_is_a_listed_failure() {
    let (o, failures, _) = run_text("add 0 100\nadd 50 100\n").unwrap();
    assert_eq!((o.failed, failures[0].0), (1, 2));
    assert!(failures[0].1.contains("overlaps"), "{failures:?}");
}

#[test]
fn peak_and_extent() {
    // a [0,40) b [40,60) c [60,100); free b: live 80 over extent 100.
    let text = "add 0 1000\nalloc a 40 first\nalloc b 20 first\nalloc c 40 first\nfree b\nfree a\n";
    let (_, _, (line, live, extent)) = run_text(text).unwrap();
    assert_eq!((line, live, extent), (4, 100, 100));
}

#[test]
fn partial_frees_split_and_free_the_rest() {
    let text = "add 0 0x1000\nalloc a 0x100 first\nfree a 0x40 0x40\nfree a 0xc0 0x40\n\
                alloc b 0x40 first\nfree a 0 0x40\nfree a\nfree b\n";
    let (o, failures, _) = run_q(text, 16).unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!((o.partial_frees, o.frees, o.allocs), (3, 2, 2));
    // A piece outside what the ID holds, or across a hole, fails and is listed.
    let text = "add 0 0x1000\nalloc a 0x100 first\nfree a 0x40 0x40\nfree a 0x50 0x10\n\
                free a 0x20 0x40\nfree a\n";
    let (o, failures, _) = run_q(text, 16).unwrap();
    assert_eq!((o.partial_frees, o.failed, o.frees), (1, 2, 1));
    assert_eq!(failures[0].0, 4);
    assert!(failures[0].1.contains("holds nothing"), "{failures:?}");
    assert!(failures[1].1.contains("bad free"), "{failures:?}");
    assert!(failures[1].1.starts_with("the piece runs past the end of the allocation there, 0x40"));
}

#[test]
fn a_refused_piece_says_what_is_wrong_with_it() {
    let text = "add 0 0x1000\nalloc a 0x100\nfree a 0 0\nfree a 3 5\nfree a 0x10 0x8\n\
                free a 0x10 0xffffffffffffffff\nfree a 0xf8 0x10\nfree a 0xf0 0x10\n\
                free a 0xe0 0x18\n";
    let (o, failures, _) = run_q(text, 16).unwrap();
    assert_eq!((o.partial_frees, o.failed), (1, 6), "{failures:?}");
    let why: Vec<&str> = failures.iter().map(|f| f.1.split(" (").next().unwrap()).collect();
    assert_eq!(
        why,
        [
            "the piece is empty",
            "the piece's offset 0x3 is not a multiple of the quantum 0x10",
            "the piece ends at 0x18, neither a multiple of the quantum 0x10 nor the end \
             of the allocation there, 0x100",
            "the piece runs past the end of the allocation there, 0x100",
            "the piece's offset 0xf8 is not a multiple of the quantum 0x10",
            // In the ID's offsets: the piece left at its start ends at 0xf0.
            "the piece runs past the end of the allocation there, 0xf0",
        ]
    );
    assert!(failures.iter().all(|f| f.1.contains("bad free")), "{failures:?}");
}

#[test]
fn many_pieces_of_one_id_are_found_and_freed() {
    // Every other unit of one allocation freed, out of order, then the
    // rest at once: 500 pieces left, each partial free finding its piece
    // by address (the replay used to scan and copy them all, each time).
    const N: usize = 500;
    let mut text = format!("add 0 {}\nalloc a {}\n", 2 * N, 2 * N);
    for i in (0..N).step_by(2).chain((1..N).step_by(2)) {
        text.push_str(&format!("free a {} 1\n", 2 * i));
    }
    text.push_str("free a 1 1\nfree a 1 1\nresize a 5\nfree a\n");
    let (o, failures, _) = run_q(&text, 1).unwrap();
    assert_eq!((o.partial_frees, o.frees), (N + 1, 1));
    // The unit at 1 twice (freed already), and a resize of a split ID.
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].1.contains("holds nothing at offset 0x1"), "{failures:?}");
    assert!(failures[1].1.contains("partly freed"), "{failures:?}");
}

#[test]
fn resize_grows_in_place_or_moves() {
    let text = "add 0 0x1000\nalloc a 0x40 first\nresize a 0x80\nalloc b 0x40 first\n\
                resize a 0x100\nresize a 0x20\nfree a\nfree b\n";
    let (o, failures, (_, live, _)) = run_q(text, 16).unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!((o.resized_in_place, o.moved), (2, 1));
    assert_eq!(live, 0x140);
    // No room to move: listed, and the old allocation stays.
    let text = "add 0 0x100\nalloc a 0x40 first\nalloc b 0x40 first\nresize a 0x100\nfree a\n\
                free b 0x10 0x10\nresize b 0x80\nfree b\n";
    let (o, failures, _) = run_q(text, 16).unwrap();
    assert_eq!((o.moved, o.failed, o.frees), (0, 2, 2));
    assert!(failures[0].1.contains("cannot grow in place or move"), "{failures:?}");
    assert!(failures[1].1.contains("partly freed"), "{failures:?}");
}

#[test]
fn a_span_in_the_top_size_class_is_reported() {
    let (mut tb, mut hb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 12]);
    let a = Arena::new("t", Size(1), SliceStore::new(&mut tb), SliceStore::new(&mut hb), NoSource)
        .unwrap();
    let t = trace::parse("add 0 0xffffffffffffffff\n").unwrap();
    let mut r = Replay::new(a, Setup::default());
    r.run(&t.ops, &mut |_| {}).unwrap();
    let report = super::report::Report::of(&r, "t", "trace", false, None);
    assert_eq!(crate::sizes::histogram_line(&report.free_histogram), "[8 EiB, 16 EiB): 1");
}
