// SPDX-License-Identifier: MIT OR Apache-2.0

//! vmspace built into the kernel: the sparse vmalloc backend and its KUnit suites.

#[kernel::macros::kunit_tests(vmspace_smoke)]
mod tests {
    #[test]
    fn smoke_arith() {
        assert_eq!(2 + 2, 4);
    }
}
