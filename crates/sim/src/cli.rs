//! The command line of `freespace`: parsing (clap) and running one subcommand, shared by the
//! binary, the tests and the fuzz targets.
//!
//! Invariants: every failure becomes one `freespace: ...` line on standard error with a
//! non-zero exit. `replay` and `gen` write their complete output or nothing. `ostep` streams,
//! as `malloc.py` prints: a bad flag or `-A` list leaves standard output empty, and where the
//! original dies part way, the lines it would have printed come first. A reader that closes
//! standard output early ends the run quietly, with status 0, as a pipe into `head` expects.

use std::ffi::OsString;
use std::io::{self, IsTerminal as _, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::gen::{generate_text, GenOptions, Shape};
use crate::ostep::{self, ListOrderName, OstepOptions, PolicyName, RunError};
use crate::quote::clip;
use crate::trace::read_trace_file;
use crate::{replay, svg};

/// Free-space management, made visible: replay allocation traces across policies, draw heap
/// maps, and reproduce the OSTEP malloc.py homework simulator.
#[derive(Debug, Parser)]
#[command(name = "freespace", version, infer_long_args = true)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once per run, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
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
pub struct ReplayArgs {
    /// The trace file (text or binary; see docs/trace-format.md)
    pub trace: std::path::PathBuf,
    /// Also write SVG pictures (heap maps, fragmentation and footprint, compactions) to DIR
    #[arg(long, value_name = "DIR")]
    pub svg: Option<std::path::PathBuf>,
    /// Replay only the allocators named (comma-separated); a name also selects the rows it
    /// begins, e.g. `first-fit`, `arena`, `best-fit lifo`, `segregated,buddy`
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub only: Vec<String>,
    /// When standard error is not a terminal, print a progress line every SECONDS on a long
    /// replay (0: never); on a terminal a progress bar is drawn instead
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub progress_every: f64,
}

/// Parameters of a generated trace; the same values always give the same trace.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// The shape: ramp, peak, plateau (Wilson and Johnstone's program behaviours), random, or
    /// fragment (small and large blocks interleaved, every other one freed, then large requests)
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(["ramp", "peak", "plateau", "random", "fragment"]))]
    pub shape: String,
    /// Number of allocations
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub allocs: usize,
    /// Smallest request in bytes
    #[arg(long, default_value_t = 16)]
    pub min: usize,
    /// Largest request in bytes
    #[arg(long, default_value_t = 512)]
    pub max: usize,
    /// The seed
    #[arg(short, long, default_value_t = 1)]
    pub seed: u64,
    /// Write the trace to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

/// Flags of malloc.py. Integers are read as optparse reads them (`010` is octal, `0x10` hex).
#[derive(Debug, Args)]
#[command(infer_long_args = true, args_override_self = true)]
pub struct OstepArgs {
    /// the random seed
    #[arg(
        short = 's',
        long = "seed",
        default_value = "0",
        allow_hyphen_values = true
    )]
    pub seed: String,
    /// size of the heap
    #[arg(
        short = 'S',
        long = "size",
        default_value = "100",
        allow_hyphen_values = true
    )]
    pub size: String,
    /// base address of heap
    #[arg(
        short = 'b',
        long = "baseAddr",
        default_value = "1000",
        allow_hyphen_values = true
    )]
    pub base: String,
    /// size of the header
    #[arg(
        short = 'H',
        long = "headerSize",
        default_value = "0",
        allow_hyphen_values = true
    )]
    pub header: String,
    /// align allocated units to size; -1->no align
    #[arg(
        short = 'a',
        long = "alignment",
        default_value = "-1",
        allow_hyphen_values = true
    )]
    pub align: String,
    /// list search (BEST, WORST, FIRST, NEXT)
    #[arg(
        short = 'p',
        long = "policy",
        default_value = "BEST",
        allow_hyphen_values = true
    )]
    pub policy: String,
    /// list order (ADDRSORT, SIZESORT+, SIZESORT-, INSERT-FRONT, INSERT-BACK)
    #[arg(
        short = 'l',
        long = "listOrder",
        default_value = "ADDRSORT",
        allow_hyphen_values = true
    )]
    pub order: String,
    /// coalesce the free list?
    #[arg(short = 'C', long = "coalesce")]
    pub coalesce: bool,
    /// number of random ops to generate
    #[arg(
        short = 'n',
        long = "numOps",
        default_value = "10",
        allow_hyphen_values = true
    )]
    pub num_ops: String,
    /// max alloc size
    #[arg(
        short = 'r',
        long = "range",
        default_value = "10",
        allow_hyphen_values = true
    )]
    pub range: String,
    /// percent of ops that are allocs
    #[arg(
        short = 'P',
        long = "percentAlloc",
        default_value = "50",
        allow_hyphen_values = true
    )]
    pub percent: String,
    /// instead of random, list of ops (+10,-0,etc)
    #[arg(
        short = 'A',
        long = "allocList",
        default_value = "",
        allow_hyphen_values = true
    )]
    pub alloc_list: String,
    /// compute answers for me
    #[arg(short = 'c', long = "compute")]
    pub compute: bool,
    /// who places the chunks: malloc.py's own list (textbook), or freespace-malloc's policies
    /// over a simulated heap (core)
    #[arg(long = "engine", default_value = "textbook", value_parser = ["textbook", "core"])]
    pub engine: String,
}

