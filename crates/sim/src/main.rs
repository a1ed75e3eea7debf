//! The `freespace` command.
fn main() {}
