#!/usr/bin/env bash
# Local test infrastructure for grid-epi: one PostgreSQL and one single-node
# KRaft Kafka broker, run as plain processes (no container engine needed).
#
#   deploy/local/infra.sh up [kafka]  start both, or the broker alone (idempotent, fast when running)
#   deploy/local/infra.sh down     stop both, keep data
#   deploy/local/infra.sh status   one line per server; exit 0 if both run, 3 otherwise
#   deploy/local/infra.sh env      print exports: eval "$(deploy/local/infra.sh env)"
#   deploy/local/infra.sh reset    stop both and delete $GRID_STATE_DIR (not the jar cache)
#   deploy/local/infra.sh topics ARGS...  Kafka's topic tool against the local broker,
#                                  e.g. topics --list (bootstrap server is filled in)
#
# Knobs (environment):
#   GRID_STATE_DIR              data, logs, pid files    (default /var/tmp/grid-epi)
#   GRID_CACHE_DIR              downloaded Kafka jars    (default ${XDG_CACHE_HOME:-$HOME/.cache}/grid-epi)
#   GRID_PG_PORT                PostgreSQL TCP port      (default 55432)
#   GRID_KAFKA_PORT             Kafka client port        (default 59092)
#   GRID_KAFKA_CONTROLLER_PORT  KRaft controller port    (default 59093)
#   GRID_KAFKA_VERSION          Kafka version; default tries 3.9.1, then 3.9.0
#   GRID_INFRA_TIMEOUT          seconds a server may go without answering or making
#                               visible progress (log output) during start (default 60)
#   GRID_INFRA_MAX_WAIT         hard limit on waiting for Kafka to load its logs (default 1200)
#   GRID_KAFKA_SASL             1: the client listener is SASL_PLAINTEXT, SCRAM-SHA-512, with one
#                               user made when the storage is formatted (default 0: PLAINTEXT);
#                               `env` then prints the client settings for it
#   GRID_KAFKA_SASL_USERNAME    that user                (default grid)
#   GRID_KAFKA_SASL_PASSWORD    its password             (default: generated on first format,
#                               kept in $GRID_STATE_DIR/kafka/sasl.password, mode 600)
#   GRID_INFRA                  "local" (default); "docker" is not supported yet
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
# Pinned so that a plugin release can never change what gets downloaded.
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.10.0"

GRID_STATE_DIR="${GRID_STATE_DIR:-/var/tmp/grid-epi}"
GRID_CACHE_DIR="${GRID_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/grid-epi}"
GRID_PG_PORT="${GRID_PG_PORT:-55432}"
GRID_KAFKA_PORT="${GRID_KAFKA_PORT:-59092}"
GRID_KAFKA_CONTROLLER_PORT="${GRID_KAFKA_CONTROLLER_PORT:-59093}"
GRID_KAFKA_VERSION="${GRID_KAFKA_VERSION:-}"
GRID_INFRA_TIMEOUT="${GRID_INFRA_TIMEOUT:-60}"
GRID_INFRA_MAX_WAIT="${GRID_INFRA_MAX_WAIT:-1200}"
GRID_INFRA="${GRID_INFRA:-local}"
GRID_KAFKA_SASL="${GRID_KAFKA_SASL:-0}"
GRID_KAFKA_SASL_USERNAME="${GRID_KAFKA_SASL_USERNAME:-grid}"

PG_DIR="$GRID_STATE_DIR/pg"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
PG_DB="grid"

KAFKA_DIR="$GRID_STATE_DIR/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_CFG="$KAFKA_DIR/server.properties"
KAFKA_LOG4J="$KAFKA_DIR/log4j.properties"
KAFKA_TOOLS_LOG4J="$KAFKA_DIR/tools-log4j.properties"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
KAFKA_OUT="$KAFKA_DIR/kafka.out"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_CLUSTER_ID="$KAFKA_DIR/cluster.id"
# SCRAM users exist only if the storage was formatted with them: the user name is noted here
KAFKA_SCRAM_USER="$KAFKA_DIR/scram.user"
KAFKA_SASL_PASSWORD="$KAFKA_DIR/sasl.password"
KAFKA_CLIENT_CFG="$KAFKA_DIR/client.properties"
KAFKA_SCRAM="SCRAM-SHA-512"

