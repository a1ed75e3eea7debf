//! `libfreespace.so`: the C allocation API of [`freespace_capi`] as a shared library.
//!
//! Every C entry point is a `#[no_mangle]` function of freespace-capi; linking that crate into
//! this cdylib exports them. See freespace-capi's README for the API and docs/capi.md for
//! `LD_PRELOAD` use.
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

pub use freespace_capi::*;
