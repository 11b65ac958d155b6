#!/usr/bin/env bash
# Reproduces the table of docs/performance.md: `buildlog convert` throughput on one core
# and its peak RSS, against `wc -l` and `cat` on the same files in the same run.
#
#   benches/run-perf.sh                 # the corpus build 13 and generated builds of 64MB 256MB 1GB
#   benches/run-perf.sh 16MB 200MB      # other generated sizes
#   BUILDLOG=path/to/buildlog benches/run-perf.sh   # measure another build of buildlog
#
# Needs: cargo, taskset (util-linux), /usr/bin/time (Debian: apt-get install -y time);
# hyperfine when installed (apt-get install -y hyperfine), else a loop of /usr/bin/time.
# Environment: RUNS (timed runs per command, default 5), BENCH_DIR (where generated builds
# go, default $TMPDIR/buildlog-bench; kept between runs, regenerated only when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
WORK=${BENCH_DIR:-${TMPDIR:-/tmp}/buildlog-bench}
TARGET=${CARGO_TARGET_DIR:-target}
if [ $# -gt 0 ]; then SIZES=("$@"); else SIZES=(64MB 256MB 1GB); fi

cargo build --quiet --release --bin buildlog --example gen_bench_log
BIN=${BUILDLOG:-$TARGET/release/buildlog}
GEN=$TARGET/release/examples/gen_bench_log
mkdir -p "$WORK"

echo "## Machine"
echo
echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores online"
echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "- Kernel: $(uname -sr); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- buildlog: $("$BIN" --version 2>/dev/null || echo "$BIN")"
echo "- Timing: $(command -v hyperfine >/dev/null && hyperfine --version || echo '/usr/bin/time loop'), $RUNS runs, pinned with taskset -c 0"
echo

# Seconds (wall median, user+sys mean) of a command pinned to core 0, output discarded.
measure() {
    if command -v hyperfine >/dev/null; then
        local csv
        csv=$(mktemp)
        taskset -c 0 hyperfine -N --warmup 1 --runs "$RUNS" --style none \
            --export-csv "$csv" "$*" >/dev/null 2>&1
        # command,mean,stddev,median,user,system,min,max
        tail -1 "$csv" | awk -F, '{ printf "%s %s\n", $(NF-4), $(NF-3) + $(NF-2) }'
        rm -f "$csv"
    else
        "$@" >/dev/null 2>&1 || true
        for _ in $(seq "$RUNS"); do
            /usr/bin/time -f '%e %U %S' taskset -c 0 "$@" 2>&1 >/dev/null | tail -1
        done | sort -n | awk '{ w[NR] = $1; c += $2 + $3 } END { printf "%s %s\n", w[int((NR + 1) / 2)], c / NR }'
    fi
}

peak_rss_kb() {
    /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }'
}

row() {
    local name=$1 dir=$2 files bytes lines
    # Every file the conversion reads: the same list for wc and cat.
    mapfile -t files < <(find "$dir" -type f | sort)
    bytes=$(cat "${files[@]}" | wc -c)
    lines=$(cat "${files[@]}" | wc -l)
    read -r wc_wall wc_cpu < <(measure wc -l "${files[@]}")
    read -r cat_wall _ < <(measure cat "${files[@]}")
    read -r cv_wall cv_cpu < <(measure "$BIN" convert --quiet "$dir")
    local rss events
    rss=$(peak_rss_kb "$BIN" convert --quiet "$dir")
    events=$("$BIN" convert --quiet "$dir" | wc -l)
    awk -v n="$name" -v b="$bytes" -v l="$lines" -v e="$events" -v ww="$wc_wall" -v wcpu="$wc_cpu" \
        -v cw="$cat_wall" -v vw="$cv_wall" -v vcpu="$cv_cpu" -v rss="$rss" '
        # Too short for the clock (a few ms of CPU): shown as "-".
        function f(x, y, fmt) { return y > 0 ? sprintf(fmt, x / y) : "-" }
        BEGIN {
        mb = b / 1e6
        printf "| %s | %.1f | %d | %d | %s | %s | %s / %s | %s M | %s / %s | %s | %.1f |\n",
            n, mb, l, e, f(mb, ww, "%.0f"), f(mb, cw, "%.0f"), f(mb, vw, "%.0f"), f(mb, vcpu, "%.0f"),
            f(l / 1e6, vcpu, "%.2f"), f(vw, ww, "%.1fx"), f(vcpu, wcpu, "%.1fx"), f(vw, cw, "%.1fx"), rss / 1024
    }'
}

echo "## Results"
echo
echo "MB = 10^6 bytes of input (every file of the build directory). \"wall / CPU\": MB per second of elapsed time (median) and of user+sys CPU time (mean)."
echo "Ratios: how many times longer \`convert\` takes than the baseline on the same files (wall, then CPU for wc)."
echo
echo "| input | MB | lines | events | wc -l MB/s | cat MB/s | convert MB/s wall / CPU | lines/s (CPU) | convert ÷ wc -l wall / CPU | convert ÷ cat (wall) | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
row "corpus build-13-large" tests/fixtures/corpus/build-13-large
for size in "${SIZES[@]}"; do
    dir=$WORK/gen-$size
    if [ ! -f "$dir/master-summary.log" ]; then
        "$GEN" --size "$size" --seed 1 --out "$dir" >/dev/null
    fi
    row "generated $size" "$dir"
done
