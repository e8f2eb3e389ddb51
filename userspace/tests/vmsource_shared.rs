//! A `VmSource` moves between threads, so an arena importing mapped pages
//! from one can be shared as a `UserArena` without any wrapper: the tag
//! table and address hash inside the source's own arena are `Send` when
//! their stores are. Two threads allocate, write, check and free memory the
//! shared arena imports from the source, then the arena and the source pass
//! their invariant walks and every import went back.

use std::thread;

use vmspace::arena::{Arena, PageStore};
use vmspace::sources::VmSource;
use vmspace::sync::Wait;
use vmspace::vm::Vm;
use vmspace::{Policy, Size};
use vmspace_user::{MmapBackend, UserArena};

fn shared<T: Send + Sync>(_: &T) {}

#[test]
fn an_arena_over_a_vm_source_is_shared_by_threads() {
    const THREADS: usize = 2;
    const ROUNDS: usize = 2_000;
    let be = MmapBackend::new();
    let vm = Vm::reserve(be, Size(256 << 20), Size(2 << 20)).unwrap();
    let store = || PageStore::new(be, Size(1 << 20)).unwrap();
    let source = VmSource::new(vm, store(), store()).unwrap();
    let heap = Arena::on_pages("heap", Size(64), be, 1 << 14, source).unwrap();
    let heap = UserArena::new(heap);
    shared(&heap);
    thread::scope(|s| {
        for t in 0..THREADS {
            let heap = &heap;
            s.spawn(move || {
                let mut live = Vec::new();
                for i in 0..ROUNDS {
                    let size = Size(64 * (1 + (i * 7 + t) % 300));
                    let a = heap.alloc(size, Policy::InstantFit, Wait::No).unwrap();
                    let stamp = (t << 32 | i) as u64;
                    // SAFETY: `[a, a + size)` was just allocated to this
                    // thread from pages the source mapped read-write; the
                    // arena's quantum (64) keeps it 8-byte aligned.
                    unsafe { (a.0 as *mut u64).write(stamp) };
                    live.push((a, size, stamp));
                    if live.len() > 64 {
                        let (a, size, stamp) = live.swap_remove(i % live.len());
                        // SAFETY: still allocated to this thread, written above.
                        assert_eq!(unsafe { (a.0 as *const u64).read() }, stamp);
                        heap.free(a, size).unwrap();
                    }
                }
                for (a, size, stamp) in live {
                    // SAFETY: as above.
                    assert_eq!(unsafe { (a.0 as *const u64).read() }, stamp);
                    heap.free(a, size).unwrap();
                }
            });
        }
    });
    heap.with(|a| {
        a.check().unwrap();
        a.source().check().unwrap();
        assert!(a.sizes().allocated.is_zero());
        let n = a.counters();
        assert!(n.imports > 0, "the arena imported from its source");
        assert_eq!(n.imports, n.exports, "every import was given back");
        assert!(a.source().vm().mapped().is_zero(), "nothing left mapped");
    });
}
