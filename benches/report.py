#!/usr/bin/env python3
"""Runs the benches behind docs/benchmarks.md and regenerates its numbers.

    benches/report.py [--only PARTS] [--rounds N] [--scale F] [--repeats N]
                      [--malloc-rounds N] [--scripts N] [--trials N] [--handles-runs N]
                      [--quick] [--from-csv] [--print]

PARTS is a comma-separated subset of tcache, capi, malloc and handles (default: all four):

- tcache:  benches/tcache_compare.sh --csv, ROUNDS interleaved rounds at SCALE;
- capi:    benches/capi_compare.sh --csv, REPEATS repetitions, the allocators taking turns;
- malloc:  cargo bench --bench malloc_ratios with MALLOC_ROUNDS rounds on the published script,
           then SegregatedFit and talc alone on SCRIPTS - 1 more (seeds 1, 2, ...), and
           cargo bench --bench heap_efficiency with TRIALS trials;
- handles: the interleaved tables of cargo bench --bench handles, HANDLES_RUNS times.

The defaults are what docs/benchmarks.md publishes (about 15 minutes on 2 cores); --quick is a
smoke run of every part in a few minutes. Every run's raw data goes
to docs/img/bench/<part>.csv, how it was made to docs/img/bench/runs.json, and the plots to
docs/img/bench/*.svg. Then the blocks of docs/benchmarks.md between `<!-- BEGIN report: PART -->`
and `<!-- END report: PART -->` are rewritten from the CSV files (--print prints them instead).
--from-csv runs nothing and only redraws the plots and the blocks from the CSV files.

Python 3 standard library only.
"""

import argparse
import csv
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "img", "bench")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
PARTS = ["tcache", "capi", "malloc", "handles"]


# ---------------------------------------------------------------------------------------------
# Running the benches


def sh(argv, **kw):
    """Runs a command from the repository root, echoing it, and returns its stdout."""
    print("+ " + " ".join(argv), file=sys.stderr)
    return subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
                          **kw).stdout


def results(text):
    """The fields of the `RESULT ...` lines of a bench's output."""
    return [line.split()[1:] for line in text.splitlines() if line.startswith("RESULT ")]


