//! Round 62b (outside reviewer): userspace/src/trace.rs:85-88 "a
//! [`TraceOp`] prints as a line that parses back to it exactly when its
//! name is one" (`is_trace_id`), named in CHANGELOG.md (Unreleased, Fixed:
//! "`trace::is_trace_id` names the condition under which a `TraceOp` prints
//! as a line that parses back to it"). Any constraints, any numbers.

use proptest::prelude::*;
use vmspace::arena::{Constraints, Policy};
use vmspace::{Addr, Size};
use vmspace_user::trace::{is_trace_id, parse, TraceOp};

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_.-]{0,6}",
        Just("free".to_string()),
        Just("0x10".to_string()),
        Just("é∂".to_string()),
        Just("a\u{0}b".to_string()),
        Just("top".to_string()),
    ]
}

fn num() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), Just(1), Just(usize::MAX), any::<usize>(), 0usize..4096]
}

fn constraints() -> impl Strategy<Value = Constraints> {
    (num(), prop::collection::vec((0u8..8, num()), 0..6), 0usize..4).prop_map(|(size, steps, p)| {
        let mut c = Constraints::new(Size(size)).policy(Policy::ALL[p % Policy::ALL.len()]);
        for (k, v) in steps {
            c = match k {
                0 => c.align(Size(v)),
                1 => c.phase(Size(v)),
                2 => c.nocross(Size(v)),
                3 => c.min_addr(Addr(v)),
                4 => c.max_addr(Addr(v)),
                5 => c.exact(Addr(v)),
                6 => c.from_top(v % 2 == 0),
                _ => c.policy(Policy::ALL[v % Policy::ALL.len()]),
            };
        }
        c
    })
}

fn op() -> impl Strategy<Value = TraceOp> {
    prop_oneof![
        (num(), num()).prop_map(|(base, size)| TraceOp::Add { base, size }),
        (id(), constraints()).prop_map(|(id, constraints)| TraceOp::Alloc { id, constraints }),
        id().prop_map(|id| TraceOp::Free { id }),
        (id(), num(), num()).prop_map(|(id, offset, size)| TraceOp::FreePart { id, offset, size }),
        (id(), num()).prop_map(|(id, size)| TraceOp::Resize { id, size }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_trace_op_with_a_trace_id_prints_as_a_line_that_parses_back(op in op()) {
        let line = op.to_string();
        let t = parse(&line);
        prop_assert!(t.is_ok(), "{:?} printed as {:?}: {}", op, line, t.unwrap_err());
        let t = t.unwrap();
        prop_assert_eq!(t.ops.len(), 1, "{:?}", line);
        prop_assert_eq!(&t.ops[0].1, &op, "{:?}", line);
    }

    #[test]
    fn a_name_that_is_not_a_trace_id_does_not_parse_back(
        pre in "[a-z]{0,2}", bad in prop::sample::select(vec![" ", "\t", "#", "\n", "\u{a0}", "\u{2028}"]), post in "[a-z0-9]{0,2}",
    ) {
        let id = format!("{pre}{bad}{post}");
        prop_assert!(!is_trace_id(&id));
        for op in [TraceOp::Free { id: id.clone() }, TraceOp::Resize { id: id.clone(), size: 16 }] {
            let back = parse(&op.to_string()).ok().map(|t| t.ops.into_iter().map(|o| o.1).collect::<Vec<_>>());
            prop_assert_ne!(back, Some(vec![op.clone()]), "{:?}", op);
        }
    }
}

#[test]
fn the_empty_name_is_not_a_trace_id_and_does_not_parse_back() {
    assert!(!is_trace_id(""));
    let op = TraceOp::Free { id: String::new() };
    assert!(parse(&op.to_string()).is_err(), "{:?}", op.to_string());
}
