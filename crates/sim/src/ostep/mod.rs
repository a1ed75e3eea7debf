//! `freespace ostep`: the OSTEP homework simulator `malloc.py`, flag for flag and byte for byte.
//!
//! Invariant: for flags that `malloc.py` accepts, [`run`] writes exactly the text the original
//! prints on standard output, including its random mode (the same MT19937 stream, drawn in the
//! same order), as it goes, so the output never has to fit in memory. Where the original dies
//! with a Python traceback, [`run`] stops with an [`OstepError`]: before writing anything when
//! the flags or the `-A` list are at fault, and otherwise where the original stops, after the
//! same lines. The placement engine is pluggable through [`Model`]: the textbook list
//! ([`TextbookList`]) or the core allocator's own policies.

mod core_model;
mod py_int;
mod textbook;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};

pub use core_model::CoreModel;
pub use py_int::{optparse_int, python_int};
pub use textbook::TextbookList;

use crate::mt19937::PyRandom;
use crate::quote::quoted;

/// Sizes and addresses inside the simulation. Flags are 64-bit, and 128 bits leave room for
/// any sum the simulation can form from them, so nothing overflows where Python's unbounded
/// integers would not.
pub type Units = i128;

/// A free-space engine that `freespace ostep` can drive.
pub trait Model {
    /// Allocates `size` units. Returns the chunk's address (or -1 when nothing fits) and the
    /// number of free-list elements looked at, or an error where `malloc.py` would die.
    fn malloc(&mut self, size: Units) -> Result<(Units, Units), OstepError>;
    /// Frees the chunk at `addr`: 0 on success, -1 if `addr` is not allocated.
    fn free(&mut self, addr: Units) -> i64;
    /// The free list, `(addr, size)` pairs in list order.
    fn free_list(&self) -> Vec<(Units, Units)>;
}

/// The `-p` search policies. `NEXT` is an addition: `malloc.py` knows only the other three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyName {
    /// `BEST`: the smallest chunk that fits; the whole list is searched.
    Best,
    /// `WORST`: the largest chunk; the whole list is searched.
    Worst,
    /// `FIRST`: the first chunk that fits.
    First,
    /// `NEXT`: the first chunk that fits, starting where the previous search stopped.
    Next,
}

impl PolicyName {
    /// Parses the flag's value; the original accepts only the upper-case names.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "BEST" => PolicyName::Best,
            "WORST" => PolicyName::Worst,
            "FIRST" => PolicyName::First,
            "NEXT" => PolicyName::Next,
            _ => return None,
        })
    }

    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::Best => "BEST",
            PolicyName::Worst => "WORST",
            PolicyName::First => "FIRST",
            PolicyName::Next => "NEXT",
        }
    }
}

/// The `-l` free-list orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOrderName {
    /// `ADDRSORT`: sorted by address after every free.
    AddrSort,
    /// `SIZESORT+`: sorted by size, smallest first, after every free.
    SizeSortUp,
    /// `SIZESORT-`: sorted by size, largest first, after every free.
    SizeSortDown,
    /// `INSERT-FRONT`: a freed chunk goes to the head (LIFO).
    InsertFront,
    /// `INSERT-BACK`: a freed chunk goes to the tail (FIFO).
    InsertBack,
}

impl ListOrderName {
    /// Parses the flag's value; the original accepts only these exact spellings.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ADDRSORT" => ListOrderName::AddrSort,
            "SIZESORT+" => ListOrderName::SizeSortUp,
            "SIZESORT-" => ListOrderName::SizeSortDown,
            "INSERT-FRONT" => ListOrderName::InsertFront,
            "INSERT-BACK" => ListOrderName::InsertBack,
            _ => return None,
        })
    }

    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ListOrderName::AddrSort => "ADDRSORT",
            ListOrderName::SizeSortUp => "SIZESORT+",
            ListOrderName::SizeSortDown => "SIZESORT-",
            ListOrderName::InsertFront => "INSERT-FRONT",
            ListOrderName::InsertBack => "INSERT-BACK",
        }
    }
}

