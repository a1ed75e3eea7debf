//! `freespace ostep`'s command line, parsed as the binary parses it (`cli::Cli`, clap), with
//! flags, attached and long forms, bad values and an `-A` op list that the fuzzer builds, then
//! run into a writer that takes at most 1 MiB. It never panics, every refusal is one short
//! line, and the same arguments print the same output twice.
#![no_main]

use std::io::{self, Write};

use arbitrary::{Arbitrary, Unstructured};
use freespace_sim::cli::{self, Cli, Command, Failure};
use libfuzzer_sys::fuzz_target;

/// Runs with more operations than these are skipped: the work is linear in them.
const MAX_OPS: i64 = 2000;
const MAX_LIST: usize = 2000;
/// The most output one run may write before the writer refuses.
const MAX_OUTPUT: usize = 1 << 20;

const FLAGS: [(&str, &str); 14] = [
    ("-s", "--seed"),
    ("-S", "--size"),
    ("-b", "--baseAddr"),
    ("-H", "--headerSize"),
    ("-a", "--alignment"),
    ("-p", "--policy"),
    ("-l", "--listOrder"),
    ("-C", "--coalesce"),
    ("-n", "--numOps"),
    ("-r", "--range"),
    ("-P", "--percentAlloc"),
    ("-A", "--allocList"),
    ("-c", "--compute"),
    ("--engine", "--engine"),
];

#[derive(Debug, Arbitrary)]
enum Value {
    Int(i16),
    Text(String),
    Policy(u8),
    Order(u8),
    Engine(bool),
    Ops(Vec<OpEntry>),
}

#[derive(Debug, Arbitrary)]
enum OpEntry {
    Alloc(i8),
    Free(i8),
    Text(String),
}

#[derive(Debug, Arbitrary)]
enum Arg {
    /// `-x VALUE` or `--long VALUE`
    Separate { flag: u8, long: bool, value: Value },
    /// `-xVALUE` or `--long=VALUE`
    Attached { flag: u8, long: bool, value: Value },
    /// A switch alone (`-c`, `-C`) or any flag without its value.
    Bare { flag: u8, long: bool },
    /// Anything at all.
    Raw(String),
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Text(t) => t.clone(),
        Value::Policy(p) => ["BEST", "WORST", "FIRST", "NEXT", "best"][usize::from(p % 5)].into(),
        Value::Order(o) => [
            "ADDRSORT",
            "SIZESORT+",
            "SIZESORT-",
            "INSERT-FRONT",
            "INSERT-BACK",
        ][usize::from(o % 5)]
        .into(),
        Value::Engine(core) => if *core { "core" } else { "textbook" }.into(),
        Value::Ops(ops) => ops
            .iter()
            .map(|op| match op {
                OpEntry::Alloc(n) => format!("+{n}"),
                OpEntry::Free(n) => format!("-{n}"),
                OpEntry::Text(t) => t.clone(),
            })
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn args_of(input: &[Arg]) -> Vec<String> {
    let mut out = vec!["freespace".to_string(), "ostep".to_string()];
    for arg in input {
        match arg {
            Arg::Separate { flag, long, value } => {
                let (short, long_name) = FLAGS[usize::from(*flag) % FLAGS.len()];
                out.push(if *long { long_name } else { short }.to_string());
                out.push(value_text(value));
            }
            Arg::Attached { flag, long, value } => {
                let (short, long_name) = FLAGS[usize::from(*flag) % FLAGS.len()];
                out.push(if *long {
                    format!("{long_name}={}", value_text(value))
                } else {
                    format!("{short}{}", value_text(value))
                });
            }
            Arg::Bare { flag, long } => {
                let (short, long_name) = FLAGS[usize::from(*flag) % FLAGS.len()];
                out.push(if *long { long_name } else { short }.to_string());
            }
            Arg::Raw(text) => out.push(text.clone()),
        }
    }
    out
}

/// A writer that keeps at most `MAX_OUTPUT` bytes and then refuses, as a full disk would.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "fuzz output cap",
            ));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn run(parsed: &Cli) -> (Result<(), Failure>, Vec<u8>) {
    let mut out = Capped(Vec::new());
    let result = cli::run(parsed, &mut out);
    (result, out.0)
}

// The first byte chooses: even, the rest is the arguments after `ostep`, separated by NUL
// bytes (the corpus holds the command lines of the recorded malloc.py runs); odd, the rest
// builds arguments from flags, values and op lists.
fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let args = if mode % 2 == 0 {
        let mut args = vec!["freespace".to_string(), "ostep".to_string()];
        if !rest.is_empty() {
            args.extend(
                rest.split(|&b| b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned()),
            );
        }
        args
    } else {
        let Ok(input) = Vec::<Arg>::arbitrary_take_rest(Unstructured::new(rest)) else {
            return;
        };
        args_of(&input)
    };
    if args.iter().map(String::len).sum::<usize>() > 1 << 16 {
        return;
    }
    let parsed = match cli::parse(&args) {
        Ok(parsed) => parsed,
        Err(err) => {
            let line = cli::usage_error(err);
            assert!(line.len() < 1000 && !line.contains('\n'), "{line}");
            return;
        }
    };
    let Command::Ostep(ostep) = &parsed.command else {
        panic!("`freespace ostep ...` parsed as another subcommand");
    };
    match ostep.options() {
        Ok(opts) => {
            let entries = opts.alloc_list.split(',').count();
            if !(-MAX_OPS..=MAX_OPS).contains(&opts.num_ops) || entries > MAX_LIST {
                return;
            }
        }
        Err(Failure::Error(msg)) => {
            assert!(msg.len() < 300, "{msg}");
            return;
        }
        Err(Failure::BrokenPipe) => panic!("reading options wrote nothing"),
    }
    let (first, out) = run(&parsed);
    if let Err(Failure::Error(msg)) = &first {
        assert!(msg.len() < 300, "{msg}");
    }
    // The same seed draws the same operations: a second run prints the same bytes.
    let (second, again) = run(&parsed);
    assert_eq!(first, second);
    assert!(out == again, "two runs of {args:?} differ");
});
