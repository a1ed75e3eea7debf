#!/usr/bin/env bash
# Runs real programs under glibc malloc, libfreespace.so, and Debian's jemalloc, mimalloc and
# tcmalloc (LD_PRELOAD), and prints wall time and peak RSS as ratios to glibc and to the best
# allocator of each row, as a Markdown table.
#
#   benches/capi_compare.sh [--csv FILE] [REPEATS]     (default 5; the median of the runs is used)
#
# --csv FILE also writes every run to FILE, one row each:
# repeat,workload,allocator,wall_s,cpu_s,peak_rss_kib (benches/report.py reads it).
#
# It installs libjemalloc2, libmimalloc2.0 and libtcmalloc-minimal4 with apt-get when missing,
# and builds libfreespace.so in release mode.
set -euo pipefail
CSV=
if [ "${1:-}" = --csv ]; then
  CSV=$(realpath -m "$2")
  shift 2
fi
cd "$(dirname "$0")/.."
ROOT=$PWD
REPEATS=${1:-5}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
LIBDIR=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

need=()
[ -e "$LIBDIR/libjemalloc.so.2" ] || need+=(libjemalloc2)
[ -e "$LIBDIR/libmimalloc.so.2" ] || need+=(libmimalloc2.0)
[ -e "$LIBDIR/libtcmalloc_minimal.so.4" ] || need+=(libtcmalloc-minimal4)
command -v sqlite3 >/dev/null || need+=(sqlite3)
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi
cargo build --release -p libfreespace >&2

NAMES=(glibc freespace jemalloc mimalloc tcmalloc)
PRELOADS=("" "$TARGET/release/libfreespace.so" "$LIBDIR/libjemalloc.so.2"
          "$LIBDIR/libmimalloc.so.2" "$LIBDIR/libtcmalloc_minimal.so.4")

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PROGRAMS=$ROOT/crates/capi/tests/programs
PY=$(command -v python3)
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
mkdir -p "$WORK/src"
for i in $(seq 1 2000); do printf 'file %d\n%s\n' "$i" "$(seq 1 $((i % 300)))" >"$WORK/src/f$i.txt"; done

# label | setup (untimed, under glibc) | command (timed; run by bash -c in $WORK with LD_PRELOAD
# set for every process it starts)
WORKLOADS=(
  "python3 threads, PYTHONMALLOC=malloc||PYTHONMALLOC=malloc $PY $PROGRAMS/alloc_heavy.py"
  "python3 threads, pymalloc||$PY $PROGRAMS/alloc_heavy.py"
  "sqlite3 100k rows|rm -f t.db|sqlite3 t.db < $PROGRAMS/sqlite_100k.sql"
  "git init+add+commit, 2000 files|rm -rf r && cp -r src r|cd r && git init -q . && git add . && git -c user.name=b -c user.email=b@example.invalid commit -qm m"
)

# Appends "wall_seconds peak_kib cpu_seconds" for one run to $3.
run_once() {
  local preload=$1 cmd=$2 out=$3
  (cd "$WORK" && LD_PRELOAD=$preload /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.out" \
     bash -c "$cmd" >/dev/null 2>"$WORK/err.out") || { cat "$WORK/err.out" >&2; return 1; }
  awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$WORK/time.out" >>"$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# One row of ratios: to glibc (the first value) and to the best (smallest) value.
ratio_row() {
  local label=$1 name=$2; shift 2
  local vals=("$@") best
  best=$(printf '%s\n' "${vals[@]}" | sort -g | head -1)
  printf '| %s | %s |' "$label" "$name"
  for v in "${vals[@]}"; do
    awk -v v="$v" -v g="${vals[0]}" -v b="$best" 'BEGIN {
      r = (g > 0) ? v / g : 0; s = (b > 0) ? v / b : 0; printf " %.2f (%.2f) |", r, s }'
  done
  printf '\n'
}

[ -z "$CSV" ] || echo 'repeat,workload,allocator,wall_s,cpu_s,peak_rss_kib' >"$CSV"
printf 'Each cell: ratio to glibc (ratio to the best of the row); lower is better. Median of %s runs,\n' "$REPEATS"
printf 'the allocators taking turns within each repetition.\n\n'
printf '| workload | metric |'
for n in "${NAMES[@]}"; do printf ' %s |' "$n"; done
printf '\n|---|---|'
for _ in "${NAMES[@]}"; do printf -- '---|'; done
printf '\n'
for w in "${WORKLOADS[@]}"; do
  label=${w%%|*}
  rest=${w#*|}
  setup=${rest%%|*}
  cmd=${rest#*|}
  for i in "${!NAMES[@]}"; do : >"$WORK/runs.$i"; done
  for rep in $(seq 1 "$REPEATS"); do
    for i in "${!NAMES[@]}"; do
      [ -z "$setup" ] || (cd "$WORK" && bash -c "$setup")
      run_once "${PRELOADS[$i]}" "$cmd" "$WORK/runs.$i"
      [ -z "$CSV" ] || tail -1 "$WORK/runs.$i" |
        awk -v r="$rep" -v w="$label" -v a="${NAMES[$i]}" '{ printf "%s,\"%s\",%s,%s,%s,%s\n", r, w, a, $1, $3, $2 }' >>"$CSV"
    done
  done
  T=() M=() C=()
  for i in "${!NAMES[@]}"; do
    T[$i]=$(cut -d' ' -f1 "$WORK/runs.$i" | median)
    M[$i]=$(cut -d' ' -f2 "$WORK/runs.$i" | median)
    C[$i]=$(cut -d' ' -f3 "$WORK/runs.$i" | median)
  done
  ratio_row "$label" "wall time" "${T[@]}"
  ratio_row "$label" "cpu time (user+sys)" "${C[@]}"
  ratio_row "$label" "peak RSS" "${M[@]}"
  printf '| %s | glibc absolute | %ss wall, %ss cpu, %s KiB |' "$label" "${T[0]}" "${C[0]}" "${M[0]}"
  for _ in "${NAMES[@]:1}"; do printf ' |'; done
  printf '\n'
done
