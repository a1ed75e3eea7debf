//! freespace-sim: the `freespace` command's library.
//!
//! - [`ostep`] reproduces the OSTEP homework simulator `malloc.py`, byte for byte, and can run
//!   the same ops through the core allocator's policies instead.
//! - [`mt19937`] is CPython's random number generator, which the random mode needs.
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

pub mod gen;
pub mod mt19937;
pub mod ostep;
pub mod replay;
pub mod svg;
pub mod trace;
