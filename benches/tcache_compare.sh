#!/usr/bin/env bash
# Runs every tcache workload under each global allocator (freespace ThreadCached, system,
# mimalloc, jemalloc), one process per run so each peak RSS is its own, interleaving allocators
# round by round so background load hits them alike, and prints medians as ratios.
#
#   benches/tcache_compare.sh [--csv FILE] [ROUNDS] [SCALE]      (defaults: 3 rounds, scale 0.5)
#
# --csv FILE also writes every run to FILE, one row each:
# round,workload,allocator,ops_per_wall_s,peak_rss_kib,ops_per_cpu_s (benches/report.py reads it).
#
# Columns: throughput of freespace against the system allocator and against the faster of
# mimalloc and jemalloc (targets: > 1.0 and >= 0.9 single-threaded / >= 0.8 cross-thread), and
# peak RSS against mimalloc's (target: <= 1.2).
set -euo pipefail
CSV=
if [ "${1:-}" = --csv ]; then
  CSV=$(realpath -m "$2")
  shift 2
fi
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
SCALE="${2:-0.5}"
ALLOCATORS=(freespace system mimalloc jemalloc)
WORKLOADS=(pairs window window_2t prodcons appmix)
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT

for a in "${ALLOCATORS[@]}"; do
  cargo bench -q --bench "tcache_$a" --no-run >/dev/null 2>&1 || cargo bench --bench "tcache_$a" --no-run
done
for ((r = 1; r <= ROUNDS; r++)); do
  for w in "${WORKLOADS[@]}"; do
    for a in "${ALLOCATORS[@]}"; do
      cargo bench -q --bench "tcache_$a" -- "$w" --scale "$SCALE" 2>/dev/null |
        awk -v r="$r" '$1 == "RESULT" { print $0, r }' >>"$OUT"
    done
  done
  echo "round $r of $ROUNDS done" >&2
done
if [ -n "$CSV" ]; then
  awk 'BEGIN { print "round,workload,allocator,ops_per_wall_s,peak_rss_kib,ops_per_cpu_s" }
       { print $7 "," $3 "," $2 "," $4 "," $5 "," $6 }' "$OUT" >"$CSV"
fi

awk -v workloads="${WORKLOADS[*]}" '
function median(key,   n, i, j, t, v) {
  n = split(vals[key], v, " ")
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
  return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
$1 == "RESULT" {
  vals["wall," $2 "," $3] = vals["wall," $2 "," $3] " " $4
  vals["rss," $2 "," $3] = vals["rss," $2 "," $3] " " $5
  vals["cpu," $2 "," $3] = vals["cpu," $2 "," $3] " " $6
}
END {
  n = split(workloads, ws, " ")
  for (pass = 1; pass <= 2; pass++) {
    kind = (pass == 1) ? "wall" : "cpu"
    printf "\nthroughput in ops per %s second (medians)\n", kind
    printf "%-10s %12s %12s %12s %12s | %9s %8s %6s\n", "workload", "freespace", "system", "mimalloc", "jemalloc", "vs system", "vs best", "target"
    for (i = 1; i <= n; i++) {
      w = ws[i]
      f = median(kind ",freespace," w); s = median(kind ",system," w)
      m = median(kind ",mimalloc," w); j = median(kind ",jemalloc," w)
      best = (m > j) ? m : j
      target = (w == "window_2t" || w == "prodcons") ? 0.8 : 0.9
      printf "%-10s %12.0f %12.0f %12.0f %12.0f | %9.2f %8.2f %6.1f\n", w, f, s, m, j, f / s, f / best, target
    }
  }
  printf "\npeak RSS in KiB (medians; target: freespace <= 1.2x mimalloc)\n"
  printf "%-10s %12s %12s %12s %12s | %9s\n", "workload", "freespace", "system", "mimalloc", "jemalloc", "vs mimalloc"
  for (i = 1; i <= n; i++) {
    w = ws[i]
    f = median("rss,freespace," w); s = median("rss,system," w)
    m = median("rss,mimalloc," w); j = median("rss,jemalloc," w)
    printf "%-10s %12.0f %12.0f %12.0f %12.0f | %9.2f\n", w, f, s, m, j, f / m
  }
}' "$OUT"
