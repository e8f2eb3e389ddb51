//! vmspace core (placeholder while the foundation lands).
#![no_std]
