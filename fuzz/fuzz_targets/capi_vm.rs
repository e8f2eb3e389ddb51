//! Fuzz the C API's VM layer (`vmspace_vm_*`) as a C caller meets it,
//! through the user-space library's exported functions: a VM of a few
//! dozen pages (the size and grain from the input's first bytes), then
//! maps, unmaps, `mapped` queries, trims, infos and checks of any range,
//! good or bad (empty, misaligned, partly or wholly outside the VM, ends
//! that wrap), with the creation's bad arguments now and then. Checked
//! against a model of which pages are mapped, and with what protection
//! (`vmspace_vm_protect`, good and bad protections): every call succeeds
//! exactly when the model says it must and otherwise returns the errno the
//! header gives for the first thing wrong, changing nothing; `info.mapped`
//! is the model's count; a page just mapped reads zero and keeps what was
//! written to it until unmapped, whatever its protection meanwhile; a
//! protected range's access is what was asked (probed through a pipe, so a
//! forbidden access is `EFAULT`, not a fault); `vmspace_vm_check` passes
//! after every step; and the VM is destroyed with whatever is still mapped.
//!
//! Inputs whose first byte is odd drive an arena of pages instead
//! (`vmspace_arena_set_vm`: the quantum, quantum caches and VM size from
//! the input): allocations with any policy, frees good and doubled,
//! deferred frees and flushes, limits, reclaims. Every allocation lies in
//! the VM, over nothing live, and keeps what was written to it until
//! freed; the VM maps exactly the imported spans; `vmspace_arena_check`
//! passes after every step.

#![no_main]

use core::ffi::c_int;
use core::ptr;

use libfuzzer_sys::fuzz_target;
use vmspace_capi::ctypes::*;
use vmspace_capi_user::vmspace_native_api as lib;

const ENOENT: c_int = -2;
const EEXIST: c_int = -17;
const EINVAL: c_int = -22;
const ERANGE: c_int = -34;
const EOVERFLOW: c_int = -75;

/// Pages asked for at most (1 to this).
const ASK_PAGES: usize = 96;
/// The largest grain, in pages (`page << 5`).
const MAX_GRAIN_PAGES: usize = 32;
/// Pages a VM may have at most (the model's size): what was asked,
/// rounded up to the grain.
const MAX_PAGES: usize = ASK_PAGES + MAX_GRAIN_PAGES;

/// Bytes of the input, read in turn (zeros once it runs out).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The VM as the model sees it.
struct Model {
    base: usize,
    page: usize,
    pages: usize,
    /// The byte written to each mapped page (its first and last byte), or
    /// `None` where unmapped.
    mapped: [Option<u8>; MAX_PAGES],
    /// Each mapped page's protection (`VMSPACE_PROT_*`).
    prot: [c_int; MAX_PAGES],
}

const READ_WRITE: c_int = VMSPACE_PROT_READ | VMSPACE_PROT_WRITE;

impl Model {
    fn count(&self) -> usize {
        self.mapped[..self.pages].iter().filter(|m| m.is_some()).count()
    }

    /// What a call on `[addr, addr + size)` must return before looking at
    /// the pages: `Err(errno)` for a range the header refuses, else the
    /// page indices.
    fn indices(&self, addr: usize, size: usize) -> Result<(usize, usize), c_int> {
        let end = addr.checked_add(size).ok_or(EOVERFLOW)?;
        if size == 0 || addr % self.page != 0 || end % self.page != 0 {
            return Err(EINVAL);
        }
        if addr < self.base || end > self.base + self.pages * self.page {
            return Err(ERANGE);
        }
        Ok(((addr - self.base) / self.page, (end - self.base) / self.page))
    }

    fn page_ptr(&self, i: usize) -> *mut u8 {
        (self.base + i * self.page) as *mut u8
    }

    /// Every mapped page holds what was written; `info` and `check` agree.
    fn verify(&self, vm: *mut vmspace_vm_t) {
        for i in 0..self.pages {
            if let (Some(b), true) = (self.mapped[i], self.prot[i] != VMSPACE_PROT_NONE) {
                let p = self.page_ptr(i);
                // SAFETY: the model says the page is mapped and readable
                // (the VM's map succeeded, no unmap since, and the last
                // protect left it readable).
                let (first, last) =
                    unsafe { (p.read_volatile(), p.add(self.page - 1).read_volatile()) };
                assert_eq!((first, last), (b, b), "page {i}'s contents");
            }
        }
        let mut info = vmspace_vm_info::default();
        // SAFETY: a live VM and a writable info.
        assert_eq!(unsafe { lib::vmspace_vm_info(vm, &mut info) }, 0);
        assert_eq!(info.mapped, self.count() * self.page, "info.mapped");
        // SAFETY: a live VM.
        assert_eq!(unsafe { lib::vmspace_vm_check(vm) }, 0);
    }
}

