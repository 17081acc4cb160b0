#!/usr/bin/env bash
# Throwaway RabbitMQ node for Celeriac tests, demos and benchmarks.
#
# It never touches a broker that is already running on the machine: it has
# its own node name, ports, Erlang cookie (HOME=$DIR) and data dir, and it
# refuses to start if one of its ports is already taken.
#
# Usage: scripts/broker.sh start|stop|restart|pause|resume|env|status|ctl ARGS...|destroy
#
# Settings (environment):
#   CELERIAC_BROKER_DIR               data dir        (default: $REPO/.run/broker)
#   CELERIAC_BROKER_PORT              AMQP port       (default: 5682)
#                                     TLS port = PORT+1, Erlang dist port = PORT+20000,
#                                     rabbitmq_prometheus on 127.0.0.1:PORT+10000 (/metrics, /metrics/detailed),
#                                     node name = celeriac<PORT>@localhost
#   CELERIAC_BROKER_CONSUMER_TIMEOUT_MS  consumer_timeout (optional)
#   CELERIAC_BROKER_LOG_LEVEL         node log level  (default: info; log in $DIR/log/rabbit.log)
#
# `start` and `env` print `export ...` lines on stdout, so
#   eval "$(scripts/broker.sh start)"
# works. All diagnostics go to stderr, prefixed "broker.sh:".
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SELF="$REPO/scripts/broker.sh"
RMQ_BIN=/usr/lib/rabbitmq/bin

PORT=${CELERIAC_BROKER_PORT:-5682}
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || (( PORT < 1024 || PORT > 45000 )); then
    echo "broker.sh: CELERIAC_BROKER_PORT must be a number in 1024..45000 (got '$PORT')" >&2
    exit 2
