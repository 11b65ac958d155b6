# Sourced by the bench scripts: the real servers of the peers ($BUILDLOG_PEERS).

# True when the peers are given.
have_peers() { [ -n "${BUILDLOG_PEERS:-}" ] && [ -x "$BUILDLOG_PEERS/peer" ]; }

# start_loki DIR HTTP_PORT GRPC_PORT [taskset CPU list]: a real Loki with a fresh data
# directory DIR, stopped when the script exits; returns once it is ready. Sets LOKI_PID.
start_loki() {
    local dir=$1 http=$2 grpc=$3 cpus=${4:-}
    rm -rf "$dir" && mkdir -p "$dir"
    "$BUILDLOG_PEERS/peer" loki-config "$dir" "$http" "$grpc" >"$dir/loki.yaml"
    local bin
    bin=$("$BUILDLOG_PEERS/peer" path loki)
    if [ -n "$cpus" ]; then
        taskset -c "$cpus" "$bin" -config.file="$dir/loki.yaml" >"$dir/log" 2>&1 &
    else
        "$bin" -config.file="$dir/loki.yaml" >"$dir/log" 2>&1 &
    fi
    LOKI_PID=$!
    trap 'kill $LOKI_PID 2>/dev/null' EXIT
    for _ in $(seq 120); do
        curl -fsS "http://127.0.0.1:$http/ready" 2>/dev/null | grep -q ready && return 0
        sleep 1
    done
    echo "Loki did not get ready; see $dir/log" >&2
    return 1
}