/// A pipe to probe access through: a byte copied in or out of a page the
/// process may not read or write is `EFAULT`, not a fault.
struct Probe([c_int; 2]);

impl Probe {
    fn new() -> Self {
        let mut fd = [0; 2];
        // SAFETY: a writable array of two descriptors.
        assert_eq!(unsafe { libc::pipe(fd.as_mut_ptr()) }, 0);
        Probe(fd)
    }

    /// Whether the byte at `p` can be read.
    fn readable(&self, p: *const u8) -> bool {
        let mut c = 0u8;
        // SAFETY: the kernel copies from `p` or fails with EFAULT; `c` is
        // writable.
        unsafe {
            if libc::write(self.0[1], p.cast(), 1) != 1 {
                assert_eq!(*libc::__errno_location(), libc::EFAULT, "probe read");
                return false;
            }
            assert_eq!(libc::read(self.0[0], (&mut c as *mut u8).cast(), 1), 1);
        }
        true
    }

    /// Whether `v`, the byte the page holds there, can be written at `p`.
    fn writable(&self, p: *mut u8, v: u8) -> bool {
        let mut c = 0u8;
        // SAFETY: the kernel copies into `p` or fails with EFAULT (then the
        // byte is drained into `c`); `v` is what `p` holds already.
        unsafe {
            assert_eq!(libc::write(self.0[1], (&v as *const u8).cast(), 1), 1);
            if libc::read(self.0[0], p.cast(), 1) == 1 {
                return true;
            }
            assert_eq!(*libc::__errno_location(), libc::EFAULT, "probe write");
            assert_eq!(libc::read(self.0[0], (&mut c as *mut u8).cast(), 1), 1);
        }
        false
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // SAFETY: our two descriptors, closed once.
        unsafe {
            libc::close(self.0[0]);
            libc::close(self.0[1]);
        }
    }
}

/// A protection for `vmspace_vm_protect`: mostly one of the three, now and
/// then write alone or a bit the header does not define.
fn pick_prot(inp: &mut Input) -> c_int {
    match inp.byte() % 8 {
        0 | 1 => VMSPACE_PROT_NONE,
        2 | 3 => VMSPACE_PROT_READ,
        4 | 5 => READ_WRITE,
        6 => VMSPACE_PROT_WRITE,
        _ => (4 << (inp.byte() % 28)) | c_int::from(inp.byte() % 4),
    }
}

/// An address for a call: mostly inside the VM on a page, now and then
/// off a page, below, above, or at the top of the address space.
fn pick_addr(inp: &mut Input, m: &Model) -> usize {
    let b = inp.byte();
    let page_at = |i: usize| m.base.wrapping_add(i.wrapping_mul(m.page));
    match b % 16 {
        0 => m.base.wrapping_sub(m.page * (1 + inp.byte() as usize % 4)),
        1 => page_at(inp.byte() as usize % (m.pages + 1)) + 1 + inp.byte() as usize % (m.page - 1),
        2 => usize::MAX - m.page * (inp.byte() as usize % 4) - (inp.byte() as usize % 2),
        3 => page_at(m.pages + inp.byte() as usize % 4),
        _ => page_at(inp.byte() as usize % m.pages),
    }
}

/// A size for a call: mostly whole pages, now and then zero, off a page
/// or huge.
fn pick_size(inp: &mut Input, m: &Model) -> usize {
    match inp.byte() % 16 {
        0 => 0,
        1 => (1 + inp.byte() as usize % 8) * m.page - 1 - inp.byte() as usize % 2,
        2 => usize::MAX - inp.byte() as usize * m.page,
        _ => (1 + inp.byte() as usize % 8) * m.page,
    }
}

/// The creation's bad arguments, each refused with nothing made.
fn bad_creates(inp: &mut Input, page: usize) {
    let mut vm: *mut vmspace_vm_t = ptr::NonNull::dangling().as_ptr();
    let (size, grain, flags, want) = match inp.byte() % 5 {
        0 => (0, 0, 0, EINVAL),
        1 => (page, page * 3, 0, EINVAL),
        2 => (page, page / 2, 0, EINVAL),
        3 => (page, 0, 1 << (inp.byte() % 31), EINVAL),
        _ => (usize::MAX - inp.byte() as usize, 0, 0, EOVERFLOW),
    };
    // SAFETY: `vm` is a writable out pointer.
    assert_eq!(unsafe { lib::vmspace_vm_create(size, grain, flags, &mut vm) }, want);
    assert!(vm.is_null(), "a failed create stores NULL");
}

