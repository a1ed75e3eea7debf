#![doc = include_str!("../README.md")]
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

pub mod cli;
pub mod gen;
pub mod mt19937;
pub mod ostep;
pub mod quote;
pub mod replay;
pub mod svg;
pub mod trace;