/// How a run that did not succeed ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The one line printed after `freespace: `, with exit status 1.
    Error(String),
    /// Standard output was closed by its reader: stop quietly, with exit status 0.
    BrokenPipe,
}

impl Failure {
    /// The failure for an error writing to standard output.
    pub fn write(e: &io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Error(format!("cannot write to standard output: {e}"))
        }
    }
}

fn int_flag(flag: &str, value: &str) -> Result<i64, Failure> {
    ostep::optparse_int(value).ok_or_else(|| {
        Failure::Error(format!(
            "option {flag}: invalid integer value: '{}'",
            clip(value)
        ))
    })
}

impl OstepArgs {
    /// The simulator's options, with each flag's value read as optparse reads it.
    pub fn options(&self) -> Result<OstepOptions, Failure> {
        let policy = PolicyName::parse(&self.policy).ok_or_else(|| {
            Failure::Error(format!(
                "option -p: unknown policy '{}' (BEST, WORST, FIRST, NEXT)",
                clip(&self.policy)
            ))
        })?;
        let order = ListOrderName::parse(&self.order).ok_or_else(|| {
            Failure::Error(format!(
                "option -l: unknown list order '{}' (ADDRSORT, SIZESORT+, SIZESORT-, \
                 INSERT-FRONT, INSERT-BACK)",
                clip(&self.order)
            ))
        })?;
        Ok(OstepOptions {
            seed: int_flag("-s", &self.seed)?,
            size: int_flag("-S", &self.size)?,
            base: int_flag("-b", &self.base)?,
            header: int_flag("-H", &self.header)?,
            align: int_flag("-a", &self.align)?,
            policy,
            order,
            coalesce: self.coalesce,
            num_ops: int_flag("-n", &self.num_ops)?,
            range: int_flag("-r", &self.range)?,
            percent_alloc: int_flag("-P", &self.percent)?,
            alloc_list: self.alloc_list.clone(),
            compute: self.compute,
            engine: if self.engine == "core" {
                ostep::ModelKind::Core
            } else {
                ostep::ModelKind::Textbook
            },
        })
    }
}

/// Replays fewer events than this (events times allocators) without a progress bar.
const BAR_FROM: u64 = 200_000;

/// Progress of a replay on standard error: indicatif's bar on a terminal, otherwise a plain
/// line every so often (for a batch job's log), and a last line saying how long it took once
/// any line was printed. A replay that ends before the first line is due prints nothing.
enum Progress {
    Bar(ProgressBar),
    Lines {
        total: u64,
        done: u64,
        start: Instant,
        next: Instant,
        every: Duration,
        printed: bool,
    },
    Off,
}

impl Progress {
    fn new(total: u64, every: Duration) -> Progress {
        if std::io::stderr().is_terminal() {
            if total < BAR_FROM {
                return Progress::Off;
            }
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("replaying {bar:40} {pos}/{len} events ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Progress::Bar(bar)
        } else if every.is_zero() {
            Progress::Off
        } else {
            let start = Instant::now();
            Progress::Lines {
                total,
                done: 0,
                start,
                next: start + every,
                every,
                printed: false,
            }
        }
    }

    fn inc(&mut self, n: u64) {
        match self {
            Progress::Bar(bar) => bar.inc(n),
            Progress::Lines {
                total,
                done,
                start,
                next,
                every,
                printed,
            } => {
                *done += n;
                let now = Instant::now();
                if now < *next {
                    return;
                }
                *next = now + *every;
                *printed = true;
                // A subject replayed again with more room counts its events twice.
                let done = (*done).min(*total);
                let elapsed = now - *start;
                let share = done as f64 / (*total).max(1) as f64;
                let left = if done == 0 {
                    String::new()
                } else {
                    let rest = elapsed.as_secs_f64() * (1.0 - share) / share;
                    format!(", about {} left", seconds(rest))
                };
                eprintln!(
                    "freespace: replaying: {done} of {total} events ({:.0}%), {} elapsed{left}",
                    share * 100.0,
                    seconds(elapsed.as_secs_f64())
                );
            }
            Progress::Off => {}
        }
    }

    fn finish(self) {
        match self {
            Progress::Bar(bar) => bar.finish_and_clear(),
            Progress::Lines {
                total,
                start,
                printed: true,
                ..
            } => eprintln!(
                "freespace: replayed {total} events in {}",
                seconds(start.elapsed().as_secs_f64())
            ),
            Progress::Lines { .. } | Progress::Off => {}
        }
    }
}

/// `12 s`, or `0.25 s` under ten seconds.
fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.0} s")
    }
}

