//! `freespace ostep` against the original `malloc.py`, byte for byte, and against the chapter's
//! own examples worked out by hand.
//!
//! The files in `tests/data/ostep/` are the standard output of the original simulator
//! (`vm-freespace/malloc.py` from the ostep-homework repository, run with Python 3.11.7):
//! `python3 malloc.py ARGS > tests/data/ostep/NAME.out`, with the ARGS listed beside each
//! name below.

use std::process::Command;

fn freespace(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_freespace"))
        .args(args)
        .output()
        .expect("run freespace");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

fn ostep(args: &str) -> String {
    let mut all = vec!["ostep"];
    all.extend(args.split_whitespace());
    let (code, out, err) = freespace(&all);
    assert_eq!(code, 0, "freespace ostep {args}: {err}");
    assert!(err.is_empty(), "{err}");
    out
}

const RECORDED: &[(&str, &str)] = &[
    (
        "-n 10 -H 0 -p BEST -s 0",
        include_str!("data/ostep/homework-q1.out"),
    ),
    (
        "-n 10 -H 0 -p BEST -s 0 -c",
        include_str!("data/ostep/homework-q1-solved.out"),
    ),
    (
        "-n 10 -H 0 -p WORST -s 0 -c",
        include_str!("data/ostep/worst-seed0.out"),
    ),
    (
        "-n 10 -H 0 -p FIRST -s 0 -c",
        include_str!("data/ostep/first-seed0.out"),
    ),
    (
        "-s 3 -n 40 -p FIRST -l INSERT-FRONT -C -c",
        include_str!("data/ostep/first-front-coalesce.out"),
    ),
    (
        "-s 5 -n 40 -p BEST -l SIZESORT+ -H 4 -a 4 -c",
        include_str!("data/ostep/sizesort-up-header-align.out"),
    ),
    (
        "-s 9 -n 40 -p WORST -l SIZESORT- -C -r 30 -P 60 -c",
        include_str!("data/ostep/sizesort-down.out"),
    ),
    (
        "-s 1234 -n 60 -p FIRST -l INSERT-BACK -S 1000 -b 0 -r 100 -c",
        include_str!("data/ostep/insert-back-big.out"),
    ),
    (
        "-s 010 -n 0x10 -c",
        include_str!("data/ostep/octal-seed.out"),
    ),
    (
        "-S 50 -A +30,+30,-1,+10,-0,-0,+20,-5 -c",
        include_str!("data/ostep/alloclist-failing.out"),
    ),
];

#[test]
fn output_matches_the_original_byte_for_byte() {
    for (args, want) in RECORDED {
        assert_eq!(ostep(args), *want, "freespace ostep {args}");
    }
}

#[test]
fn long_option_names_and_attached_values_work_as_in_optparse() {
    let short = ostep("-n 10 -H 0 -p WORST -s 0 -c");
    let long = ostep("--numOps=10 --headerSize 0 --policy=WORST --seed 0 --compute");
    let attached = ostep("-n10 -H0 -pWORST -s0 -c");
    assert_eq!(short, long);
    assert_eq!(short, attached);
}

/// The parameter header that every run below prints, for `-S S -b B -H H -p P -l L`.
fn header(
    size: u32,
    base: u32,
    hdr: u32,
    policy: &str,
    order: &str,
    coalesce: bool,
    list: &str,
) -> String {
    format!(
        "seed 0\nsize {size}\nbaseAddr {base}\nheaderSize {hdr}\nalignment -1\npolicy {policy}\n\
         listOrder {order}\ncoalesce {}\nnumOps 10\nrange 10\npercentAlloc 50\nallocList {list}\n\
         compute True\n\n",
        if coalesce { "True" } else { "False" }
    )
}

/// The chapter's splitting example: a 30-byte heap with [10,20) in use and the rest free.
/// A 1-byte request is carved from the front of the first free chunk that fits.
#[test]
fn chapter_splitting_example() {
    let list = "+10,+10,+10,-0,-2,+1";
    let got = ostep(&format!("-S 30 -b 0 -p FIRST -A {list} -c"));
    let want = header(30, 0, 0, "FIRST", "ADDRSORT", false, list)
        + "ptr[0] = Alloc(10) returned 0 (searched 1 elements)\n\
           Free List [ Size 1 ]: [ addr:10 sz:20 ]\n\n\
           ptr[1] = Alloc(10) returned 10 (searched 1 elements)\n\
           Free List [ Size 1 ]: [ addr:20 sz:10 ]\n\n\
           ptr[2] = Alloc(10) returned 20 (searched 1 elements)\n\
           Free List [ Size 0 ]: \n\n\
           Free(ptr[0])\nreturned 0\n\
           Free List [ Size 1 ]: [ addr:0 sz:10 ]\n\n\
           Free(ptr[2])\nreturned 0\n\
           Free List [ Size 2 ]: [ addr:0 sz:10 ][ addr:20 sz:10 ]\n\n\
           ptr[3] = Alloc(1) returned 0 (searched 1 elements)\n\
           Free List [ Size 2 ]: [ addr:1 sz:9 ][ addr:20 sz:10 ]\n\n";
    assert_eq!(got, want);
}

/// The chapter's coalescing example: freeing the middle chunk of three leaves three list
/// entries without coalescing, and one 30-byte chunk with it.
#[test]
fn chapter_coalescing_example() {
    let list = "+10,+10,+10,-0,-2,-1";
    let tail_plain = "Free(ptr[1])\nreturned 0\n\
                      Free List [ Size 3 ]: [ addr:0 sz:10 ][ addr:10 sz:10 ][ addr:20 sz:10 ]\n\n";
    let tail_merged = "Free(ptr[1])\nreturned 0\nFree List [ Size 1 ]: [ addr:0 sz:30 ]\n\n";
    let plain = ostep(&format!("-S 30 -b 0 -p FIRST -A {list} -c"));
    let merged = ostep(&format!("-S 30 -b 0 -p FIRST -C -A {list} -c"));
    assert!(plain.ends_with(tail_plain), "{plain}");
    assert!(merged.ends_with(tail_merged), "{merged}");
    assert!(merged.starts_with(&header(30, 0, 0, "FIRST", "ADDRSORT", true, list)));
}

/// The chapter's policy example: free chunks of 10, 30 and 20 and a request for 15.
/// Best fit takes the 20 (leaving 5), worst and first fit take the 30 (leaving 15).
#[test]
fn chapter_policy_example() {
    // Allocate 10,5,30,5,20,5 in a 75-byte heap, then free the 10, the 30 and the 20.
    let list = "+10,+5,+30,+5,+20,+5,-0,-2,-4,+15";
    let last = |policy: &str| {
        let out = ostep(&format!("-S 75 -b 0 -p {policy} -A {list} -c"));
        let lines: Vec<&str> = out.lines().collect();
        format!("{}\n{}", lines[lines.len() - 3], lines[lines.len() - 2])
    };
    assert_eq!(
        last("BEST"),
        "ptr[6] = Alloc(15) returned 50 (searched 3 elements)\n\
         Free List [ Size 3 ]: [ addr:0 sz:10 ][ addr:15 sz:30 ][ addr:65 sz:5 ]"
    );
    assert_eq!(
        last("WORST"),
        "ptr[6] = Alloc(15) returned 15 (searched 3 elements)\n\
         Free List [ Size 3 ]: [ addr:0 sz:10 ][ addr:30 sz:15 ][ addr:50 sz:20 ]"
    );
    assert_eq!(
        last("FIRST"),
        "ptr[6] = Alloc(15) returned 15 (searched 2 elements)\n\
         Free List [ Size 3 ]: [ addr:0 sz:10 ][ addr:30 sz:15 ][ addr:50 sz:20 ]"
    );
}

/// The chapter's header example: a 4096-byte heap at 16384 with 8-byte headers and three
/// 100-byte requests, each taking 108 bytes. In `-A` mode the original prints the chunk
/// address (the header's), not the pointer after the header; random mode adds the header.
#[test]
fn chapter_header_example_and_the_printed_address_quirk() {
    let out = ostep("-S 4096 -b 16384 -H 8 -p FIRST -A +100,+100,+100,-1 -c");
    assert!(out.contains("ptr[0] = Alloc(100) returned 16384 (searched 1 elements)\n"));
    assert!(out.contains("ptr[1] = Alloc(100) returned 16492 (searched 1 elements)\n"));
    assert!(out.contains("ptr[2] = Alloc(100) returned 16600 (searched 1 elements)\n"));
    assert!(out.ends_with(
        "Free(ptr[1])\nreturned 0\n\
         Free List [ Size 2 ]: [ addr:16492 sz:108 ][ addr:16708 sz:3772 ]\n\n"
    ));
    // Random mode: the same heap prints the first pointer 8 bytes past the chunk.
    let random = ostep("-S 4096 -b 16384 -H 8 -p FIRST -s 0 -n 1 -c");
    assert!(
        random.contains("ptr[0] = Alloc(3) returned 16392 (searched 1 elements)\n"),
        "{random}"
    );
}

/// `-A` frees by pointer index and never forgets the pointer: freeing it again after its
/// chunk was handed out anew frees the new owner's chunk and returns 0.
#[test]
fn stale_pointer_frees_the_new_owner() {
    let out = ostep("-S 20 -b 0 -A +10,-0,+10,-0 -c");
    assert!(
        out.ends_with(
            "ptr[1] = Alloc(10) returned 0 (searched 2 elements)\n\
         Free List [ Size 1 ]: [ addr:10 sz:10 ]\n\n\
         Free(ptr[0])\nreturned 0\n\
         Free List [ Size 2 ]: [ addr:0 sz:10 ][ addr:10 sz:10 ]\n\n"
        ),
        "{out}"
    );
}

/// Without `-c` the answers become `?`; random mode writes `List? ` with a trailing space
/// and list mode writes `List?` without one.
#[test]
fn question_marks_without_compute() {
    let random = ostep("-n 2 -s 0");
    assert!(
        random.contains("ptr[0] = Alloc(3) returned ?\nList? \n\n"),
        "{random}"
    );
    let listed = ostep("-A +3,-0");
    assert!(
        listed.ends_with(
            "ptr[0] = Alloc(3) returned ?\nList?\n\nFree(ptr[0])\nreturned ?\nList?\n\n"
        ),
        "{listed}"
    );
}

#[test]
fn next_fit_is_an_addition_with_the_same_format() {
    let out = ostep("-S 60 -b 0 -p NEXT -A +20,+5,+20,+5,-0,-2,+10,+10,+10 -c");
    assert!(out.starts_with(&header(
        60,
        0,
        0,
        "NEXT",
        "ADDRSORT",
        false,
        "+20,+5,+20,+5,-0,-2,+10,+10,+10"
    )));
    // After the two frees the list is (0,20) (25,20) (50,10). The rover sits in (50,10), where
    // the last split left it, so the first 10 comes from 50 (first fit would take 0); the exact
    // fit moves the rover on, wrapping to the head.
    assert!(
        out.contains("ptr[4] = Alloc(10) returned 50 (searched 1 elements)\n"),
        "{out}"
    );
    assert!(
        out.contains("ptr[5] = Alloc(10) returned 0 (searched 1 elements)\n"),
        "{out}"
    );
    assert!(
        out.contains("ptr[6] = Alloc(10) returned 10 (searched 1 elements)\n"),
        "{out}"
    );
}

#[test]
fn bad_flags_give_one_line_and_no_output() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["ostep", "--bogus"],
            "freespace: unexpected argument '--bogus' found\n",
        ),
        (
            &["ostep", "-S", "08"],
            "freespace: option -S: invalid integer value: '08'\n",
        ),
        (
            &["ostep", "-p", "best"],
            "freespace: option -p: unknown policy 'best' (BEST, WORST, FIRST, NEXT)\n",
        ),
        (
            &["ostep", "-a", "0"],
            "freespace: ostep: alignment must be -1 (none) or positive, got 0\n",
        ),
        (
            &["ostep", "-P", "0"],
            "freespace: ostep: percent of allocations must be positive, got 0\n",
        ),
        (
            &["ostep", "-A", "+5,x3"],
            "freespace: ostep: -A entry 1 (\"x3\"): expected +SIZE or -INDEX with an integer\n",
        ),
        (
            &["ostep", "-A", "+5,"],
            "freespace: ostep: -A entry 1 (\"\"): expected +SIZE or -INDEX with an integer\n",
        ),
        // The whole -A list is read before anything is printed.
        (
            &["ostep", "-A", "+0,+0,-1,-x"],
            "freespace: ostep: -A entry 3 (\"-x\"): expected +SIZE or -INDEX with an integer\n",
        ),
    ];
    for (args, want) in cases {
        let (code, out, err) = freespace(args);
        assert_ne!(code, 0, "{args:?}");
        assert_eq!(out, "", "{args:?}");
        assert_eq!(err, *want, "{args:?}");
    }
}

