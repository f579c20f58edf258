#!/usr/bin/env bash
# Local infrastructure without Docker: Apache Kafka (KRaft, from Maven Central jars) and
# PostgreSQL (Debian's packages). Idempotent: `start` does only what is missing.
#
#   deploy/local/infra.sh start  [kafka|postgres|all]   install if needed, start, wait until ready
#   deploy/local/infra.sh stop   [kafka|postgres|all]   stop what this script started
#   deploy/local/infra.sh status [kafka|postgres|all]   exit 0 when every asked service is ready
#   deploy/local/infra.sh env                           print the env vars to point clients at them
#
# Configuration (environment): KOALR_KAFKA_PORT (19092), KOALR_KAFKA_CONTROLLER_PORT (19093),
# KOALR_PG_PORT (55432; away from a PostgreSQL already on 5432), KOALR_INFRA_DIR (.infra),
# KOALR_KAFKA_HEAP (512m), KOALR_READY_TIMEOUT_S (120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
INFRA_DIR="${KOALR_INFRA_DIR:-$ROOT/.infra}"
KAFKA_HOST=127.0.0.1
KAFKA_PORT="${KOALR_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KOALR_KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_HEAP="${KOALR_KAFKA_HEAP:-512m}"
KAFKA_DIR="$INFRA_DIR/kafka"
PG_PORT="${KOALR_PG_PORT:-55432}"
PG_CLUSTER="${KOALR_PG_CLUSTER:-koalr}"
PG_USER=koalr
PG_PASSWORD=koalr
PG_DB=koalr
READY_TIMEOUT_S="${KOALR_READY_TIMEOUT_S:-120}"
PYTHON="${KOALR_PYTHON:-$ROOT/.venv/bin/python}"

KAFKA_BOOTSTRAP="$KAFKA_HOST:$KAFKA_PORT"
DATABASE_URL_VALUE="postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"

say() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root for: $* (install sudo or run as root)"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-; }

# --- Kafka ----------------------------------------------------------------------------------

kafka_pid() {
  local pid
  [ -f "$KAFKA_DIR/kafka.pid" ] || return 1
  pid="$(cat "$KAFKA_DIR/kafka.pid")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q 'kafka.Kafka' "/proc/$pid/cmdline" 2>/dev/null \
    && echo "$pid"
}

# During start-up the recorded pid may not have exec'd into java yet; only liveness counts then.
kafka_started_alive() {
  [ -f "$KAFKA_DIR/kafka.pid" ] && kill -0 "$(cat "$KAFKA_DIR/kafka.pid")" 2>/dev/null
}

kafka_ready() {
  [ -x "$PYTHON" ] || { port_open "$KAFKA_PORT"; return; }
  "$PYTHON" "$ROOT/deploy/local/kafka_ready.py" "$KAFKA_BOOTSTRAP" "${1:-10}" >/dev/null 2>&1
}