def write_csv(name, header, rows):
    with open(os.path.join(OUT, name), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def read_csv(name):
    with open(os.path.join(OUT, name), newline="") as f:
        return list(csv.DictReader(f))


def run_tcache(a):
    sys.stderr.write(sh(["benches/tcache_compare.sh", "--csv", os.path.join(OUT, "tcache.csv"),
                         str(a.rounds), str(a.scale)]))
    return f"{a.rounds} interleaved rounds at scale {a.scale:g}"


def run_capi(a):
    sys.stderr.write(sh(["benches/capi_compare.sh", "--csv", os.path.join(OUT, "capi.csv"),
                         str(a.repeats)]))
    return f"{a.repeats} repetitions, the allocators taking turns"


def run_malloc(a):
    rows = []
    out = sh(["cargo", "bench", "-q", "-p", "freespace-benches", "--bench", "malloc_ratios", "--",
              "--rounds", str(a.malloc_rounds)])
    for f in results(out):
        if f[0] == "random_actions":
            rows.append(f[1:9] + [" ".join(f[9:])])
    write_csv("malloc_ratios.csv", ["max_size", "best_ns", "median_ns", "realloc_moved", "reallocs",
                                    "bytes_copied", "footprint_bytes", "failed", "allocator"], rows)
    # The target is judged over several scripts: one seed's ratio depends on where its blocks
    # happen to land.
    scripts = []
    for seed in range(a.scripts):  # seed 0 stands for the published script
        out = sh(["cargo", "bench", "-q", "-p", "freespace-benches", "--bench", "malloc_ratios",
                  "--", "--only", "SegregatedFit", "--rounds", str(a.malloc_rounds)]
                 + (["--seed", str(seed)] if seed else []))
        scripts += [[seed or "published", f[1], " ".join(f[9:]), f[2], f[3]]
                    for f in results(out)]
    write_csv("malloc_scripts.csv", ["seed", "max_size", "allocator", "best_ns", "median_ns"],
              scripts)
    out = sh(["cargo", "bench", "-q", "-p", "freespace-benches", "--bench", "heap_efficiency",
              "--", "--trials", str(a.trials)])
    rows = [f[1:3] + [" ".join(f[3:])] for f in results(out) if f[0] == "heap_efficiency"]
    write_csv("heap_efficiency.csv", ["talc_method", "realloc_100k", "allocator"], rows)
    return (f"{a.malloc_rounds} interleaved rounds on each of {a.scripts} scripts, "
            f"{a.trials} heap-efficiency trials")


def run_handles(a):
    rows, footprint = [], []
    for run in range(1, a.handles_runs + 1):
        # `tables` is a criterion filter that matches no benchmark: only the tables run.
        out = sh(["cargo", "bench", "-q", "-p", "freespace-benches", "--bench", "handles", "--",
                  "tables"])
        for f in results(out):
            if f[0] in ("get", "insert_remove"):
                rows.append([run, f[0], "", "arena", "slotmap", f[1], f[2]])
            elif f[0] == "compact":
                _, compactor, block, _moved, pass_s, memcpy_s, memmove_s = f
                median = lambda v: v.split("/")[1]
                rows.append([run, "compact", block, compactor, "memmove in the buffer",
                             median(pass_s), median(memmove_s)])
                rows.append([run, "compact", block, compactor, "memcpy between vectors",
                             median(pass_s), median(memcpy_s)])
            elif f[0] == "footprint" and run == 1:  # deterministic: one run is enough
                footprint.append([" ".join(f[3:]), f[1], f[2]])
    # Times: get and insert_remove in ns per operation (best of the bench's interleaved rounds),
    # compact in seconds per pass or copy (median of 15 interleaved rounds).
    write_csv("handles.csv", ["run", "measurement", "block_bytes", "subject", "baseline",
                              "subject_time", "baseline_time"], rows)
    write_csv("handles_footprint.csv", ["allocator", "live_bytes", "footprint_bytes"], footprint)
    return f"{a.handles_runs} runs of the bench's interleaved tables"


# ---------------------------------------------------------------------------------------------
# SVG plots: grouped bars, a log or linear axis, a reference line, a legend and the command.

COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948",
          "#9c755f", "#bab0ac", "#ff9da7"]


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ticks(lo, hi, log):
    """Axis ticks: 1-2-5 steps on a log axis, about five even steps on a linear one."""
    if not log:
        step = 10 ** math.floor(math.log10(hi / 5))
        step *= next(m for m in (1, 2, 5, 10) if hi / (step * m) <= 6)
        return [i * step for i in range(int(hi / step) + 1)]
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [m * 10 ** e for m in (1, 2, 5) if lo <= m * 10 ** e <= hi]
    return out


def text_width(s, size=11):
    return len(s) * size * 0.6