/// Where `malloc.py` dies part way through, the lines it prints before its traceback come
/// first, then the error line.
#[test]
fn where_the_original_dies_part_way_its_lines_come_first() {
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["ostep", "-S", "10", "-A", "+50,+5,-0"],
            "ptr[0] = Alloc(50) returned ?\nList?\n\nptr[1] = Alloc(5) returned ?\nList?\n\nFree(ptr[0])\n",
            "freespace: ostep: -A entry 2 (-0): ptr[0] was never allocated (its allocation failed)\n",
        ),
        (
            &["ostep", "-A", "+0,+0", "-c"],
            "ptr[0] = Alloc(0) returned 1000 (searched 1 elements)\nFree List [ Size 1 ]: [ addr:1000 sz:100 ]\n\n",
            "freespace: ostep: Alloc(0) would hand out address 1000 a second time (malloc.py stops on its assertion here)\n",
        ),
    ];
    for (args, tail, want) in cases {
        let (code, out, err) = freespace(args);
        assert_eq!(code, 1, "{args:?}");
        assert!(
            out.starts_with("seed 0\n") && out.ends_with(tail),
            "{args:?}: {out}"
        );
        assert_eq!(err, *want, "{args:?}");
    }
}

/// `--engine core` prints the same format, and where the core differs from the textbook
/// model it does so for the reasons the guide gives: it merges neighbours in memory, not in
/// the list, and keeps a size-sorted list sorted after a split.
#[test]
fn core_model_merges_memory_neighbours_and_keeps_size_order() {
    let list = "+10,+10,+10,-1,-2";
    let args = format!("-S 40 -b 0 -p FIRST -l INSERT-FRONT -C -A {list} -c");
    let textbook = ostep(&args);
    let core = ostep(&format!("{args} --engine core"));
    let header = header(40, 0, 0, "FIRST", "INSERT-FRONT", true, list);
    assert!(textbook.starts_with(&header) && core.starts_with(&header));
    assert!(textbook.ends_with(
        "Free List [ Size 3 ]: [ addr:20 sz:10 ][ addr:10 sz:10 ][ addr:30 sz:10 ]\n\n"
    ));
    assert!(
        core.ends_with("Free List [ Size 1 ]: [ addr:10 sz:30 ]\n\n"),
        "{core}"
    );

    let args = "-S 50 -b 0 -p BEST -l SIZESORT+ -A +5,+10,-0,+33 -c";
    assert!(ostep(args).ends_with("Free List [ Size 2 ]: [ addr:0 sz:5 ][ addr:48 sz:2 ]\n\n"));
    assert!(ostep(&format!("{args} --engine core"))
        .ends_with("Free List [ Size 2 ]: [ addr:48 sz:2 ][ addr:0 sz:5 ]\n\n"));
}

