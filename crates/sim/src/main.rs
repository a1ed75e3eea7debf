//! The `freespace` command: parses the command line, runs one subcommand, and turns every
//! failure into a single `freespace: ...` line on standard error with a non-zero exit.
//!
//! Invariant: standard output receives either a subcommand's complete output or nothing.
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use freespace_sim::gen::{generate_text, GenOptions, Shape};
use freespace_sim::ostep::{self, ListOrderName, OstepOptions, PolicyName};
use freespace_sim::trace::read_trace_file;
use freespace_sim::{replay, svg};
use indicatif::{ProgressBar, ProgressStyle};

/// Free-space management, made visible: replay allocation traces across policies, draw heap
/// maps, and reproduce the OSTEP malloc.py homework simulator.
#[derive(Debug, Parser)]
#[command(name = "freespace", version, infer_long_args = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// The OSTEP homework simulator (vm-freespace/malloc.py): same flags, same output.
    Ostep(OstepArgs),
    /// Replay a trace against every allocator and print a table (optionally draw pictures).
    Replay(ReplayArgs),
    /// Write a synthetic trace (ramp, peak, plateau, random, fragment) in the text format.
    Gen(GenArgs),
}

/// A trace file: text (`a ID SIZE [ALIGN]`, `f ID`, `r ID SIZE`, `#` comments), or a binary
/// trace recorded by libfreespace.so.
#[derive(Debug, Args)]
struct ReplayArgs {
    /// The trace file (text or binary; see docs/trace-format.md)
    trace: std::path::PathBuf,
    /// Also write SVG pictures (heap maps, fragmentation and footprint, compactions) to DIR
    #[arg(long, value_name = "DIR")]
    svg: Option<std::path::PathBuf>,
    /// Replay only the allocators named (comma-separated); a name also selects the rows it
    /// begins, e.g. `first-fit`, `arena`, `best-fit lifo`, `segregated,buddy`
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    only: Vec<String>,
}

/// Parameters of a generated trace; the same values always give the same trace.
#[derive(Debug, Args)]
struct GenArgs {
    /// The shape: ramp, peak, plateau (Wilson and Johnstone's program behaviours), random, or
    /// fragment (small and large blocks interleaved, every other one freed, then large requests)
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(["ramp", "peak", "plateau", "random", "fragment"]))]
    shape: String,
    /// Number of allocations
    #[arg(short = 'n', long, default_value_t = 1000)]
    allocs: usize,
    /// Smallest request in bytes
    #[arg(long, default_value_t = 16)]
    min: usize,
    /// Largest request in bytes
    #[arg(long, default_value_t = 512)]
    max: usize,
    /// The seed
    #[arg(short, long, default_value_t = 1)]
    seed: u64,
    /// Write the trace to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
}

/// Flags of malloc.py. Integers are read as optparse reads them (`010` is octal, `0x10` hex).
#[derive(Debug, Args)]
#[command(infer_long_args = true, args_override_self = true)]
struct OstepArgs {
    /// the random seed
    #[arg(
        short = 's',
        long = "seed",
        default_value = "0",
        allow_hyphen_values = true
    )]
    seed: String,
    /// size of the heap
    #[arg(
        short = 'S',
        long = "size",
        default_value = "100",
        allow_hyphen_values = true
    )]
    size: String,
    /// base address of heap
    #[arg(
        short = 'b',
        long = "baseAddr",
        default_value = "1000",
        allow_hyphen_values = true
    )]
    base: String,
    /// size of the header
    #[arg(
        short = 'H',
        long = "headerSize",
        default_value = "0",
        allow_hyphen_values = true
    )]
    header: String,
    /// align allocated units to size; -1->no align
    #[arg(
        short = 'a',
        long = "alignment",
        default_value = "-1",
        allow_hyphen_values = true
    )]
    align: String,
    /// list search (BEST, WORST, FIRST, NEXT)
    #[arg(
        short = 'p',
        long = "policy",
        default_value = "BEST",
        allow_hyphen_values = true
    )]
    policy: String,
    /// list order (ADDRSORT, SIZESORT+, SIZESORT-, INSERT-FRONT, INSERT-BACK)
    #[arg(
        short = 'l',
        long = "listOrder",
        default_value = "ADDRSORT",
        allow_hyphen_values = true
    )]
    order: String,
    /// coalesce the free list?
    #[arg(short = 'C', long = "coalesce")]
    coalesce: bool,
    /// number of random ops to generate
    #[arg(
        short = 'n',
        long = "numOps",
        default_value = "10",
        allow_hyphen_values = true
    )]
    num_ops: String,
    /// max alloc size
    #[arg(
        short = 'r',
        long = "range",
        default_value = "10",
        allow_hyphen_values = true
    )]
    range: String,
    /// percent of ops that are allocs
    #[arg(
        short = 'P',
        long = "percentAlloc",
        default_value = "50",
        allow_hyphen_values = true
    )]
    percent: String,
    /// instead of random, list of ops (+10,-0,etc)
    #[arg(
        short = 'A',
        long = "allocList",
        default_value = "",
        allow_hyphen_values = true
    )]
    alloc_list: String,
    /// compute answers for me
    #[arg(short = 'c', long = "compute")]
    compute: bool,
    /// who places the chunks: malloc.py's own list (textbook), or freespace-malloc's policies
    /// over a simulated heap (core)
    #[arg(long = "engine", default_value = "textbook", value_parser = ["textbook", "core"])]
    engine: String,
}

