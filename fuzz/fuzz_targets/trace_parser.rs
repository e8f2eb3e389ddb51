//! Fuzz the `vmspace` program's trace parser with arbitrary bytes: it never
//! panics; an error names a line of the input; a parsed trace's operations
//! come in line order, its quantum is a power of two up to 2^27, its names
//! are trace names, and every operation prints (`Display`) as one line that
//! parses back to it, so the printed trace parses back to the same trace
//! (the promise of `impl Display for TraceOp`; round 64's reviewer added
//! these); as a message shows it (`TraceOp::shown`), an operation holds no
//! control character.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmspace_user::trace::{self, is_trace_id};

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count();
    match trace::parse_bytes(data) {
        Ok(t) => {
            assert!(t.ops.windows(2).all(|w| w[0].0 < w[1].0), "operations out of line order");
            assert!(t.ops.iter().all(|&(l, _)| l >= 1 && l <= lines));
            if let Some(q) = t.quantum {
                assert!(q.is_power_of_two() && q <= 1 << 27, "quantum {q}");
            }
            let mut printed = t.quantum.map_or(String::new(), |q| format!("quantum {q:#x}\n"));
            for (_, op) in &t.ops {
                assert!(op.id().is_none_or(is_trace_id), "not a trace name: {op:?}");
                assert!(!op.shown().contains(char::is_control), "{op:?} shown raw");
                let line = op.to_string();
                assert!(!line.contains('\n'), "{op:?} prints as several lines");
                let back = trace::parse(&line)
                    .unwrap_or_else(|e| panic!("{op:?} printed as {line:?}: {e}"));
                assert_eq!(back.ops.len(), 1, "{line:?}");
                assert_eq!(&back.ops[0].1, op, "{line:?} does not parse back");
                printed.push_str(&line);
                printed.push('\n');
            }
            let again = trace::parse(&printed).unwrap_or_else(|e| panic!("{printed:?}: {e}"));
            assert_eq!(again.quantum, t.quantum);
            assert!(again.ops.iter().map(|(_, o)| o).eq(t.ops.iter().map(|(_, o)| o)));
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= lines, "error at line {} of {lines}", e.line);
            let _ = e.to_string();
        }
    }
});
