//! [`DevObject`]: one object of the device (an arena or a VM) owned by one
//! handle, destroyed once: by [`destroy`](DevObject::destroy) or when
//! dropped in the process that made it.

use super::{call, ioctl, Device, KdevError};

/// An object's id in one open file of the device, and the handle's share
/// of that file.
///
/// # Invariants
///
/// `destroyed` is set only by the one `DESTROY` this handle sends; the
/// drop sends it unless it was sent or the handle is a `fork()` child's
/// copy (`pid` is not the process dropping it): the child shares the open
/// file, so its `DESTROY` would take the parent's object away.
#[derive(Debug)]
pub(super) struct DevObject {
    dev: Device,
    id: u32,
    destroyed: bool,
    pid: u32,
}

impl DevObject {
    /// Own object `id` of `dev` (made by a command that returned it).
    pub(super) fn new(dev: Device, id: u32) -> Self {
        DevObject { dev, id, destroyed: false, pid: std::process::id() }
    }

    /// The object's id in its file.
    pub(super) fn id(&self) -> u32 {
        self.id
    }

    /// The device file that owns it.
    pub(super) fn device(&self) -> &Device {
        &self.dev
    }

    /// The file's descriptor, for the object's commands.
    pub(super) fn fd(&self) -> libc::c_int {
        self.dev.fd()
    }

    /// Destroy the object now; what it still held (count and bytes). The
    /// handle's share of the file goes either way (the file closes with its
    /// last handle); should `DESTROY` fail, the object goes when the file
    /// closes.
    pub(super) fn destroy(mut self) -> Result<(u64, u64), KdevError> {
        self.destroyed = true;
        destroy(self.dev.fd(), self.id)
    }
}

impl Drop for DevObject {
    fn drop(&mut self) {
        // A forked child's copy leaves the object to the parent (an explicit
        // `destroy` still destroys it: the caller asked).
        if !self.destroyed && self.pid == std::process::id() {
            let _ = destroy(self.dev.fd(), self.id);
        }
    }
}

/// `DESTROY` of object `id`: what it still held (count and bytes).
fn destroy(fd: libc::c_int, id: u32) -> Result<(u64, u64), KdevError> {
    let mut a = vmspace_abi::args::DestroyArgs { id, ..vmspace_abi::args::DestroyArgs::ZERO };
    // SAFETY: `p` points to `a`, the command's argument.
    call("DESTROY", &mut a, |a| a.err, |p| unsafe { ioctl::destroy(fd, p) })?;
    Ok((a.leaked, a.leaked_bytes))
}
