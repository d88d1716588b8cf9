#!/usr/bin/env bash
# Local multi-region quota cluster on loopback: etcd, coordinator(s), and per
# region its own redis-server, Postgres cluster and region-node.
# Everything lives under <repo>/target/cluster/ and is removed by `down`.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/local/cluster.sh <command> [options]

Commands:
  install                 Install etcd, redis, postgres, protoc via apt if missing.
  up [--regions a,b,c] [--coordinators N] [--nodes-per-region N] [--etcd-members N]
     [--release] [--latency a=MS,b=MS] [--node-args "ARGS"] [--insecure]
                          Build the binaries (cargo build --bins) and start a cluster:
                          etcd, coordinator-1..N, and per region redis-<r>, pg-<r>,
                          node-<r>. Defaults: --regions east --coordinators 1.
                          --nodes-per-region N: N node processes per region on its
                          one Redis and Postgres (node-<r>, node-<r>-2 … node-<r>-N;
                          REGION_<R>_URLS lists them all).
                          --etcd-members N (1, 3 or 5; default 1): an N-member etcd
                          cluster (etcd, etcd-2 … etcd-N); every process is given all
                          members and talks to one that has a quorum. Kill one with
                          `kill etcd-2`: the store stays up.
                          Secure by default: etcd authentication with one user and
                          role per party (coordinator setup-etcd-auth; passwords in
                          target/cluster/credentials/, 0600). --insecure turns it off
                          (debugging only).
                          QUOTA_BIN_DIR=<dir> uses prebuilt binaries (no build).
                          --latency east=5,south=40: each named region reaches etcd
                          through a quota-proxy link with that one-way delay (the
                          modelled distance; control API URL in PROXY_CONTROL_URL).
                          --node-args: extra flags for every region node
                          (e.g. "--strategy v4").
  down                    Stop everything and remove target/cluster.
  status                  One line per process: name, pid, running/dead, URL.
  kill <name>             kill -9 one process (e.g. etcd, coordinator-1, node-east,
                          redis-east, pg-east; for pg: postmaster and backends).
  stop <name>             Graceful stop of one process.
  start <name>            Start one process again (same ports, same data), wait ready.
  -h, --help              This text.

After `up`, target/cluster/cluster.env holds the URLs and the operator's admin token:
  source target/cluster/cluster.env; target/debug/quotactl --help
Admin tokens, one per scope, in target/cluster/credentials/ (0600): operator.token
(everything), auditor.token (read-only: quotactl --token-file …/auditor.token status),
region-admin.token (what the coordinators present to the nodes' audit endpoint),
payments.token (the payment system's: POST /v1/orders/{id}/pay on the nodes, nothing else).
Logs: target/cluster/logs/<name>.log
EOF
}

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CLUSTER_DIR="$REPO_ROOT/target/cluster"
LOG_DIR="$CLUSTER_DIR/logs"
PID_DIR="$CLUSTER_DIR/pids"
PROC_DIR="$CLUSTER_DIR/procs"   # <name>.cmd (command line), <name>.url, <name>.exe
ENV_FILE="$CLUSTER_DIR/cluster.env"
TLS_DIR="$CLUSTER_DIR/tls"            # throwaway CA and server certificates
CREDS_DIR="$CLUSTER_DIR/credentials"  # passwords and tokens, 0600 in a 0700 dir
SECURE=1                              # 0 with `up --insecure`
READY_TIMEOUT=60
STOP_TIMEOUT=10

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------

pg_bin_dir() {
  # Debian keeps the server binaries off PATH; take the newest version.
  local d
  d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  [[ -n "$d" && -x "$d/initdb" ]] && { echo "$d"; return; }
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return; }
  return 1
}

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

cmd_install() {
  local missing=()
  command -v etcd >/dev/null 2>&1 || missing+=(etcd)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  pg_bin_dir >/dev/null || missing+=(postgres)
  command -v protoc >/dev/null 2>&1 || missing+=(protoc)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-cli)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || missing+=(chromium)
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "install: etcd, redis-server, postgres, protoc, curl already present"
    return
  fi
  log "install: missing ${missing[*]}; installing via apt"
  # Installing these packages may start system services on the default ports;
  # we leave them alone and never use them (all our ports are random).
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y \
    etcd-server etcd-client redis-server redis-tools postgresql protobuf-compiler curl openssl prometheus \
    chromium
}

