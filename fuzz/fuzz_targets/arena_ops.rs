//! Fuzz the arena with the operation enum the model tests and the kernel's
//! KUnit suites use: the input's first byte picks the quantum and whether the
//! arena imports from a parent arena; the rest decodes into `ArenaOp`s, each
//! applied to the arena and to the reference model by `ArenaDriver`, which
//! checks outcomes, sizes, counters and `check()` after every step.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use vmspace::arena::{Arena, NoSource};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{Addr, Size};
use vmspace_workload::arena_ops::{ArenaDriver, ArenaOp, ArenaOpConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut ops)) = data.split_first() else { return };
    let q = [1usize, 16, 4096][head as usize % 3];
    let cfg = ArenaOpConfig::new(1 << 40, 1024 * q, q);
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let mut driver = ArenaDriver::<256, 32>::new();
    if head & 0x80 == 0 {
        let mut a = Arena::on_pages("fuzz", Size(q), &sim, 4096, NoSource).unwrap();
        if head & 0x40 != 0 {
            a.set_mtbf(u64::from(head), 13);
        }
        while let Some(op) = ArenaOp::decode(&mut ops, &cfg) {
            driver.step(&mut a, &op).unwrap_or_else(|e| panic!("{e}"));
        }
    } else {
        // Child importing from a parent with one big span elsewhere.
        let mut p = Arena::on_pages("parent", Size(4096), &sim, 1024, NoSource).unwrap();
        p.add(Addr(1 << 44), Size(1 << 24)).unwrap();
        let parent = RefCell::new(p);
        let mut a = Arena::on_pages("fuzz", Size(q), &sim, 4096, &parent).unwrap();
        if head & 0x40 != 0 {
            a.set_mtbf(u64::from(head), 13);
        }
        while let Some(op) = ArenaOp::decode(&mut ops, &cfg) {
            driver.step(&mut a, &op).unwrap_or_else(|e| panic!("{e}"));
            parent.borrow().check().unwrap_or_else(|e| panic!("parent: {e}"));
            assert_eq!(parent.borrow().sizes().allocated, a.sizes().imported);
        }
    }
});
