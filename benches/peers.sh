# Sourced by the bench scripts: the real servers of the peers ($BUILDLOG_PEERS).

# True when the peers are given.
have_peers() { [ -n "${BUILDLOG_PEERS:-}" ] && [ -x "$BUILDLOG_PEERS/peer" ]; }

# Every server started here, stopped when the script exits.
PEER_PIDS=()
trap 'for p in "${PEER_PIDS[@]}"; do kill "$p" 2>/dev/null; done' EXIT

# run_peer CPUS LOG COMMAND...: starts COMMAND in the background, on the CPU list CPUS when it
# is not empty; sets PEER_PID.
run_peer() {
    local cpus=$1 log=$2
    shift 2
    if [ -n "$cpus" ]; then
        taskset -c "$cpus" "$@" >"$log" 2>&1 &
    else
        "$@" >"$log" 2>&1 &
    fi
    PEER_PID=$!
    PEER_PIDS+=("$PEER_PID")
}

# wait_ready URL WORD LOG: waits up to two minutes for URL to answer with WORD in its body.
wait_ready() {
    for _ in $(seq 240); do
        curl -fsS "$1" 2>/dev/null | grep -q "$2" && return 0
        sleep 0.5
    done
    echo "no server ready at $1; see $3" >&2
    return 1
}

# start_loki DIR HTTP_PORT GRPC_PORT [taskset CPU list]: a real Loki with a fresh data
# directory DIR; returns once it is ready. Sets LOKI_PID.
start_loki() {
    local dir=$1 http=$2 grpc=$3 cpus=${4:-}
    rm -rf "$dir" && mkdir -p "$dir"
    "$BUILDLOG_PEERS/peer" loki-config "$dir" "$http" "$grpc" >"$dir/loki.yaml"
    run_peer "$cpus" "$dir/log" "$("$BUILDLOG_PEERS/peer" path loki)" -config.file="$dir/loki.yaml"
    LOKI_PID=$PEER_PID
    wait_ready "http://127.0.0.1:$http/ready" ready "$dir/log"
}

# start_victoria_logs DIR HTTP_PORT [taskset CPU list]: a real VictoriaLogs (Elasticsearch's
# `_bulk` at /insert/elasticsearch) with a fresh data directory DIR.
start_victoria_logs() {
    local dir=$1 http=$2 cpus=${3:-}
    rm -rf "$dir" && mkdir -p "$dir"
    run_peer "$cpus" "$dir/log" "$("$BUILDLOG_PEERS/peer" path victoria-logs)" \
        -storageDataPath="$dir/data" -httpListenAddr="127.0.0.1:$http"
    wait_ready "http://127.0.0.1:$http/health" OK "$dir/log"
}

# start_tempo DIR HTTP_PORT [taskset CPU list]: a real Tempo with a fresh data directory DIR;
# OTLP/HTTP listens on HTTP_PORT+2 (and gRPC on +1, OTLP/gRPC on +3).
start_tempo() {
    local dir=$1 http=$2 cpus=${3:-}
    rm -rf "$dir" && mkdir -p "$dir"
    "$BUILDLOG_PEERS/peer" tempo-config "$dir" "$http" >"$dir/tempo.yaml"
    run_peer "$cpus" "$dir/log" "$("$BUILDLOG_PEERS/peer" path tempo)" -config.file="$dir/tempo.yaml"
    wait_ready "http://127.0.0.1:$http/ready" ready "$dir/log"
}