def bar_chart(name, title, ylabel, groups, series, values, note, log=True, ref=1.0, fmt="{:.2f}"):
    """Draws values[group][series] as bars grouped by `groups` (None: no bar), with a legend
    of `series`, a dashed line at `ref`, and `note` (the command) under the plot. A group's
    label may hold a newline."""
    bw, left, plot_h = 18, 70, 260
    widest = max(len([v for v in g if v is not None]) for g in values)
    label_w = max(text_width(line) for g in groups for line in g.split("\n"))
    group_w = max(bw * widest + 16, label_w + 10)
    width = max(left + group_w * len(groups) + 20, 600)
    legend, x, y0 = [], left, 40  # legend entries flow left to right, wrapping
    for i, s_ in enumerate(series):
        w = 16 + text_width(s_) + 18
        if x + w > width - 10:
            x, y0 = left, y0 + 16
        legend.append((x, y0, i, s_))
        x += w
    top = y0 + 20
    height = top + plot_h + 64
    vals = [v for g in values for v in g if v is not None] + ([ref] if ref else [])
    if log:
        lo, hi = min(vals) / 1.4, max(vals) * 1.5
        y = lambda v: top + plot_h * (math.log(hi) - math.log(v)) / (math.log(hi) - math.log(lo))
    else:
        lo, hi = 0, max(vals) * 1.12
        y = lambda v: top + plot_h * (hi - v) / hi
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
         f'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
         f'<rect width="100%" height="100%" fill="white"/>',
         f'<text x="{left}" y="20" font-size="14">{esc(title)}</text>']
    for lx, ly, i, s_ in legend:
        s.append(f'<rect x="{lx:.0f}" y="{ly - 9}" width="10" height="10" fill="{COLORS[i]}"/>'
                 f'<text x="{lx + 14:.0f}" y="{ly}">{esc(s_)}</text>')
    for t in ticks(lo, hi, log):  # grid lines and their values
        ty = y(t)
        s.append(f'<line x1="{left}" x2="{width - 10:.0f}" y1="{ty:.1f}" y2="{ty:.1f}" '
                 f'stroke="#ddd"/><text x="{left - 5}" y="{ty + 4:.1f}" '
                 f'text-anchor="end">{t:g}</text>')
    s.append(f'<text transform="translate(16,{top + plot_h / 2}) rotate(-90)" '
             f'text-anchor="middle">{esc(ylabel)}</text>')
    base = y(lo)
    for gi, g in enumerate(groups):
        bars = [(si, v) for si, v in enumerate(values[gi]) if v is not None]
        x0 = left + gi * group_w + (group_w - bw * len(bars)) / 2
        for k, (si, v) in enumerate(bars):
            x, yv = x0 + k * bw, y(v)
            s.append(f'<rect x="{x:.1f}" y="{yv:.1f}" width="{bw - 2}" height="{base - yv:.1f}" '
                     f'fill="{COLORS[si]}"><title>{esc(g)}, {esc(series[si])}: '
                     f'{fmt.format(v)}</title></rect><text x="{x + bw / 2 - 1:.1f}" '
                     f'y="{yv - 3:.1f}" font-size="8" text-anchor="middle">{fmt.format(v)}</text>')
        for li, line in enumerate(g.split("\n")):
            s.append(f'<text x="{left + (gi + 0.5) * group_w:.1f}" y="{base + 16 + 13 * li:.0f}" '
                     f'text-anchor="middle">{esc(line)}</text>')
    if ref:
        s.append(f'<line x1="{left}" x2="{width - 10:.0f}" y1="{y(ref):.1f}" y2="{y(ref):.1f}" '
                 f'stroke="black" stroke-dasharray="5,3"/>')
    s.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{base}" stroke="black"/>')
    s.append(f'<text x="10" y="{height - 8}" font-size="10" fill="#555">{esc(note)}</text>')
    s.append("</svg>\n")
    with open(os.path.join(OUT, name), "w") as f:
        f.write("\n".join(s))
    return f"img/bench/{name}"


# ---------------------------------------------------------------------------------------------
# Markdown: each part turns its CSV files into tables and plots, and returns its targets as
# (target, measured, met) for the summary.


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def table(header, rows, text_columns=1):
    """A Markdown table; the first `text_columns` columns are left-aligned, the rest right."""
    out = ["| " + " | ".join(header) + " |",
           "| " + " | ".join("---" if i < text_columns else "---:" for i in range(len(header)))
           + " |"]
    return out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def status(ok):
    return "met" if ok else "**open**"


def header(meta):
    return [f"Command: `{meta['command']}` ({meta['parameters']}), run on {meta['date']} in "
            f"{meta['minutes']:.0f} min; load average {meta['load']} at the start. "
            f"{meta['peers']}", ""]


def figure(alt, path):
    return ["", f"![{alt}]({path})", ""]


def listing(names, xs, fmt="{:.2f}"):
    return ", ".join(f"{n} {fmt.format(x)}" for n, x in zip(names, xs))