/// One live allocation of the arena of pages: where, how much, and the
/// byte written at both ends.
#[derive(Clone, Copy)]
struct Live {
    addr: usize,
    size: usize,
    stamp: u8,
}

/// Every live allocation still holds its stamp; the VM maps exactly what
/// the arena imported; the arena (and its VM) check.
fn verify_arena(a: *mut vmspace_arena_t, live: &[Live]) {
    for l in live {
        let p = l.addr as *const u8;
        // SAFETY: a live allocation of an arena of pages is mapped memory
        // of `size` bytes (the feature under test; a fault here is a find).
        let (first, last) = unsafe { (p.read_volatile(), p.add(l.size - 1).read_volatile()) };
        assert_eq!((first, last), (l.stamp, l.stamp), "allocation {:#x}+{:#x}", l.addr, l.size);
    }
    let mut info = vmspace_vm_info::default();
    let mut sizes = vmspace_sizes::default();
    // SAFETY: a live arena and writable out pointers.
    unsafe {
        assert_eq!(lib::vmspace_arena_vm_info(a, &mut info), 0);
        assert_eq!(lib::vmspace_arena_sizes(a, &mut sizes), 0);
        assert_eq!(lib::vmspace_arena_check(a), 0);
    }
    assert_eq!(info.mapped, sizes.imported, "mapped is what was imported");
}

