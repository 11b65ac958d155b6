#!/usr/bin/env bash
# Reproduces the tables of docs/performance.md in one run: `buildlog convert` throughput on
# one core and its peak RSS, against `wc -l` and `cat` on the same files; the cost of
# scrubbing; Fluent Bit (tail + one regex parser) on the same file; an archive of eight builds
# with --jobs 1 and all cores; `ship` to a real Loki, VictoriaLogs (Elasticsearch's `_bulk`)
# and Tempo (OTLP) against `convert` of the same build.
# The Fluent Bit and shipping sections need the real servers: BUILDLOG_PEERS=path/to/peers.
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
# shellcheck source=benches/peers.sh
. benches/peers.sh

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
    mapfile -t files < <(find -L "$dir" -type f | sort)
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

# CPU seconds (user+sys, mean of RUNS) of a command, as `measure` gives them.
cpu_of() { measure "$@" | awk '{ printf "%.2f", $2 }'; }
wall_of() { measure "$@" | cut -d' ' -f1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.2f" : "-"), a / b }'; }
mb_per() { awk -v bytes="$1" -v s="$2" 'BEGIN { printf (s > 0 ? "%.0f" : "-"), bytes / 1e6 / s }'; }

FIRST=$WORK/gen-${SIZES[0]}
FIRST_BYTES=$(find -L "$FIRST" -type f -exec cat {} + | wc -c)
B13=tests/fixtures/corpus/build-13-large
B13_BYTES=$(find "$B13" -type f -exec cat {} + | wc -c)

echo
echo "## Scrubbing"
echo
echo "CPU seconds (user+sys) of \`convert\` with scrubbing on (the default) and off, on the same input."
echo
echo "| input | MB | --no-scrub CPU-s | scrubbing CPU-s | scrubbing costs | MB per CPU-s (scrubbing on) |"
echo "|---|---:|---:|---:|---:|---:|"
for pair in "corpus build-13-large:$B13:$B13_BYTES" "generated ${SIZES[0]}:$FIRST:$FIRST_BYTES"; do
    IFS=: read -r name dir bytes <<<"$pair"
    off=$(cpu_of "$BIN" convert --quiet --no-scrub "$dir")
    on=$(cpu_of "$BIN" convert --quiet "$dir")
    awk -v n="$name" -v b="$bytes" -v off="$off" -v on="$on" 'BEGIN {
        printf "| %s | %.1f | %.2f | %.2f | %+.0f%% | %.0f |\n", n, b / 1e6, off, on, (on / off - 1) * 100, b / 1e6 / on }'
done

