//! Reserve a large range of address space, commit pieces of it on demand,
//! use them, give them back: the VM layer on the mmap backend.
//!
//! `cargo run --example reserve_and_map`

use vmspace::vm::Vm;
use vmspace_shim::{Addr, Range, Size};
use vmspace_user::{procfs, MmapBackend};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 64 GiB of address space, aligned to 2 MiB: nothing is committed yet.
    let mut vm = Vm::reserve(MmapBackend::new(), Size(64 << 30), Size(2 << 20))?;
    println!("reserved [{}, {}) = {}", vm.base(), vm.limit(), vm.reserved());

    // Commit 1 MiB in the middle, write to it.
    let piece = Range::from_size(Addr(vm.base().0 + (32 << 30)), Size(1 << 20))?;
    vm.map(piece)?;
    // SAFETY: the VM just mapped `piece` read-write and nothing else uses it.
    unsafe { std::ptr::write_bytes(piece.base().as_ptr::<u8>(), 0xA5, piece.size().0) };
    println!(
        "mapped {} at {}: resident {}",
        piece.size(),
        piece.base(),
        procfs::resident_in(vm.reservation())?
    );

    // Mapping it again is an error that changes nothing.
    assert!(vm.map(piece).is_err());

    // Decommit half of it: the memory goes back; mapped again, it reads zero.
    let half = Range::from_size(piece.base(), Size(512 << 10))?;
    vm.unmap(half)?;
    vm.map(half)?;
    // SAFETY: `half` is mapped read-write.
    assert_eq!(unsafe { half.base().as_ptr::<u8>().read() }, 0);
    println!("after unmap and map of {}: mapped {}", half.size(), vm.mapped());

    vm.unmap(piece)?;
    vm.check()?;
    vm.release().map_err(|(_, e)| e)?;
    println!("released");
    Ok(())
}