/// On the chapter's own examples the two engines agree.
#[test]
fn core_model_agrees_on_the_chapter_examples() {
    for args in [
        "-S 30 -b 0 -p FIRST -A +10,+10,+10,-0,-2,+1 -c",
        "-S 30 -b 0 -p FIRST -C -A +10,+10,+10,-0,-2,-1 -c",
        "-S 75 -b 0 -p BEST -A +10,+5,+30,+5,+20,+5,-0,-2,-4,+15 -c",
        "-S 75 -b 0 -p WORST -A +10,+5,+30,+5,+20,+5,-0,-2,-4,+15 -c",
        "-S 4096 -b 16384 -H 8 -p FIRST -A +100,+100,+100,-1 -c",
    ] {
        assert_eq!(
            ostep(args),
            ostep(&format!("{args} --engine core")),
            "{args}"
        );
    }
}

/// Python seeds with the absolute value, so `-s -5` draws what `-s 5` draws; only the header
/// line differs.
#[test]
fn negative_seed_draws_like_its_absolute_value() {
    let neg = ostep("-s -5 -n 30 -c");
    let pos = ostep("-s 5 -n 30 -c");
    assert!(neg.starts_with("seed -5\n") && pos.starts_with("seed 5\n"));
    assert_eq!(
        neg.split_once('\n').unwrap().1,
        pos.split_once('\n').unwrap().1
    );
    assert_ne!(
        ostep("-s 6 -n 30 -c").split_once('\n').unwrap().1,
        pos.split_once('\n').unwrap().1
    );
}
