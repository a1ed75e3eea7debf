//! freespace-sim: the library behind the `freespace` command.
//!
//! The command makes free-space management visible. It has three subcommands:
//!
//! - `freespace ostep` ([`ostep`]) is the OSTEP homework simulator `malloc.py`, flag for flag
//!   and byte for byte, random mode included: [`mt19937`] is CPython's generator, so the same
//!   seed draws the same operations. `--engine core` runs the same operations through
//!   freespace-malloc's own policies (`SimHeap`) and prints them in the same format, so a
//!   student can see where a real allocator and the textbook model part ways.
//! - `freespace gen` ([`gen`]) writes seeded synthetic traces: ramp, peak, plateau, random,
//!   and the fragmenting pattern of the coalesce-versus-compact example.
//! - `freespace replay` ([`replay`]) runs one trace ([`trace`]) against every placement policy
//!   and list order of the core, the buddy heap, and the handle arena with each compactor,
//!   prints a table, and with `--svg` draws the pictures ([`svg`]).
//!
//! # Example
//! ```
//! use freespace_sim::gen::{generate_text, GenOptions, Shape};
//! use freespace_sim::replay::{render_table, replay};
//! use freespace_sim::trace::read_trace;
//!
//! let text = generate_text(&GenOptions { shape: Shape::Fragment, allocs: 200, ..GenOptions::default() }).unwrap();
//! let trace = read_trace("fragment.trace", text.as_bytes()).unwrap();
//! let result = replay(&trace, &mut |_| {}).unwrap();
//! let sliding = result.results.iter().find(|r| r.name == "arena sliding").unwrap();
//! let first_fit = result.results.iter().find(|r| r.name == "first-fit addr").unwrap();
//! // Compaction packs the survivors; coalescing can only merge neighbours of the holes.
//! assert!(sliding.final_footprint < first_fit.final_footprint);
//! println!("{}", render_table(&result));
//! ```
//!
//! [`cli`] parses the command line and runs a subcommand; the binary is a call to
//! [`cli::main`]. The guide is `docs/sim.md`; the text trace format is
//! `docs/trace-format.md`.
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

pub mod cli;
pub mod gen;
pub mod mt19937;
pub mod ostep;
pub mod quote;
pub mod replay;
pub mod svg;
pub mod trace;
