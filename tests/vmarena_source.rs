//! A vmem arena importing its spans from a VM arena (which implements
//! `Source`): imports are committed tracts owned by `IMPORT_OWNER`, and a
//! wholly free imported span goes back to the VM arena.

use vmspace::arena::{Arena, Policy, SliceStore};
use vmspace::sources::IMPORT_OWNER;
use vmspace::vmarena::{VmArena, VmArenaConfig};
use vmspace_shim::sim::SimBackend;
use vmspace_shim::Size;

#[test]
fn a_vmem_arena_imports_from_a_vm_arena() {
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let mut vma = VmArena::new(&sim, VmArenaConfig::new(Size(1 << 20))).unwrap();
    let (mut tags, mut hash) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    {
        let mut a = Arena::new(
            "objects",
            Size(64),
            SliceStore::new(&mut tags),
            SliceStore::new(&mut hash),
            &mut vma,
        )
        .unwrap();
        let x = a.alloc(Size(1000), Policy::InstantFit).unwrap();
        let y = a.alloc(Size(20000), Policy::InstantFit).unwrap();
        // SAFETY: imports are committed read-write tracts.
        unsafe { x.as_ptr::<u8>().write(1) };
        a.check().unwrap();
        a.source().check().unwrap();
        assert!(a.source().allocated() >= Size(20000 + 1000));
        assert_eq!(a.source().tract(x).unwrap().owner, IMPORT_OWNER);
        a.free(x, Size(1000)).unwrap();
        a.free(y, Size(20000)).unwrap();
        a.check().unwrap();
    }
    assert_eq!(vma.allocated(), Size(0), "wholly free spans went back");
    assert_eq!(vma.table_pages_mapped(), 0);
    vma.check().unwrap();
}

#[test]
fn an_import_the_vm_arena_cannot_give_fails_cleanly() {
    use vmspace::arena::ArenaError;
    let mut buf = vec![0u8; 4 << 20];
    let sim = SimBackend::new(&mut buf, 4096).unwrap();
    let config = VmArenaConfig::new(Size(1 << 20)).commit_limit(Size(64 << 10));
    let mut vma = VmArena::new(&sim, config).unwrap();
    let (mut tags, mut hash) = (vec![0u8; 16 << 10], vec![0u8; 4 << 10]);
    {
        let mut a = Arena::new(
            "objects",
            Size(64),
            SliceStore::new(&mut tags),
            SliceStore::new(&mut hash),
            &mut vma,
        )
        .unwrap();
        // Past the commit limit, then past the arena itself.
        for size in [100 << 10, 2 << 20] {
            match a.alloc(Size(size), Policy::InstantFit) {
                Err(ArenaError::NoSpace { .. }) => {}
                other => panic!("{other:?}"),
            }
            a.check().unwrap();
        }
        assert!(a.alloc(Size(32 << 10), Policy::InstantFit).is_ok());
    }
    vma.check().unwrap();
}
