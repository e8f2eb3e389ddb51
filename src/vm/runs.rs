//! Iteration over the runs of mapped pages of a VM.

use vmspace_shim::{Addr, PageOps, Range, Size};

use super::Vm;

/// The maximal runs of mapped pages of a [`Vm`], in address order.
pub struct MappedRuns<'a, P: PageOps> {
    vm: &'a Vm<P>,
    next: usize,
}

impl<'a, P: PageOps> MappedRuns<'a, P> {
    pub(super) fn new(vm: &'a Vm<P>) -> Self {
        MappedRuns { vm, next: 0 }
    }

    /// The runs from client page `page` on (a run that holds it starts
    /// there).
    pub(super) fn from_page(vm: &'a Vm<P>, page: usize) -> Self {
        MappedRuns { vm, next: page }
    }
}

impl<P: PageOps> Iterator for MappedRuns<'_, P> {
    type Item = Range;

    fn next(&mut self) -> Option<Range> {
        let pages = self.vm.client_pages();
        let lo = self.vm.table().find_mapped(self.next, pages)?;
        let hi = self.vm.table().find_unmapped(lo, pages).unwrap_or(pages);
        self.next = hi;
        let page = self.vm.page_size().0;
        let base = Addr(self.vm.base().0 + lo * page);
        Range::from_size(base, Size((hi - lo) * page)).ok()
    }
}
