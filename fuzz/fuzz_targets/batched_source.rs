//! Fuzz batched give-backs: the input's first byte picks the flush
//! threshold and the trim slack (0: the VM's bookkeeping page goes with
//! every give-back that empties it; the default), the rest decodes into `BatchedOp`s (import, give back, bad
//! give-back, flush) applied to a batched `VmSource` on the simulated
//! backend and to the model by `BatchedDriver`, which checks after every
//! step that nothing waiting for its flush is imported again, that the
//! inner arena's unflushed segments are exactly the model's, and `check()`;
//! here, that no more bookkeeping records nothing than the slack allows.
//! The simulated backend refuses to map a page whose unmap is not flushed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmspace::arena::PageStore;
use vmspace::sources::{VmSource, DEFAULT_TRIM_SLACK};
use vmspace::vm::Vm;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::Size;
use vmspace_workload::batched_ops::{BatchedDriver, BatchedOp};

const PAGE: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut ops)) = data.split_first() else { return };
    let threshold = [1usize, 4, 16, 64, 1 << 20][head as usize % 5];
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let vm = Vm::reserve(&sim, Size(128 * PAGE), Size(PAGE)).unwrap();
    let tags = PageStore::new(&sim, Size(16 * PAGE)).unwrap();
    let hash = PageStore::new(&sim, Size(4 * PAGE)).unwrap();
    let mut source = VmSource::new(vm, tags, hash).unwrap();
    source.set_flush_threshold(threshold).unwrap();
    let slack = [0, DEFAULT_TRIM_SLACK][head as usize / 5 % 2];
    source.set_trim_slack(slack);
    let mut driver = BatchedDriver::new(u64::from(head));
    while let Some(op) = BatchedOp::decode(&mut ops) {
        driver.step(&mut source, op).unwrap_or_else(|e| panic!("{e}"));
        let unused = source.vm().metadata_trimmable().0 / PAGE;
        assert!(unused <= slack, "{unused} bookkeeping pages record nothing, slack {slack}");
    }
    driver.finish(&mut source).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sim.stats().unflushed_pages, 0);
});
