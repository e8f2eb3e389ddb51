//! Fuzz inputs through `/dev/vmspace`, when `VMSPACE_DEVICE` names it
//! (`make kernel-proptest`; skipped otherwise, saying so): the committed
//! corpus of the `arena_ops` fuzz target replayed through arenas in the
//! kernel, each input checked against the model step by step as the target
//! checks it in process; and storms of random commands with random argument
//! bytes, after which every object passes `check()` (the kernel log is
//! checked for warnings and oopses by `make kernel-proptest`).

use std::fs;
use std::process::Command;

use vmspace_user::kdev::fuzz::{ioctl_storm, replay_arena_ops};
use vmspace_user::kdev::{device_for_tests, source_root};

#[test]
fn arena_ops_corpus_through_the_device() {
    let Some(dev) = device_for_tests() else { return };
    let dir = source_root().join("fuzz/corpus/arena_ops");
    let mut inputs: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    let (mut steps, mut imported) = (0, 0);
    for path in &inputs {
        let data = fs::read(path).unwrap();
        let s = replay_arena_ops(&dev, &data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        steps += s.succeeded + s.rejected + s.resource_failures;
        imported += s.imported;
    }
    eprintln!("corpus: {} inputs, {steps} operations, {imported} imports", inputs.len());
    assert!(steps > inputs.len(), "the corpus hardly did anything");
}

/// The storm's seed, in the child process that runs it.
const STORM_SEED: &str = "VMSPACE_STORM_SEED";

/// Each storm runs in a child process of its own, alone (this test, one
/// thread): a stray kernel write can corrupt only that run, which the
/// parent judges by its exit status.
#[test]
fn random_ioctls_leave_the_device_healthy() {
    if let Ok(seed) = std::env::var(STORM_SEED) {
        let seed: u64 = seed.parse().expect("a seed");
        // A file of its own for the storm (which fills its file's bounds).
        let dev = device_for_tests().expect("the parent saw the device");
        // SAFETY: this child process runs the storm alone and ends with
        // it; its exit status is the verdict (`ioctl_storm`'s contract).
        let s = unsafe { ioctl_storm(&dev, seed, 4000) };
        let s = s.unwrap_or_else(|e| panic!("seed {seed:#x}: {e}"));
        eprintln!("ioctl storm {seed:#x}: {s:?}");
        assert_eq!(s.calls, 4000);
        assert!(s.succeeded > 100, "{s:?}");
        assert!(s.checked >= 1, "{s:?}");
        return;
    }
    if device_for_tests().is_none() {
        return;
    }
    for seed in [1u64, 2, 0x5eed] {
        let status = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", "random_ioctls_leave_the_device_healthy", "--nocapture"])
            .arg("--test-threads=1")
            .env(STORM_SEED, seed.to_string())
            .status()
            .expect("run the storm's child");
        assert!(status.success(), "storm {seed:#x}: {status:?}");
    }
}