/// A failure: the one line printed after `freespace: `.
struct Failure(String);

fn int_flag(flag: &str, value: &str) -> Result<i64, Failure> {
    ostep::optparse_int(value)
        .ok_or_else(|| Failure(format!("option {flag}: invalid integer value: '{value}'")))
}

fn ostep_options(a: &OstepArgs) -> Result<OstepOptions, Failure> {
    let policy = PolicyName::parse(&a.policy).ok_or_else(|| {
        Failure(format!(
            "option -p: unknown policy '{}' (BEST, WORST, FIRST, NEXT)",
            a.policy
        ))
    })?;
    let order = ListOrderName::parse(&a.order).ok_or_else(|| {
        Failure(format!(
            "option -l: unknown list order '{}' (ADDRSORT, SIZESORT+, SIZESORT-, INSERT-FRONT, INSERT-BACK)",
            a.order
        ))
    })?;
    Ok(OstepOptions {
        seed: int_flag("-s", &a.seed)?,
        size: int_flag("-S", &a.size)?,
        base: int_flag("-b", &a.base)?,
        header: int_flag("-H", &a.header)?,
        align: int_flag("-a", &a.align)?,
        policy,
        order,
        coalesce: a.coalesce,
        num_ops: int_flag("-n", &a.num_ops)?,
        range: int_flag("-r", &a.range)?,
        percent_alloc: int_flag("-P", &a.percent)?,
        alloc_list: a.alloc_list.clone(),
        compute: a.compute,
        engine: if a.engine == "core" {
            ostep::Engine::Core
        } else {
            ostep::Engine::Textbook
        },
    })
}

/// Replays with a progress bar on long traces (hidden unless stderr is a terminal), and
/// returns the table only once every subject has finished.
fn replay_command(args: &ReplayArgs) -> Result<String, Failure> {
    let specs = replay::select_specs(&args.only).map_err(|entry| {
        let names: Vec<String> = replay::all_specs().iter().map(|s| s.name()).collect();
        Failure(format!(
            "--only: no allocator is called '{entry}' (allocators: {})",
            names.join(", ")
        ))
    })?;
    let trace = read_trace_file(&args.trace).map_err(|e| Failure(e.to_string()))?;
    if trace.foreign_frees > 0 {
        eprintln!(
            "freespace: {}: left out {} free(s) or realloc(s) of blocks allocated before recording began",
            trace.source, trace.foreign_frees
        );
    }
    if !trace.losses.is_empty() {
        eprintln!(
            "freespace: {}: incomplete trace, replaying what survives: {}",
            trace.source, trace.losses
        );
    }
    let subjects = specs.len();
    let total = (trace.events.len() * subjects) as u64;
    let bar = if total >= 200_000 && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("replaying {bar:40} {pos}/{len} events ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let result = replay::replay_specs(&trace, &specs, replay::DEFAULT_ROOM, &mut |n| bar.inc(n));
    bar.finish_and_clear();
    let result = result.map_err(|e| Failure(e.to_string()))?;
    let mut out = replay::render_table(&result);
    if let Some(dir) = &args.svg {
        let written = svg::write_all(dir, &result).map_err(|e| Failure(e.to_string()))?;
        for path in written {
            out.push_str(&format!("wrote {}\n", path.display()));
        }
    }
    Ok(out)
}

fn run(cli: Cli) -> Result<String, Failure> {
    match cli.command {
        Command::Replay(args) => replay_command(&args),
        Command::Gen(args) => {
            let shape = Shape::parse(&args.shape)
                .ok_or_else(|| Failure(format!("gen: unknown shape '{}'", args.shape)))?;
            let opts = GenOptions {
                shape,
                allocs: args.allocs,
                min_size: args.min,
                max_size: args.max,
                seed: args.seed,
            };
            let text = generate_text(&opts).map_err(|e| Failure(format!("gen: {e}")))?;
            match args.output {
                None => Ok(text),
                Some(path) => {
                    std::fs::write(&path, text)
                        .map_err(|e| Failure(format!("{}: cannot write: {e}", path.display())))?;
                    Ok(String::new())
                }
            }
        }
        Command::Ostep(args) => {
            let opts = ostep_options(&args)?;
            ostep::run(&opts).map_err(|e| Failure(format!("ostep: {e}")))
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = err.print();
                return if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // clap's message is a paragraph; its first lines up to the blank one say it all.
            let full = err.to_string();
            let first: Vec<&str> = full
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let first = first.join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            eprintln!("freespace: {first}");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(Failure(msg)) => {
            eprintln!("freespace: {msg}");
            ExitCode::from(1)
        }
    }
}
