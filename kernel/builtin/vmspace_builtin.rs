// SPDX-License-Identifier: MIT OR Apache-2.0

//! vmspace built into the kernel: the page backend on sparse vmalloc areas
//! and the KUnit suites that run the core on it.

const __LOG_PREFIX: &[u8] = b"vmspace\0";

pub mod sparse;
mod sys;

mod contract_suite;
mod suites;
