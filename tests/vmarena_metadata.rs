//! Metadata overhead of a VM arena: 64 GiB reserved and nothing allocated
//! maps under 64 KiB of metadata, and what it maps grows in proportion to
//! what is allocated and goes back when it is freed.

use vmspace::vmarena::Owner;
use vmspace::vmarena::{Request, VmArena, VmArenaConfig};
use vmspace::Pages;
use vmspace_shim::{PageOps, Size};
use vmspace_user::MmapBackend;

#[test]
fn sixty_four_gib_idle_maps_under_64_kib() {
    let ops = MmapBackend::new();
    let page = ops.page_size().0;
    let mut arena = VmArena::new(ops, VmArenaConfig::new(Size(64 << 30))).unwrap();
    let idle = arena.metadata_mapped();
    assert!(idle < Size(64 << 10), "idle metadata {idle}");
    // Just the VM's summary of its own mapped-state table.
    assert_eq!(idle, Size(page));
    arena.check().unwrap();

    // 1 MiB runs spread over the whole space: each needs its own page-table
    // and allocation-table pages, so metadata grows with every allocation.
    let run = (1 << 20) / page;
    let stride = (1 << 30) / page;
    // Alignment is absolute, and mmap places the reservation where it
    // likes (AddressSanitizer's layout differs from the plain one), so a
    // run's descriptors may straddle two page-table pages: count the table
    // pages each run spans from its index within the arena.
    let per_table_page = page / 8;
    let base = arena.base().0;
    let table_pages_of = |g: &vmspace::vmarena::Grant| {
        let first = (g.range.base().0 - base) / page;
        let last = first + run - 1;
        last / per_table_page - first / per_table_page + 1
    };
    let mut grants = Vec::new();
    let mut table_pages = 0;
    let mut last = idle;
    for i in 0..16 {
        let g = arena.alloc(&Request::new(Pages(run), Owner(1)).align(Pages(stride))).unwrap();
        if let Some(first) = grants.first() {
            let first: &vmspace::vmarena::Grant = first;
            assert_eq!(g.range.base().0 - first.range.base().0, i * stride * page);
        }
        table_pages += table_pages_of(&g);
        grants.push(g);
        let now = arena.metadata_mapped();
        assert!(now > last, "metadata grows with allocation");
        last = now;
    }
    // Proportional: per 1 MiB allocated, the table pages describing it
    // (1 MiB / 4 KiB = 256 descriptors of 8 bytes = half a page: one page,
    // or two where the run straddles a table-page boundary) plus one
    // allocation-table page and one page of the VM's mapped-state table:
    // at most four pages, far below 1% of what is allocated. The VM's
    // table may take one page more for the bits of the arena's own tables.
    assert_eq!(arena.table_pages_mapped(), table_pages);
    assert!((16..=32).contains(&table_pages), "{table_pages} table pages");
    let expected = (table_pages + 16 + 16) * page;
    assert!(
        last.0 - idle.0 <= expected + 2 * page,
        "{} bytes of metadata for {table_pages} table pages",
        last.0 - idle.0
    );
    arena.check().unwrap();
    for g in grants {
        arena.free(g.range, Owner(1)).unwrap();
    }
    assert_eq!(arena.table_pages_mapped(), 0);
    assert_eq!(arena.bit_pages_mapped(), 0);
    assert_eq!(arena.committed(), Size(0));
    assert_eq!(arena.metadata_mapped(), idle, "metadata goes back with the frees");
    arena.check().unwrap();
}
