//! No restartable sequences on this target: [`registered`] says so, and
//! the others are never called.

use vmspace::qcache::{MagSlots, Magazine, Popped, Pushed};

pub(super) fn registered() -> Option<isize> {
    None
}

pub(super) unsafe fn pop(_: isize, _: MagSlots) -> Popped {
    Popped::Unpinned
}

pub(super) unsafe fn push(_: isize, _: MagSlots, _: usize) -> Pushed {
    Pushed::Unpinned
}

pub(super) unsafe fn spill(_: isize, _: MagSlots, _: &mut Magazine) -> bool {
    false
}

pub(super) unsafe fn install(_: isize, _: MagSlots, _: &Magazine) -> bool {
    false
}
