//! Fuzz inputs through `/dev/vmspace`, when `VMSPACE_DEVICE` names it
//! (`make kernel-proptest`; skipped otherwise, saying so): the committed
//! corpus of the `arena_ops` fuzz target replayed through arenas in the
//! kernel, each input checked against the model step by step as the target
//! checks it in process; and storms of random commands with random argument
//! bytes, after which every object passes `check()` (the kernel log is
//! checked for warnings and oopses by `make kernel-proptest`).

use std::fs;

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

#[test]
fn random_ioctls_leave_the_device_healthy() {
    for seed in [1, 2, 0x5eed] {
        // A file of its own for each storm (which fills its file's bounds).
        let Some(dev) = device_for_tests() else { return };
        // SAFETY: this test process lives for the storm and its checks; a
        // stray kernel write into it shows as a crash or a failed check.
        let s = unsafe { ioctl_storm(&dev, seed, 4000) };
        let s = s.unwrap_or_else(|e| panic!("seed {seed:#x}: {e}"));
        eprintln!("ioctl storm {seed:#x}: {s:?}");
        assert_eq!(s.calls, 4000);
        assert!(s.succeeded > 100, "{s:?}");
        assert!(s.checked >= 1, "{s:?}");
    }
}