kafka_install() {
  local version stamp
  version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/deploy/kafka/pom.xml")"
  stamp="$KAFKA_DIR/lib/.resolved-$(sha256sum "$ROOT/deploy/kafka/pom.xml" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  command -v java >/dev/null || die "Java 17+ is required for Kafka (apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "Maven is required to fetch the Kafka jars (apt-get install maven)"
  say "resolving Apache Kafka $version jars from Maven Central"
  rm -rf "$KAFKA_DIR/lib"; mkdir -p "$KAFKA_DIR/lib"
  mvn -B -q -Dstyle.color=never -f "$ROOT/deploy/kafka/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.11.0:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_DIR/lib" >&2
  touch "$stamp"
}

kafka_start() {
  if kafka_pid >/dev/null && kafka_ready 10; then say "kafka already running on $KAFKA_BOOTSTRAP"; return 0; fi
  if ! kafka_pid >/dev/null && port_open "$KAFKA_PORT"; then
    if kafka_ready 10; then
      say "a Kafka broker not started from $INFRA_DIR already answers on $KAFKA_BOOTSTRAP; using it"
      return 0
    fi
    die "port $KAFKA_PORT is taken by another process; set KOALR_KAFKA_PORT or stop it"
  fi
  kafka_install
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  sed -e "s|@KAFKA_HOST@|$KAFKA_HOST|g" -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
      -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@KAFKA_DATA@|$KAFKA_DIR/data|g" \
      "$ROOT/deploy/kafka/server.properties.template" > "$KAFKA_DIR/server.properties"
  local log_opts=(-Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" -Dkafka.logs.dir="$KAFKA_DIR/logs")
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cluster_id
    # 16 random bytes as unpadded base64url, not starting with '-' (the CLI would take it for a flag).
    cluster_id="$(python3 -c 'import base64,os
while True:
    c=base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    if c[0].isalnum(): print(c); break')"
    say "formatting KRaft storage (cluster $cluster_id)"
    java "${log_opts[@]}" -cp "$KAFKA_DIR/lib/*" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$KAFKA_DIR/server.properties" --standalone --ignore-formatted >&2
  fi
  if ! kafka_pid >/dev/null; then
    say "starting kafka on $KAFKA_BOOTSTRAP"
    setsid nohup java -Xms256m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "${log_opts[@]}" \
      -cp "$KAFKA_DIR/lib/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
      >"$KAFKA_DIR/logs/stdout.log" 2>&1 < /dev/null &
    echo $! > "$KAFKA_DIR/kafka.pid"
  fi
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until port_open "$KAFKA_PORT"; do
    kafka_started_alive || { tail -n 30 "$KAFKA_DIR/logs/stdout.log" >&2; die "kafka exited during start-up"; }
    [ $SECONDS -lt $deadline ] || die "kafka did not open port $KAFKA_PORT within ${READY_TIMEOUT_S}s"
    sleep 0.5
  done
  until kafka_ready 20; do
    kafka_started_alive || { tail -n 30 "$KAFKA_DIR/logs/stdout.log" >&2; die "kafka exited during start-up"; }
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$KAFKA_DIR/logs/stdout.log" >&2; die "kafka is up but a produce/consume round trip failed within ${READY_TIMEOUT_S}s"; }
    sleep 1
  done
  say "kafka ready on $KAFKA_BOOTSTRAP (a client produced and consumed)"
}

kafka_stop() {
  local pid
  if ! pid="$(kafka_pid)"; then say "kafka not running"; rm -f "$KAFKA_DIR/kafka.pid"; return 0; fi
  say "stopping kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then say "kafka did not stop in 30s; killing"; kill -KILL "$pid" || true; fi
  rm -f "$KAFKA_DIR/kafka.pid"
}

kafka_status() {
  if kafka_pid >/dev/null && kafka_ready 10; then echo "kafka: ready on $KAFKA_BOOTSTRAP"; return 0; fi
  if kafka_pid >/dev/null; then echo "kafka: running (pid $(kafka_pid)) but not ready"; return 1; fi
  echo "kafka: stopped"; return 1
}

# --- PostgreSQL -----------------------------------------------------------------------------

# The newest installed PostgreSQL *server* (a client-only install has no bin/postgres).
pg_version() {
  local v
  for v in $(ls /usr/lib/postgresql 2>/dev/null | sort -V -r); do
    [ -x "/usr/lib/postgresql/$v/bin/postgres" ] && { echo "$v"; return; }
  done
}

pg_install() {
  if [ -n "$(pg_version)" ] && command -v pg_createcluster >/dev/null; then return 0; fi
  say "installing PostgreSQL from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql postgresql-contrib >&2
  [ -n "$(pg_version)" ] || die "PostgreSQL did not install"
}

pg_cluster_exists() { pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$(pg_version) $PG_CLUSTER"; }
pg_cluster_online() { pg_lsclusters -h 2>/dev/null | awk -v c="$PG_CLUSTER" '$2==c {print $4}' | grep -q online; }
pg_psql() { as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres "$@"; }
pg_query_ok() { PGPASSWORD="$PG_PASSWORD" psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" -tAc 'SELECT 1' 2>/dev/null | grep -q 1; }

pg_start() {
  pg_install
  local version; version="$(pg_version)"
  if ! pg_cluster_exists; then
    if port_open "$PG_PORT"; then die "port $PG_PORT is taken by another process; set KOALR_PG_PORT"; fi
    say "creating PostgreSQL $version cluster '$PG_CLUSTER' on port $PG_PORT"
    as_root pg_createcluster "$version" "$PG_CLUSTER" -p "$PG_PORT" -- \
      --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    # Debian's postgresql.conf includes conf.d/; our settings live in one file there.
    printf '%s\n' "listen_addresses = '127.0.0.1'" "max_connections = 300" "shared_buffers = 256MB" \
      | as_root tee "/etc/postgresql/$version/$PG_CLUSTER/conf.d/koalr.conf" >/dev/null
  fi
  if ! pg_cluster_online; then
    say "starting PostgreSQL cluster '$PG_CLUSTER'"
    as_root mkdir -p /var/run/postgresql && as_root chown postgres:postgres /var/run/postgresql
    as_root pg_ctlcluster "$version" "$PG_CLUSTER" start >&2
  fi
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until as_root runuser -u postgres -- pg_isready -q -p "$PG_PORT" -h /var/run/postgresql; do
    [ $SECONDS -lt $deadline ] || die "PostgreSQL did not accept connections within ${READY_TIMEOUT_S}s"
    sleep 0.5
  done
  if ! pg_query_ok; then
    pg_psql -c "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD'; END IF; END\$\$;" >&2
    if ! pg_psql -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
      pg_psql -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >&2
    fi
  fi
  until pg_query_ok; do
    [ $SECONDS -lt $deadline ] || die "PostgreSQL is up but a query as $PG_USER failed"
    sleep 0.5
  done
  say "postgres ready on 127.0.0.1:$PG_PORT (a query succeeded)"
}

pg_stop() {
  if [ -z "$(pg_version)" ] || ! pg_cluster_exists || ! pg_cluster_online; then say "postgres not running"; return 0; fi
  say "stopping PostgreSQL cluster '$PG_CLUSTER'"
  as_root pg_ctlcluster "$(pg_version)" "$PG_CLUSTER" stop -m fast >&2
}

pg_status() {
  if [ -n "$(pg_version)" ] && pg_cluster_exists && pg_query_ok; then echo "postgres: ready on 127.0.0.1:$PG_PORT"; return 0; fi
  echo "postgres: stopped"; return 1
}

print_env() {
  echo "export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP"
  echo "export DATABASE_URL=$DATABASE_URL_VALUE"
}

cmd="${1:-status}"; what="${2:-all}"
case "$what" in kafka|postgres|all) ;; *) die "unknown service '$what' (kafka, postgres or all)";; esac
case "$cmd" in
  start)
    [ "$what" = kafka ] || pg_start
    [ "$what" = postgres ] || kafka_start
    print_env ;;
  stop)
    [ "$what" = postgres ] || kafka_stop
    [ "$what" = kafka ] || pg_stop ;;
  status)
    rc=0
    if [ "$what" != postgres ]; then kafka_status || rc=1; fi
    if [ "$what" != kafka ]; then pg_status || rc=1; fi
    exit $rc ;;
  env) print_env ;;
  *) die "usage: $0 {start|stop|status|env} [kafka|postgres|all]" ;;
esac
