//! Outside review (today): the chunk map over the real mmap backend, when
//! the unmap of an empty leaf page in `trim` fails having decommitted it
//! (allowed by PageOps: "decommitted as the call asked"). The leaf stays
//! recorded present, so the lock-free `is_mapped` reads it: it must not
//! crash. (As written, the failure unmapped the page and `is_mapped` took
//! SIGSEGV; PageOps now says a failed unmap leaves its pages mapped, their
//! contents perhaps gone, and the failure here follows it.) Run in a child
//! process so a crash is a test failure.

use std::sync::atomic::{AtomicBool, Ordering};

use vmspace::chunkmap::{ChunkMap, ChunkMapConfig};
use vmspace_shim::{Addr, Op, PageOps, Protection, Range, ShimError, Size};
use vmspace_user::MmapBackend;

/// Forwards to mmap; while `armed`, an unmap outside `space_end` (a table
/// page) is carried out and then reported failed.
struct FailAfter {
    inner: MmapBackend,
    armed: AtomicBool,
    space_end: std::sync::atomic::AtomicUsize,
}

// SAFETY: every call is forwarded unchanged; an armed unmap reports an
// error after doing what was asked (PageOps allows a failed unmap to have
// decommitted its range).
unsafe impl PageOps for FailAfter {
    fn page_size(&self) -> Size {
        self.inner.page_size()
    }
    fn name(&self) -> &'static str {
        "fail-after"
    }
    fn reserve(&self, size: Size, align: Size) -> Result<Range, ShimError> {
        self.inner.reserve(size, align)
    }
    unsafe fn release(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: forwarded.
        unsafe { self.inner.release(range) }
    }
    unsafe fn map(&self, range: Range) -> Result<(), ShimError> {
        // SAFETY: forwarded.
        unsafe { self.inner.map(range) }
    }
    unsafe fn unmap(&self, range: Range) -> Result<(), ShimError> {
        // (The maintainers' adaptation to PageOps' contract as made exact
        // after this review: a failed unmap leaves its pages mapped, their
        // contents perhaps gone. So the armed failure decommits the
        // contents, as the mmap backend's `madvise` does before an
        // `mprotect` that fails, instead of unmapping the page.)
        if self.armed.load(Ordering::SeqCst)
            && range.base().0 >= self.space_end.load(Ordering::SeqCst)
        {
            // SAFETY: the caller's range, mapped and unused until mapped
            // again (unmap's contract); MADV_DONTNEED only drops contents.
            let rc = unsafe {
                libc::madvise(range.base().as_ptr(), range.size().0, libc::MADV_DONTNEED)
            };
            assert_eq!(rc, 0);
            return Err(ShimError::Injected { op: Op::Unmap });
        }
        // SAFETY: forwarded.
        unsafe { self.inner.unmap(range) }
    }
    unsafe fn protect(&self, range: Range, prot: Protection) -> Result<(), ShimError> {
        // SAFETY: forwarded.
        unsafe { self.inner.protect(range, prot) }
    }
}

fn scenario() {
    let ops = FailAfter {
        inner: MmapBackend::new(),
        armed: AtomicBool::new(false),
        space_end: Default::default(),
    };
    let chunk = 64 << 10;
    let mut m = ChunkMap::new(&ops, ChunkMapConfig::new(Size(1 << 26), Size(chunk))).unwrap();
    ops.space_end.store(m.space().limit().0, Ordering::SeqCst);
    let r = Range::from_size(Addr(m.space().base().0 + 5 * chunk), Size(chunk)).unwrap();
    m.ensure_mapped(r).unwrap();
    m.unmap(r).unwrap();
    ops.armed.store(true, Ordering::SeqCst);
    assert!(m.trim().is_err());
    ops.armed.store(false, Ordering::SeqCst);
    // The lock-free lookup of a chunk in that leaf.
    assert!(!m.is_mapped(r.base()));
    m.check().unwrap();
}

#[test]
fn is_mapped_after_a_failed_trim_does_not_crash() {
    if std::env::var_os("OUTSIDE_TODAY_SEGV_CHILD").is_some() {
        scenario();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "is_mapped_after_a_failed_trim_does_not_crash", "--nocapture"])
        .env("OUTSIDE_TODAY_SEGV_CHILD", "1")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success(),
        "child: {:?} (signal {:?}); stderr: {}",
        out.status,
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr)
    );
}
