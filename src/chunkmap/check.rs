//! The chunk map's invariant walker.

use crate::atomic::Ordering;
use crate::error::CommonError;

use vmspace_shim::PageOps;

use super::state::{ChunkState, LEAF_ABSENT, LEAF_PRESENT, UNMAPPED};
use super::{ChunkMap, ChunkMapError};

impl<P: PageOps> ChunkMap<P> {
    /// Verify every invariant the map can see: directory and chunk bytes
    /// valid, no claim outstanding, the committed-chunk and present-leaf
    /// counts right, nothing recorded past the last chunk. Call it while no
    /// other thread is changing the map (a claim in progress is reported).
    pub fn check(&self) -> Result<(), ChunkMapError> {
        let bad = |what| ChunkMapError::Common(CommonError::Corrupt(what));
        let per_leaf = 1usize << self.layout.leaf_shift;
        let (mut present, mut committed) = (0, 0);
        for l in 0..self.layout.leaves {
            match self.dir(l).load(Ordering::Acquire) {
                LEAF_ABSENT => continue,
                LEAF_PRESENT => present += 1,
                _ => return Err(bad("a leaf page is claimed (operation in progress?)")),
            }
            let lo = l * per_leaf;
            for c in lo..lo + per_leaf {
                // SAFETY: the leaf is present and stays mapped while `&self`
                // is borrowed; `c` is inside the leaf page.
                let b = unsafe { self.entry(c) }.load(Ordering::Acquire);
                if c >= self.layout.chunks {
                    if b != UNMAPPED {
                        return Err(bad("a state recorded past the last chunk"));
                    }
                    continue;
                }
                match ChunkState::from_byte(b) {
                    None => return Err(bad("a chunk byte is claimed or invalid")),
                    Some(s) => committed += usize::from(s.is_committed()),
                }
            }
        }
        if present != self.leaves_present() {
            return Err(bad("present leaf count is wrong"));
        }
        if committed != self.committed_chunks() {
            return Err(bad("committed chunk count is wrong"));
        }
        Ok(())
    }
}