/// Which model places the chunks (`--engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelKind {
    /// `malloc.py`'s own list, quirks included.
    #[default]
    Textbook,
    /// freespace-malloc's placement, list-order and coalescing code over a simulated range.
    Core,
}

/// The flags of `malloc.py`, with its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OstepOptions {
    /// `-s`: the random seed.
    pub seed: i64,
    /// `-S`: size of the heap.
    pub size: i64,
    /// `-b`: base address of the heap.
    pub base: i64,
    /// `-H`: size of the header.
    pub header: i64,
    /// `-a`: alignment of allocated units; -1 for none.
    pub align: i64,
    /// `-p`: the search policy.
    pub policy: PolicyName,
    /// `-l`: the free-list order.
    pub order: ListOrderName,
    /// `-C`: coalesce the free list.
    pub coalesce: bool,
    /// `-n`: number of random ops.
    pub num_ops: i64,
    /// `-r`: the largest random allocation.
    pub range: i64,
    /// `-P`: percent of random ops that allocate.
    pub percent_alloc: i64,
    /// `-A`: an explicit op list (`+10,-0,...`); empty for random ops.
    pub alloc_list: String,
    /// `-c`: print the answers instead of `?`.
    pub compute: bool,
    /// `--engine`: which allocator places the chunks.
    pub engine: ModelKind,
}

impl Default for OstepOptions {
    fn default() -> Self {
        OstepOptions {
            seed: 0,
            size: 100,
            base: 1000,
            header: 0,
            align: -1,
            policy: PolicyName::Best,
            order: ListOrderName::AddrSort,
            coalesce: false,
            num_ops: 10,
            range: 10,
            percent_alloc: 50,
            alloc_list: String::new(),
            compute: false,
            engine: ModelKind::Textbook,
        }
    }
}

/// Why a run stopped where `malloc.py` would have died with a traceback (or where the core
/// engine cannot model the requested heap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OstepError {
    /// `-a` is neither -1 nor positive (the original's `assert` fails).
    BadAlignment(i64),
    /// `-P` is zero or negative (the original's `assert percent > 0` fails).
    BadPercent(i64),
    /// An `-A` entry is neither `+SIZE` nor `-INDEX` with a valid integer.
    BadOp {
        /// Position of the entry in the list, from 0.
        position: usize,
        /// The entry as written.
        op: String,
    },
    /// An `-A` free names a pointer whose allocation failed (a `KeyError` in the original).
    FreeOfFailedAlloc {
        /// Position of the entry in the list, from 0.
        position: usize,
        /// The pointer index.
        index: i64,
    },
    /// An allocation handed out an address that is already allocated, which only a zero or
    /// negative size can cause (the original's `assert addr not in sizemap` fails).
    AddressTwice {
        /// The address.
        addr: Units,
        /// The size asked for.
        size: Units,
    },
    /// The core model (`--engine core`) refused the heap parameters.
    CoreModel(String),
}

impl fmt::Display for OstepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OstepError::BadAlignment(a) => {
                write!(f, "alignment must be -1 (none) or positive, got {a}")
            }
            OstepError::BadPercent(p) => {
                write!(f, "percent of allocations must be positive, got {p}")
            }
            OstepError::BadOp { position, op } => write!(
                f,
                "-A entry {position} ({}): expected +SIZE or -INDEX with an integer",
                quoted(op)
            ),
            OstepError::FreeOfFailedAlloc { position, index } => write!(
                f,
                "-A entry {position} (-{index}): ptr[{index}] was never allocated (its allocation failed)"
            ),
            OstepError::AddressTwice { addr, size } => write!(
                f,
                "Alloc({size}) would hand out address {addr} a second time (malloc.py stops on its assertion here)"
            ),
            OstepError::CoreModel(msg) => write!(f, "core engine: {msg}"),
        }
    }
}

impl std::error::Error for OstepError {}

/// Why [`run`] stopped early.
#[derive(Debug)]
pub enum RunError {
    /// Where `malloc.py` would die (see [`OstepError`]).
    Sim(OstepError),
    /// The output could not be written.
    Write(io::Error),
}

