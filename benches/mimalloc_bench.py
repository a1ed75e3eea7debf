#!/usr/bin/env python3
"""Runs the standard allocator suite (mimalloc-bench) with libfreespace.so and its peers.

    benches/mimalloc_bench.py SUITE [--rounds N] [--threads N] [--only a,b] [NAME=LIB.so ...]

SUITE is a checkout of https://github.com/daanx/mimalloc-bench (only its bench/ folder is
used). Each NAME=LIB.so is a peer run under LD_PRELOAD; glibc (no preload) is always a peer.
libfreespace.so is built in release mode first. For example, with Debian's packages:

    benches/mimalloc_bench.py ~/mimalloc-bench --rounds 3 \\
        jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \\
        mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 \\
        tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4

The suite is built with cmake in a scratch directory, without sh6bench and sh8bench (their
sources are not in the suite). Rounds alternate the allocators benchmark by benchmark, so
background load hits them alike. A run's time is its wall time, except where the suite itself
reports a relative time (larson, xmalloc-test, glibc-thread), as the suite's bench.sh does; its
memory is the peak resident set (`/usr/bin/time %M`). The table gives medians, freespace's
ratio to each peer, and to the best peer of each benchmark (lower is better), with geometric
means. A run that fails, or whose output differs from glibc's where the output is deterministic,
is reported and counted as a failure.
"""

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def benchmarks(bench, threads):
    """(name, argv, stdin, how the time is read, whether stdout is deterministic)."""
    t = str(threads)
    return [
        ("cfrac", ["./cfrac", "17545186520507317056371138836327483792789528"], None, "wall", True),
        ("espresso", ["./espresso", f"{bench}/espresso/largest.espresso"], None, "wall", True),
        ("barnes", ["./barnes"], f"{bench}/barnes/input", "wall", "barnes"),
        ("larson", ["./larson", "5", "8", "1000", "5000", "100", "4141", t], None, "larson", False),
        ("alloc-test", ["./alloc-test", t], None, "wall", False),
        ("xmalloc-test", ["./xmalloc-test", "-w", t, "-t", "5", "-s", "64"], None, "xmalloc", False),
        ("cache-scratch1", ["./cache-scratch", "1", "1000", "1", "2000000", t], None, "wall", False),
        ("cache-scratchN", ["./cache-scratch", t, "1000", "1", "2000000", t], None, "wall", False),
        ("malloc-large", ["./malloc-large"], None, "wall", False),
        ("mstress", ["./mstress", t, "50", "25"], None, "wall", False),
        ("glibc-simple", ["./glibc-simple"], None, "wall", False),
        ("glibc-thread", ["./glibc-thread", t], None, "glibc-thread", False),
    ]


def relative_time(kind, out, wall):
    """The time a run is judged by: wall time, or the suite's own relative time."""
    if kind == "wall":
        return wall
    if kind == "larson":
        m = re.search(r"relative time: ([0-9.]+)", out)
        return float(m.group(1)) if m else None
    if kind == "xmalloc":
        m = re.search(r"rtime: ([0-9.]+)", out)
        return float(m.group(1)) if m else None
    if kind == "glibc-thread":
        m = re.match(r"\s*([0-9.]+)", out)
        return 1e9 / float(m.group(1)) if m and float(m.group(1)) > 0 else None
    raise ValueError(kind)


def comparable(check, out):
    """The part of a run's stdout that must equal glibc's."""
    if check == "barnes":  # its timing lines differ from run to run
        return "\n".join(l for l in out.splitlines() if not re.search(r"TIME|COMPUTE(START|END)", l))
    return out


def build_suite(suite, work):
    src = os.path.join(work, "bench")
    shutil.copytree(os.path.join(suite, "bench"), src)
    cmake = os.path.join(src, "CMakeLists.txt")
    text = open(cmake).read()
    # sh6bench and sh8bench download their sources from elsewhere: leave them out.
    text = re.sub(r"if\(NOT APPLE\)\s*add_executable\(sh6bench.*?endif\(\)", "", text, flags=re.S)
    open(cmake, "w").write(text)
    build = os.path.join(work, "build")
    os.mkdir(build)
    subprocess.run(["cmake", src, "-DCMAKE_BUILD_TYPE=Release"], cwd=build, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["make", f"-j{os.cpu_count() or 2}", "-k"], cwd=build, check=False,
                   stdout=subprocess.DEVNULL)
    return build


