//! The `freespace` command; everything but the entry point is [`freespace_sim::cli`].
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

use std::process::ExitCode;

fn main() -> ExitCode {
    freespace_sim::cli::main(std::env::args_os())
}
