//! Property tests: random map/unmap sequences on a VM against a set-of-pages
//! model, on the simulated backend and on the mmap backend, with `reserved()`,
//! `mapped()` and `check()` verified after every step; and, when
//! `VMSPACE_DEVICE` names `/dev/vmspace` (`make kernel-proptest`), on VMs in
//! the kernel through the device (skipped otherwise, saying so).

use proptest::prelude::*;
use vmspace::vm::{Vm, VmError};
use vmspace::CommonError;
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, PageOps, Size};
use vmspace_user::kdev::device_for_tests;
use vmspace_user::MmapBackend;
use vmspace_workload::vm_ops::{self, PageSetModel, VmOp, VmOpKind};
use vmspace_workload::VmTarget;

const PAGES: usize = 300;

fn op() -> impl Strategy<Value = VmOp> {
    let kind = prop_oneof![Just(VmOpKind::Map), Just(VmOpKind::Unmap)];
    let skew = prop_oneof![9 => Just(0usize), 1 => 1usize..63];
    (kind, 0..PAGES + 4, 0usize..12, skew).prop_map(|(kind, first, pages, skew)| VmOp {
        kind,
        first,
        pages,
        skew,
    })
}

/// Apply `ops` to a VM on `backend` and to the model; compare after each step.
fn run<P: PageOps>(backend: P, ops: &[VmOp]) -> Result<(), TestCaseError> {
    run_on(Vm::reserve(backend, Size(PAGES * 4096), Size(4096)).unwrap(), ops)
}

/// Apply `ops` to `vm`, a fresh VM of `PAGES` pages of 4 KiB (in process,
/// or in the kernel), and to the model; compare after each step.
fn run_on<V: VmTarget>(mut vm: V, ops: &[VmOp]) -> Result<(), TestCaseError> {
    let page = vm.page_size();
    let pages = vm.range().size().0 / page.0;
    let reserved = vm.reserved();
    let mut model = PageSetModel::<8>::new(pages);
    for op in ops {
        let Some(range) = op.range(vm.base(), page) else { continue };
        let expected = model.clone().apply(op);
        let result = match op.kind {
            VmOpKind::Map => vm.map(range),
            VmOpKind::Unmap => vm.unmap(range),
        };
        prop_assert_eq!(result.is_ok(), expected, "{:?} -> {:?}", op, result);
        if expected {
            model.apply(op);
        } else {
            // Errors name the cause.
            let e = result.unwrap_err();
            let named = matches!(
                e,
                VmError::Common(CommonError::Misaligned { .. })
                    | VmError::Common(CommonError::OutOfRange(_))
                    | VmError::AlreadyMapped(_)
                    | VmError::NotMapped(_)
                    | VmError::Common(CommonError::InvalidArgument(_))
            );
            prop_assert!(named, "unexpected error {:?}", e);
        }
        prop_assert_eq!(vm.reserved(), reserved);
        prop_assert_eq!(vm.mapped().0, model.mapped() * page.0);
        prop_assert!(vm.check().is_ok(), "{:?}", vm.check());
    }
    prop_assert_eq!(vm.mapped_runs().count(), model.runs());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn vm_matches_model_on_sim(ops in prop::collection::vec(op(), 1..120)) {
        let mut buf = vec![0u8; 4 << 20];
        let sim = SimBackend::new(&mut buf, 4096).unwrap();
        run(&sim, &ops)?;
        prop_assert_eq!(sim.stats().reservations, 0);
    }

    #[test]
    fn vm_matches_model_on_mmap(ops in prop::collection::vec(op(), 1..120)) {
        run(MmapBackend::new(), &ops)?;
    }

    #[test]
    fn vm_matches_model_on_device(ops in prop::collection::vec(op(), 1..120)) {
        if let Some(dev) = device_for_tests() {
            prop_assume!(dev.page_size() == 4096, "the model's VM has 4 KiB pages");
            run_on(dev.vm(PAGES * 4096, 4096).unwrap(), &ops)?;
        }
    }

    #[test]
    fn vm_stays_consistent_under_random_faults(
        ops in prop::collection::vec(op(), 1..120),
        seed in any::<u64>(),
    ) {
        let mut buf = vec![0u8; 4 << 20];
        let sim = SimBackend::new(&mut buf, 4096).unwrap();
        let faulty = FaultInjector::new(&sim);
        let mut vm = Vm::reserve(&faulty, Size(PAGES * 4096), Size(4096)).unwrap();
        faulty.fail_randomly(seed, 200_000);
        let mut model = PageSetModel::<8>::new(PAGES);
        for op in &ops {
            let Some(range) = op.range(vm.base(), vm.page_size()) else { continue };
            let expected = model.clone().apply(op);
            let result = match op.kind {
                VmOpKind::Map => vm.map(range),
                VmOpKind::Unmap => vm.unmap(range),
            };
            match result {
                Ok(()) => { prop_assert!(expected); model.apply(op); }
                Err(VmError::Backend(_)) => prop_assert!(expected),
                Err(_) => prop_assert!(!expected),
            }
            prop_assert_eq!(vm.mapped().0, model.mapped() * 4096);
            prop_assert!(vm.check().is_ok());
            let s = sim.stats();
            prop_assert_eq!(s.mapped_pages * 4096, vm.mapped().0 + vm.metadata_mapped().0);
        }
    }
}

