//! `DevArena::destroy` and `DevVm::destroy` close the device file when
//! theirs was its last handle (they forgot the handle's share of it, so
//! the file, and every object in it, stayed open for the process's life).
//! Run in a child process, alone, so that no other test opens or closes
//! files while the descriptors are counted. Skipped without a device
//! (`make kernel-proptest` sets `VMSPACE_DEVICE`).

mod child_process;

use vmspace::arena::Policy;
use vmspace::{Addr, Range, Size};
use vmspace_user::kdev::{device_for_tests, ArenaConfig};
use vmspace_workload::{ArenaTarget, VmTarget};

const CHILD: &str = "VMSPACE_KDEV_DESTROY_CHILD";

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

#[test]
fn destroy_closes_the_file_with_its_last_handle() {
    if child_process::scenario(CHILD).is_some() {
        let before = open_descriptors();
        let dev = device_for_tests().expect("the parent saw the device");
        let mut arena = dev.arena(&ArenaConfig::new(Size(16))).unwrap();
        drop(dev);
        arena.add(Addr(1 << 40), Size(1 << 20)).unwrap();
        arena.alloc(Size(32), Policy::InstantFit).unwrap();
        assert_eq!(open_descriptors(), before + 1, "the arena holds the file open");
        assert_eq!(arena.destroy().unwrap(), (1, 32));
        assert_eq!(open_descriptors(), before, "closed with the arena, its last handle");

        let dev = device_for_tests().unwrap();
        let page = dev.page_size();
        let mut vm = dev.vm(4 * page, 0).unwrap();
        drop(dev);
        vm.map(Range::from_size(vm.base(), Size(page)).unwrap()).unwrap();
        assert_eq!(vm.destroy().unwrap(), (1, page as u64));
        assert_eq!(open_descriptors(), before, "closed with the VM, its last handle");

        // Another handle keeps it open: only the last closes it.
        let dev = device_for_tests().unwrap();
        let arena = dev.arena(&ArenaConfig::new(Size(16))).unwrap();
        assert_eq!(arena.destroy().unwrap(), (0, 0));
        assert_eq!(open_descriptors(), before + 1, "`dev` still holds it");
        drop(dev);
        assert_eq!(open_descriptors(), before);
        return;
    }
    if device_for_tests().is_none() {
        return;
    }
    let status =
        child_process::run_child("destroy_closes_the_file_with_its_last_handle", CHILD, "1");
    assert!(status.success(), "the child failed: {status:?}");
}