# Fluent Bit on the same bytes: one file (the generated build's install logs end to end),
# `tail` from the head to the end of the file, one regex parser, JSON lines on stdout.
if have_peers; then
    FB=$("$BUILDLOG_PEERS/peer" path fluent-bit)
    ONE=$WORK/all-install-${SIZES[0]}.log
    [ -f "$ONE" ] || cat "$FIRST"/*-install.log >"$ONE"
    ONE_BYTES=$(wc -c <"$ONE")
    cat >"$WORK/parsers.conf" <<'CONF'
[PARSER]
    Name   install
    Format regex
    Regex  ^(\[(?<clock>[0-9:]+)\] )?(?<message>.*)$
CONF
    echo
    echo "## Against Fluent Bit"
    echo
    echo "One file of $(awk -v b="$ONE_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }') MB ($(wc -l <"$ONE") lines: the generated ${SIZES[0]} build's install logs end to end). Fluent Bit $("$FB" --version | head -1 | cut -d' ' -f3): \`tail\` from the head to the end of the file, one regex parser, JSON lines on stdout."
    echo
    echo "| command | CPU-s | MB per CPU-s | CPU ÷ buildlog convert |"
    echo "|---|---:|---:|---:|"
    conv=$(cpu_of "$BIN" convert --quiet "$ONE")
    for c in "wc -l:wc -l $ONE" "cat:cat $ONE" \
        "buildlog convert --no-scrub:$BIN convert --quiet --no-scrub $ONE" \
        "buildlog convert:$BIN convert --quiet $ONE" \
        "Fluent Bit tail + regex:$FB -q -R $WORK/parsers.conf -i tail -p path=$ONE -p read_from_head=true -p exit_on_eof=true -p parser=install -p buffer_max_size=1m -o stdout -p format=json_lines -m *"; do
        name=${c%%:*}
        # Split into words, no glob (`-m *` is Fluent Bit's).
        set -f
        # shellcheck disable=SC2086
        cpu=$(cpu_of ${c#*:})
        set +f
        echo "| $name | $cpu | $(mb_per "$ONE_BYTES" "$cpu") | $(ratio "$cpu" "$conv")x |"
    done
fi

# Many builds: eight generated builds of 25MB, one after the other and on every core.
ARCHIVE=$WORK/archive-8x25MB
for i in 1 2 3 4 5 6 7 8; do
    [ -f "$ARCHIVE/build-$i/master-summary.log" ] ||
        "$GEN" --size 25MB --seed "$i" --out "$ARCHIVE/build-$i" >/dev/null
done
ARCHIVE_BYTES=$(find -L "$ARCHIVE" -type f -exec cat {} + | wc -c)
echo
echo "## An archive on every core"
echo
echo "\`convert\` of eight generated builds (25MB each, $(awk -v b="$ARCHIVE_BYTES" 'BEGIN { printf "%.0f", b / 1e6 }') MB in all) with \`--jobs 1\` and \`--jobs $(nproc)\` (not pinned to a core). The outputs are compared byte for byte."
echo
echo "| --jobs | wall s (median) | CPU-s | peak RSS MB | wall ÷ --jobs 1 |"
echo "|---:|---:|---:|---:|---:|"
# Unpinned: `measure` pins to core 0, which would defeat the threads.
unpinned() {
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f '%e %U %S' "$@" 2>&1 >/dev/null | tail -1
    done | sort -n | awk '{ w[NR] = $1; c += $2 + $3 } END { printf "%s %.2f\n", w[int((NR + 1) / 2)], c / NR }'
}
w1=
for j in 1 "$(nproc)"; do
    read -r w c < <(unpinned "$BIN" convert --quiet --jobs "$j" "$ARCHIVE")
    w1=${w1:-$w}
    rss=$(peak_rss_kb "$BIN" convert --quiet --jobs "$j" "$ARCHIVE")
    echo "| $j | $w | $c | $(awk -v r="$rss" 'BEGIN { printf "%.1f", r / 1024 }') | $(ratio "$w" "$w1") |"
done
cmp <("$BIN" convert --quiet --jobs 1 "$ARCHIVE") <("$BIN" convert --quiet --jobs "$(nproc)" "$ARCHIVE") >/dev/null &&
    echo && echo "Output of \`--jobs 1\` and \`--jobs $(nproc)\`: identical." ||
    { echo && echo "Output of \`--jobs 1\` and \`--jobs $(nproc)\`: DIFFERENT"; }

# Shipping to the real servers of the peers (Loki, VictoriaLogs for Elasticsearch's `_bulk`,
# Tempo for OTLP), against converting the same build. The servers run on the other core.
if have_peers; then
    other_cpu=$(($(nproc) > 1 ? 1 : 0))
    start_loki "$WORK/loki" 3199 9199 "$other_cpu"
    start_victoria_logs "$WORK/victoria-logs" 9429 "$other_cpu"
    start_tempo "$WORK/tempo" 3290 "$other_cpu"
    echo
    echo "## Shipping"
    echo
    echo "CPU seconds of the buildlog process only (pinned to core 0; the servers on core $other_cpu) for corpus build 13, pushing to real servers from the peers on 127.0.0.1: Loki, VictoriaLogs (Elasticsearch's \`_bulk\`) and Tempo (OTLP/HTTP)."
    echo
    echo "| command | CPU-s | ÷ convert |"
    echo "|---|---:|---:|"
    conv=$(cpu_of "$BIN" convert --quiet "$B13")
    echo "| convert | $conv | 1.00x |"
    for lf in json raw logfmt; do
        cpu=$(cpu_of "$BIN" ship --quiet --loki http://127.0.0.1:3199 --line-format "$lf" "$B13")
        echo "| ship --loki --line-format $lf | $cpu | $(ratio "$cpu" "$conv")x |"
    done
    # The defaults, then without the gzip body compression (what it costs). "label|arguments"
    ES=http://127.0.0.1:9429/insert/elasticsearch OTLP=http://127.0.0.1:3292
    for c in "--elasticsearch|--elasticsearch $ES" \
        "--elasticsearch --es-compression none|--elasticsearch $ES --es-compression none" \
        "--otlp|--otlp $OTLP" "--otlp --otlp-compression none|--otlp $OTLP --otlp-compression none"; do
        # shellcheck disable=SC2086
        cpu=$(cpu_of "$BIN" ship --quiet ${c#*|} "$B13")
        echo "| ship ${c%%|*} | $cpu | $(ratio "$cpu" "$conv")x |"
    done
fi
