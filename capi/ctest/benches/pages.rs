//! The C VM layer and arenas of pages against what a C program would do
//! without them, in one run:
//! - `vmspace_vm_map` + `vmspace_vm_unmap` of 1 and 16 pages in a reserved
//!   VM, against `mmap` + `munmap` of fresh anonymous memory (the kernel
//!   chooses the address) of the same size;
//! - the same pairs with every page written once (the page faults and
//!   zeroing, which both sides pay);
//! - one allocate+free pair of a page from an arena of pages
//!   (`vmspace_arena_set_vm`): without quantum caches (each pair imports,
//!   maps, unmaps and gives back its span), and with them (a magazine hit:
//!   nothing mapped or unmapped), against glibc's `malloc` + `free` of
//!   4 KiB.
//!
//! The C functions are called through the library's exported symbols, as a
//! C program links them.

// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use core::ffi::c_void;

use criterion::{criterion_group, criterion_main, Criterion};
use vmspace_capi::ctypes::{vmspace_arena_t, vmspace_vm_info, vmspace_vm_t};
use vmspace_capi_user::vmspace_native_api as lib;

fn page() -> usize {
    // SAFETY: plain sysconf.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Write one byte of every page of `[addr, addr + len)`.
fn touch(addr: usize, len: usize, page: usize) {
    for p in (addr..addr + len).step_by(page) {
        // SAFETY: the caller mapped the range read-write.
        unsafe { (p as *mut u8).write_volatile(1) };
    }
}

fn vm_pairs(c: &mut Criterion, page: usize) {
    let mut vm: *mut vmspace_vm_t = core::ptr::null_mut();
    // SAFETY: a writable out pointer.
    assert_eq!(unsafe { lib::vmspace_vm_create(64 << 20, 0, 0, &mut vm) }, 0);
    let mut info = vmspace_vm_info::default();
    // SAFETY: a live VM, a writable info.
    assert_eq!(unsafe { lib::vmspace_vm_info(vm, &mut info) }, 0);
    for pages in [1usize, 16] {
        let len = pages * page;
        for touched in [false, true] {
            let how = if touched { ", written" } else { "" };
            c.bench_function(&format!("pages/c: vmspace_vm_map+unmap {pages}{how}"), |b| {
                b.iter(|| {
                    // SAFETY: a live VM; the range is ours, unmapped after.
                    unsafe {
                        assert_eq!(lib::vmspace_vm_map(vm, info.base, len), 0);
                        if touched {
                            touch(info.base, len, page);
                        }
                        assert_eq!(lib::vmspace_vm_unmap(vm, info.base, len), 0);
                    }
                })
            });
            c.bench_function(&format!("pages/libc: mmap+munmap {pages}{how}"), |b| {
                b.iter(|| {
                    // SAFETY: a fresh anonymous mapping, unmapped after.
                    unsafe {
                        let p = libc::mmap(
                            core::ptr::null_mut(),
                            len,
                            libc::PROT_READ | libc::PROT_WRITE,
                            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                            -1,
                            0,
                        );
                        assert_ne!(p, libc::MAP_FAILED);
                        if touched {
                            touch(p as usize, len, page);
                        }
                        assert_eq!(libc::munmap(p, len), 0);
                    }
                })
            });
        }
    }
    // SAFETY: a live VM, not used after.
    assert_eq!(unsafe { lib::vmspace_vm_destroy(vm) }, 0);
}

fn arena_pairs(c: &mut Criterion, page: usize) {
    for (qcache_max, what) in [(0, "no caches"), (4 * page, "quantum caches")] {
        // SAFETY: a valid name; no initial span.
        let a: *mut vmspace_arena_t =
            unsafe { lib::vmspace_arena_create(c"bench".as_ptr(), 0, 0, page, qcache_max, 0) };
        assert!(!a.is_null());
        // SAFETY: a live arena.
        assert_eq!(unsafe { lib::vmspace_arena_set_vm(a, 256 << 20, 0) }, 0);
        c.bench_function(&format!("pages/c: arena of pages alloc+free 1 page, {what}"), |b| {
            b.iter(|| {
                let mut x = 0usize;
                // SAFETY: a live arena, a writable out pointer.
                unsafe {
                    assert_eq!(lib::vmspace_arena_alloc(a, page, 0, &mut x), 0);
                    assert_eq!(lib::vmspace_arena_free(a, x, page), 0);
                }
            })
        });
        // SAFETY: a live arena, not used after.
        assert_eq!(unsafe { lib::vmspace_arena_destroy(a) }, 0);
    }
    c.bench_function("pages/libc: malloc+free 4096", |b| {
        b.iter(|| {
            // SAFETY: malloc's block, freed at once.
            unsafe {
                let p: *mut c_void = libc::malloc(4096);
                assert!(!p.is_null());
                libc::free(core::hint::black_box(p));
            }
        })
    });
}

fn bench(c: &mut Criterion) {
    let page = page();
    vm_pairs(c, page);
    arena_pairs(c, page);
}

criterion_group!(benches, bench);
criterion_main!(benches);