def tcache_doc(meta):
    rows = read_csv("tcache.csv")
    peers = ["system", "mimalloc", "jemalloc"]
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    data, by_round = {}, {}  # values over rounds; each round's rows by allocator
    for r in rows:
        for k in ("ops_per_wall_s", "ops_per_cpu_s", "peak_rss_kib"):
            data.setdefault((r["workload"], r["allocator"], k), []).append(float(r[k]))
        by_round.setdefault((r["workload"], r["round"]), {})[r["allocator"]] = r
    m = lambda w, a, k: med(data.get((w, a, k), []))
    best = lambda w, k: max(m(w, "mimalloc", k), m(w, "jemalloc", k))
    # Against the faster of mimalloc and jemalloc: at least 0.9x single-threaded, 0.8x
    # cross-thread, and 1.0x on the application mix (issue 13).
    goal = {"pairs": 0.9, "window": 0.9, "window_2t": 0.8, "prodcons": 0.8, "appmix": 1.0}
    tput, rss, body, rss_body, vs_best, vs_system = [], [], [], [], [], []
    for w in workloads:
        f = m(w, "freespace", "ops_per_wall_s")
        ratios = [f / m(w, p, "ops_per_wall_s") for p in peers]
        rounds = [float(d["freespace"]["ops_per_wall_s"]) /
                  max(float(d[p]["ops_per_wall_s"]) for p in ("mimalloc", "jemalloc"))
                  for (w2, _), d in sorted(by_round.items()) if w2 == w and len(d) == 4]
        vs_best.append(f / best(w, "ops_per_wall_s"))
        vs_system.append(ratios[0])
        tput.append(ratios)
        body.append([f"`{w}`"] + [f"{x:.2f}" for x in ratios] +
                    [f"**{vs_best[-1]:.2f}**", f"{min(rounds):.2f}-{max(rounds):.2f}",
                     f"{m(w, 'freespace', 'ops_per_cpu_s') / best(w, 'ops_per_cpu_s'):.2f}",
                     f">= {goal.get(w, 0.9)}: {status(vs_best[-1] >= goal.get(w, 0.9))}"])
        fr = m(w, "freespace", "peak_rss_kib")
        rr = [fr / m(w, p, "peak_rss_kib") for p in peers]
        rss.append(rr)
        rss_body.append([f"`{w}`", f"{fr / 1024:.1f}"] + [f"{x:.2f}" for x in rr] +
                        [status(rr[1] <= 1.2)])
    note = f"made by: {meta['command']}"
    out = header(meta)
    out += table(["workload", "vs system", "vs mimalloc", "vs jemalloc", "vs best peer",
                  "vs best peer, range over rounds", "vs best peer, CPU time", "target"], body)
    out += ["", "Throughput of freespace divided by the peer's, by wall-clock time unless marked "
            "(higher is better; medians over the rounds). The best peer is the faster of mimalloc "
            "and jemalloc."]
    out += figure("tcache throughput", bar_chart(
        "tcache_throughput.svg", "freespace-tcache: throughput against each peer",
        "freespace / peer (higher is better)", workloads, peers, tput, note))
    out += table(["workload", "freespace peak RSS (MiB)", "vs system", "vs mimalloc",
                  "vs jemalloc", "target: <= 1.2x mimalloc"], rss_body)
    out += figure("tcache peak RSS", bar_chart(
        "tcache_rss.svg", "freespace-tcache: peak RSS against each peer",
        "freespace / peer (lower is better)", workloads, peers, rss, note))
    mi = [r[1] for r in rss]
    single = [(w, x) for w, x in zip(workloads, vs_best) if w != "appmix"]
    app = dict(zip(workloads, vs_best)).get("appmix", float("nan"))
    app_rss = dict(zip(workloads, mi)).get("appmix", float("nan"))
    targets = [
        ("faster than the system allocator on every workload",
         f"{min(vs_system):.2f}x-{max(vs_system):.2f}x", min(vs_system) > 1),
        ("at least 0.9x the best peer single-threaded, 0.8x cross-thread",
         listing([w for w, _ in single], [x for _, x in single]),
         all(x >= goal.get(w, 0.9) for w, x in single)),
        ("`appmix` at least 1.0x the best peer (issue 13)", f"{app:.2f}", app >= 1.0),
        ("peak RSS at most 1.2x mimalloc's", f"{min(mi):.2f}x-{max(mi):.2f}x", max(mi) <= 1.2),
        ("`appmix` peak RSS at most mimalloc's (issue 13)", f"{app_rss:.2f}x", app_rss <= 1.0),
    ]
    return out, targets


