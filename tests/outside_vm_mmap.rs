//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the VM layer on mmap, with both unmap strategies:
//! protections seen from a forked child and in /proc/self/maps, contents
//! surviving protection changes, pages reading zero after unmap and map.

use vmspace::vm::{Vm, VmError};
use vmspace_shim::{Addr, Protection, Range, Size};
use vmspace_user::{procfs, MmapBackend, UnmapStrategy};

fn perms(r: Range) -> Vec<(Range, String)> {
    procfs::vmas_in(r).unwrap().into_iter().map(|v| (v.range, v.perms)).collect()
}

/// In a forked child: touch `addr` (read or write); returns whether the
/// child died of a signal.
fn faults_in_child(addr: usize, write: bool) -> bool {
    // SAFETY: the child only touches memory and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: in the child; a fault kills only the child. The default
        // actions first: a sanitizer's handler would exit instead of dying.
        unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
            if write {
                core::ptr::write_volatile(addr as *mut u8, 1);
            } else {
                let _ = core::ptr::read_volatile(addr as *const u8);
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WIFSIGNALED(status)
}

#[test]
fn mmap_vm_protections_are_honoured_and_contents_survive() {
    for strategy in [UnmapStrategy::Replace, UnmapStrategy::Decommit] {
        let mut vm =
            Vm::reserve(MmapBackend::with_strategy(strategy), Size(64 << 20), Size(2 << 20))
                .unwrap();
        let pg = vm.page_size().0;
        let r = Range::from_size(vm.base(), Size(8 * pg)).unwrap();
        // Not mapped: touching faults.
        assert!(faults_in_child(r.base().0, false));
        vm.map(r).unwrap();
        let p = r.base().0 as *mut u8;
        // SAFETY: mapped read-write.
        unsafe {
            for i in 0..8 {
                assert_eq!(*p.add(i * pg), 0);
                *p.add(i * pg + 7) = i as u8 + 1;
            }
        }
        let ro = Range::from_size(Addr(r.base().0 + 2 * pg), Size(2 * pg)).unwrap();
        vm.protect(ro, Protection::Read).unwrap();
        assert!(faults_in_child(ro.base().0, true), "{strategy:?}: write to read-only page");
        assert!(!faults_in_child(ro.base().0, false));
        // SAFETY: readable.
        assert_eq!(unsafe { *p.add(2 * pg + 7) }, 3);
        let none = Range::from_size(Addr(r.base().0 + 5 * pg), Size(pg)).unwrap();
        vm.protect(none, Protection::None).unwrap();
        assert!(faults_in_child(none.base().0, false));
        let v = perms(r);
        assert!(v.iter().any(|(x, p)| *x == ro && p.starts_with("r--")), "{v:?}");
        assert!(v.iter().any(|(x, p)| *x == none && p.starts_with("---")), "{v:?}");
        vm.protect(none, Protection::ReadWrite).unwrap();
        // SAFETY: read-write again; contents kept through protect.
        assert_eq!(unsafe { *p.add(5 * pg + 7) }, 6);
        vm.check().unwrap();
        // Unmap read-only pages, map again: read zero and writable.
        vm.unmap(ro).unwrap();
        assert!(faults_in_child(ro.base().0, false));
        assert_eq!(vm.protect(ro, Protection::Read), Err(VmError::NotMapped(ro)));
        vm.map(ro).unwrap();
        // SAFETY: mapped read-write.
        unsafe {
            assert_eq!(*p.add(2 * pg + 7), 0);
            *p.add(2 * pg + 7) = 9;
        }
        assert_eq!(vm.mapped(), Size(8 * pg));
        // Deferred unmap on mmap (the default: at once).
        vm.unmap_deferred(r).unwrap();
        assert_eq!(vm.flush(), 0);
        vm.map(r).unwrap();
        // SAFETY: mapped read-write.
        assert_eq!(unsafe { *p.add(2 * pg + 7) }, 0);
        vm.check().unwrap();
        assert!(vm.trim().is_ok());
        vm.release().map_err(|(_, e)| e).unwrap();
    }
}