/// The arena of pages (see the crate docs).
fn arena_of_pages(inp: &mut Input, page: usize) {
    const ENOMEM: c_int = -12;
    const EBUSY: c_int = -16;
    const EMSGSIZE: c_int = -90;
    let quantum = match inp.byte() % 6 {
        k @ 0..=2 => page >> k,
        k => page << (k - 3),
    };
    let qcache_max = quantum * (inp.byte() as usize % 5);
    let vm_pages = 8 + inp.byte() as usize % 120;
    // SAFETY: a valid name.
    let a = unsafe { lib::vmspace_arena_create(c"pages".as_ptr(), 0, 0, quantum, qcache_max, 0) };
    assert!(!a.is_null());
    // SAFETY: a live arena.
    assert_eq!(unsafe { lib::vmspace_arena_set_vm(a, vm_pages * page, 0) }, 0);
    let mut info = vmspace_vm_info::default();
    // SAFETY: as above, and a writable info.
    assert_eq!(unsafe { lib::vmspace_arena_vm_info(a, &mut info) }, 0);
    let mut live: Vec<Live> = Vec::new();
    let mut unflushed = 0usize;
    let mut stamp = 0u8;
    let policies = [0, VMSPACE_INSTANTFIT, VMSPACE_BESTFIT, VMSPACE_FIRSTFIT, VMSPACE_NEXTFIT];
    while !inp.is_empty() {
        match inp.byte() % 8 {
            0..=3 => {
                let size = match inp.byte() % 4 {
                    0 => 1 + inp.byte() as usize,
                    _ => (1 + inp.byte() as usize % 8) * page - inp.byte() as usize % 2,
                };
                let flags = policies[inp.byte() as usize % policies.len()];
                let mut addr = 0usize;
                // SAFETY: a live arena, a writable out pointer.
                let got = unsafe { lib::vmspace_arena_alloc(a, size, flags, &mut addr) };
                if got == ENOMEM {
                    continue;
                }
                assert_eq!(got, 0, "alloc {size:#x}");
                assert!(addr >= info.base && addr + size <= info.base + info.size);
                assert_eq!(addr % quantum, 0);
                for l in &live {
                    assert!(addr + size <= l.addr || l.addr + l.size <= addr, "overlap");
                }
                stamp = stamp.wrapping_add(1).max(1);
                let p = addr as *mut u8;
                // SAFETY: just allocated from an arena of pages: mapped.
                unsafe {
                    p.write_volatile(stamp);
                    p.add(size - 1).write_volatile(stamp);
                }
                live.push(Live { addr, size, stamp });
            }
            4 | 5 if !live.is_empty() => {
                let l = live.swap_remove(inp.byte() as usize % live.len());
                let mut deferred = inp.byte() % 4 == 0;
                // SAFETY: a live arena; the allocation is not touched again.
                let mut got = unsafe {
                    if deferred {
                        lib::vmspace_arena_free_deferred(a, l.addr, l.size)
                    } else {
                        lib::vmspace_arena_free(a, l.addr, l.size)
                    }
                };
                // A quantum-cache object in a slab is not freed deferred
                // (the header): refused, it is freed the plain way.
                if deferred && got == ENOENT && l.size.div_ceil(quantum) * quantum <= qcache_max {
                    deferred = false;
                    // SAFETY: as above.
                    got = unsafe { lib::vmspace_arena_free(a, l.addr, l.size) };
                }
                assert_eq!(got, 0, "free {:#x}+{:#x}", l.addr, l.size);
                if deferred {
                    unflushed += l.size.div_ceil(quantum) * quantum;
                }
                if inp.byte() % 2 == 0 {
                    // A double free: refused, nothing changed.
                    // SAFETY: as above.
                    let again = unsafe { lib::vmspace_arena_free(a, l.addr, l.size) };
                    assert!(again == ENOENT || again == EMSGSIZE, "double free: {again}");
                }
            }
            6 => {
                let mut freed = 0usize;
                // SAFETY: a live arena, a writable out pointer.
                assert_eq!(unsafe { lib::vmspace_arena_flushed(a, &mut freed) }, 0);
                assert_eq!(freed, unflushed, "flushed");
                unflushed = 0;
            }
            _ => match inp.byte() % 3 {
                // SAFETY (all three): a live arena, writable out pointers.
                0 => assert!(unsafe { lib::vmspace_arena_reclaim(a) } >= 0),
                1 => {
                    let limit = inp.byte() as usize * page;
                    // SAFETY: as above.
                    assert_eq!(unsafe { lib::vmspace_arena_set_limit(a, limit) }, 0);
                }
                _ => {
                    // A new VM: refused while anything is imported (a
                    // live allocation, a slab, an unflushed range), else
                    // it replaces the old one.
                    let mut sizes = vmspace_sizes::default();
                    let pages = 8 + inp.byte() as usize % 120;
                    // SAFETY: as above.
                    let got = unsafe {
                        assert_eq!(lib::vmspace_arena_sizes(a, &mut sizes), 0);
                        lib::vmspace_arena_set_vm(a, pages * page, 0)
                    };
                    if sizes.imported != 0 {
                        assert_eq!(got, EBUSY, "set_vm with spans imported");
                    } else {
                        assert_eq!(got, 0, "set_vm with nothing imported");
                        assert!(live.is_empty() && unflushed == 0);
                        // SAFETY: as above.
                        assert_eq!(unsafe { lib::vmspace_arena_vm_info(a, &mut info) }, 0);
                        let grain = page.max(quantum);
                        assert_eq!(info.size, (pages * page).div_ceil(grain) * grain);
                    }
                }
            },
        }
        verify_arena(a, &live);
    }
    // SAFETY: a live arena, not used after (live allocations go with it).
    assert_eq!(unsafe { lib::vmspace_arena_destroy(a) }, 0);
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    // SAFETY: plain sysconf.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    if inp.byte() % 2 == 1 {
        return arena_of_pages(&mut inp, page);
    }
    let pages = 1 + inp.byte() as usize % ASK_PAGES;
    let grain = page << (inp.byte() % 6);
    let mut vm: *mut vmspace_vm_t = ptr::null_mut();
    // SAFETY: a writable out pointer.
    let made = unsafe { lib::vmspace_vm_create(pages * page, grain, 0, &mut vm) };
    assert_eq!(made, 0, "create {pages} pages, grain {grain:#x}");
    let mut info = vmspace_vm_info::default();
    // SAFETY: a live VM and a writable info.
    assert_eq!(unsafe { lib::vmspace_vm_info(vm, &mut info) }, 0);
    assert_eq!((info.page_size, info.grain, info.mapped), (page, grain, 0));
    assert_eq!(info.base % grain, 0);
    assert_eq!(info.size % grain, 0);
    assert!(info.size >= pages * page && info.size - pages * page < grain);
    assert!(info.reserved >= info.size);
    let all = info.size / page;
    assert!(all <= MAX_PAGES);
    let mut m = Model {
        base: info.base,
        page,
        pages: all,
        mapped: [None; MAX_PAGES],
        prot: [READ_WRITE; MAX_PAGES],
    };
    let probe = Probe::new();
    let mut stamp = 1u8;
    while !inp.is_empty() {
        let op = inp.byte() % 8;
        let addr = pick_addr(&mut inp, &m);
        let size = pick_size(&mut inp, &m);
        let want = m.indices(addr, size);
        match op {
            0..=2 => {
                // SAFETY: a live VM.
                let got = unsafe { lib::vmspace_vm_map(vm, addr, size) };
                let want = want.and_then(|(lo, hi)| {
                    if m.mapped[lo..hi].iter().any(Option::is_some) {
                        Err(EEXIST)
                    } else {
                        Ok((lo, hi))
                    }
                });
                match want {
                    Ok((lo, hi)) => {
                        assert_eq!(got, 0, "map {addr:#x}+{size:#x}");
                        stamp = stamp.wrapping_add(1).max(1);
                        for i in lo..hi {
                            let p = m.page_ptr(i);
                            // SAFETY: just mapped read-write, inside the VM.
                            unsafe {
                                assert_eq!(p.read_volatile(), 0, "page {i} not zero");
                                assert_eq!(p.add(page - 1).read_volatile(), 0);
                                p.write_volatile(stamp);
                                p.add(page - 1).write_volatile(stamp);
                            }
                            m.mapped[i] = Some(stamp);
                            m.prot[i] = READ_WRITE;
                        }
                    }
                    Err(e) => assert_eq!(got, e, "map {addr:#x}+{size:#x}"),
                }
            }
            3 | 4 => {
                // SAFETY: a live VM; the model's pages it unmaps are not
                // touched again until mapped.
                let got = unsafe { lib::vmspace_vm_unmap(vm, addr, size) };
                let want = want.and_then(|(lo, hi)| {
                    if m.mapped[lo..hi].iter().any(Option::is_none) {
                        Err(ENOENT)
                    } else {
                        Ok((lo, hi))
                    }
                });
                match want {
                    Ok((lo, hi)) => {
                        assert_eq!(got, 0, "unmap {addr:#x}+{size:#x}");
                        m.mapped[lo..hi].iter_mut().for_each(|p| *p = None);
                    }
                    Err(e) => assert_eq!(got, e, "unmap {addr:#x}+{size:#x}"),
                }
            }
            5 => {
                // SAFETY: a live VM.
                let got = unsafe { lib::vmspace_vm_mapped(vm, addr, size) };
                let want =
                    want.map(|(lo, hi)| c_int::from(m.mapped[lo..hi].iter().all(Option::is_some)));
                assert_eq!(got, want.unwrap_or_else(|e| e), "mapped {addr:#x}+{size:#x}");
            }
            6 => {
                // SAFETY: a live VM.
                let trimmed = unsafe { lib::vmspace_vm_trim(vm) };
                assert!(trimmed >= 0, "trim: {trimmed}");
                // SAFETY: as above.
                assert_eq!(unsafe { lib::vmspace_vm_trim(vm) }, 0, "a second trim");
            }
            _ if inp.byte() % 2 == 0 => {
                let prot = pick_prot(&mut inp);
                // SAFETY: a live VM; the model reads and writes only pages
                // whose protection allows it.
                let got = unsafe { lib::vmspace_vm_protect(vm, addr, size, prot) };
                let want = if matches!(prot, VMSPACE_PROT_NONE | VMSPACE_PROT_READ | READ_WRITE) {
                    want.and_then(|(lo, hi)| {
                        if m.mapped[lo..hi].iter().any(Option::is_none) {
                            Err(ENOENT)
                        } else {
                            Ok((lo, hi))
                        }
                    })
                } else {
                    Err(EINVAL)
                };
                match want {
                    Ok((lo, hi)) => {
                        assert_eq!(got, 0, "protect {addr:#x}+{size:#x} {prot:#x}");
                        m.prot[lo..hi].iter_mut().for_each(|p| *p = prot);
                        for i in [lo, hi - 1] {
                            let (p, b) = (m.page_ptr(i), m.mapped[i].unwrap_or(0));
                            let last = p.wrapping_add(page - 1);
                            assert_eq!(
                                probe.readable(p),
                                prot != VMSPACE_PROT_NONE,
                                "page {i} read"
                            );
                            assert_eq!(
                                probe.writable(last, b),
                                prot == READ_WRITE,
                                "page {i} write"
                            );
                        }
                    }
                    Err(e) => assert_eq!(got, e, "protect {addr:#x}+{size:#x} {prot:#x}"),
                }
            }
            _ => bad_creates(&mut inp, page),
        }
        m.verify(vm);
    }
    // SAFETY: a live VM, not used after.
    assert_eq!(unsafe { lib::vmspace_vm_destroy(vm) }, 0);
});