# Short names of capi_compare.sh's programs, for the plots and the summary.
SHORT = {"python3 threads, PYTHONMALLOC=malloc": "python3 (malloc)",
         "python3 threads, pymalloc": "python3 (pymalloc)", "sqlite3 100k rows": "sqlite3",
         "git init+add+commit, 2000 files": "git"}


def capi_doc(meta):
    rows = read_csv("capi.csv")
    peers = ["glibc", "jemalloc", "mimalloc", "tcmalloc"]
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    data = {}
    for r in rows:
        for k in ("wall_s", "cpu_s", "peak_rss_kib"):
            data.setdefault((r["workload"], r["allocator"], k), []).append(float(r[k]))
    m = lambda w, a, k: med(data.get((w, a, k), []))
    short = [SHORT.get(w, w) for w in workloads]
    body, times, mems, vs_best = [], [], [], {}
    for w in workloads:
        for k, label in (("wall_s", "wall time"), ("cpu_s", "CPU time"),
                         ("peak_rss_kib", "peak RSS")):
            ratios = [m(w, "freespace", k) / m(w, p, k) for p in peers]
            vs_best[w, k] = max(ratios)
            body.append([w if k == "wall_s" else "", label] + [f"{x:.2f}" for x in ratios] +
                        [f"**{max(ratios):.2f}**"])
            {"wall_s": times, "cpu_s": [], "peak_rss_kib": mems}[k].append(ratios)
        body.append(["", "glibc, absolute", f"{m(w, 'glibc', 'wall_s'):.2f} s wall, "
                     f"{m(w, 'glibc', 'cpu_s'):.2f} s CPU, "
                     f"{m(w, 'glibc', 'peak_rss_kib') / 1024:.1f} MiB", "", "", "", ""])
    note = f"made by: {meta['command']}"
    out = header(meta)
    out += table(["program", "metric", "vs glibc", "vs jemalloc", "vs mimalloc", "vs tcmalloc",
                  "vs best peer"], body, 2)
    out += ["", "Each cell is freespace's median divided by the peer's (lower is better). The "
            "best peer is the one with the lowest median."]
    out += figure("capi wall time", bar_chart(
        "capi_time.svg", "libfreespace.so: wall time against each peer",
        "freespace / peer (lower is better)", short, peers, times, note))
    out += figure("capi peak RSS", bar_chart(
        "capi_rss.svg", "libfreespace.so: peak RSS against each peer",
        "freespace / peer (lower is better)", short, peers, mems, note))
    heavy = next((w for w in workloads if "PYTHONMALLOC=malloc" in w), workloads[0])
    heavy_glibc = m(heavy, "freespace", "wall_s") / m(heavy, "glibc", "wall_s")
    wall = [vs_best[w, "wall_s"] for w in workloads]
    mem = [vs_best[w, "peak_rss_kib"] for w in workloads]
    targets = [
        ("faster than glibc on the allocation-heavy run (python3, `PYTHONMALLOC=malloc`)",
         f"{heavy_glibc:.2f}x glibc's wall time", heavy_glibc < 1),
        ("wall time within 1.2x the best peer on every program", listing(short, wall),
         max(wall) <= 1.2),
        ("peak RSS within 1.2x the best peer on every program", listing(short, mem),
         max(mem) <= 1.2),
    ]
    return out, targets


