//! The command line as a user meets it: help on every subcommand, gen feeding replay and the
//! pictures, and every kind of bad input answered by one `freespace: ...` line on stderr,
//! a non-zero exit, and nothing on stdout.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_freespace"))
        .args(args)
        .output()
        .expect("run freespace");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str, contents: &[u8]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        &["--help"][..],
        &["ostep", "--help"],
        &["replay", "--help"],
        &["gen", "--help"],
    ] {
        let (code, out, _) = run(sub);
        assert_eq!(code, 0, "{sub:?}");
        assert!(out.contains("Usage:"), "{sub:?}: {out}");
    }
    let (_, out, _) = run(&["ostep", "--help"]);
    for flag in [
        "-s", "-S", "-b", "-H", "-a", "-p", "-l", "-C", "-n", "-r", "-P", "-A", "-c", "--engine",
    ] {
        assert!(out.contains(flag), "ostep help lacks {flag}");
    }
}

#[test]
fn gen_then_replay_then_pictures() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-gen");
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("frag.trace");
    let (code, out, err) = run(&[
        "gen",
        "fragment",
        "-n",
        "300",
        "--seed",
        "3",
        "-o",
        trace.to_str().unwrap(),
    ]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    // The same parameters on stdout give the same bytes as the file.
    let (_, again, _) = run(&["gen", "fragment", "-n", "300", "--seed", "3"]);
    assert_eq!(again, std::fs::read_to_string(&trace).unwrap());

    let svg_dir = dir.join("svg");
    let (code, out, err) = run(&[
        "replay",
        trace.to_str().unwrap(),
        "--svg",
        svg_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.is_empty(),
        "no progress bar when stderr is not a terminal: {err}"
    );
    assert!(out.contains("arena sliding"), "{out}");
    for name in [
        "heap-map.svg",
        "fragmentation.svg",
        "footprint.svg",
        "compaction.svg",
    ] {
        let text = std::fs::read_to_string(svg_dir.join(name)).unwrap();
        assert!(
            text.starts_with("<svg ") && text.trim_end().ends_with("</svg>"),
            "{name}"
        );
        assert!(out.contains(name), "{out}");
    }
}

/// One error line, exactly `want`, a non-zero exit, and empty stdout.
fn assert_fails(args: &[&str], want: &str) {
    let (code, out, err) = run(args);
    assert_ne!(code, 0, "{args:?} should fail");
    assert_eq!(out, "", "{args:?} printed output");
    assert_eq!(err, format!("{want}\n"), "{args:?}");
}

#[test]
fn malformed_traces_name_file_and_line() {
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "bad-op.trace",
            b"a 1 16\nx 2\n",
            "2: unknown operation \"x\" (expected a, f or r)",
        ),
        (
            "bad-arity.trace",
            b"# c\na 1\n",
            "2: expected `a ID SIZE [ALIGN]`, got \"a 1\"",
        ),
        (
            "bad-num.trace",
            b"a 1 ten\n",
            "1: size must be a non-negative integer, got \"ten\"",
        ),
        (
            "unknown.trace",
            b"a 1 16\n\nf 9\n",
            "3: free of unknown id 9",
        ),
        (
            "double.trace",
            b"a 1 16\nf 1\nf 1\n",
            "3: double free of id 1 (already freed at line 2)",
        ),
        (
            "huge.trace",
            b"a 1 99999999999\n",
            "1: size 99999999999 does not fit (the largest request is 1073741824 bytes)",
        ),
        (
            "zero.trace",
            b"a 1 0\n",
            "1: size 0: requests must be at least 1 byte",
        ),
        (
            "align.trace",
            b"a 1 8 3\n",
            "1: alignment 3 must be a power of two no larger than 4096",
        ),
        (
            "binary.trace",
            b"a 1 8\n\xff\n",
            "2: not a text trace (invalid UTF-8)",
        ),
    ];
    for (name, body, msg) in cases {
        let path = tmp(name, body);
        let p = path.to_str().unwrap();
        assert_fails(&["replay", p], &format!("freespace: {p}:{msg}"));
        // The same file with --svg writes no pictures either.
        let svg_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-svg"));
        assert_fails(
            &["replay", p, "--svg", svg_dir.to_str().unwrap()],
            &format!("freespace: {p}:{msg}"),
        );
        assert!(
            !svg_dir.exists(),
            "{name}: pictures written for a bad trace"
        );
    }
}