def run_one(build, argv, stdin, preload):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    timing = tempfile.NamedTemporaryFile(delete=False)
    timing.close()
    with open(stdin or os.devnull) as inp:
        p = subprocess.run(["/usr/bin/time", "-o", timing.name, "-f", "%e %M"] + argv, cwd=build,
                           env=env, stdin=inp, capture_output=True, text=True, errors="replace")
    last = open(timing.name).read().strip().splitlines()
    os.unlink(timing.name)
    wall, rss = (float(x) for x in last[-1].split()) if last else (None, None)
    return p.returncode, p.stdout, p.stderr, wall, rss


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suite", help="a checkout of daanx/mimalloc-bench")
    ap.add_argument("peers", nargs="*", help="NAME=/path/to/lib.so, run under LD_PRELOAD")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--only", help="comma-separated benchmark names")
    ap.add_argument("--freespace", help="libfreespace.so to test (default: build it)")
    args = ap.parse_intermixed_args()

    lib = args.freespace
    if not lib:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "libfreespace"], cwd=ROOT,
                       check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        lib = os.path.join(target, "release", "libfreespace.so")
    allocators = [("freespace", os.path.abspath(lib)), ("glibc", None)]
    for spec in args.peers:
        name, _, path = spec.partition("=")
        if not path or not os.path.exists(path):
            sys.exit(f"mimalloc_bench: peer '{spec}' is not NAME=/existing/lib.so")
        allocators.append((name, os.path.abspath(path)))

    work = tempfile.mkdtemp(prefix="freespace-mbench-")
    try:
        build = build_suite(os.path.abspath(args.suite), work)
        bench_dir = os.path.join(work, "bench")
        todo = benchmarks(bench_dir, args.threads)
        if args.only:
            wanted = set(args.only.split(","))
            todo = [b for b in todo if b[0] in wanted]
        times, mems, failures, reference = {}, {}, [], {}
        for r in range(args.rounds):
            for name, argv, stdin, kind, check in todo:
                if not os.path.exists(os.path.join(build, argv[0])):
                    failures.append(f"{name}: not built")
                    continue
                # glibc first, so every other output can be compared with its output.
                order = sorted(allocators, key=lambda a: a[0] != "glibc")
                for alloc, preload in order:
                    code, out, err, wall, rss = run_one(build, argv, stdin, preload)
                    t = relative_time(kind, out, wall) if code == 0 else None
                    if code != 0 or t is None:
                        failures.append(f"{name} under {alloc}: exit {code}: {err.strip()[-300:]}")
                        continue
                    if check:
                        key = comparable(check, out)
                        if alloc == "glibc":
                            reference[name] = key
                        elif reference.get(name) != key:
                            failures.append(f"{name} under {alloc}: output differs from glibc's")
                    times.setdefault((name, alloc), []).append(t)
                    mems.setdefault((name, alloc), []).append(rss)
            print(f"round {r + 1} of {args.rounds} done", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    peers = [a for a, _ in allocators if a != "freespace"]
    med = lambda d, k: statistics.median(d[k]) if k in d else None
    for title, data, unit in (("time", times, "s"), ("peak resident memory", mems, "KiB")):
        print(f"\n{title}: medians of {args.rounds} alternating rounds, {args.threads} threads; "
              f"ratios are freespace / peer (lower is better)")
        head = f"{'benchmark':<15} {'freespace':>10}" + "".join(f" {p:>10}" for p in peers)
        head += "".join(f" {'vs ' + p:>12}" for p in peers) + f" {'vs best':>8} {'best':>10}"
        print(head)
        col = {p: [] for p in peers + ["best"]}
        for name, *_ in todo:
            fs = med(data, (name, "freespace"))
            vals = {p: med(data, (name, p)) for p in peers}
            row = f"{name:<15} {fs if fs is not None else float('nan'):>10.2f}"
            row += "".join(f" {vals[p] if vals[p] is not None else float('nan'):>10.2f}"
                           for p in peers)
            known = {p: v for p, v in vals.items() if v}
            for p in peers:
                ratio = fs / vals[p] if fs and vals[p] else None
                col[p].append(ratio)
                row += f" {ratio:>12.2f}" if ratio else f" {'-':>12}"
            if fs and known:
                best = min(known, key=known.get)
                col["best"].append(fs / known[best])
                row += f" {fs / known[best]:>8.2f} {best:>10}"
            print(row)
        print(f"{'geometric mean':<15} {'':>10}" + "".join(f" {'':>10}" for _ in peers)
              + "".join(f" {geomean(col[p]):>12.2f}" for p in peers)
              + f" {geomean(col['best']):>8.2f}")
    if failures:
        print(f"\n{len(failures)} failed runs:")
        for f in failures:
            print(f"  {f}")
        sys.exit(1)
    print("\nno failed run; deterministic outputs (cfrac, espresso, barnes) match glibc's")


if __name__ == "__main__":
    main()