def malloc_doc(meta):
    rows = read_csv("malloc_ratios.csv")
    eff = {r["allocator"]: r for r in read_csv("heap_efficiency.csv")}
    sizes = list(dict.fromkeys(r["max_size"] for r in rows))
    names = list(dict.fromkeys(r["allocator"] for r in rows))
    names += [n for n in eff if n not in names]
    get = {(r["max_size"], r["allocator"]): r for r in rows}
    ratio = lambda s, n, k: float(get[s, "talc"][k]) / float(get[s, n][k])
    body = []
    for n in names:
        cells = [f"{ratio(s, n, 'median_ns'):.2f}x ({ratio(s, n, 'best_ns'):.2f}x)"
                 if (s, n) in get else "" for s in sizes]
        e = eff.get(n)
        cells += ([f"{float(e['talc_method']) * 100:.2f}%",
                   f"{float(e['realloc_100k']) * 100:.2f}%"] if e else ["", ""])
        body.append([f"**{n}**" if n == "SegregatedFit" else n] + cells)
    note = f"made by: {meta['command']}"
    out = header(meta)
    out += table(["allocator"] + [f"throughput vs talc, max {int(s):,} B" for s in sizes] +
                 ["heap efficiency, talc's method", "heap efficiency, realloc <= 100 KB"], body)
    out += ["", "Throughput: talc's median time per replay divided by the contender's (higher is "
            "faster), and in parentheses the same ratio of the fastest rounds. Heap efficiency: "
            "live requested bytes over the region size at the first failed allocation, the mean "
            "over the trials."]
    per_script = {}  # (max size, seed) -> {allocator: row}
    for r in read_csv("malloc_scripts.csv"):
        per_script.setdefault((r["max_size"], r["seed"]), {})[r["allocator"]] = r
    seg, spread = [], []
    for s in sizes:
        xs = [float(d["talc"]["median_ns"]) / float(d["SegregatedFit"]["median_ns"])
              for (size, _), d in per_script.items() if size == s]
        seg.append(statistics.mean(xs))
        spread.append(f"{min(xs):.2f}-{max(xs):.2f}")
    n_scripts = len({seed for _, seed in per_script})
    rounds = meta["parameters"].split(" on ")[0]
    out += ["", f"The target is judged on SegregatedFit and talc alone, {rounds} on each of "
            f"{n_scripts} scripts (the published one and seeds 1 to {n_scripts - 1}). The mean of "
            "the per-script ratios of medians is " + " and ".join(
                f"**{x:.2f}x** at max {int(s):,} B ({r} per script)"
                for s, x, r in zip(sizes, seg, spread)) + "."]
    timed = [n for n in names if (sizes[0], n) in get]
    out += figure("core against talc", bar_chart(
        "malloc_ratios.svg", "freespace-malloc: random_actions throughput against talc",
        "talc time / contender time (higher is faster)", [f"max {int(s):,} B" for s in sizes],
        timed, [[ratio(s, n, "median_ns") for n in timed] for s in sizes], note))
    en = [n for n in names if n in eff]
    out += figure("heap efficiency", bar_chart(
        "heap_efficiency.svg", "freespace-malloc: heap efficiency (talc's method)",
        "live bytes at the first failure, % of the region", ["talc's method",
                                                             "realloc up to 100 KB"],
        en, [[float(eff[n][k]) * 100 for n in en] for k in ("talc_method", "realloc_100k")],
        note, log=False, ref=None, fmt="{:.1f}"))
    seg_eff = float(eff["SegregatedFit"]["talc_method"])
    targets = [
        (f"SegregatedFit at least 1.0x talc's throughput (mean over {n_scripts} scripts)",
         listing([f"max {int(s):,} B" for s in sizes], seg, "{:.2f}x"), min(seg) >= 1.0),
        ("SegregatedFit at least 97% heap efficiency", f"{seg_eff * 100:.2f}%", seg_eff >= 0.97),
    ]
    return out, targets


