//! VM map/unmap beside the bare system calls it issues, in the same run.
//!
//! Each pair maps and unmaps one run of pages at a rotating place in a
//! reservation: once through `Vm` (checks, bit table, backend) and once as the
//! exact system calls the backend makes for it, on a reservation made the same
//! way. The ratio of the two is the VM layer's overhead.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vmspace::vm::Vm;
use vmspace_shim::{Addr, PageOps, Range, Size};
use vmspace_user::{MmapBackend, UnmapStrategy};

const SLOTS: usize = 1024;

fn bare_map(r: Range) {
    // SAFETY: `r` lies in a reservation this benchmark owns.
    let rc = unsafe {
        libc::mprotect(r.base().as_ptr(), r.size().0, libc::PROT_READ | libc::PROT_WRITE)
    };
    assert_eq!(rc, 0);
}

fn bare_unmap(r: Range, strategy: UnmapStrategy) {
    // SAFETY: `r` lies in a reservation this benchmark owns and is not used.
    unsafe {
        match strategy {
            UnmapStrategy::Decommit => {
                assert_eq!(libc::madvise(r.base().as_ptr(), r.size().0, libc::MADV_DONTNEED), 0);
                assert_eq!(libc::mprotect(r.base().as_ptr(), r.size().0, libc::PROT_NONE), 0);
            }
            UnmapStrategy::Replace => {
                let flags =
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED;
                let p = libc::mmap(r.base().as_ptr(), r.size().0, libc::PROT_NONE, flags, -1, 0);
                assert_ne!(p, libc::MAP_FAILED);
            }
        }
    }
}

fn map_unmap(c: &mut Criterion) {
    let page = MmapBackend::new().page_size().0;
    let mut group = c.benchmark_group("vm_map_unmap");
    group.sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    for strategy in [UnmapStrategy::Decommit, UnmapStrategy::Replace] {
        for pages in [1usize, 16] {
            let size = Size(SLOTS * 2 * pages * page);
            let label = format!("{strategy:?}/{pages}p");
            group.throughput(Throughput::Elements(1));

            let mut vm =
                Vm::reserve(MmapBackend::with_strategy(strategy), size, Size(page)).unwrap();
            let mut i = 0;
            group.bench_function(BenchmarkId::new("vm", &label), |b| {
                b.iter(|| {
                    // Every other slot, so runs never merge across iterations.
                    let r = Range::from_size(
                        Addr(vm.base().0 + (i % SLOTS) * 2 * pages * page),
                        Size(pages * page),
                    )
                    .unwrap();
                    vm.map(r).unwrap();
                    vm.unmap(r).unwrap();
                    i += 1;
                })
            });
            drop(vm);

            let backend = MmapBackend::with_strategy(strategy);
            let res = backend.reserve(size, Size(page)).unwrap();
            let mut i = 0;
            group.bench_function(BenchmarkId::new("syscalls", &label), |b| {
                b.iter(|| {
                    let r = Range::from_size(
                        Addr(res.base().0 + (i % SLOTS) * 2 * pages * page),
                        Size(pages * page),
                    )
                    .unwrap();
                    bare_map(r);
                    bare_unmap(r, strategy);
                    i += 1;
                })
            });
            // SAFETY: the reservation is ours and no longer used.
            unsafe { backend.release(res).unwrap() };
        }
    }
    group.finish();
}

criterion_group!(benches, map_unmap);
criterion_main!(benches);