/// Replays with progress on long traces, and writes the table only once every subject has
/// finished.
fn replay_command(args: &ReplayArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let specs = replay::select_specs(&args.only).map_err(|entry| {
        let names: Vec<String> = replay::all_specs().iter().map(|s| s.name()).collect();
        Failure::Error(format!(
            "--only: no allocator is called '{}' (allocators: {})",
            clip(&entry),
            names.join(", ")
        ))
    })?;
    if !(args.progress_every.is_finite() && args.progress_every >= 0.0) {
        return Err(Failure::Error(format!(
            "--progress-every: expected a number of seconds, got {}",
            args.progress_every
        )));
    }
    let trace = read_trace_file(&args.trace).map_err(|e| Failure::Error(e.to_string()))?;
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
    let total = (trace.events.len() * specs.len()) as u64;
    let mut progress = Progress::new(total, Duration::from_secs_f64(args.progress_every));
    let result = replay::replay_specs(&trace, &specs, replay::DEFAULT_ROOM, &mut |n| {
        progress.inc(n)
    });
    progress.finish();
    let result = result.map_err(|e| Failure::Error(e.to_string()))?;
    let mut table = replay::render_table(&result);
    if let Some(dir) = &args.svg {
        let written = svg::write_all(dir, &result).map_err(|e| Failure::Error(e.to_string()))?;
        for path in written {
            table.push_str(&format!("wrote {}\n", path.display()));
        }
    }
    out.write_all(table.as_bytes())
        .map_err(|e| Failure::write(&e))
}

fn gen_command(args: &GenArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let shape = Shape::parse(&args.shape)
        .ok_or_else(|| Failure::Error(format!("gen: unknown shape '{}'", clip(&args.shape))))?;
    let opts = GenOptions {
        shape,
        allocs: args.allocs,
        min_size: args.min,
        max_size: args.max,
        seed: args.seed,
    };
    let text = generate_text(&opts).map_err(|e| Failure::Error(format!("gen: {e}")))?;
    match &args.output {
        None => out
            .write_all(text.as_bytes())
            .map_err(|e| Failure::write(&e)),
        Some(path) => std::fs::write(path, text)
            .map_err(|e| Failure::Error(format!("{}: cannot write: {e}", path.display()))),
    }
}

/// Runs one parsed command line, writing its output to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), Failure> {
    match &cli.command {
        Command::Replay(args) => replay_command(args, out),
        Command::Gen(args) => gen_command(args, out),
        Command::Ostep(args) => {
            let opts = args.options()?;
            ostep::run(&opts, out).map_err(|e| match e {
                RunError::Sim(e) => Failure::Error(format!("ostep: {e}")),
                RunError::Write(e) => Failure::write(&e),
            })
        }
    }
}

/// Parses a command line (the program name first) as the binary does.
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)
}

/// The line `freespace: ` prints for a command line that clap refused: clap's paragraph up to
/// its first blank line, joined, with every value it shows from the command line escaped and
/// clipped ([`clip`]). The values are changed in the error's context, which clap renders
/// from, so quotes or line breaks inside a value cannot confuse it.
pub fn usage_error(mut err: clap::Error) -> String {
    use clap::error::ContextValue;
    let clipped: Vec<_> = err
        .context()
        .filter_map(|(kind, value)| match value {
            ContextValue::String(s) if clip(s) != *s => Some((kind, ContextValue::String(clip(s)))),
            ContextValue::Strings(list) if list.iter().any(|s| clip(s) != *s) => Some((
                kind,
                ContextValue::Strings(list.iter().map(|s| clip(s)).collect()),
            )),
            _ => None,
        })
        .collect();
    for (kind, value) in clipped {
        err.insert(kind, value);
    }
    let full = err.to_string();
    let first: Vec<&str> = full
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let first = first.join(" ");
    first.strip_prefix("error: ").unwrap_or(&first).to_string()
}

/// The whole command: parses `args` (the program name first), runs it with standard output
/// buffered, and turns every failure into one line on standard error and the exit status:
/// 0 for success (and for a reader that closed standard output), 1 for a failure, 2 for a
/// bad command line.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match parse(args) {
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
            eprintln!("freespace: {}", usage_error(err));
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let result = run(&cli, &mut out).and_then(|()| out.flush().map_err(|e| Failure::write(&e)));
    match result {
        Ok(()) | Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Error(msg)) => {
            // What was written before the failure (ostep's lines) goes out first.
            let _ = out.flush();
            eprintln!("freespace: {msg}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (ostep_args): a refused value with `'` in it broke the quote-by-quote
    /// clipping, and the whole value came back in the message.
    #[test]
    fn a_refused_value_full_of_quotes_is_clipped_too() {
        let value = "x'".repeat(2000);
        for args in [
            vec!["freespace", "ostep", value.as_str()],
            vec!["freespace", "ostep", "--engine", value.as_str()],
            vec!["freespace", "gen", value.as_str()],
            vec![
                "freespace",
                "replay",
                "t",
                "--progress-every",
                value.as_str(),
            ],
        ] {
            let err = parse(&args).unwrap_err();
            let line = usage_error(err);
            assert!(line.len() < 400, "{} bytes: {line}", line.len());
            assert!(line.contains("x'x'x'"), "{line}");
        }
    }
}