def handles_doc(meta):
    runs = {}  # (measurement, block, subject, baseline) -> baseline/subject time, per run
    for r in read_csv("handles.csv"):
        key = (r["measurement"], r["block_bytes"], r["subject"], r["baseline"])
        runs.setdefault(key, []).append(float(r["baseline_time"]) / float(r["subject_time"]))
    spread = lambda xs: f"{min(xs):.2f}-{max(xs):.2f}" if len(xs) > 1 else ""
    cost = lambda xs: [1 / x for x in xs]  # time ratios from throughput ratios
    g = runs["get", "", "arena", "slotmap"]
    ir = runs["insert_remove", "", "arena", "slotmap"]
    body = [["`get`: arena time / slotmap's", f"**{med(cost(g)):.2f}x**", spread(cost(g))],
            ["insert + remove of `u64` values: arena time / slotmap's", f"**{med(cost(ir)):.1f}x**",
             spread(cost(ir))]]
    groups, vals = ["get", "insert + remove"], [[med(g), None, None], [med(ir), None, None]]
    baselines = ["memmove in the buffer", "memcpy between vectors"]
    sliding = []
    for compactor in ("sliding", "two-finger"):
        for block in ("256", "4096", "65536"):
            xs = [runs.get(("compact", block, compactor, b), []) for b in baselines]
            if not xs[0]:
                continue
            size = f"{int(block) // 1024} KiB" if int(block) >= 1024 else f"{block} B"
            for b, x in zip(baselines, xs):
                body.append([f"{compactor} compaction, {size} blocks: bandwidth / {b}",
                             f"**{med(x):.2f}x**" if b == baselines[0] else f"{med(x):.2f}x",
                             spread(x)])
            groups.append(f"{compactor}\n{size}")
            vals.append([None, med(xs[0]), med(xs[1])])
            if compactor == "sliding":
                sliding.append((size, med(xs[0])))
    fp = read_csv("handles_footprint.csv")
    for r in fp:
        body.append([f"footprint / live bytes: {r['allocator']}",
                     f"{int(r['footprint_bytes']) / int(r['live_bytes']):.3f}", ""])
    out = header(meta)
    out += table(["measurement", "median", "range over runs"], body)
    out += ["", "`get` and insert + remove: the fastest of 3000 and 1000 interleaved rounds. "
            "Compaction: ratios of the medians of 15 interleaved rounds, every side starting with "
            "cold caches. The median and the range are over the runs. The footprint rows are "
            "deterministic."]
    out += figure("arena against its peers", bar_chart(
        "handles.svg", "freespace-handles: the arena against slotmap, memmove and memcpy",
        "arena throughput / peer (higher is better)", groups,
        ["slotmap", "memmove in the buffer", "memcpy between vectors"], vals,
        f"made by: {meta['command']}"))
    after = next(r for r in fp if r["allocator"] == "arena, after compact")
    live, foot = int(after["live_bytes"]), int(after["footprint_bytes"])
    targets = [
        ("`get` at most 1.05x slotmap's time (issue 13)", f"{med(cost(g)):.2f}x",
         med(cost(g)) <= 1.05),
        ("insert + remove at most 3x slotmap's time (issue 13)", f"{med(cost(ir)):.1f}x",
         med(cost(ir)) <= 3),
        ("sliding compaction at least 0.5x the bandwidth of a memmove in the buffer",
         listing([s for s, _ in sliding], [x for _, x in sliding], "{:.2f}x"),
         min(x for _, x in sliding) >= 0.5),
        ("no holes after `compact`: footprint within 1% (16-byte rounding) and a page of the "
         "live bytes, handle table apart",
         f"live + {foot - live:,} bytes ({foot / live:.3f}x)",
         foot <= live + live // 100 + 4096),
    ]
    return out, targets


DOCS = {"tcache": tcache_doc, "capi": capi_doc, "malloc": malloc_doc, "handles": handles_doc}
RUNS = {"tcache": run_tcache, "capi": run_capi, "malloc": run_malloc, "handles": run_handles}


def peers(part):
    """The peers' versions, as the lock file and the system's packages give them."""
    lock = open(os.path.join(ROOT, "Cargo.lock")).read()
    ver = lambda c: (re.search(rf'name = "{c}"\nversion = "([^"]+)"', lock) or [None, "?"])[1]
    if part == "tcache":
        return (f"Peers: glibc malloc, mimalloc {ver('libmimalloc-sys')} (libmimalloc-sys), "
                f"jemalloc (tikv-jemalloc-sys {ver('tikv-jemalloc-sys')}).")
    if part == "malloc":
        return (f"Peers: talc {ver('talc')}, rlsf {ver('rlsf')}, linked_list_allocator "
                f"{ver('linked_list_allocator')}.")
    if part == "handles":
        return f"Peer: slotmap {ver('slotmap')}."
    pkgs = ["libc6", "libjemalloc2", "libmimalloc2.0", "libtcmalloc-minimal4"]
    q = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n"] + pkgs,
                       capture_output=True, text=True).stdout.strip().splitlines()
    return "Peers (Debian packages): " + ", ".join(q) + "."


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated parts to run")
    ap.add_argument("--rounds", type=int, default=7, help="tcache rounds")
    ap.add_argument("--scale", type=float, default=2.0, help="tcache workload scale")
    ap.add_argument("--repeats", type=int, default=9, help="capi repetitions")
    ap.add_argument("--malloc-rounds", type=int, default=101, help="malloc_ratios rounds")
    ap.add_argument("--scripts", type=int, default=12, help="random_actions scripts (seeds)")
    ap.add_argument("--trials", type=int, default=100, help="heap-efficiency trials")
    ap.add_argument("--handles-runs", type=int, default=5, help="runs of the handles tables")
    ap.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
    ap.add_argument("--from-csv", action="store_true", help="run nothing; redraw from the CSVs")
    ap.add_argument("--print", action="store_true", help="print the blocks; leave the doc alone")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.scale, a.repeats, a.malloc_rounds, a.scripts, a.trials, a.handles_runs = (
            1, 0.1, 1, 3, 2, 5, 1)
    parts = a.only.split(",")
    if any(p not in PARTS for p in parts):
        sys.exit(f"report.py: --only takes a subset of {','.join(PARTS)}")
    os.makedirs(OUT, exist_ok=True)
    meta_path = os.path.join(OUT, "runs.json")
    metas = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    command = "benches/report.py" + "".join(f" {x}" for x in sys.argv[1:])
    if not a.from_csv:
        for p in parts:
            load = open("/proc/loadavg").read().split()[0]
            start = time.time()
            parameters = RUNS[p](a)
            metas[p] = {"command": command, "parameters": parameters,
                        "date": time.strftime("%Y-%m-%d"), "load": load,
                        "minutes": (time.time() - start) / 60, "peers": peers(p)}
            with open(meta_path, "w") as f:
                json.dump(metas, f, indent=1, sort_keys=True)
                f.write("\n")
    # Every part with data is drawn again, so the summary always covers all four.
    blocks, summary = {}, []
    for p in PARTS:
        if p in metas:
            lines, targets = DOCS[p](metas[p])
            blocks[p] = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
            summary += [[p, t, measured, status(ok)] for t, measured, ok in targets]
    blocks["summary"] = "\n".join(table(["part", "target", "measured", "status"], summary, 4))
    if a.print:
        for p, block in blocks.items():
            print(f"<!-- {p} -->\n{block}\n")
        return
    doc = open(DOC).read()
    for p, block in blocks.items():
        begin, end = f"<!-- BEGIN report: {p} -->", f"<!-- END report: {p} -->"
        if begin not in doc or end not in doc:
            sys.exit(f"report.py: {DOC} has no {begin} ... {end} block")
        head, rest = doc.split(begin, 1)
        doc = f"{head}{begin}\n{block}\n{end}{rest.split(end, 1)[1]}"
    with open(DOC, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    main()
