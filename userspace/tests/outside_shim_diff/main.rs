//! Written from the documented contracts by a reviewer outside the project,
//! to break them: the same `PageOps` calls on `SimBackend` and on
//! `MmapBackend` (both unmap strategies), compared call by call (Ok/Err,
//! and the exact error for argument checks both backends make) and by
//! memory contents (zero after map, kept across protect, zero after
//! unmap + map).
//!
//! Calls that break the trait's `# Safety` contract are only made on mmap
//! where they cannot touch anything outside our own reservations or change
//! what our model of the pages says; the trait documents that "the
//! simulated backend detects all of them, the system backends some", so
//! there the simulator must refuse and mmap's answer is tallied as a
//! documented difference. Deferred unmaps are also a documented
//! difference (the default unmaps and flushes at once; the sim refuses to
//! map unflushed pages).
//!
//! Every mmap call is in one `#[test]` per strategy, run one after the
//! other, so no other test of this binary maps memory meanwhile.
//!
//! `sequences`: random call sequences on both backends, compared call by
//! call; `single_calls`: argument checks, deferred unmaps, holes, injected
//! faults and protection, one call at a time.

mod sequences;
mod single_calls;