fi
TLS_PORT=$((PORT + 1))
DIST_PORT=$((PORT + 20000))
PROMETHEUS_PORT=$((PORT + 10000))   # rabbitmq_prometheus (default 15692 would clash between nodes)
NODE="celeriac${PORT}@localhost"
DIR=${CELERIAC_BROKER_DIR:-$REPO/.run/broker}
[[ "$DIR" == /* ]] || DIR="$PWD/$DIR"
# so that nested "$SELF ctl ..." calls resolve the same node
export CELERIAC_BROKER_DIR="$DIR" CELERIAC_BROKER_PORT="$PORT"
PID_FILE="$DIR/pid"
WRAPPER_PID_FILE="$DIR/wrapper.pid"
LOG_DIR="$DIR/log"
NODE_LOG="$LOG_DIR/rabbit.log"
STARTUP_LOG="$LOG_DIR/startup.out"
TLS_DIR="$DIR/tls"
START_TIMEOUT=60
STOP_TIMEOUT=30

log() { echo "broker.sh: $*" >&2; }
die() { echo "broker.sh: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- environment
# Everything the RabbitMQ scripts read. Existing RABBITMQ_* variables from the
# caller are dropped so they cannot redirect us to another node.
rmq_env() {
    local v
    for v in $(compgen -e); do
        case "$v" in RABBITMQ_*|ERL_EPMD_*) unset "$v" ;; esac
    done
    export HOME="$DIR"                       # private $DIR/.erlang.cookie
    export RABBITMQ_NODENAME="$NODE"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT="$PORT"
    export RABBITMQ_DIST_PORT="$DIST_PORT"
    export RABBITMQ_MNESIA_BASE="$DIR/mnesia"
    export RABBITMQ_LOG_BASE="$LOG_DIR"
    export RABBITMQ_PID_FILE="$PID_FILE"
    export RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config"
    export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"   # else /etc/rabbitmq/rabbitmq-env.conf
    export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
    export RABBITMQ_PLUGINS_EXPAND_DIR="$DIR/plugins-expand"
    # Erlang distribution on loopback only (the CLI connects via localhost).
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}


print_env() {
    cat <<EOF
export CELERIAC_TEST_BROKER_URL='amqp://guest:guest@127.0.0.1:${PORT}/%2F'
export CELERIAC_TEST_BROKER_TLS_URL='amqps://guest:guest@localhost:${TLS_PORT}/%2F'
export CELERIAC_TEST_TLS_DIR='${TLS_DIR}'
export CELERIAC_TEST_BROKER_CTL='${SELF}'
export CELERIAC_TEST_BROKER_PORT='${PORT}'
export CELERIAC_TEST_BROKER_PROMETHEUS_PORT='${PROMETHEUS_PORT}'
EOF
}

# ---------------------------------------------------------------- processes
# PID of the beam process if it is alive (pid file written by the node).
node_pid() {
    local pid
    [[ -s "$PID_FILE" ]] || return 1
    pid=$(tr -dc '0-9' < "$PID_FILE")
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Must really be an Erlang VM (guards against PID reuse), and not a zombie.
    grep -q 'beam' "/proc/$pid/comm" 2>/dev/null || return 1
    [[ "$(proc_state "$pid")" != Z ]] || return 1
    echo "$pid"
}

proc_state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true; }

wrapper_pid() {
    local pid
    [[ -s "$WRAPPER_PID_FILE" ]] || return 1
    pid=$(tr -dc '0-9' < "$WRAPPER_PID_FILE")
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    grep -q 'rabbitmq-server' "/proc/$pid/cmdline" 2>/dev/null || return 1
    [[ "$(proc_state "$pid")" != Z ]] || return 1
    echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_gone PID SECONDS -> 0 if the process exited in time
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2)) st
    while kill -0 "$pid" 2>/dev/null; do
        st=$(proc_state "$pid")
        [[ "$st" == Z || -z "$st" ]] && return 0
        (( SECONDS >= deadline )) && return 1
        sleep 0.1
    done
    return 0
}

LOG_OFFSET=0   # size of rabbit.log when this start began: only show what is new
show_log_tail() {
    echo "broker.sh: ---- last 40 lines of $STARTUP_LOG ----" >&2
    tail -n 40 "$STARTUP_LOG" 2>/dev/null | sed 's/^/broker.sh: | /' >&2 || true
    if [[ -s "$NODE_LOG" ]] && (( $(stat -c %s "$NODE_LOG") > LOG_OFFSET )); then
        echo "broker.sh: ---- last 40 new lines of $NODE_LOG ----" >&2
        tail -c +$((LOG_OFFSET + 1)) "$NODE_LOG" | tail -n 40 | sed 's/^/broker.sh: | /' >&2
    fi
}

# ---------------------------------------------------------------- files
write_configs() {
    mkdir -p "$DIR" "$LOG_DIR" "$DIR/mnesia" "$DIR/plugins-expand"
    # Private Erlang cookie, created before node and CLI race to make one.
    if [[ ! -s "$DIR/.erlang.cookie" ]]; then
        ( umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' > "$DIR/.erlang.cookie" )
        chmod 400 "$DIR/.erlang.cookie"
    fi
    # rabbitmq_prometheus only (no management UI): the dashboard/alert test scrapes the node's own metrics.
    echo '[rabbitmq_prometheus].' > "$DIR/enabled_plugins"
    echo '[].' > "$DIR/advanced.config"
    echo '# intentionally empty: keeps /etc/rabbitmq/rabbitmq-env.conf out' > "$DIR/rabbitmq-env.conf"
    {
        echo "# generated by scripts/broker.sh; rewritten on every start"
        echo "listeners.tcp.default = 127.0.0.1:${PORT}"
        echo "listeners.ssl.default = ${TLS_PORT}"
        echo "ssl_options.cacertfile = ${TLS_DIR}/ca.pem"
        echo "ssl_options.certfile = ${TLS_DIR}/server.pem"
        echo "ssl_options.keyfile = ${TLS_DIR}/server.key"
        echo "ssl_options.verify = verify_peer"
        echo "ssl_options.fail_if_no_peer_cert = false"
        echo "prometheus.tcp.ip = 127.0.0.1"
        echo "prometheus.tcp.port = ${PROMETHEUS_PORT}"
        echo "disk_free_limit.absolute = 50MB"
        echo "log.console = false"
        echo "log.dir = ${LOG_DIR}"
        echo "log.file = rabbit.log"
        echo "log.file.level = ${CELERIAC_BROKER_LOG_LEVEL:-info}"
        if [[ -n "${CELERIAC_BROKER_CONSUMER_TIMEOUT_MS:-}" ]]; then
            [[ "$CELERIAC_BROKER_CONSUMER_TIMEOUT_MS" =~ ^[0-9]+$ ]] \
                || die "CELERIAC_BROKER_CONSUMER_TIMEOUT_MS must be an integer"
            echo "consumer_timeout = ${CELERIAC_BROKER_CONSUMER_TIMEOUT_MS}"
        fi
    } > "$DIR/rabbitmq.conf"
}

tls_ok() {
    local f
    for f in ca.pem ca.key server.pem server.key client.pem client.key wrong-ca.pem wrong-ca.key; do
        [[ -s "$TLS_DIR/$f" ]] || return 1
    done
    # regenerate when anything expires within a day
    for f in ca.pem server.pem client.pem wrong-ca.pem; do
        openssl x509 -in "$TLS_DIR/$f" -noout -checkend 86400 >/dev/null 2>&1 || return 1
    done
    openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" "$TLS_DIR/client.pem" >/dev/null 2>&1
}

gen_tls() {
    command -v openssl >/dev/null || die "openssl not found (run scripts/bootstrap.sh)"
    tls_ok && return 0
    log "generating TLS material in $TLS_DIR"
    local t="$TLS_DIR.tmp.$$"
    rm -rf "$t"; mkdir -p "$t"
    (
        set -e
        cd "$t"
        cat > ca.ext <<'EOF'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
        cat > server.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
        cat > client.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
        serial() { echo "0x$(openssl rand -hex 8)"; }
        mkca() { # name CN
            openssl genrsa -out "$1.key" 2048
            openssl req -new -key "$1.key" -subj "/O=Celeriac tests/CN=$2" -out "$1.csr"
            openssl x509 -req -in "$1.csr" -signkey "$1.key" -days 30 -sha256 \
                -set_serial "$(serial)" -extfile ca.ext -out "$1.pem"
        }
        mkleaf() { # name CN
            openssl genrsa -out "$1.key" 2048
            openssl req -new -key "$1.key" -subj "/O=Celeriac tests/CN=$2" -out "$1.csr"
            openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -days 30 -sha256 \
                -set_serial "$(serial)" -extfile "$1.ext" -out "$1.pem"
        }
        mkca ca "Celeriac Test CA"
        mkleaf server localhost
        mkleaf client celeriac-client
        mkca wrong-ca "Celeriac Unrelated CA"
        rm -f ./*.csr ./*.ext
        chmod 644 ./*.pem
        chmod 600 ./*.key
    ) > "$t.log" 2>&1 || { sed 's/^/broker.sh: | /' "$t.log" >&2; rm -rf "$t" "$t.log"; die "TLS generation failed"; }
    rm -f "$t.log"
    rm -rf "$TLS_DIR"
    mv "$t" "$TLS_DIR"
    tls_ok || die "generated TLS material does not verify"
}

# ---------------------------------------------------------------- commands
# wait_ready DEADLINE -> 0 once the node answers await_startup and both the
# AMQP and AMQPS ports accept connections; 1 if the node died or time ran out.
wait_ready() {
    local deadline=$1 left
    while (( SECONDS < deadline )); do
        if ! node_pid >/dev/null; then
            # pid file not written yet (early boot) or node gone. The launched process counts as alive while
            # it exists at all: under load it may not have exec'd rabbitmq-server yet (its cmdline is bash's).
            if [[ -n "${LAUNCHED_PID:-}" ]] && kill -0 "$LAUNCHED_PID" 2>/dev/null; then
                sleep 0.2
                continue
            fi
            if ! wrapper_pid >/dev/null; then
                sleep 0.2
                node_pid >/dev/null || return 1
            fi
            sleep 0.2
            continue
        fi
        left=$((deadline - SECONDS)); (( left < 1 )) && left=1
        # (GNU timeout signals the whole process group, so the CLI's erl dies too)
        if timeout "$left" "$SELF" ctl -q await_startup --timeout "$left" >/dev/null 2>&1; then
            while (( SECONDS < deadline )); do
                port_open "$PORT" && port_open "$TLS_PORT" && return 0
                sleep 0.1
            done
            return 1
        fi
        sleep 0.3
    done
    return 1
}

cmd_start() {
    local pid t0=$SECONDS
    if pid=$(node_pid); then
        if [[ "$(proc_state "$pid")" == T ]]; then
            log "node $NODE (pid $pid) is running but PAUSED; run '$0 resume'"
        elif port_open "$PORT" && port_open "$TLS_PORT"; then
            log "node $NODE already running (pid $pid)"
        else
            log "node $NODE (pid $pid) is still starting; waiting for it"
            LOG_OFFSET=$(stat -c %s "$NODE_LOG" 2>/dev/null || echo 0)
            if ! wait_ready $((t0 + START_TIMEOUT)); then
                show_log_tail
                die "node $NODE (pid $pid) not ready after ${START_TIMEOUT}s"
            fi
            log "node $NODE ready (pid $pid)"
        fi
        print_env
        return 0
    fi
    [[ -x "$RMQ_BIN/rabbitmq-server" ]] || die "$RMQ_BIN/rabbitmq-server not found (run scripts/bootstrap.sh)"
    # Leftover wrapper from a node that died: get rid of it (by PID).
    if pid=$(wrapper_pid); then kill -TERM "$pid" 2>/dev/null || true; wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true; fi
    local p
    for p in "$PORT" "$TLS_PORT" "$DIST_PORT" "$PROMETHEUS_PORT"; do
        if port_open "$p"; then
            die "port $p on 127.0.0.1 is already in use by another process; not starting (set CELERIAC_BROKER_PORT to use other ports)"
        fi
    done

    write_configs
    gen_tls
    rm -f "$PID_FILE" "$WRAPPER_PID_FILE"
    : > "$STARTUP_LOG"
    LOG_OFFSET=$(stat -c %s "$NODE_LOG" 2>/dev/null || echo 0)

    log "starting node $NODE (amqp 127.0.0.1:$PORT, amqps :$TLS_PORT, dist $DIST_PORT, dir $DIR)"
    t0=$SECONDS
    (
        rmq_env
        cd "$DIR"
        # setsid: own session, so a Ctrl-C in the caller's terminal does not reach the node.
        # All std fds redirected (and the lock fd closed) so "$(broker.sh start)" does not
        # wait for the node and the node does not hold the lock.
        exec setsid "$RMQ_BIN/rabbitmq-server" </dev/null >>"$STARTUP_LOG" 2>&1 9>&-
    ) &
    local wpid=$!
    LAUNCHED_PID=$wpid
    echo "$wpid" > "$WRAPPER_PID_FILE"
    disown "$wpid" 2>/dev/null || true

    if ! wait_ready $((t0 + START_TIMEOUT)); then
        show_log_tail
        if node_pid >/dev/null || wrapper_pid >/dev/null; then
            log "node $NODE not ready after ${START_TIMEOUT}s; stopping it"
            cmd_stop >/dev/null 2>&1 || true
        else
            log "node $NODE exited during startup"
        fi
        die "broker start failed"
    fi
    log "node $NODE ready (pid $(node_pid)) in $((SECONDS - t0))s"
    print_env
}

cmd_stop() {
    local pid wpid st
    pid=$(node_pid) || pid=""
    wpid=$(wrapper_pid) || wpid=""
    if [[ -z "$pid" && -z "$wpid" ]]; then
        log "node $NODE is not running"
        rm -f "$PID_FILE" "$WRAPPER_PID_FILE"
        return 0
    fi
    if [[ -n "$pid" ]]; then
        st=$(proc_state "$pid")
        [[ "$st" == T || "$st" == t ]] && kill -CONT "$pid" 2>/dev/null || true
        log "stopping node $NODE (pid $pid)"
        local t0=$SECONDS
        if ! timeout "$STOP_TIMEOUT" "$SELF" ctl -q shutdown >/dev/null 2>&1; then
            log "rabbitmqctl shutdown failed or timed out; sending SIGTERM to pid $pid"
        fi
        if ! wait_gone "$pid" 1; then
            kill -TERM "$pid" 2>/dev/null || true
            if ! wait_gone "$pid" 15; then
                log "pid $pid ignored SIGTERM; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                wait_gone "$pid" 5 || die "could not kill pid $pid"
            fi
        fi
        log "node $NODE stopped in $((SECONDS - t0))s"
    fi
    # The rabbitmq-server shell wrapper exits once beam is gone.
    if wpid=$(wrapper_pid); then
        if ! wait_gone "$wpid" 5; then
            kill -TERM "$wpid" 2>/dev/null || true
            wait_gone "$wpid" 5 || kill -KILL "$wpid" 2>/dev/null || true
        fi
    fi
    rm -f "$PID_FILE" "$WRAPPER_PID_FILE"
}

cmd_signal() { # SIG verb
    local pid
    pid=$(node_pid) || die "node $NODE is not running"
    kill "-$1" "$pid"
    log "$2 node $NODE (beam pid $pid)"
}

cmd_status() {
    local pid
    if pid=$(node_pid); then
        if [[ "$(proc_state "$pid")" == T ]]; then echo "paused (pid $pid)"; else echo "running (pid $pid)"; fi
    else
        echo "stopped"; return 3
    fi
}

cmd_destroy() {
    cmd_stop
    if [[ -d "$DIR" ]]; then
        rm -rf "$DIR"
        log "removed $DIR"
    fi
}

usage() {
    echo "usage: $0 start|stop|restart|pause|resume|env|status|ctl ARGS...|destroy" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
cmd=$1; shift

# Serialize start/stop/restart/destroy on the same data dir.
case "$cmd" in
    start|stop|restart|destroy)
        mkdir -p "$DIR"
        exec 9>"$DIR/.lock"
        if command -v flock >/dev/null 2>&1 && ! flock -w 120 9; then
            die "timed out waiting for $DIR/.lock"
        fi
        ;;
esac
case "$cmd" in
    start)   cmd_start ;;
    stop)    cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    pause)   cmd_signal STOP "paused" ;;
    resume)  cmd_signal CONT "resumed" ;;
    env)     print_env ;;
    status)  cmd_status ;;
    ctl)     rmq_env; exec "$RMQ_BIN/rabbitmqctl" -n "$NODE" "$@" ;;
    destroy) cmd_destroy ;;
    -h|--help|help) usage ;;
    *) echo "broker.sh: unknown command '$cmd'" >&2; usage ;;
esac