# ---------------------------------------------------------------- helpers

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# apt-get needs a fresh package list on a new machine, so update first.
apt_install() {
    is_root || die "missing packages ($*); install them or re-run as root"
    log "installing with apt-get: $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "$@" >&2
}

# Print the last 30 lines of each given log that exists (for failure reports).
show_log_tail() {
    local f
    for f in "$@"; do
        [[ -s "$f" ]] || continue
        printf -- '----- last 30 lines of %s -----\n' "$f" >&2
        tail -n 30 "$f" >&2
        printf -- '----- end of %s -----\n' "$f" >&2
    done
}

# mkdir -p, but every directory we create gets mode 755 regardless of umask:
# the postgres user must be able to traverse into $GRID_STATE_DIR/pg.
make_dirs() {
    local target="$1" path="" part
    local -a parts
    IFS='/' read -r -a parts <<<"$target"
    [[ "$target" == /* ]] || path="."
    for part in "${parts[@]}"; do
        [[ -n "$part" ]] || continue
        path="$path/$part"
        if [[ ! -d "$path" ]]; then
            mkdir "$path"
            chmod 755 "$path"
        fi
    done
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    python3 - "$1" <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

# Serialise up/down/reset so two concurrent callers (e.g. parallel CI jobs)
# don't both initdb or both start a broker. The lock is fd 9; the servers we
# start must not inherit it, or it would stay held for as long as they run.
take_lock() {
    make_dirs "$GRID_STATE_DIR"
    exec 9>"$GRID_STATE_DIR/.lock"
    flock -w $((GRID_INFRA_MAX_WAIT + GRID_INFRA_TIMEOUT)) 9 || die "another infra.sh holds $GRID_STATE_DIR/.lock"
}

# ---------------------------------------------------------------- PostgreSQL

# Newest Debian PostgreSQL bin dir. Deliberately not PATH: /usr/local/bin may
# hold unrelated pg_ctl/initdb binaries.
pg_bindir() {
    local d best=""
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] || continue
        best="$(printf '%s\n%s\n' "$best" "$d" | sed '/^$/d' | sort -V | tail -n 1)"
    done
    printf '%s' "$best"
}

ensure_pg_installed() {
    PG_BIN="$(pg_bindir)"
    if [[ -z "$PG_BIN" ]]; then
        apt_install postgresql postgresql-contrib
        PG_BIN="$(pg_bindir)"
        [[ -n "$PG_BIN" ]] || die "apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb"
    fi
    local ver
    ver="$(basename "$(dirname "$PG_BIN")")"
    if [[ ! -f "/usr/share/postgresql/$ver/extension/ltree.control" ]]; then
        apt_install postgresql-contrib
    fi
}

# PostgreSQL refuses to run as root, so as root everything server-side runs as
# the postgres user. cd / first: the caller's cwd (e.g. /root) may not be
# readable by postgres, which makes initdb/pg_ctl complain.
as_pg() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

pg_running() {
    [[ -n "${PG_BIN:-}" && -f "$PG_DATA/PG_VERSION" ]] || return 1
    as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

# Line 1 of postmaster.pid is the pid, line 4 the port.
pg_pid()  { sed -n 1p "$PG_DATA/postmaster.pid" 2>/dev/null || true; }
pg_live_port() { sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null || true; }

pg_prepare_dirs() {
    make_dirs "$PG_DIR"
    if is_root; then
        id postgres >/dev/null 2>&1 || die "user 'postgres' does not exist (postgresql package broken?)"
        chown postgres:postgres "$PG_DIR"
        # A parent we did not create (e.g. under /root) may block postgres.
        runuser -u postgres -- test -w "$PG_DIR" \
            || die "user postgres cannot reach $PG_DIR; make every parent of GRID_STATE_DIR traversable (chmod o+x) or choose another GRID_STATE_DIR"
    fi
}

pg_initdb() {
    [[ -f "$PG_DATA/PG_VERSION" ]] && return 0
    # A half-made data dir from an interrupted initdb would make initdb fail.
    rm -rf "$PG_DATA"
    local locale="C"
    if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then locale="C.UTF-8"; fi
    log "initdb $PG_DATA (locale $locale)"
    # -U postgres so the DSN's user exists even when not run as root.
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale="$locale" >"$PG_DIR/initdb.log" 2>&1 \
        || { show_log_tail "$PG_DIR/initdb.log"; die "initdb failed (log: $PG_DIR/initdb.log)"; }
    # Our settings live in grid.conf (rewritten on every up, so port changes
    # apply on the next start); postgresql.conf only includes it, last.
    printf "\n# Settings for grid-epi tests, managed by deploy/local/infra.sh\ninclude_if_exists = 'grid.conf'\n" \
        | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

pg_write_conf() {
    # fsync/synchronous_commit/full_page_writes off: throwaway test server,
    # durability across power loss is not worth the latency.
    as_pg tee "$PG_DATA/grid.conf" >/dev/null <<EOF
# Managed by deploy/local/infra.sh; rewritten on every 'up'.
listen_addresses = '127.0.0.1'
port = $GRID_PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
}

pg_start() {
    if pg_running; then
        local live
        live="$(pg_live_port)"
        [[ "$live" == "$GRID_PG_PORT" ]] \
            || die "PostgreSQL in $PG_DATA runs on port $live, not GRID_PG_PORT=$GRID_PG_PORT; run 'down' then 'up'"
        log "postgres already running (pid $(pg_pid), port $GRID_PG_PORT)"
        return 0
    fi
    port_open "$GRID_PG_PORT" && die "port $GRID_PG_PORT is taken by another process; set GRID_PG_PORT"
    log "starting postgres on 127.0.0.1:$GRID_PG_PORT"
    # 9>&-: the postmaster must not inherit (and so keep holding) our lock.
    as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t "$GRID_INFRA_TIMEOUT" >/dev/null 9>&- \
        || { show_log_tail "$PG_LOG"; die "PostgreSQL did not start within ${GRID_INFRA_TIMEOUT}s (log: $PG_LOG)"; }
}

pg_psql() {
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$GRID_PG_PORT" -U postgres "$@"
}

pg_ensure_db() {
    if [[ "$(pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]]; then
        log "creating database $PG_DB"
        pg_psql -d postgres -c "CREATE DATABASE $PG_DB"
    fi
    pg_psql -d "$PG_DB" -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS ltree"
}

pg_up() {
    ensure_pg_installed
    pg_prepare_dirs
    pg_initdb
    pg_write_conf
    pg_start
    pg_ensure_db
}

pg_down() {
    PG_BIN="$(pg_bindir)"
    if pg_running; then
        log "stopping postgres (pid $(pg_pid))"
        as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t "$GRID_INFRA_TIMEOUT" >/dev/null
    else
        log "postgres not running"
    fi
}

# ---------------------------------------------------------------- Kafka

ensure_java_mvn() {
    if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
        apt_install default-jre-headless maven
    fi
}

kafka_libs_dir() { printf '%s/kafka-%s/libs' "$GRID_CACHE_DIR" "$1"; }

# The marker is written only after Maven succeeded, so an interrupted
# download is redone instead of leaving a broker with missing classes.
kafka_libs_complete() {
    local libs
    libs="$(kafka_libs_dir "$1")"
    [[ -f "$libs/.complete" && -f "$libs/kafka_2.13-$1.jar" ]]
}

kafka_download() {
    local ver="$1" libs mvn_log
    libs="$(kafka_libs_dir "$ver")"
    mvn_log="$GRID_CACHE_DIR/kafka-$ver/maven.log"
    rm -rf "$libs"
    make_dirs "$libs"
    log "downloading Kafka $ver jars with Maven into $libs"
    local t0=$SECONDS
    if mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" -Dkafka.version="$ver" -DoutputDirectory="$libs" \
        "$DEPENDENCY_PLUGIN:copy-dependencies" >"$mvn_log" 2>&1 \
        && [[ -f "$libs/kafka_2.13-$ver.jar" ]]; then
        date -u +%FT%TZ >"$libs/.complete"
        log "downloaded Kafka $ver in $((SECONDS - t0))s"
        return 0
    fi
    log "Maven could not resolve Kafka $ver (log: $mvn_log)"
    tail -n 15 "$mvn_log" >&2 || true
    return 1
}

# Sets KAFKA_VERSION and KAFKA_LIBS, downloading when not cached.
ensure_kafka_jars() {
    local candidates ver
    if [[ -n "$GRID_KAFKA_VERSION" ]]; then candidates="$GRID_KAFKA_VERSION"; else candidates="3.9.1 3.9.0"; fi
    # Prefer whatever is already cached: no network at all on a warm machine.
    for ver in $candidates; do
        if kafka_libs_complete "$ver"; then
            KAFKA_VERSION="$ver"; KAFKA_LIBS="$(kafka_libs_dir "$ver")"; return 0
        fi
    done
    ensure_java_mvn
    for ver in $candidates; do
        if kafka_download "$ver"; then
            KAFKA_VERSION="$ver"; KAFKA_LIBS="$(kafka_libs_dir "$ver")"; return 0
        fi
    done
    die "could not download Kafka ($candidates) from Maven Central"
}

kafka_sasl_on() { [[ "$GRID_KAFKA_SASL" =~ ^(1|true|yes|on)$ ]]; }

# Before anything is written for SASL: the SCRAM user exists only if the storage was formatted
# with it (KRaft keeps credentials in its metadata log), so SASL on older storage needs a
# 'reset'; its password is the given one, else the one kept from the first format, else a new
# random one (kept for later runs). Another password than the user was made with could never
# log in, so that is refused too.
kafka_sasl_prepare() {
    kafka_sasl_on || return 0
    # it goes into a JAAS line and StorageTool's --add-scram list: no quotes, commas or brackets
    if [[ -n "${GRID_KAFKA_SASL_PASSWORD:-}" && ! "$GRID_KAFKA_SASL_PASSWORD" =~ ^[A-Za-z0-9._~+/=-]+$ ]]; then
        die "GRID_KAFKA_SASL_PASSWORD may hold only letters, digits and . _ ~ + / = -"
    fi
    if [[ -f "$KAFKA_DATA/meta.properties" && "$(cat "$KAFKA_SCRAM_USER" 2>/dev/null)" != "$GRID_KAFKA_SASL_USERNAME" ]]; then
        die "the broker's storage in $KAFKA_DATA was formatted without SCRAM user '$GRID_KAFKA_SASL_USERNAME'; 'reset' (deletes its data) or choose another GRID_STATE_DIR"
    fi
    if [[ -s "$KAFKA_SASL_PASSWORD" ]]; then
        if [[ -n "${GRID_KAFKA_SASL_PASSWORD:-}" && "$GRID_KAFKA_SASL_PASSWORD" != "$(cat "$KAFKA_SASL_PASSWORD")" ]]; then
            die "GRID_KAFKA_SASL_PASSWORD differs from the password the broker's user was made with ($KAFKA_SASL_PASSWORD); unset it, or 'reset' to format anew"
        fi
    else
        (umask 077 && printf '%s' "${GRID_KAFKA_SASL_PASSWORD:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')}" >"$KAFKA_SASL_PASSWORD")
    fi
}

kafka_sasl_password() { cat "$KAFKA_SASL_PASSWORD"; }

kafka_jaas() {
    printf 'org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";' \
        "$GRID_KAFKA_SASL_USERNAME" "$1"
}

# The listener clients use: PLAINTEXT on loopback, or SASL_PLAINTEXT (SCRAM) when asked for.
# The broker's files hold the password then, so they are readable by this user alone.
kafka_listener_conf() {
    if kafka_sasl_on; then
        local password
        password="$(kafka_sasl_password)"
        cat <<EOF
listeners=SASL_PLAINTEXT://127.0.0.1:$GRID_KAFKA_PORT,CONTROLLER://127.0.0.1:$GRID_KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$GRID_KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=$KAFKA_SCRAM
sasl.mechanism.inter.broker.protocol=$KAFKA_SCRAM
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=$(kafka_jaas "$password")
EOF
        (umask 077 && cat >"$KAFKA_CLIENT_CFG" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=$KAFKA_SCRAM
sasl.jaas.config=$(kafka_jaas "$password")
EOF
        )
    else
        rm -f "$KAFKA_CLIENT_CFG"
        cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$GRID_KAFKA_PORT,CONTROLLER://127.0.0.1:$GRID_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$GRID_KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
EOF
    fi
}

kafka_write_conf() {
    make_dirs "$KAFKA_DATA"
    local listener
    listener="$(kafka_listener_conf)"
    # Rewritten on every up so port variables take effect on the next start.
    (umask 077 && cat >"$KAFKA_CFG" <<EOF
# Managed by deploy/local/infra.sh; rewritten on every 'up'.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$GRID_KAFKA_CONTROLLER_PORT
$listener
offsets.topic.replication.factor=1
# Fewer offsets partitions than the default 50 keeps startup light.
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# Consumers may ask for session timeouts down to 3 s (the broker's default floor is 6 s), so a
# replica that dies or freezes loses its partitions within seconds.
group.min.session.timeout.ms=3000
auto.create.topics.enable=false
num.partitions=6
log.dirs=$KAFKA_DATA
# Loading partitions at start (and recovering them after an unclean stop) in parallel.
num.recovery.threads.per.data.dir=4
log.retention.ms=-1
EOF
    )
    # Everything to a size-capped file; nothing on the console.
    cat >"$KAFKA_LOG4J" <<EOF
# Managed by deploy/local/infra.sh
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$KAFKA_LOG
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.zookeeper=WARN
EOF
}

# CLI tools (StorageTool, TopicCommand) only warn, on stderr; without a config
# log4j prints "no appenders" noise.
kafka_write_tools_log4j() {
    make_dirs "$KAFKA_DIR"
    cat >"$KAFKA_TOOLS_LOG4J" <<'EOF'
# Managed by deploy/local/infra.sh
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# A KRaft cluster id is 16 random bytes, base64url without padding; Kafka
# itself avoids ids starting with '-' because they look like CLI flags.
kafka_new_cluster_id() {
    python3 -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break'
}

# With SASL, the SCRAM user is made here, with the storage.
kafka_format() {
    [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
    [[ -s "$KAFKA_CLUSTER_ID" ]] || kafka_new_cluster_id >"$KAFKA_CLUSTER_ID"
    local -a scram=()
    rm -f "$KAFKA_SCRAM_USER"
    if kafka_sasl_on; then
        scram=(--add-scram "$KAFKA_SCRAM=[name=$GRID_KAFKA_SASL_USERNAME,password=$(kafka_sasl_password)]")
    fi
    log "formatting KRaft storage in $KAFKA_DATA"
    java -Dlog4j.configuration="file:$KAFKA_TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool \
        format --ignore-formatted -t "$(cat "$KAFKA_CLUSTER_ID")" -c "$KAFKA_CFG" "${scram[@]}" >"$KAFKA_DIR/format.out" 2>&1 \
        || { show_log_tail "$KAFKA_DIR/format.out" "$KAFKA_LOG"; die "kafka storage format failed (log: $KAFKA_DIR/format.out)"; }
    if kafka_sasl_on; then printf '%s' "$GRID_KAFKA_SASL_USERNAME" >"$KAFKA_SCRAM_USER"; fi
}

# Pid of our broker, or nothing. Checks the command line so that a recycled
# pid belonging to some other process is not mistaken for the broker.
kafka_pid() {
    local pid
    [[ -f "$KAFKA_PID" ]] || return 0
    pid="$(cat "$KAFKA_PID")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'; then
        printf '%s' "$pid"
    fi
}

# Real readiness: send an ApiVersions request (key 18, v0) and expect a
# response with error_code 0. The broker only serves requests once it is
# registered and unfenced, so this means topics can be created.
kafka_answers() {
    python3 - "$GRID_KAFKA_PORT" <<'PY'
import socket, struct, sys
client = b"grid-infra"
body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
        s.settimeout(2)
        s.sendall(struct.pack(">i", len(body)) + body)
        head = b""
        while len(head) < 10:
            chunk = s.recv(10 - len(head))
            if not chunk:
                sys.exit(1)
            head += chunk
        _size, corr, err = struct.unpack(">iih", head)
        sys.exit(0 if corr == 1 and err == 0 else 1)
except OSError:
    sys.exit(1)
PY
}

kafka_fail() {
    show_log_tail "$KAFKA_LOG" "$KAFKA_OUT"
    die "$1 (log: $KAFKA_LOG, stdout/stderr: $KAFKA_OUT)"
}

# Size of the broker's log file: it grows while the broker loads partitions.
kafka_log_size() {
    stat -c %s "$KAFKA_LOG" 2>/dev/null || echo 0
}

# A broker that restarts over many partitions (or after an unclean stop) spends
# a while loading logs before it answers; that is progress, not a hang. Wait as
# long as its log keeps growing, up to GRID_INFRA_MAX_WAIT; give up after
# GRID_INFRA_TIMEOUT seconds without an answer or a new log line.
kafka_wait_ready() {
    local started=$SECONDS size last_size=-1 last_progress=$SECONDS
    until kafka_answers; do
        [[ -n "$(kafka_pid)" ]] || kafka_fail "Kafka exited during startup"
        size="$(kafka_log_size)"
        if [[ "$size" != "$last_size" ]]; then
            last_size="$size"
            last_progress=$SECONDS
        fi
        ((SECONDS - last_progress < GRID_INFRA_TIMEOUT)) \
            || kafka_fail "Kafka did not answer on 127.0.0.1:$GRID_KAFKA_PORT and logged nothing for ${GRID_INFRA_TIMEOUT}s; it is left running as pid $(kafka_pid) ('down' stops it)"
        ((SECONDS - started < GRID_INFRA_MAX_WAIT)) \
            || kafka_fail "Kafka did not answer on 127.0.0.1:$GRID_KAFKA_PORT within ${GRID_INFRA_MAX_WAIT}s; it is left running as pid $(kafka_pid) ('down' stops it)"
        sleep 0.5
    done
}

kafka_start() {
    local pid
    pid="$(kafka_pid)"
    if [[ -n "$pid" ]]; then
        log "kafka already running (pid $pid, port $GRID_KAFKA_PORT)"
        kafka_wait_ready
        return 0
    fi
    local p
    for p in "$GRID_KAFKA_PORT" "$GRID_KAFKA_CONTROLLER_PORT"; do
        port_open "$p" && die "port $p is taken by another process; set GRID_KAFKA_PORT / GRID_KAFKA_CONTROLLER_PORT"
    done
    log "starting kafka $KAFKA_VERSION on 127.0.0.1:$GRID_KAFKA_PORT"
    # setsid + nohup + closed stdin: the broker must outlive this script and
    # the caller's terminal/process group (CI step, test runner). 9>&-: it
    # must not inherit (and so keep holding) our lock.
    setsid nohup java -Xmx512m -Xms256m -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$KAFKA_LOG4J" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CFG" \
        </dev/null >"$KAFKA_OUT" 2>&1 9>&- &
    echo $! >"$KAFKA_PID"
    local started=$SECONDS
    kafka_wait_ready
    log "kafka ready after $((SECONDS - started))s (pid $(kafka_pid))"
}

kafka_up() {
    ensure_kafka_jars
    make_dirs "$KAFKA_DIR"
    kafka_sasl_prepare
    local before=""
    [[ -f "$KAFKA_CFG" ]] && before="$(cat "$KAFKA_CFG")"
    kafka_write_conf
    kafka_write_tools_log4j
    kafka_format
    # A broker started from an older config (e.g. before group.min.session.timeout.ms was
    # lowered) would refuse the services' consumer groups: restart it with the new one.
    if [[ -n "$(kafka_pid)" && "$before" != "$(cat "$KAFKA_CFG")" ]]; then
        log "kafka config changed; restarting the broker"
        kafka_down
    fi
    kafka_start
}

kafka_down() {
    local pid waited=0
    pid="$(kafka_pid)"
    if [[ -z "$pid" ]]; then
        log "kafka not running"
        rm -f "$KAFKA_PID"
        return 0
    fi
    log "stopping kafka (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # Controlled shutdown normally takes a few seconds; don't hang forever:
    # 60 polls x 0.5 s = 30 s, then SIGKILL.
    while kill -0 "$pid" 2>/dev/null && ((waited < 60)); do
        sleep 0.5
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "kafka ignored SIGTERM for 30s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$KAFKA_PID"
}

# ---------------------------------------------------------------- commands

cmd_up() {
    local only="${1:-}"
    [[ -z "$only" || "$only" == kafka ]] || die "up takes no argument or 'kafka', not '$only'"
    take_lock
    local t0=$SECONDS
    [[ "$only" == kafka ]] || pg_up
    kafka_up
    local how="PLAINTEXT"
    if kafka_sasl_on; then how="SASL_PLAINTEXT/$KAFKA_SCRAM user $GRID_KAFKA_SASL_USERNAME"; fi
    log "up in $((SECONDS - t0))s; DSN postgresql://postgres@127.0.0.1:$GRID_PG_PORT/$PG_DB, Kafka 127.0.0.1:$GRID_KAFKA_PORT ($how)"
}

cmd_down() {
    take_lock
    kafka_down
    pg_down
}

cmd_reset() {
    # Guard against deleting something that is clearly not our state dir.
    case "$GRID_STATE_DIR" in
        "" | / | /var | /var/tmp | /tmp | "$HOME") die "refusing to delete GRID_STATE_DIR=$GRID_STATE_DIR" ;;
    esac
    cmd_down
    log "deleting $GRID_STATE_DIR"
    rm -rf "$GRID_STATE_DIR"
}

cmd_status() {
    local ok=0 pid
    PG_BIN="$(pg_bindir)"
    if pg_running; then
        printf 'postgres  running  port=%s  pid=%s  log=%s\n' "$(pg_live_port)" "$(pg_pid)" "$PG_LOG"
    else
        printf 'postgres  stopped  port=%s  pid=-  log=%s\n' "$GRID_PG_PORT" "$PG_LOG"
        ok=3
    fi
    pid="$(kafka_pid)"
    if [[ -n "$pid" ]]; then
        local state="running"
        kafka_answers || state="starting"
        printf 'kafka     %s  port=%s  pid=%s  log=%s\n' "$state" "$GRID_KAFKA_PORT" "$pid" "$KAFKA_LOG"
        [[ "$state" == running ]] || ok=3
    else
        printf 'kafka     stopped  port=%s  pid=-  log=%s\n' "$GRID_KAFKA_PORT" "$KAFKA_LOG"
        ok=3
    fi
    return "$ok"
}

# Since Kafka 3.5 the topic tool is org.apache.kafka.tools.TopicCommand (in
# kafka-tools), not kafka.admin.TopicCommand; this saves callers the details.
cmd_topics() {
    ensure_kafka_jars
    kafka_write_tools_log4j
    local -a auth=()
    if [[ -f "$KAFKA_CLIENT_CFG" ]]; then auth=(--command-config "$KAFKA_CLIENT_CFG"); fi
    exec java -Dlog4j.configuration="file:$KAFKA_TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" \
        org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$GRID_KAFKA_PORT" "${auth[@]}" "$@"
}

cmd_env() {
    printf 'export GRID_PG_DSN=postgresql://postgres@127.0.0.1:%s/%s\n' "$GRID_PG_PORT" "$PG_DB"
    printf 'export GRID_KAFKA_BOOTSTRAP=127.0.0.1:%s\n' "$GRID_KAFKA_PORT"
    # the broker's last 'up' decides: its client listener is SASL when the client file exists
    if [[ -f "$KAFKA_CLIENT_CFG" ]]; then
        printf 'export GRID_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT\n'
        printf 'export GRID_KAFKA_SASL_MECHANISM=%s\n' "$KAFKA_SCRAM"
        printf 'export GRID_KAFKA_SASL_USERNAME=%s\n' "$(cat "$KAFKA_SCRAM_USER")"
        printf 'export GRID_KAFKA_SASL_PASSWORD_FILE=%s\n' "$KAFKA_SASL_PASSWORD"
    fi
}

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
    local cmd="${1:-}"
    case "$GRID_INFRA" in
        local) ;;
        docker)
            # Honest refusal rather than a half-working container path.
            [[ "$cmd" == env ]] || die "GRID_INFRA=docker is not supported by this script yet; unset GRID_INFRA to run the local (embedded) servers"
            ;;
        *) die "unknown GRID_INFRA=$GRID_INFRA (expected 'local')" ;;
    esac
    case "$cmd" in
        up) shift; cmd_up "$@" ;;
        down) cmd_down ;;
        reset) cmd_reset ;;
        status) cmd_status ;;
        env) cmd_env ;;
        topics) shift; cmd_topics "$@" ;;
        -h | --help | help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