// The seeded workload the program and the KUnit suites run, here on the
// simulated backend with its model.
#[test]
fn seeded_workload_agrees_with_the_model() {
    for seed in 0..8 {
        let mut buf = vec![0u8; 2 << 20];
        let sim = SimBackend::new(&mut buf, 64).unwrap();
        let mut vm = Vm::reserve(&sim, Size(2000 * 64), Size(64)).unwrap();
        let stats = vm_ops::run::<_, 32>(&mut vm, seed, 400, true).unwrap();
        assert!(stats.succeeded > 50 && stats.rejected > 50, "{stats:?}");
        assert!(stats.pages_touched > 0);
    }
}

// The observed run is the same run: the same outcome, the hook called once
// before each step with the steps done so far.
#[test]
fn observed_workload_reports_each_step() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, 64).unwrap();
    let mut vm = Vm::reserve(&sim, Size(2000 * 64), Size(64)).unwrap();
    let mut seen = Vec::new();
    let observed = vm_ops::run_observed::<_, 32>(&mut vm, 3, 300, true, &mut |n| seen.push(n));
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
    let mut buf2 = vec![0u8; 2 << 20];
    let sim2 = SimBackend::new(&mut buf2, 64).unwrap();
    let mut vm2 = Vm::reserve(&sim2, Size(2000 * 64), Size(64)).unwrap();
    assert_eq!(observed.unwrap(), vm_ops::run::<_, 32>(&mut vm2, 3, 300, true).unwrap());
    assert_eq!(vm.mapped(), vm2.mapped());
}

// The same seeded workload on VMs in the kernel, every page stamped and
// read back through the device.
#[test]
fn seeded_workload_agrees_with_the_model_on_device() {
    let Some(dev) = device_for_tests() else { return };
    for seed in 0..4 {
        let mut vm = dev.vm(2000 * dev.page_size(), 0).unwrap();
        let stats = vm_ops::run::<_, 32>(&mut vm, seed, 400, true).unwrap();
        assert!(stats.succeeded > 50 && stats.rejected > 50, "{stats:?}");
        assert!(stats.pages_touched > 0);
    }
}

#[test]
fn seeded_workload_survives_random_backend_faults() {
    let mut buf = vec![0u8; 2 << 20];
    let sim = SimBackend::new(&mut buf, 64).unwrap();
    let faulty = FaultInjector::new(&sim);
    let mut vm = Vm::reserve(&faulty, Size(2000 * 64), Size(64)).unwrap();
    faulty.fail_randomly(99, 100_000);
    let stats = vm_ops::run::<_, 32>(&mut vm, 5, 1000, true).unwrap();
    assert!(stats.backend_failures > 10, "{stats:?}");
}