# Does a region node's /readyz say its etcd session is up (region registered)?
etcd_connected() {
  local hostport="$1" body
  { exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"; } 2>/dev/null || return 1
  printf 'GET /readyz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$hostport" >&3
  body="$(timeout 3 cat <&3)"
  exec 3>&-
  [[ "$body" == *'"etcd":"connected"'* ]]
}

# ---------------------------------------------------------------------------
# small helpers: ports, pids, readiness
# ---------------------------------------------------------------------------

# Sets FREE_PORT (not printed: a $(...) subshell would lose USED_PORTS).
USED_PORTS=" "
FREE_PORT=""
free_port() {
  # Let the kernel pick a free port; remember the ones we handed out so two
  # services of this run never get the same one before either has bound it.
  local p
  while :; do
    if command -v python3 >/dev/null 2>&1; then
      p="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    else
      # No python: random high port that nobody answers on.
      p=$((20000 + RANDOM % 20000))
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    fi
    [[ "$USED_PORTS" == *" $p "* ]] && continue
    USED_PORTS+="$p "
    FREE_PORT="$p"
    return
  done
}

pid_of() { cat "$PID_DIR/$1.pid" 2>/dev/null || true; }

# A pid that exists and is not a zombie.
pid_running() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat%% *}" != "Z" ]]
}

# Alive = exists, not a zombie, and still the program we started (guards
# against a recycled pid, so `down` never kills an unrelated process).
is_alive() {
  local name="$1" pid exe want script
  pid="$(pid_of "$name")"
  [[ -n "$pid" ]] && pid_running "$pid" || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  exe="${exe% (deleted)}"   # binary rebuilt while running
  want="$(cat "$PROC_DIR/$name.exe")"
  [[ "$exe" == "$want" ]] && return 0
  # A script (e.g. a stand-in via QUOTA_BIN_DIR): exe is the interpreter,
  # argv[1] the script.
  script="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | sed -n 2p)"
  [[ -n "$script" && "$(readlink -f "$script" 2>/dev/null)" == "$want" ]]
}

# Direct children of a pid (Postgres backends live in their own sessions, so
# they do not share the postmaster's process group).
child_pids() {
  local parent="$1" f stat rest
  for f in /proc/[0-9]*/stat; do
    stat="$(cat "$f" 2>/dev/null)" || continue
    rest="${stat##*) }"           # "state ppid ..."
    rest="${rest#* }"
    [[ "${rest%% *}" == "$parent" ]] && { f="${f#/proc/}"; echo "${f%/stat}"; }
  done
  return 0
}

