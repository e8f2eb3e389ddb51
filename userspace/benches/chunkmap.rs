//! Chunk map lookups and no-op `ensure_mapped`, beside a plain array load.
//!
//! `is_mapped` reads a directory byte and a chunk byte; the baseline reads one
//! byte of a plain array indexed the same way (what a flat, fully committed
//! state table would cost). Both look up the same 1024 addresses per
//! iteration, half in mapped chunks: "dense" ones all in present leaves,
//! "sparse" ones half in absent leaves.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace_shim::{Addr, Range, Size};
use vmspace_user::MmapBackend;
use vmspace_workload::Rng;

const CHUNK: usize = 4 << 20;

fn lookups(c: &mut Criterion) {
    // A 64 TiB space (16 Mi chunks, 4096 chunks a leaf). Chunks [0, 4096)
    // and 8191 are mapped (nothing touched), so leaves 0 and 1 are present
    // and leaves 2 and 3 absent.
    let space = 1usize << 46;
    let map =
        ChunkMap::new(MmapBackend::new(), ChunkMapConfig::new(Size(space), Size(CHUNK))).unwrap();
    let base = map.space().base().0;
    map.ensure_mapped(Range::from_size(Addr(base), Size(4096 * CHUNK)).unwrap()).unwrap();
    map.ensure_mapped(Range::from_size(Addr(base + 8191 * CHUNK), Size(CHUNK)).unwrap()).unwrap();
    let mut flat = vec![0u8; 16384];
    flat[..4096].fill(2);
    flat[8191] = 2;
    let mut rng = Rng::new(1);
    // Dense: leaves present, half the chunks mapped. Sparse: half the
    // lookups land in absent leaves.
    let sets: [(&str, Vec<Addr>); 2] = [
        ("dense", (0..1024).map(|_| Addr(base + rng.below(8192 * CHUNK))).collect()),
        ("sparse", (0..1024).map(|_| Addr(base + rng.below(16384 * CHUNK))).collect()),
    ];

    let mut g = c.benchmark_group("chunkmap_lookup");
    g.sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (name, addrs) in &sets {
        g.throughput(Throughput::Elements(addrs.len() as u64));
        g.bench_function(format!("is_mapped/{name}"), |b| {
            b.iter(|| {
                let map = black_box(&map);
                addrs.iter().filter(|&&a| map.is_mapped(black_box(a))).count()
            })
        });
        g.bench_function(format!("lookup_is_mapped/{name}"), |b| {
            b.iter(|| {
                let l = black_box(&map).lookup();
                addrs.iter().filter(|&&a| l.is_mapped(black_box(a))).count()
            })
        });
        g.bench_function(format!("plain_array_load/{name}"), |b| {
            b.iter(|| {
                let flat = black_box(&flat[..]);
                addrs
                    .iter()
                    .filter(|&&a| {
                        let off = black_box(a).0.wrapping_sub(base);
                        off < space && flat.get(off >> 22).is_some_and(|&s| s == 2)
                    })
                    .count()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("chunkmap_ensure_mapped_noop");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for chunks in [1usize, 16, 256] {
        let r = Range::from_size(Addr(base + 100 * CHUNK), Size(chunks * CHUNK)).unwrap();
        g.throughput(Throughput::Elements(chunks as u64));
        g.bench_function(format!("{chunks}_chunks"), |b| {
            b.iter(|| map.ensure_mapped(black_box(r)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
