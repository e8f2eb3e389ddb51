//! An arena whose only allocation comes and goes, over a `VmSource` and
//! over a `KeepFree` on the same kind of `VmSource`, in the same run: the
//! first imports (maps) and gives back (unmaps) a span every pair, the
//! second keeps the span given back and takes it again.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vmspace::arena::{Arena, PageStore, Policy, Source, Store};
use vmspace::sources::{KeepFree, VmSource};
use vmspace::vm::Vm;
use vmspace_shim::{PageOps, Size};
use vmspace_user::MmapBackend;

fn vm_source(ops: MmapBackend) -> VmSource<MmapBackend, PageStore<MmapBackend>> {
    let page = ops.page_size();
    let vm = Vm::reserve(ops, Size(1024 * page.0), page).unwrap();
    let tags = PageStore::new(ops, Size(16 * page.0)).unwrap();
    VmSource::new(vm, tags, PageStore::new(ops, page).unwrap()).unwrap()
}

fn pair<S: Store, I: Source>(heap: &mut Arena<S, I>) {
    let a = heap.alloc(Size(16), Policy::InstantFit).unwrap();
    heap.free(std::hint::black_box(a), Size(16)).unwrap();
}

fn edge_pairs(c: &mut Criterion) {
    let ops = MmapBackend::new();
    let mut group = c.benchmark_group("sources_edge_pair");
    group.sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));

    let mut plain = Arena::on_pages("plain", Size(16), ops, 4096, vm_source(ops)).unwrap();
    group.bench_function(BenchmarkId::new("VmSource", "16 B"), |b| b.iter(|| pair(&mut plain)));
    assert_eq!(plain.counters().imports, plain.counters().exports, "a span a pair");

    let keep = KeepFree::<_, 2>::new(vm_source(ops), Size(64 << 10));
    let mut kept = Arena::on_pages("kept", Size(16), ops, 4096, keep).unwrap();
    group.bench_function(BenchmarkId::new("KeepFree", "16 B"), |b| b.iter(|| pair(&mut kept)));
    assert_eq!(kept.source().counts().imported, 1, "one span, kept");
    group.finish();
}

criterion_group!(benches, edge_pairs);
criterion_main!(benches);
