use vmspace::qcache::{CpuMags, MagSlots, Magazine, Popped, Pushed, ROUNDS};
use vmspace_workload::Rng;

use super::*;

/// Run `f` on a thread allowed only on `cpu` (if the affinity can be
/// set); its result.
fn on_cpu<R: Send>(cpu: usize, f: impl FnOnce() -> R + Send) -> Option<R> {
    std::thread::scope(|s| {
        s.spawn(|| crate::run_only_on(cpu).is_ok().then(f)).join().expect("no panic")
    })
}

/// `slots` zeroed `CpuMags`, one per slot, `stride` apart.
struct Slots {
    mem: Vec<CpuMags>,
}

impl Slots {
    fn new(slots: usize) -> Self {
        Slots { mem: vec![CpuMags::EMPTY; slots] }
    }
    fn mags(&mut self) -> MagSlots {
        // SAFETY: `mem` holds `len` initialized CpuMags, a CpuMags apart,
        // used only through the pin under test while borrowed.
        unsafe {
            MagSlots::new(
                self.mem.as_mut_ptr().cast(),
                core::mem::size_of::<CpuMags>(),
                self.mem.len(),
            )
        }
    }
}

#[test]
fn restartable_sequences_when_glibc_registers_them() {
    let pin = RseqPin::new();
    let expected = cfg!(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))
        && arch::registered().is_some();
    assert_eq!(pin.uses_rseq(), expected);
    assert!(!RseqPin::without_rseq(4).uses_rseq());
    assert_eq!(RseqPin::with_slots(3).slots(), 3);
    eprintln!("rseq in use: {}", pin.uses_rseq());
}

/// Random pops, pushes and installs through the pin on one CPU match
/// `CpuMags`' own methods on a copy of that CPU's slot, and leave the
/// other slots alone.
#[test]
fn sequences_do_what_cpumags_does() {
    let cpus = RseqPin::new().slots();
    for cpu in [0, cpus - 1] {
        for pin in [RseqPin::new(), RseqPin::without_rseq(cpus)] {
            let rseq = pin.uses_rseq();
            let ran = on_cpu(cpu, || {
                let mut slots = Slots::new(cpus);
                let mut model = CpuMags::EMPTY;
                let mut rng = Rng::new(cpu as u64 + 7);
                let mut next = 1000usize;
                let mut mag;
                // Outcomes seen: miss, full, spilled, refused install.
                let mut seen = [0usize; 4];
                for step in 0..20_000 {
                    let mags = slots.mags();
                    // Phases that drain and fill the magazines in turn.
                    let draining = (step / 400) % 2 == 0;
                    let op = match rng.below(16) {
                        0..=9 if draining => 0,
                        0..=9 => 3,
                        10..=12 if draining => 3,
                        10..=12 => 0,
                        13 | 14 => 6,
                        _ => 7,
                    };
                    match op {
                        0..=2 => {
                            // SAFETY: `mags` is valid and used only here.
                            let got = unsafe { pin.pop(mags) };
                            assert_eq!(got, model.pop(), "step {step}");
                            seen[0] += usize::from(matches!(got, Popped::Empty { .. }));
                        }
                        3..=5 => {
                            next += 1;
                            // SAFETY: as above.
                            let got = unsafe { pin.push(mags, next) };
                            assert_eq!(got, model.push(next), "step {step}");
                            seen[1] += usize::from(got == Pushed::Full);
                        }
                        6 => {
                            let (mut a, mut b) = (Magazine::EMPTY, Magazine::EMPTY);
                            // SAFETY: as above.
                            let got = unsafe { pin.spill(mags, &mut a) };
                            assert_eq!(got, model.spill(&mut b), "step {step}");
                            seen[2] += usize::from(got);
                            assert_eq!(a.rounds(), b.rounds(), "step {step}: spilled");
                        }
                        _ => {
                            mag = Magazine::EMPTY;
                            for _ in 0..rng.between(1, ROUNDS) {
                                next += 1;
                                mag.push(next);
                            }
                            // SAFETY: as above.
                            let got = unsafe { pin.install(mags, &mag) };
                            assert_eq!(got, model.install(&mag), "step {step}");
                            seen[3] += usize::from(!got);
                        }
                    }
                    assert_eq!(slots.mem[cpu].counts(), model.counts(), "step {step}");
                }
                assert!(seen.iter().all(|&n| n > 10), "every outcome: {seen:?}");
                eprintln!("CPU {cpu}, rseq {rseq}: outcomes {seen:?}");
                for (i, s) in slots.mem.iter_mut().enumerate() {
                    let (mags, hits) = s.take();
                    if i == cpu {
                        let (want, want_hits) = model.take();
                        assert_eq!(hits, want_hits);
                        for (m, w) in mags.iter().zip(&want) {
                            assert_eq!(m.rounds(), w.rounds());
                        }
                    } else if rseq {
                        assert_eq!((mags[0].len(), mags[1].len(), hits), (0, 0, 0));
                    }
                }
            });
            if ran.is_none() {
                eprintln!("could not run on CPU {cpu}: skipped");
            }
        }
    }
}

#[test]
fn a_cpu_past_the_slots_is_unpinned() {
    let pin = RseqPin::with_slots(1);
    if !pin.uses_rseq() || RseqPin::new().slots() < 2 {
        return;
    }
    let ran = on_cpu(1, || {
        let mut slots = Slots::new(1);
        let mut spill = Magazine::EMPTY;
        // SAFETY: `mags` is valid and used only here.
        unsafe {
            assert_eq!(pin.pop(slots.mags()), Popped::Unpinned);
            assert_eq!(pin.push(slots.mags(), 8), Pushed::Unpinned);
            assert!(!pin.spill(slots.mags(), &mut spill));
            let mut m = Magazine::EMPTY;
            m.push(16);
            assert!(!pin.install(slots.mags(), &m));
        }
        assert_eq!(slots.mem[0].counts(), (0, 0), "nothing changed");
    });
    assert!(ran.is_some() || RseqPin::new().slots() < 2);
}
