//! The client of `/dev/vmspace`: the kernel build's arenas and VMs, driven
//! from user space through the device's ioctls (`nix`'s ioctl macros, with
//! the numbers and layouts of `vmspace_abi`, the crate the kernel side
//! compiles from too).
//!
//! [`DevArena`] and [`DevVm`] implement the workload's
//! [`ArenaTarget`](vmspace_workload::ArenaTarget) and
//! [`VmTarget`](vmspace_workload::VmTarget), the interfaces the property
//! tests drive the in-process [`Arena`](vmspace::arena::Arena) and
//! [`Vm`](vmspace::vm::Vm) through, so the same model tests run against the
//! kernel: set `VMSPACE_DEVICE` to the device's path ([`Device::from_env`]).
//! Errors come back variant for variant ([`KdevError::arena`],
//! [`KdevError::vm`]): every variant a command can return.
//! `ArenaError::Stranded`, which only a source returns (to the arena
//! importing from it), has no code, and would come back as an
//! `InvalidArgument` naming the device code.
//!
//! Each [`Device`] is one open file, which owns what it makes; dropping a
//! [`DevArena`] or [`DevVm`] destroys it in the kernel, and closing the
//! file (dropping the last clone of the `Device`) destroys whatever is left.
//!
//! ```no_run
//! use vmspace::arena::Policy;
//! use vmspace_shim::{Addr, Size};
//! use vmspace_user::kdev::{ArenaConfig, Device};
//! use vmspace_workload::ArenaTarget;
//!
//! let dev = Device::open("/dev/vmspace")?;
//! let mut arena = dev.arena(&ArenaConfig::new(Size(4096)))?;
//! arena.add(Addr(0x1000_0000), Size(1 << 20)).unwrap();
//! let a = arena.alloc(Size(8192), Policy::BestFit).unwrap();
//! arena.free(a, Size(8192)).unwrap();
//! arena.check().unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod arena;
mod error;
pub mod fuzz;
mod ioctl;
mod list;
mod object;
mod vm;

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use nix::errno::Errno;
use vmspace_abi::args::VersionArgs;
use vmspace_abi::ABI_VERSION;

pub use arena::{ArenaConfig, DevArena, DevHandle};
pub use error::{decode_arena, decode_vm, describe, KdevError};
pub use vm::DevVm;

/// The environment variable naming the device for the tests.
pub const DEVICE_ENV: &str = "VMSPACE_DEVICE";

/// One open file of the device.
#[derive(Debug, Clone)]
pub struct Device {
    file: Arc<File>,
    info: VersionArgs,
}

/// Why the device could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Opening the path failed.
    Io(std::io::Error),
    /// `VERSION` failed: not a vmspace device.
    Version(Errno),
    /// The device speaks another ABI version.
    Abi(u32),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(e) => write!(f, "cannot open the device: {e}"),
            OpenError::Version(e) => {
                write!(f, "VERSION failed ({}): not a vmspace device?", e.desc())
            }
            OpenError::Abi(v) => {
                write!(f, "the device speaks ABI version {v}, this client {ABI_VERSION}")
            }
        }
    }
}

impl std::error::Error for OpenError {}

impl Device {
    /// Open the device at `path` (read-write) and check its ABI version.
    pub fn open(path: impl AsRef<Path>) -> Result<Device, OpenError> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(OpenError::Io)?;
        let mut info = VersionArgs::ZERO;
        // SAFETY: `info` is a live `VersionArgs`, the command's argument.
        unsafe { ioctl::version(file.as_raw_fd(), &mut info) }.map_err(OpenError::Version)?;
        if info.abi_version != ABI_VERSION {
            return Err(OpenError::Abi(info.abi_version));
        }
        Ok(Device { file: Arc::new(file), info })
    }

    /// The device named by `VMSPACE_DEVICE`, freshly opened; `None` when the
    /// variable is unset or empty.
    pub fn from_env() -> Option<Result<Device, OpenError>> {
        match std::env::var_os(DEVICE_ENV) {
            Some(p) if !p.is_empty() => Some(Device::open(p)),
            _ => None,
        }
    }

    /// What the device said about itself (`VERSION`).
    pub fn info(&self) -> &VersionArgs {
        &self.info
    }

    /// The kernel's page size.
    pub fn page_size(&self) -> usize {
        self.info.page_size as usize
    }

    /// The name of the VM backend.
    pub fn backend(&self) -> String {
        let b = &self.info.backend;
        let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..n]).into_owned()
    }

    /// Whether the device's VMs can be protected.
    pub fn can_protect(&self) -> bool {
        self.info.features & vmspace_abi::args::FEATURE_PROTECT != 0
    }

    /// The file descriptor.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// A new arena in the kernel.
    pub fn arena(&self, config: &ArenaConfig) -> Result<DevArena, KdevError> {
        DevArena::create(self.clone(), config)
    }

    /// A new VM in the kernel of `size` bytes with base and limit multiples
    /// of `grain`.
    pub fn vm(&self, size: usize, grain: usize) -> Result<DevVm, KdevError> {
        DevVm::reserve(self.clone(), size, grain)
    }
}

/// For tests: a fresh open file of the device named by `VMSPACE_DEVICE`,
/// or `None` when it is unset, after saying on standard error (once per
/// process) that the device tests are skipped. A device that is named but
/// cannot be opened is a failure: this panics, naming the cause.
pub fn device_for_tests() -> Option<Device> {
    static SAID: std::sync::Once = std::sync::Once::new();
    match Device::from_env() {
        None => {
            SAID.call_once(|| {
                eprintln!(
                    "device tests skipped: {DEVICE_ENV} is not set (make kernel-proptest sets it)"
                )
            });
            None
        }
        Some(Ok(dev)) => Some(dev),
        Some(Err(e)) => panic!("{DEVICE_ENV}: {e}"),
    }
}

/// Where the repository is: `VMSPACE_SRC` when set (the UML guest of `make
/// kernel-proptest` sees it at another path than the build did), else the
/// directory this crate was built in, one up.
pub fn source_root() -> std::path::PathBuf {
    match std::env::var_os("VMSPACE_SRC") {
        Some(p) if !p.is_empty() => p.into(),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    }
}

/// Run command `cmd` (named `name`) with argument `args`: its error record
/// comes back in the error.
fn call<T: Copy>(
    name: &'static str,
    args: &mut T,
    err: impl Fn(&T) -> vmspace_abi::error::WireError,
    cmd: impl FnOnce(*mut T) -> nix::Result<libc::c_int>,
) -> Result<(), KdevError> {
    match cmd(args) {
        Ok(_) => Ok(()),
        Err(errno) => {
            let record = err(args);
            let record = record.is_error().then(|| Box::new(record));
            Err(KdevError { command: name, errno, record })
        }
    }
}
