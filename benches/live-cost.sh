#!/usr/bin/env bash
# What following a build costs: a build directory is written at RATE bytes per second (lines
# of a generated install log, a tenth of a second's worth at a time) for SECONDS seconds while
# `buildlog convert --follow` (and, with BUILDLOG_PEERS, `ship --follow --loki` into a real
# Loki) follows it; prints the follower's CPU time as a share of one core.
#
#   benches/live-cost.sh                       # 1 MB/s for 60 s
#   RATE=4000000 SECONDS_=30 benches/live-cost.sh
#
# Needs: cargo, python3 (the writer), curl (Loki's readiness).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/peers.sh
. benches/peers.sh

RATE=${RATE:-1000000}
DURATION=${SECONDS_:-60}
WORK=${BENCH_DIR:-${TMPDIR:-/tmp}/buildlog-bench}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release --bin buildlog --example gen_bench_log
BIN=${BUILDLOG:-$TARGET/release/buildlog}
SRC=$WORK/live-source
[ -f "$SRC/master-summary.log" ] ||
    "$TARGET/release/examples/gen_bench_log" --size 200MB --seed 3 --out "$SRC" >/dev/null
SRC_LOG=$(ls -S "$SRC"/*-install.log | head -1)

# CPU seconds (user + sys) a process has used, from /proc/PID/stat.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

# Writes RATE bytes a second of SRC_LOG's lines into $1/<name> for DURATION seconds.
write_build() {
    python3 - "$SRC_LOG" "$1/$(basename "$SRC_LOG")" "$RATE" "$DURATION" <<'PY'
import sys, time
src, dst, rate, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
step = rate / 10
with open(src, "rb") as f, open(dst, "ab", buffering=0) as out:
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < duration:
        chunk = f.readlines(int(step))
        if not chunk:
            f.seek(0)
            continue
        out.write(b"".join(chunk))
        tick += 1
        time.sleep(max(0.0, start + tick / 10 - time.monotonic()))
PY
}

# Follows a fresh build directory with "$@" (the directory is appended) while it is written.
follow_cost() {
    local dir
    dir=$(mktemp -d "$WORK/live-XXXXXX")
    "$@" "$dir" >/dev/null 2>"$dir.err" &
    local pid=$!
    sleep 1
    local before
    before=$(cpu_seconds "$pid")
    write_build "$dir"
    sleep 2 # the last lines go out
    local after
    after=$(cpu_seconds "$pid")
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local bytes
    bytes=$(cat "$dir"/*.log | wc -c)
    awk -v c="$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')" -v d="$DURATION" -v b="$bytes" \
        'BEGIN { printf "| %.1f MB in %d s | %.2f | %.2f%% |\n", b / 1e6, d, c, c / (d + 2) * 100 }'
    rm -rf "$dir" "$dir.err"
}

echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| follower | written | CPU-s | share of one core |"
echo "|---|---|---:|---:|"
printf '| convert --follow '
follow_cost "$BIN" convert --follow --quiet

if have_peers; then
    start_loki "$WORK/live-loki" 3198 9198
    printf '| ship --follow --loki '
    follow_cost "$BIN" ship --follow --quiet --loki http://127.0.0.1:3198
    kill "$LOKI_PID" 2>/dev/null || true
fi