impl From<OstepError> for RunError {
    fn from(e: OstepError) -> Self {
        RunError::Sim(e)
    }
}

impl From<io::Error> for RunError {
    fn from(e: io::Error) -> Self {
        RunError::Write(e)
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Sim(e) => e.fmt(f),
            RunError::Write(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// One entry of an `-A` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListOp {
    /// `+SIZE`
    Alloc(i64),
    /// `-INDEX`
    Free(i64),
}

/// Parses a whole `-A` list, so that a bad entry stops the run before anything is written.
fn parse_list(list: &str) -> Result<Vec<ListOp>, OstepError> {
    list.split(',')
        .enumerate()
        .map(|(position, op)| {
            let bad = || OstepError::BadOp {
                position,
                op: op.to_string(),
            };
            match op.as_bytes().first() {
                // `int(op.split('+')[1])`: the text between the first and second '+'.
                Some(b'+') => python_int(op.split('+').nth(1).unwrap_or(""), 10)
                    .map(ListOp::Alloc)
                    .ok_or_else(bad),
                Some(b'-') => python_int(op.split('-').nth(1).unwrap_or(""), 10)
                    .map(ListOp::Free)
                    .ok_or_else(bad),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// Runs the simulation and writes what `malloc.py` prints to `out`, line by line; stops with
/// the error `malloc.py` would die of (see the module docs for how much is written first).
pub fn run(opts: &OstepOptions, out: &mut dyn Write) -> Result<(), RunError> {
    if opts.align != -1 && opts.align <= 0 {
        return Err(OstepError::BadAlignment(opts.align).into());
    }
    if opts.percent_alloc <= 0 {
        return Err(OstepError::BadPercent(opts.percent_alloc).into());
    }
    let list = if opts.alloc_list.is_empty() {
        None
    } else {
        Some(parse_list(&opts.alloc_list)?)
    };
    let mut model: Box<dyn Model> = match opts.engine {
        ModelKind::Textbook => Box::new(TextbookList::new(
            Units::from(opts.size),
            Units::from(opts.base),
            Units::from(opts.header),
            Units::from(opts.align),
            opts.policy,
            opts.order,
            opts.coalesce,
        )),
        ModelKind::Core => Box::new(CoreModel::new(opts).map_err(OstepError::CoreModel)?),
    };
    write_header(out, opts)?;
    match list {
        None => run_random(out, opts, model.as_mut()),
        Some(list) => run_list(out, opts, &list, model.as_mut()),
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

fn write_header(out: &mut dyn Write, o: &OstepOptions) -> io::Result<()> {
    // `print(name, value)` puts one space between them, even when the value is empty.
    writeln!(out, "seed {}", o.seed)?;
    writeln!(out, "size {}", o.size)?;
    writeln!(out, "baseAddr {}", o.base)?;
    writeln!(out, "headerSize {}", o.header)?;
    writeln!(out, "alignment {}", o.align)?;
    writeln!(out, "policy {}", o.policy.as_str())?;
    writeln!(out, "listOrder {}", o.order.as_str())?;
    writeln!(out, "coalesce {}", py_bool(o.coalesce))?;
    writeln!(out, "numOps {}", o.num_ops)?;
    writeln!(out, "range {}", o.range)?;
    writeln!(out, "percentAlloc {}", o.percent_alloc)?;
    writeln!(out, "allocList {}", o.alloc_list)?;
    writeln!(out, "compute {}", py_bool(o.compute))?;
    writeln!(out)
}

fn write_free_list(out: &mut dyn Write, model: &dyn Model) -> io::Result<()> {
    let list = model.free_list();
    write!(out, "Free List [ Size {} ]: ", list.len())?;
    for (addr, size) in list {
        write!(out, "[ addr:{addr} sz:{size} ]")?;
    }
    writeln!(out)
}

/// Python's `int(x)` for a finite double: truncation toward zero.
fn py_trunc(x: f64) -> i64 {
    x.trunc() as i64
}

fn run_random(
    out: &mut dyn Write,
    o: &OstepOptions,
    model: &mut dyn Model,
) -> Result<(), RunError> {
    let percent = o.percent_alloc as f64 / 100.0;
    let mut rng = PyRandom::from_python_seed(o.seed);
    // `p` maps pointer index to address; `live` is the original's list `L` of live indices.
    let mut p: HashMap<i64, Units> = HashMap::new();
    let mut live: Vec<i64> = Vec::new();
    let mut c: i64 = 0;
    let mut j: i64 = 0;
    while j < o.num_ops {
        let mut printed = false;
        if rng.random() < percent {
            let size = py_trunc(rng.random() * o.range as f64) + 1;
            let (ptr, count) = model.malloc(Units::from(size))?;
            if ptr != -1 {
                p.insert(c, ptr);
                live.push(c);
            }
            write!(out, "ptr[{c}] = Alloc({size})")?;
            if o.compute {
                // Random mode adds the header size to the address it prints (even to -1).
                writeln!(
                    out,
                    " returned {} (searched {count} elements)",
                    ptr + Units::from(o.header)
                )?;
            } else {
                out.write_all(b" returned ?\n")?;
            }
            c += 1;
            j += 1;
            printed = true;
        } else if !p.is_empty() {
            let d = py_trunc(rng.random() * live.len() as f64) as usize;
            let victim = live[d];
            let rc = model.free(p[&victim]);
            writeln!(out, "Free(ptr[{victim}])")?;
            if o.compute {
                writeln!(out, "returned {rc}")?;
            } else {
                out.write_all(b"returned ?\n")?;
            }
            p.remove(&victim);
            live.remove(d);
            printed = true;
            j += 1;
        }
        if printed {
            if o.compute {
                write_free_list(out, model)?;
            } else {
                // Random mode's placeholder has a trailing space; list mode's has none.
                out.write_all(b"List? \n")?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

fn run_list(
    out: &mut dyn Write,
    o: &OstepOptions,
    list: &[ListOp],
    model: &mut dyn Model,
) -> Result<(), RunError> {
    let mut p: HashMap<i64, Units> = HashMap::new();
    let mut c: i64 = 0;
    for (position, &op) in list.iter().enumerate() {
        match op {
            ListOp::Alloc(size) => {
                let (ptr, count) = model.malloc(Units::from(size))?;
                if ptr != -1 {
                    p.insert(c, ptr);
                }
                write!(out, "ptr[{c}] = Alloc({size})")?;
                if o.compute {
                    // List mode prints the chunk address without adding the header size.
                    writeln!(out, " returned {ptr} (searched {count} elements)")?;
                } else {
                    out.write_all(b" returned ?\n")?;
                }
                c += 1;
            }
            ListOp::Free(index) => {
                // The bound is the number of successful allocations, not the pointer count.
                if index >= p.len() as i64 {
                    out.write_all(b"Invalid Free: Skipping\n")?;
                    continue;
                }
                writeln!(out, "Free(ptr[{index}])")?;
                let addr = *p
                    .get(&index)
                    .ok_or(OstepError::FreeOfFailedAlloc { position, index })?;
                // The pointer stays in `p`: freeing it again frees whatever now lives there.
                let rc = model.free(addr);
                if o.compute {
                    writeln!(out, "returned {rc}")?;
                } else {
                    out.write_all(b"returned ?\n")?;
                }
            }
        }
        if o.compute {
            write_free_list(out, model)?;
        } else {
            out.write_all(b"List?\n")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (ostep_args): a token of control characters, clipped to 40 characters
    /// and then escaped, still made a message of hundreds of bytes.
    #[test]
    fn a_bad_entry_of_control_characters_makes_a_short_message() {
        let op = "\u{12}".repeat(1000);
        let msg = OstepError::BadOp { position: 4, op }.to_string();
        assert!(msg.len() < 150, "{} bytes: {msg}", msg.len());
        assert!(msg.starts_with("-A entry 4 (\"\\u{12}\\u{12}"), "{msg}");
        assert!(msg.contains("…\")"), "{msg}");
    }
}
