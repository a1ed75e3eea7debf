//! freespace-capi (in progress).
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]
