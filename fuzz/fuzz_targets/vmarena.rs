//! Fuzz the VM arena: the input's first byte picks the spare bound, the
//! commit limit, whether the backend injects faults and whether a failed
//! protect or unmap fails part way; the rest decodes into `VmArenaOp`s
//! (allocations, frees, protects, purges, and changes of the spare bound
//! and the commit limit), each applied to the arena and to the per-tract
//! model, with placement, owners, committed memory, mapped page-table
//! pages and `check()` compared after every step, and with faults every
//! allocated tract's page against its recorded protection (never less
//! open).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::{FaultInjector, FaultShape, Size};
use vmspace_workload::pages::tracts_agree;
use vmspace_workload::vmarena_ops::{step_checked, VmArenaModel, VmArenaOp, VmArenaRunStats};

const PAGE: usize = 256;
const TRACTS: usize = 512;

fuzz_target!(|data: &[u8]| {
    let Some((&head, mut ops)) = data.split_first() else { return };
    let spare = usize::from(head & 0x0f);
    let limit = if head & 0x10 != 0 { Size(120 * PAGE) } else { Size(usize::MAX) };
    let faults = head & 0x20 != 0;
    let mut buf = vec![0u8; 1 << 20];
    let sim = SimBackend::new(&mut buf, PAGE).unwrap();
    let faulty = FaultInjector::new(&sim);
    let config = VmArenaConfig::new(Size(TRACTS * PAGE))
        .zone_shift(10)
        .spare_limit(spare)
        .commit_limit(limit);
    let mut arena = VmArena::new(&faulty, config).unwrap();
    if faults {
        faulty.fail_randomly(u64::from(head), 100_000);
    }
    if head & 0x40 != 0 {
        faulty.set_shape(FaultShape::PartWay);
    }
    let probe = |a| sim.protection(a);
    let mut model = VmArenaModel::<TRACTS>::new(&arena).unwrap();
    let mut stats = VmArenaRunStats::default();
    while let Some(op) = VmArenaOp::decode(&mut ops, TRACTS) {
        step_checked(&mut arena, &mut model, &op, faults, &mut stats)
            .unwrap_or_else(|(what, e)| panic!("{op:?}: {what} ({e:?})"));
        if faults {
            tracts_agree(&arena, false, &probe).unwrap_or_else(|what| panic!("{op:?}: {what}"));
        }
    }
});