# HTTP status code of GET url, via bash /dev/tcp (no curl needed).
http_status() {
  local hostport="$1" path="$2" line
  { exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$hostport" >&3
  IFS=' ' read -r -t 3 _ line _ <&3 || { exec 3>&-; return 1; }
  exec 3>&-
  echo "$line"
}

redis_pong() {
  local port="$1" line
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  read -r -t 3 line <&3 || { exec 3>&-; return 1; }
  exec 3>&-
  [[ "$line" == "+PONG"* ]]
}

# Is the named service ready? Kind follows from the name prefix.
probe() {
  local name="$1" url
  url="$(cat "$PROC_DIR/$name.url")"
  case "$name" in
    etcd|etcd-*) url="$(cat "$PROC_DIR/$name.health" 2>/dev/null || echo "$url")"
                 [[ "$(http_status "${url#http://}" /health)" == 200 ]] ;;
    coordinator-*|node-*) [[ "$(http_status "${url#http://}" /readyz)" == 200 ]] ;;
    proxy) [[ "$(http_status "${url#http://}" /healthz)" == 200 ]] ;;
    redis-*) url="${url%/}"   # url is redis://127.0.0.1:P/ or rediss://…
             if [[ "$url" == rediss://* ]]; then
               REDISCLI_AUTH="$(head -n 1 "$CREDS_DIR/$name.password")" redis-cli --tls \
                 --cacert "$TLS_DIR/ca.pem" -h 127.0.0.1 -p "${url##*:}" ping 2>/dev/null | grep -q PONG
             else
               redis_pong "${url##*:}"
             fi ;;
    pg-*) local hp="${url#postgres://postgres@}"; hp="${hp%%/*}"
          "$(pg_bin_dir)/pg_isready" -q -U postgres -d postgres -h 127.0.0.1 -p "${hp##*:}" -t 2 ;;
    *) die "unknown process kind: $name" ;;
  esac
}

wait_ready() {
  local name="$1" deadline=$((SECONDS + READY_TIMEOUT))
  while ! probe "$name" 2>/dev/null; do
    if ! is_alive "$name"; then
      fail_with_log "$name" "exited during startup"
    fi
    if (( SECONDS >= deadline )); then
      fail_with_log "$name" "not ready after ${READY_TIMEOUT}s"
    fi
    sleep 0.2
  done
  log "$name ready ($(cat "$PROC_DIR/$name.url"))"
}

fail_with_log() {
  local name="$1" why="$2"
  {
    echo "[cluster] error: $name $why"
    echo "[cluster] command: $(cat "$PROC_DIR/$name.cmd")"
    echo "[cluster] last 40 lines of $LOG_DIR/$name.log:"
    tail -n 40 "$LOG_DIR/$name.log" 2>/dev/null | sed 's/^/    /'
    echo "[cluster] run '$0 down' to clean up"
  } >&2
  exit 1
}

# ---------------------------------------------------------------------------
# process control
# ---------------------------------------------------------------------------

# Record how to run a service: exact command line (shell-quoted), its URL
# and the resolved path of the server binary (for the pid-recycling check;
# resolved because e.g. redis-server is a symlink to redis-check-rdb).
define_proc() {
  local name="$1" url="$2" exe="$3"; shift 3
  printf '%q ' "$@" | sed 's/ $//' >"$PROC_DIR/$name.cmd"
  echo "$url" >"$PROC_DIR/$name.url"
  readlink -f "$(command -v "$exe")" >"$PROC_DIR/$name.exe"
  grep -qx "$name" "$PROC_DIR/order" 2>/dev/null || echo "$name" >>"$PROC_DIR/order"
}

# Start a service from its .cmd in the background. setsid detaches it from
# our terminal (Ctrl-C or closing the shell must not take the cluster down);
# the inner bash writes its own pid and then execs the command, so the pid
# file holds the real server pid (setpriv execs too: for pg it's the postmaster).
launch() {
  local name="$1"
  if is_alive "$name"; then die "$name is already running (pid $(pid_of "$name"))"; fi
  rm -f "$PID_DIR/$name.pid"
  [[ "$name" == pg-* ]] && clear_stale_pg_lock "$CLUSTER_DIR/$name"
  # shellcheck disable=SC2016  # $$, $0, $1 are for the inner bash
  setsid bash -c 'echo $$ >"$0"; eval "exec $1"' "$PID_DIR/$name.pid" "$(cat "$PROC_DIR/$name.cmd")" \
    >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  # Wait until the pid file exists and the exec happened (until then the
  # pid is still bash and is_alive would call it dead).
  local i pid
  for i in $(seq 100); do
    pid="$(pid_of "$name")"
    if [[ -n "$pid" ]]; then
      is_alive "$name" && return 0
      [[ -e "/proc/$pid" ]] || break   # died right away
    fi
    sleep 0.05
  done
  is_alive "$name" || fail_with_log "$name" "did not start"
}

# Graceful stop of several services at once: signal all, wait, then SIGKILL.
stop_procs() {
  local name pid pids=() deadline
  for name in "$@"; do
    is_alive "$name" || continue
    pid="$(pid_of "$name")"
    # Postgres: SIGINT = fast shutdown (SIGTERM would wait for clients).
    if [[ "$name" == pg-* ]]; then kill -INT "$pid" 2>/dev/null || true
    else kill -TERM "$pid" 2>/dev/null || true; fi
    pids+=("$name")
  done
  deadline=$((SECONDS + STOP_TIMEOUT))
  for name in "${pids[@]}"; do
    while is_alive "$name" && (( SECONDS < deadline )); do sleep 0.1; done
    if is_alive "$name"; then
      log "$name did not stop in ${STOP_TIMEOUT}s; SIGKILL"
      kill9_proc "$name"
    else
      log "stopped $name"
    fi
  done
}

# kill -9 a service. For Postgres we also kill the backends right away: the
# orphans would exit on their own shortly, but until then a restart fails
# with "pre-existing shared memory block is still in use".
kill9_proc() {
  local name="$1" pid kids
  is_alive "$name" || { log "$name is not running"; return 0; }
  pid="$(pid_of "$name")"
  kids="$(child_pids "$pid")"
  kill -9 "$pid" 2>/dev/null || true
  # shellcheck disable=SC2086  # word-splitting the pid list is intended
  if [[ -n "$kids" ]]; then kill -9 $kids 2>/dev/null || true; fi
  local i
  for i in $(seq 50); do is_alive "$name" || break; sleep 0.1; done
  log "killed $name (pid $pid)"
}

# ---------------------------------------------------------------------------
# Postgres data location
# ---------------------------------------------------------------------------

# Postgres must run as the `postgres` user (it refuses root), so that user
# must be able to traverse every parent of its data dir. target/cluster is
# fine for /work/main or /tmp clones, but not under a 0700 /root. Rather than
# chmod'ing a user's home, we then keep the data dirs in
# /tmp/quota-cluster-<hash of repo path>/ and symlink target/cluster/pg-<r> to
# it; `down` removes both.
pg_root() {
  if [[ $EUID -ne 0 ]]; then echo "$CLUSTER_DIR"; return; fi   # run as ourselves
  if runuser -u postgres -- test -x "$CLUSTER_DIR" 2>/dev/null; then
    echo "$CLUSTER_DIR"
  else
    echo "/tmp/quota-cluster-$(printf '%s' "$REPO_ROOT" | md5sum | cut -c1-12)"
  fi
}

# Prefix that runs a command as the postgres user when we are root. setpriv
# execs (runuser forks and stays the parent, so our pid would not be the
# postmaster's and kill -9 would orphan it).
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    echo setpriv --reuid=postgres --regid=postgres --init-groups --
  fi
}

# After kill -9 the dead postmaster can linger as a zombie when PID 1 does
# not reap orphans (some containers/VMs). Postgres then sees its old pid in
# postmaster.pid as "running" (kill -0 works on zombies) and refuses to start.
# We do the same check as Postgres, but zombie-aware.
clear_stale_pg_lock() {
  local lock="$1/postmaster.pid" pid
  [[ -f "$lock" ]] || return 0
  pid="$(head -n 1 "$lock")"
  if [[ -n "$pid" ]] && ! pid_running "$pid"; then
    rm -f "$lock"
  fi
}

# ---------------------------------------------------------------------------
# security: a throwaway CA, server certificates, passwords
# ---------------------------------------------------------------------------

make_ca() {
  mkdir -p "$TLS_DIR" "$CREDS_DIR"; chmod 755 "$TLS_DIR"; chmod 700 "$CREDS_DIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" -days 30 -subj "/CN=quota local CA" \
    >/dev/null 2>&1 || die "openssl could not make the CA"
  chmod 600 "$TLS_DIR/ca.key"
}

# server_cert NAME: $TLS_DIR/NAME.pem and NAME.key (0600) for 127.0.0.1 and localhost.
server_cert() {
  local n="$1"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$TLS_DIR/$n.ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$TLS_DIR/$n.key" \
    -out "$TLS_DIR/$n.csr" -subj "/CN=$n" >/dev/null 2>&1 \
    && openssl x509 -req -in "$TLS_DIR/$n.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
      -CAcreateserial -out "$TLS_DIR/$n.pem" -days 30 -extfile "$TLS_DIR/$n.ext" >/dev/null 2>&1 \
    || die "openssl could not make the certificate of $n"
  chmod 600 "$TLS_DIR/$n.key"
}

# new_secret FILE: a fresh random password in FILE (0600).
new_secret() {
  ( umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1"; echo >>"$1" )
}

init_pg() {
  local region="$1" port="$2" root data
  root="$(pg_root)"
  data="$root/pg-$region"
  if [[ "$root" != "$CLUSTER_DIR" ]]; then
    mkdir -p "$root" && chmod 755 "$root"
    echo "$root" >"$CLUSTER_DIR/pg-root"
    ln -sfn "$data" "$CLUSTER_DIR/pg-$region"
  fi
  mkdir -p "$data"
  chmod 700 "$data"
  [[ $EUID -eq 0 ]] && chown postgres:postgres "$data"
  log "initdb pg-$region ($data)"
  # cd: initdb as postgres complains if it cannot access the current dir.
  # shellcheck disable=SC2046
  local auth=(--auth=trust) pwfile="$root/pg-$region.pwfile" ssl=()
  if (( SECURE )); then
    # scram passwords over TLS only; initdb (running as postgres) reads the password from a
    # copy it owns, removed right after.
    new_secret "$CREDS_DIR/pg-$region.password"
    head -n 1 "$CREDS_DIR/pg-$region.password" >"$pwfile"
    [[ $EUID -eq 0 ]] && chown postgres:postgres "$pwfile"
    auth=(--auth-host=scram-sha-256 --auth-local=trust "--pwfile=$pwfile")
    ssl=(-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key)
  fi
  (cd "$root" && $(as_pg) "$(pg_bin_dir)/initdb" -D "$data" -U postgres "${auth[@]}" -E UTF8 \
      --locale=C --no-sync >"$LOG_DIR/pg-$region.initdb.log" 2>&1) \
    || { tail -n 30 "$LOG_DIR/pg-$region.initdb.log" >&2; die "initdb for pg-$region failed"; }
  rm -f "$pwfile"
  if (( SECURE )); then
    server_cert "pg-$region"
    cp "$TLS_DIR/pg-$region.pem" "$data/server.crt"
    cp "$TLS_DIR/pg-$region.key" "$data/server.key"
    printf '%s\n' '# cluster.sh: TLS with a password, nothing else' \
      'hostssl all all 127.0.0.1/32 scram-sha-256' 'host all all 0.0.0.0/0 reject' \
      >"$data/pg_hba.conf"
    chmod 600 "$data/server.key"
    [[ $EUID -eq 0 ]] && chown postgres:postgres "$data/server.crt" "$data/server.key" "$data/pg_hba.conf"
  fi
  # -k '': TCP only, no unix socket (no socket-dir permissions, no path limit).
  # shellcheck disable=SC2046
  define_proc "pg-$region" "postgres://postgres@127.0.0.1:$port/quota" "$(pg_bin_dir)/postgres" \
    $(as_pg) "$(pg_bin_dir)/postgres" -D "$data" -p "$port" -k '' \
    -c listen_addresses=127.0.0.1 -c fsync=off "${ssl[@]}"
}

create_quota_db() {
  local region="$1" url port
  url="$(cat "$PROC_DIR/pg-$region.url")"; port="${url##*:}"; port="${port%%/*}"
  local conn="host=127.0.0.1 port=$port user=postgres dbname=postgres"
  if (( SECURE )); then
    conn+=" sslmode=verify-full sslrootcert=$TLS_DIR/ca.pem"
    PGPASSWORD="$(head -n 1 "$CREDS_DIR/pg-$region.password")" "$(pg_bin_dir)/psql" "$conn" \
      -X -v ON_ERROR_STOP=1 -q -c 'CREATE DATABASE quota' >>"$LOG_DIR/pg-$region.log" 2>&1 \
      || fail_with_log "pg-$region" "CREATE DATABASE quota failed"
    return
  fi
  "$(pg_bin_dir)/psql" "$conn" -X -v ON_ERROR_STOP=1 -q \
    -c 'CREATE DATABASE quota' >>"$LOG_DIR/pg-$region.log" 2>&1 \
    || fail_with_log "pg-$region" "CREATE DATABASE quota failed"
}

# ---------------------------------------------------------------------------
# up / down / status
# ---------------------------------------------------------------------------

any_alive() {
  local name
  [[ -f "$PROC_DIR/order" ]] || return 1
  while read -r name; do is_alive "$name" && return 0; done <"$PROC_DIR/order"
  return 1
}

upper_name() { echo "$1" | tr 'a-z-' 'A-Z_'; }

build_bins() {
  local release="$1"
  if [[ -n "${QUOTA_BIN_DIR:-}" ]]; then
    BIN_DIR="$(cd "$QUOTA_BIN_DIR" && pwd)"
    log "using prebuilt binaries from $BIN_DIR (QUOTA_BIN_DIR)"
  elif [[ "$release" == 1 ]]; then
    log "cargo build --bins --release"
    (cd "$REPO_ROOT" && cargo build --bins --release)
    BIN_DIR="$REPO_ROOT/target/release"
  else
    log "cargo build --bins"
    (cd "$REPO_ROOT" && cargo build --bins)
    BIN_DIR="$REPO_ROOT/target/debug"
  fi
  local b
  for b in region-node coordinator; do
    [[ -x "$BIN_DIR/$b" ]] || die "$BIN_DIR/$b not found"
  done
}

cmd_up() {
  local regions="east" coordinators=1 release=0 latency="" node_args="" per_region=1 members=1
  local insecure=0
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --regions) regions="${2:?--regions needs a value}"; shift 2 ;;
      --regions=*) regions="${1#*=}"; shift ;;
      --coordinators) coordinators="${2:?--coordinators needs a value}"; shift 2 ;;
      --coordinators=*) coordinators="${1#*=}"; shift ;;
      --nodes-per-region) per_region="${2:?--nodes-per-region needs a value}"; shift 2 ;;
      --nodes-per-region=*) per_region="${1#*=}"; shift ;;
      --etcd-members) members="${2:?--etcd-members needs a value}"; shift 2 ;;
      --etcd-members=*) members="${1#*=}"; shift ;;
      --release) release=1; shift ;;
      --insecure) insecure=1; SECURE=0; shift ;;
      --latency) latency="${2:?--latency needs a value}"; shift 2 ;;
      --latency=*) latency="${1#*=}"; shift ;;
      --node-args) node_args="${2?--node-args needs a value}"; shift 2 ;;
      --node-args=*) node_args="${1#*=}"; shift ;;
      -h|--help) usage; exit 0 ;;
      *) die "up: unknown option $1 (see --help)" ;;
    esac
  done
  [[ "$coordinators" =~ ^[1-9][0-9]*$ ]] || die "--coordinators must be a positive integer"
  [[ "$per_region" =~ ^[1-9][0-9]*$ ]] || die "--nodes-per-region must be a positive integer"
  [[ "$members" =~ ^[135]$ ]] || die "--etcd-members must be 1, 3 or 5 (a quorum needs an odd count)"
  local -a region_list
  IFS=',' read -r -a region_list <<<"$regions"
  [[ ${#region_list[@]} -gt 0 ]] || die "--regions is empty"
  local r
  for r in "${region_list[@]}"; do
    [[ "$r" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "bad region name '$r' (use a-z, 0-9, -)"
  done

  if any_alive; then
    die "a cluster is already up (see '$0 status'); run '$0 down' first"
  fi
  [[ -d "$CLUSTER_DIR" ]] && { log "removing stale $CLUSTER_DIR"; remove_cluster_dir; }

  cmd_install
  build_bins "$release"
  mkdir -p "$LOG_DIR" "$PID_DIR" "$PROC_DIR"
  # Secure by default: a throwaway CA for TLS everywhere, passwords in $CREDS_DIR.
  (( SECURE )) && make_ca

  local admin_token etcd_url m
  # Admin tokens, one per scope, each in its own file (0600, never on a command line): the
  # operator's (everything), the auditor's (read-only), the region-admin one (what the
  # coordinators present to the nodes' audit endpoint, the only token a node accepts there),
  # and the payment system's (it may record payments on the nodes and nothing else).
  local tokens_dir="$CLUSTER_DIR/credentials" scope
  mkdir -p "$tokens_dir"; chmod 700 "$tokens_dir"
  for scope in operator auditor region-admin payments; do
    ( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tokens_dir/$scope.token"
      echo >>"$tokens_dir/$scope.token" )
  done
  admin_token="$(head -n 1 "$tokens_dir/operator.token")"

  # etcd first: coordinators and nodes need it. Members etcd, etcd-2 … etcd-N, one cluster.
  local -a etcd_ports=() peer_ports=() etcd_names=() etcd_urls=()
  local initial=""
  for m in $(seq "$members"); do
    free_port; etcd_ports+=("$FREE_PORT")
    free_port; peer_ports+=("$FREE_PORT")
    if (( m == 1 )); then etcd_names+=(etcd); else etcd_names+=("etcd-$m"); fi
    etcd_urls+=("http://127.0.0.1:${etcd_ports[m-1]}")
    initial+="${initial:+,}n$m=http://127.0.0.1:${peer_ports[m-1]}"
  done
  local cluster_token="quota-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" tuning=()
  local etcd_tls=() scheme=http
  if (( SECURE )); then
    # Clients speak TLS to etcd (the passwords below never cross in clear); /health stays
    # plain HTTP on a metrics port for the readiness probe.
    server_cert etcd
    etcd_tls=(--cert-file "$TLS_DIR/etcd.pem" --key-file "$TLS_DIR/etcd.key")
    scheme=https
    for m in $(seq "$members"); do etcd_urls[m-1]="https://127.0.0.1:${etcd_ports[m-1]}"; done
  fi
  # Faster failure detection than etcd's defaults, not so fast that two shared cores flap.
  (( members > 1 )) && tuning=(--heartbeat-interval 100 --election-timeout 1000)
  for m in $(seq "$members"); do
    local name="${etcd_names[m-1]}" url="${etcd_urls[m-1]}" pp="${peer_ports[m-1]}" mp
    free_port; mp="$FREE_PORT"
    define_proc "$name" "$url" etcd \
      etcd --name "n$m" --data-dir "$CLUSTER_DIR/$name" \
      --listen-client-urls "$url" --advertise-client-urls "$url" \
      --listen-peer-urls "http://127.0.0.1:$pp" \
      --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
      --initial-cluster "$initial" --initial-cluster-token "$cluster_token" \
      --listen-metrics-urls "http://127.0.0.1:$mp" "${etcd_tls[@]}" \
      "${tuning[@]}" --logger zap --log-level warn
    echo "http://127.0.0.1:$mp" >"$PROC_DIR/$name.health"
    launch "$name"
  done
  etcd_url="$(IFS=,; echo "${etcd_urls[*]}")"

  # Modelled distance: one proxy process, one link per region and etcd member with a latency;
  # each such region's node reaches every member through its links.
  declare -A etcd_for
  for r in "${region_list[@]}"; do etcd_for[$r]="$etcd_url"; done
  if [[ -n "$latency" ]]; then
    local item lr lms links=() control_port via
    free_port; control_port="$FREE_PORT"
    IFS=',' read -r -a items <<<"$latency"
    for item in "${items[@]}"; do
      lr="${item%%=*}"; lms="${item#*=}"
      [[ -n "${etcd_for[$lr]:-}" ]] || die "--latency names region '$lr', which is not in --regions"
      [[ "$lms" =~ ^[0-9]+$ ]] || die "--latency $item: milliseconds must be a whole number"
      via=""
      for m in $(seq "$members"); do
        free_port
        links+=(--link "id=$lr-${etcd_names[m-1]},listen=127.0.0.1:$FREE_PORT,upstream=127.0.0.1:${etcd_ports[m-1]},latency_ms=$lms,jitter_ms=$((lms / 10))")
        via+="${via:+,}$scheme://127.0.0.1:$FREE_PORT"
      done
      etcd_for[$lr]="$via"
    done
    define_proc proxy "http://127.0.0.1:$control_port" "$BIN_DIR/quota-proxy" \
      "$BIN_DIR/quota-proxy" --control "127.0.0.1:$control_port" "${links[@]}"
    launch proxy
  fi

  # Per-region storage: launch all, then wait (they start in parallel).
  local port
  for r in "${region_list[@]}"; do
    free_port; port="$FREE_PORT"
    mkdir -p "$CLUSTER_DIR/redis-$r"
    if (( SECURE )); then
      # TLS only, and a password (in a 0600 config file, not on the command line).
      server_cert "redis-$r"
      new_secret "$CREDS_DIR/redis-$r.password"
      ( umask 077; printf '%s\n' "port 0" "tls-port $port" "bind 127.0.0.1" \
          "tls-cert-file $TLS_DIR/redis-$r.pem" "tls-key-file $TLS_DIR/redis-$r.key" \
          "tls-ca-cert-file $TLS_DIR/ca.pem" "tls-auth-clients no" \
          "requirepass $(head -n 1 "$CREDS_DIR/redis-$r.password")" \
          'save ""' "appendonly no" "dir $CLUSTER_DIR/redis-$r" >"$CLUSTER_DIR/redis-$r/redis.conf" )
      define_proc "redis-$r" "rediss://127.0.0.1:$port/" redis-server \
        redis-server "$CLUSTER_DIR/redis-$r/redis.conf"
    else
      define_proc "redis-$r" "redis://127.0.0.1:$port/" redis-server \
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$CLUSTER_DIR/redis-$r"
    fi
    launch "redis-$r"
    free_port; init_pg "$r" "$FREE_PORT"
    launch "pg-$r"
  done
  for m in "${etcd_names[@]}"; do wait_ready "$m"; done
  # etcd authentication with a role per party (unless --insecure): the coordinators' user
  # writes only coordinator-owned keys, each region's user only regions/<r>/.
  local creds="$CREDS_DIR" ca_flag=()
  (( SECURE )) && ca_flag=(--etcd-ca-file "$TLS_DIR/ca.pem")
  if (( insecure )); then
    log "security OFF (--insecure): no TLS, no passwords; any process may write any etcd key"
  else
    "$BIN_DIR/coordinator" setup-etcd-auth --etcd-endpoints "$etcd_url" "${ca_flag[@]}" \
      --regions "$regions" --credentials-dir "$creds" >"$LOG_DIR/setup-etcd-auth.log" 2>&1 \
      || fail_with_log setup-etcd-auth "etcd authentication setup failed"
  fi
  # The flags that make a process etcd user <name>: set by etcd_user before each use.
  local -a user_flags=()
  etcd_user() {
    user_flags=()
    (( insecure )) || user_flags=(--etcd-user "$1" --etcd-password-file "$creds/$1.password"
                                  "${ca_flag[@]}")
  }
  [[ -n "$latency" ]] && wait_ready proxy
  for r in "${region_list[@]}"; do
    wait_ready "redis-$r"
    wait_ready "pg-$r"
    create_quota_db "$r"
  done

  local i coord_urls=()
  etcd_user quota-coordinator
  for i in $(seq "$coordinators"); do
    free_port; port="$FREE_PORT"
    define_proc "coordinator-$i" "http://127.0.0.1:$port" "$BIN_DIR/coordinator" \
      "$BIN_DIR/coordinator" serve --id "coordinator-$i" --listen "127.0.0.1:$port" \
      --etcd-endpoints "$etcd_url" --admin-token-file "$tokens_dir/operator.token" \
      --auditor-token-file "$tokens_dir/auditor.token" \
      --region-admin-token-file "$tokens_dir/region-admin.token" "${user_flags[@]}"
    launch "coordinator-$i"
    coord_urls+=("http://127.0.0.1:$port")
  done
  for i in $(seq "$coordinators"); do wait_ready "coordinator-$i"; done

  # --ip-rate-limit 0: all local traffic comes from 127.0.0.1. Node k > 1 of a region is
  # node-<r>-k; every process has its own name (--process-id) within the region.
  local k name nodes=()
  for r in "${region_list[@]}"; do
    etcd_user "quota-region-$r"
    if (( SECURE )); then
      user_flags+=(--pg-password-file "$CREDS_DIR/pg-$r.password" --pg-ca-file "$TLS_DIR/ca.pem"
        --redis-password-file "$CREDS_DIR/redis-$r.password" --redis-ca-file "$TLS_DIR/ca.pem")
    fi
    for k in $(seq "$per_region"); do
      name="node-$r"; (( k > 1 )) && name="node-$r-$k"
      free_port; port="$FREE_PORT"
      define_proc "$name" "http://127.0.0.1:$port" "$BIN_DIR/region-node" \
        "$BIN_DIR/region-node" serve --region "$r" --listen "127.0.0.1:$port" \
        --redis-url "$(cat "$PROC_DIR/redis-$r.url")" --pg-url "$(cat "$PROC_DIR/pg-$r.url")" \
        --etcd-endpoints "${etcd_for[$r]}" --ip-rate-limit 0 \
        --region-admin-token-file "$tokens_dir/region-admin.token" \
        --payments-token-file "$tokens_dir/payments.token" \
        "${user_flags[@]}" \
        --process-id "$name" \
        $node_args  # shellcheck disable=SC2086  # word-split on purpose: several flags
      launch "$name"
      nodes+=("$name")
    done
  done
  for name in "${nodes[@]}"; do wait_ready "$name"; done
  # Ready is not yet registered: wait until every node's etcd session is up, so a sale
  # created right after `up` can name every region.
  local deadline=$((SECONDS + READY_TIMEOUT)) url
  for name in "${nodes[@]}"; do
    url="$(cat "$PROC_DIR/$name.url")"
    until etcd_connected "${url#http://}"; do
      (( SECONDS < deadline )) || fail_with_log "$name" "never connected to etcd"
      sleep 0.2
    done
  done

  write_env "$etcd_url" "$admin_token" "$regions" "$per_region" "${coord_urls[@]}"
  print_summary
}

write_env() {
  local etcd_url="$1" token="$2" regions="$3" per_region="$4"; shift 4
  local coord_urls=("$@") r u rs k urls tmp="$ENV_FILE.tmp"
  {
    echo "# generated by deploy/local/cluster.sh up; source it: . $ENV_FILE"
    echo "export ETCD_ENDPOINTS=$etcd_url"
    if [[ -f "$TLS_DIR/ca.pem" ]]; then
      echo "export ETCD_CREDENTIALS_DIR=$CREDS_DIR"
      echo "export TLS_CA_FILE=$TLS_DIR/ca.pem"
    fi
    echo "export COORDINATOR_URL=${coord_urls[0]}"
    echo "export COORDINATOR_URLS=$(IFS=,; echo "${coord_urls[*]}")"
    echo "export ADMIN_TOKEN=$token"
    echo "export ADMIN_TOKEN_FILE=$CLUSTER_DIR/credentials/operator.token"
    echo "export AUDITOR_TOKEN_FILE=$CLUSTER_DIR/credentials/auditor.token"
    echo "export PAYMENTS_TOKEN_FILE=$CLUSTER_DIR/credentials/payments.token"
    echo "export REGIONS=$regions"
    [[ -f "$PROC_DIR/proxy.url" ]] && echo "export PROXY_CONTROL_URL=$(cat "$PROC_DIR/proxy.url")"
    IFS=',' read -r -a rs <<<"$regions"
    for r in "${rs[@]}"; do
      u="$(upper_name "$r")"
      echo "export REGION_${u}_URL=$(cat "$PROC_DIR/node-$r.url")"
      urls="$(cat "$PROC_DIR/node-$r.url")"
      for k in $(seq 2 "$per_region"); do urls+=",$(cat "$PROC_DIR/node-$r-$k.url")"; done
      echo "export REGION_${u}_URLS=$urls"
      echo "export REGION_${u}_REDIS_URL=$(cat "$PROC_DIR/redis-$r.url")"
      echo "export REGION_${u}_PG_URL=$(cat "$PROC_DIR/pg-$r.url")"
      if [[ -f "$CREDS_DIR/pg-$r.password" ]]; then
        echo "export REGION_${u}_PG_PASSWORD_FILE=$CREDS_DIR/pg-$r.password"
        echo "export REGION_${u}_REDIS_PASSWORD_FILE=$CREDS_DIR/redis-$r.password"
      fi
    done
  } >"$tmp"
  chmod 600 "$tmp"   # holds the admin token
  mv "$tmp" "$ENV_FILE"
}

print_summary() {
  echo
  echo "Cluster is up. Processes:"
  cmd_status | sed 's/^/  /'
  echo
  echo "Environment: $ENV_FILE (source it for COORDINATOR_URL, ADMIN_TOKEN, REGION_*_URL)"
  echo "Admin tokens: $CLUSTER_DIR/credentials/{operator,auditor,region-admin,payments}.token"
  echo "Operator CLI: ${BIN_DIR#"$REPO_ROOT/"}/quotactl --help   (reads target/cluster/cluster.env by default)"
  echo "Logs: $LOG_DIR/<name>.log    Stop: $0 down"
}

remove_cluster_dir() {
  local root
  root="$(cat "$CLUSTER_DIR/pg-root" 2>/dev/null || true)"
  # Only ever delete our own /tmp fallback dir.
  if [[ "$root" == /tmp/quota-cluster-* ]]; then rm -rf -- "$root"; fi
  rm -rf -- "$CLUSTER_DIR"
}

cmd_down() {
  if [[ -f "$PROC_DIR/order" ]]; then
    local -a clients=() stores=() name
    while read -r name; do
      case "$name" in
        node-*|coordinator-*) clients+=("$name") ;;
        *) stores+=("$name") ;;
      esac
    done <"$PROC_DIR/order"
    # Clients first so they do not spin on vanished storage while exiting.
    stop_procs "${clients[@]}"
    stop_procs "${stores[@]}"
  fi
  if [[ -d "$CLUSTER_DIR" ]]; then
    remove_cluster_dir
    log "removed $CLUSTER_DIR"
  else
    log "no cluster"
  fi
}

cmd_status() {
  [[ -f "$PROC_DIR/order" ]] || { echo "no cluster (run: $0 up)"; return 0; }
  local name state
  while read -r name; do
    if is_alive "$name"; then state=running; else state=dead; fi
    printf '%-16s %-8s %-8s %s\n' "$name" "$(pid_of "$name")" "$state" "$(cat "$PROC_DIR/$name.url")"
  done <"$PROC_DIR/order"
}

need_proc() {
  [[ -n "${1:-}" ]] || die "missing process name (see '$0 status')"
  [[ -f "$PROC_DIR/$1.cmd" ]] || die "unknown process '$1' (see '$0 status')"
}

cmd_start() {
  need_proc "${1:-}"
  launch "$1"
  wait_ready "$1"
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) cmd_install ;;
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    kill) need_proc "${1:-}"; kill9_proc "$1" ;;
    stop) need_proc "${1:-}"; stop_procs "$1" ;;
    start) cmd_start "${1:-}" ;;
    -h|--help|help) usage ;;
    "") usage; exit 2 ;;
    *) echo "unknown command: $cmd" >&2; usage >&2; exit 2 ;;
  esac
}

main "$@"
