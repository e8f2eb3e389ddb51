//! A caller's own wait loop over `CpuCaches::alloc_retrying` (as the C API
//! waits at the root of a tree of arenas): the first try's result and a
//! retry, given to `wait_loop`.

use vmspace::arena::{ArenaError, Source, Store};
use vmspace::qcache::CpuPin;
use vmspace::sync::{CpuCaches, RawLock, Waiter};
use vmspace::{Addr, Size};

/// Allocate `size` through `cpu`, `wait_loop` retrying as it sees fit;
/// `None` for a size the caches do not serve (the loop is not called).
pub fn retrying<L: RawLock, W: Waiter, S: Store, I: Source, P: CpuPin>(
    cpu: &CpuCaches<'_, L, W, S, I, P>,
    size: Size,
    wait_loop: impl FnOnce(
        Result<Addr, ArenaError>,
        &mut dyn FnMut() -> Result<Addr, ArenaError>,
    ) -> Result<Addr, ArenaError>,
) -> Option<Result<Addr, ArenaError>> {
    let mut r = cpu.alloc_retrying(size)?;
    Some(wait_loop(r.first(), &mut || r.again()))
}