#[test]
fn missing_file_and_bad_flags() {
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such.trace");
    let (code, out, err) = run(&["replay", missing.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert_eq!(out, "");
    assert!(
        err.starts_with(&format!("freespace: {}: cannot read: ", missing.display())),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);

    assert_fails(
        &["replay"],
        "freespace: the following required arguments were not provided: <TRACE>",
    );
    assert_fails(
        &["replay", "x", "--colour"],
        "freespace: unexpected argument '--colour' found",
    );
    assert_fails(
        &["frobnicate"],
        "freespace: unrecognized subcommand 'frobnicate'",
    );
    assert_fails(&["gen", "spiral"], "freespace: invalid value 'spiral' for '<SHAPE>' [possible values: ramp, peak, plateau, random, fragment]");
    assert_fails(
        &["gen", "random", "--min", "0"],
        "freespace: gen: sizes must satisfy 1 <= min <= max, got min 0 and max 512",
    );
    assert_fails(
        &["gen", "random", "-n", "lots"],
        "freespace: invalid value 'lots' for '--allocs <ALLOCS>': invalid digit found in string",
    );
    assert_fails(&["ostep", "-l", "SIZESORT"], "freespace: option -l: unknown list order 'SIZESORT' (ADDRSORT, SIZESORT+, SIZESORT-, INSERT-FRONT, INSERT-BACK)");
    assert_fails(
        &["ostep", "--engine", "core", "-b", "-5"],
        "freespace: ostep: core engine: -b must not be negative for the core engine, got -5",
    );
}

#[test]
fn only_selects_rows_by_name() {
    let trace = tmp("only.trace", b"a 1 100\na 2 200\nf 1\n");
    let p = trace.to_str().unwrap();
    let (code, out, err) = run(&["replay", p, "--only", "arena,segregated"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out
        .lines()
        .skip(2)
        .map(|l| l.split("  ").next().unwrap())
        .collect();
    assert_eq!(rows, ["segregated", "arena sliding", "arena two-finger"]);
    let (code, out, err) = run(&["replay", p, "--only", "best-fit"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2 + 5, "{out}");
    let (code, out, err) = run(&["replay", p, "--only", "tlsf"]);
    assert_ne!(code, 0);
    assert_eq!(out, "");
    assert!(
        err.starts_with(
            "freespace: --only: no allocator is called 'tlsf' (allocators: first-fit addr, "
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn no_subcommand_prints_usage_and_fails() {
    let (code, out, err) = run(&[]);
    assert_ne!(code, 0);
    assert_eq!(out, "");
    assert!(err.contains("Usage:"), "{err}");
}

/// One chunk of the binary format (docs/trace-format-binary.md) for pid 1, run 1, with records
/// `(kind, tid, seq, addr, size)`.
fn binary_chunk(records: &[(u8, u32, u64, u64, u64)]) -> Vec<u8> {
    let mut v = b"FSTRACE\x01".to_vec();
    for field in [1u32, records.len() as u32, 40, 1] {
        v.extend_from_slice(&field.to_le_bytes());
    }
    for &(kind, tid, seq, addr, size) in records {
        v.extend_from_slice(&[kind, if kind == 2 { 10 } else { 1 }, 0, 0]);
        v.extend_from_slice(&tid.to_le_bytes());
        for field in [seq, seq * 100, addr, size] {
            v.extend_from_slice(&field.to_le_bytes());
        }
    }
    v
}

#[test]
fn a_trace_with_lost_records_is_replayed_and_the_loss_reported() {
    // Thread 2's buffer (seq 2 and 3: a free and an allocation) was never written, and the
    // last chunk was cut inside its second record.
    let mut file = binary_chunk(&[(1, 1, 0, 0x1000, 64), (1, 1, 1, 0x2000, 32)]);
    file.extend(binary_chunk(&[(1, 3, 4, 0x1000, 16), (2, 3, 5, 0x3000, 0)]));
    let cut = file.len() - 10;
    let path = tmp("lost.fstrace", &file[..cut]);
    let p = path.to_str().unwrap();
    let (code, out, err) = run(&["replay", p, "--only", "segregated"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("trace {p}: 6 events, 3 allocations\n")),
        "{out}"
    );
    assert_eq!(
        err,
        format!(
            "freespace: {p}: incomplete trace, replaying what survives: truncated chunk at \
             byte offset 104: 1 of its 2 records; 2 records missing from the sequence in 1 gap; \
             1 implied free (an address allocated again after lost records)\n"
        )
    );
    // A double free with no record lost between the frees is still refused.
    let double = binary_chunk(&[
        (1, 1, 0, 0x1000, 8),
        (2, 1, 1, 0x1000, 0),
        (2, 2, 2, 0x1000, 0),
    ]);
    let path = tmp("double.fstrace", &double);
    let p = path.to_str().unwrap();
    assert_fails(
        &["replay", p],
        &format!("freespace: {p}:3: byte offset 104: double free of address 0x1000"),
    );
}

/// `freespace ARGS` in `sh`, with `setup` run first (a ulimit, a redirection).
fn run_in_sh(setup: &str, args: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("{setup}; exec \"$0\" {args}"))
        .arg(env!("CARGO_BIN_EXE_freespace"))
        .output()
        .expect("run sh")
}

#[test]
fn ostep_streams_its_output_instead_of_holding_it() {
    // 60000 operations with answers print about 48 MB; the process may map 32 MB in all.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 32768; exec \"$0\" ostep -n 60000 -c")
        .arg(env!("CARGO_BIN_EXE_freespace"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let (mut bytes, mut last) = (0usize, Vec::new());
    loop {
        let n = std::io::Read::read(&mut stdout, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes += n;
        last = buf[..n].to_vec();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err, "");
    assert!(bytes > 40_000_000, "{bytes} bytes");
    assert!(
        last.ends_with(b" ]\n\n"),
        "{:?}",
        String::from_utf8_lossy(&last)
    );
}

#[test]
fn a_failed_write_to_stdout_says_so() {
    for args in ["gen random", "ostep -n 1000 -c", "replay /dev/null"] {
        let out = run_in_sh("exec >/dev/full", args);
        let err = String::from_utf8_lossy(&out.stderr);
        if args.starts_with("replay") {
            // An empty file is an empty text trace: a table header, which cannot be written.
            assert!(!out.status.success());
        }
        assert_eq!(out.status.code(), Some(1), "{args}: {err}");
        assert_eq!(
            err,
            "freespace: cannot write to standard output: No space left on device (os error 28)\n",
            "{args}"
        );
    }
}

#[test]
fn a_reader_that_stops_early_ends_the_run_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_freespace"))
        .args(["ostep", "-n", "100000", "-c"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert!(first.starts_with(b"seed 0\n"));
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn long_values_are_clipped_in_messages() {
    let long = "Q".repeat(50_000);
    let clipped = format!("{}…", "Q".repeat(40));
    for args in [
        vec!["ostep", "-S", long.as_str()],
        vec!["ostep", "-p", long.as_str()],
        vec!["ostep", "-A", long.as_str()],
        vec!["ostep", "--engine", long.as_str()],
        vec!["replay", "x", long.as_str()],
        vec!["replay", "x", "--only", long.as_str()],
        vec![long.as_str()],
    ] {
        let (code, out, err) = run(&args);
        assert_ne!(code, 0);
        assert_eq!(out, "");
        assert!(err.len() < 700, "{} bytes: {}…", err.len(), &err[..700]);
        assert!(err.contains(&clipped), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // In a trace, too.
    let path = tmp("long.trace", format!("a 1 8\n{long} 2\n").as_bytes());
    let p = path.to_str().unwrap();
    assert_fails(
        &["replay", p],
        &format!("freespace: {p}:2: unknown operation \"{clipped}\" (expected a, f or r)"),
    );
}

#[test]
fn a_binary_trace_with_a_bad_first_magic_is_refused_for_it() {
    let mut file = binary_chunk(&[(1, 1, 0, 0x1000, 64)]);
    file[..8].copy_from_slice(b"GARBAGE!");
    let path = tmp("bad-magic.fstrace", &file);
    let p = path.to_str().unwrap();
    assert_fails(
        &["replay", p],
        &format!("freespace: {p}: byte offset 0: not a trace chunk (bad magic)"),
    );
}

#[test]
fn a_long_replay_prints_progress_lines_when_stderr_is_not_a_terminal() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let trace = dir.join("progress.trace");
    let (code, _, err) = run(&["gen", "random", "-n", "3000", "-o", trace.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let t = trace.to_str().unwrap();
    let (code, out, err) = run(&["replay", t, "--progress-every", "0.000001"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("trace {t}: ")), "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "{err}");
    let (last, progress) = lines.split_last().unwrap();
    for line in progress {
        assert!(line.starts_with("freespace: replaying: "), "{line}");
        assert!(line.contains(" events ("), "{line}");
    }
    assert!(last.starts_with("freespace: replayed "), "{last}");
    // The default interval (10 s) is longer than this replay: nothing is printed.
    let (code, _, err) = run(&["replay", t]);
    assert_eq!((code, err.as_str()), (0, ""));
    let (code, _, err) = run(&["replay", t, "--progress-every", "0"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_fails(
        &["replay", t, "--progress-every=-1"],
        "freespace: --progress-every: expected a number of seconds, got -1",
    );
}
