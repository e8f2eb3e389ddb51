//! A JIT code cache: tracts from a VM arena, small blobs from a vmem arena
//! importing from it, write, make read-only, patch, free; and a VmSource.

use vmspace::arena::{Arena, Policy, SegmentKinds, Source};
use vmspace::sources::{VmSource, IMPORT_OWNER};
use vmspace::vm::Vm;
use vmspace::vmarena::{Owner, Request, VmArena, VmArenaConfig};
use vmspace::{Addr, PageOps, Pages, Protection, Range, Size};
use vmspace_user::MmapBackend;

use crate::releases::Releases;
use crate::{prot_at, store};

const CODE: Owner = Owner(1);

#[test]
fn code_pages_write_protect_patch_free() {
    let be = Releases::default();
    let page = 4096;
    let mut va = VmArena::new(&be, VmArenaConfig::new(Size(4 << 30)).spare_limit(64)).unwrap();
    let res = va.vm().reservation();
    let g = va.alloc(&Request::new(Pages(16), CODE)).unwrap();
    let p = g.range.base().as_ptr::<u8>();
    // SAFETY: the grant is committed read-write.
    unsafe { std::ptr::write_bytes(p, 0xC3, g.range.size().0) };
    va.protect(g.range, CODE, Protection::Read).unwrap();
    assert_eq!(prot_at(g.range.base().0).as_deref(), Some("r--p"));
    assert_eq!(va.tract(g.range.base()).unwrap().prot, Protection::Read);
    // Patch one page.
    let first = Range::from_size(g.range.base(), Size(page)).unwrap();
    va.protect(first, CODE, Protection::ReadWrite).unwrap();
    // SAFETY: read-write again.
    unsafe { p.write(0x90) };
    va.protect(first, CODE, Protection::Read).unwrap();
    va.check().unwrap();
    // Free: protected, so decommitted whole, no spare.
    va.free(g.range, CODE).unwrap();
    assert_eq!(va.allocated(), Size(0));
    assert_eq!(va.spare(), Size(0));
    va.check().unwrap();
    // Reuse reads zero and is read-write.
    let g2 = va.alloc(&Request::new(Pages(16), CODE)).unwrap();
    // SAFETY: committed read-write.
    unsafe {
        assert_eq!(g2.range.base().as_ptr::<u8>().read(), 0);
        g2.range.base().as_ptr::<u8>().write(1);
    }
    va.free(g2.range, CODE).unwrap();
    va.purge_spare().unwrap();
    assert_eq!(va.committed(), Size(0), "nothing committed once freed and purged");
    drop(va);
    // (Asked of the backend: see `releases.rs`.)
    assert_eq!(be.released(), [res], "reservation released on drop");
}

#[test]
fn small_blobs_from_an_arena_importing_tracts() {
    let be = MmapBackend::new();
    let mut va = VmArena::new(be, VmArenaConfig::new(Size(1 << 30))).unwrap();
    {
        let mut code = Arena::on_pages("code", Size(64), be, 1 << 12, &mut va).unwrap();
        let mut blobs = Vec::new();
        for i in 0..500usize {
            let size = 64 * (1 + i % 40);
            let a = code.alloc(Size(size), Policy::InstantFit).unwrap();
            // SAFETY: imported tracts are committed read-write.
            unsafe { std::ptr::write_bytes(a.as_ptr::<u8>(), i as u8, size) };
            blobs.push((a, size));
        }
        // Nothing overlaps: every blob still holds its stamp.
        for (i, &(a, size)) in blobs.iter().enumerate() {
            // SAFETY: live, committed.
            let s = unsafe { std::slice::from_raw_parts(a.as_ptr::<u8>(), size) };
            assert!(s.iter().all(|&b| b == i as u8), "blob {i} overwritten");
        }
        // Every span is owned by IMPORT_OWNER in the VM arena.
        let spans: Vec<_> = code.walk(SegmentKinds::SPANS).collect();
        assert!(spans.iter().all(|s| s.imported));
        for s in &spans {
            assert_eq!(code.source().tract(s.range.base()).unwrap().owner, IMPORT_OWNER);
        }
        for (a, size) in blobs {
            code.free(a, Size(size)).unwrap();
        }
        code.check().unwrap();
        assert_eq!(code.sizes().total, Size(0), "imported spans go back when wholly free");
    }
    assert_eq!(va.allocated(), Size(0));
    va.check().unwrap();
}

#[test]
fn vm_source_releases_everything_on_drop() {
    let be = Releases::default();
    let page = be.page_size().0;
    let vm = Vm::reserve(&be, Size(256 << 20), Size(2 << 20)).unwrap();
    let res = vm.reservation();
    let mut src = VmSource::new(vm, store(1 << 20), store(1 << 16)).unwrap();
    let r = src.import(Size(64 * page), Size(page)).unwrap();
    // SAFETY: imported: mapped.
    unsafe { r.base().as_ptr::<u8>().write(7) };
    assert_eq!(src.vm().mapped(), Size(64 * page));
    src.release(r).unwrap();
    assert_eq!(src.vm().mapped(), Size(0));
    src.check().unwrap();
    let _live = src.import(Size(8 * page), Size(page)).unwrap();
    drop(src);
    // (Asked of the backend: see `releases.rs`.)
    assert_eq!(be.released(), [res]);
}

#[test]
fn vm_protect_then_unmap_and_remap_is_read_write() {
    let be = MmapBackend::new();
    let mut vm = Vm::reserve(be, Size(1 << 30), Size(2 << 20)).unwrap();
    let r = Range::from_size(vm.base(), Size(1 << 16)).unwrap();
    vm.map(r).unwrap();
    vm.protect(r, Protection::None).unwrap();
    assert!(vm.is_range_mapped(r).unwrap());
    vm.unmap(r).unwrap();
    vm.map(r).unwrap();
    // SAFETY: map commits read-write, reading zero (PageOps contract).
    unsafe {
        assert_eq!(r.base().as_ptr::<u8>().read(), 0);
        r.base().as_ptr::<u8>().write(3);
    }
    let _ = Addr(0);
    vm.unmap(r).unwrap();
    vm.check().unwrap();
}
