#!/usr/bin/env bash
# Benchmark for the pg_backup engine: compares `ansible-playbook playbooks/backup.yml`
# (pg_dump -Z0 | zstd | gpg -> repository) with bare pg_dump on a realistic ~1.6 GB database,
# then dbdr.backup.restore of that backup (benchmarks/restore.yml, mode new, jobs 2) and a
# restore-level dbdr.backup.backup_verify of it (benchmarks/verify.yml, jobs 2) with bare
# `pg_restore -j2` of the same dump decoded once into a local file.
#
#   make bench                    # or: benchmarks/backup_bench.sh
#
# Environment:
#   BENCH_SIZE_GB=1.6   minimum pg_database_size('bench') in GB (10^9 bytes)
#   BENCH_REPEAT=1      timed runs per measurement; the best is reported, every run printed
#   BENCH_KEEP=0        1: keep the generated cluster in benchmarks/output/pgdata-keep and
#                       reuse it next time if it holds a complete `bench` of the same size
#   BENCH_PGPORT=       use an existing server on this port instead of starting one
#                       (BENCH_PGHOST=127.0.0.1, BENCH_PGUSER=postgres; trust/pgpass auth)
#   BENCH_JOBS=nproc    parallel loader sessions during data generation
#   BENCH_S3=1          0: skip the S3 (moto) measurements (backup and restore)
#   BENCH_RESTORE=1     0: skip the restore and verification measurements
#   BENCH_RESTORE_JOBS=2  pg_restore -j for the bare baseline and the module's `jobs`
#   BENCH_PGBIN=/usr/lib/postgresql/15/bin
#   BENCH_VENV=<repo>/.venv   python environment with ansible-core, boto3, moto[server]
#
# Output: a table on stdout, benchmarks/output/backup_bench.json. Exit status 1 if a target
# FAILs (skipped targets, e.g. before the module exists, do not fail).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/benchmarks
OUT=$BENCH/output
PGBIN=${BENCH_PGBIN:-/usr/lib/postgresql/15/bin}
SIZE_GB=${BENCH_SIZE_GB:-1.6}
REPEAT=${BENCH_REPEAT:-1}
KEEP=${BENCH_KEEP:-0}
JOBS=${BENCH_JOBS:-$(nproc)}
VENV=${BENCH_VENV:-$ROOT/.venv}
PGUSER_=${BENCH_PGUSER:-postgres}
PGHOST_=${BENCH_PGHOST:-127.0.0.1}
DB=bench

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

for t in "$PGBIN/pg_dump" "$PGBIN/pg_restore" "$PGBIN/psql" zstd gpg python3; do
  command -v "$t" >/dev/null || die "missing $t"
done
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive integer"
RESTORE_JOBS=${BENCH_RESTORE_JOBS:-2}
[[ $RESTORE_JOBS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RESTORE_JOBS must be a positive integer"
python3 -c "import sys; float(sys.argv[1]) > 0 or sys.exit(1)" "$SIZE_GB" 2>/dev/null \
  || die "BENCH_SIZE_GB must be a positive number"
TARGET_BYTES=$(python3 -c "import sys; print(int(float(sys.argv[1]) * 1e9))" "$SIZE_GB")

PY=python3
[[ -x $VENV/bin/python ]] && PY=$VENV/bin/python
mkdir -p "$OUT"

# ---------------------------------------------------------------- the PostgreSQL cluster
STARTED=0
CLUSTER_DIR=
# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
  local rc=$?
  if [[ $STARTED == 1 ]]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [[ -n $CLUSTER_DIR && $KEEP != 1 ]]; then
    rm -rf "$CLUSTER_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n ${BENCH_PGPORT:-} ]]; then
  PORT=$BENCH_PGPORT
  log "using the existing server at $PGHOST_:$PORT"
else
  [[ $(id -u) == 0 ]] || die "run as root (the cluster runs as user postgres via runuser)"
  if [[ $KEEP == 1 ]]; then
    CLUSTER_DIR=$OUT/pgdata-keep
    mkdir -p "$CLUSTER_DIR"
  else
    CLUSTER_DIR=$(mktemp -d "$OUT/pg.XXXXXX")
  fi
  chown postgres: "$OUT" "$CLUSTER_DIR"
  if [[ ! -f $CLUSTER_DIR/data/PG_VERSION ]]; then
    log "initdb $CLUSTER_DIR/data"
    runuser -u postgres -- "$PGBIN/initdb" -D "$CLUSTER_DIR/data" -A trust -U postgres \
      -E UTF8 --locale=C.UTF-8 >"$CLUSTER_DIR/initdb.log" 2>&1 || die "initdb failed: $CLUSTER_DIR/initdb.log"
  else
    log "reusing the cluster in $CLUSTER_DIR/data (BENCH_KEEP=1)"
  fi
  PORT=$(python3 "$BENCH/_bench.py" free-port)
  # fsync/full_page_writes off: throwaway data, only loading speed is affected (dumps read).
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w \
    -o "-p $PORT -k $CLUSTER_DIR -c listen_addresses=127.0.0.1 -c shared_buffers=512MB \
        -c max_wal_size=4GB -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c wal_level=replica -c max_wal_senders=5 -c maintenance_work_mem=512MB" \
    start >/dev/null || die "server did not start: $CLUSTER_DIR/server.log"
  STARTED=1
  log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT"
fi

export PGHOST=$PGHOST_ PGPORT=$PORT PGUSER=$PGUSER_
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1)
q() { "${PSQL[@]}" -At "$@"; }

# ---------------------------------------------------------------- the data set
meta() { q -d "$DB" -c "SELECT value FROM bench_meta WHERE key = '$1'" 2>/dev/null || true; }
db_size() { q -d "$DB" -c "SELECT pg_database_size(current_database())"; }

have_db=$(q -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")
reuse=0
if [[ $have_db == 1 && $(meta status) == complete && $(meta target_bytes) == "$TARGET_BYTES" ]]; then
  reuse=1
  log "reusing database $DB: $(meta summary)"
else
  [[ $have_db == 1 ]] && { log "dropping incomplete/other-size database $DB"; q -d postgres -c "DROP DATABASE $DB"; }
  log "generating database $DB (>= $SIZE_GB GB) with $JOBS loader sessions"
  gen_t0=$(date +%s.%N)
  q -d postgres -c "CREATE DATABASE $DB"
  "${PSQL[@]}" -d "$DB" -f "$BENCH/sql/schema.sql" >/dev/null
  q -d "$DB" -c "INSERT INTO bench_meta VALUES ('status', 'loading'), ('target_bytes', '$TARGET_BYTES')"
  # one chunk is ~121 MB of pg_database_size with its indexes; aim slightly high, top up below
  chunks=$(python3 -c "import math,sys; print(max(1, math.ceil(int(sys.argv[1]) / 118e6)))" "$TARGET_BYTES")
  pids=()
  for ((w = 0; w < JOBS; w++)); do
    (
      for ((c = w; c < chunks; c += JOBS)); do
        "${PSQL[@]}" -d "$DB" -v chunk=$c -f "$BENCH/sql/chunk.sql" >/dev/null
        log "  chunk $((c + 1))/$chunks loaded"
      done
    ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || die "a loader session failed"; done
  log "building indexes"
  "${PSQL[@]}" -d "$DB" -f "$BENCH/sql/indexes.sql" >/dev/null
  log "VACUUM ANALYZE"
  "$PGBIN/vacuumdb" -q -z -j "$JOBS" -d "$DB"
  while (($(db_size) < TARGET_BYTES)); do
    log "  size $(db_size) < $TARGET_BYTES: topping up with chunk $((chunks + 1))"
    "${PSQL[@]}" -d "$DB" -v chunk="$chunks" -f "$BENCH/sql/chunk.sql" >/dev/null
    chunks=$((chunks + 1))
    "$PGBIN/vacuumdb" -q -z -d "$DB"
  done
  "${PSQL[@]}" -d "$DB" -c "CHECKPOINT" >/dev/null
  gen_s=$(python3 -c "import sys,time; print(round(time.time() - float(sys.argv[1]), 1))" "$gen_t0")
  summary=$(q -d "$DB" -c "SELECT format('%s bytes (%s), %s chunks, generated in %s s with %s sessions',
      pg_database_size(current_database()), pg_size_pretty(pg_database_size(current_database())),
      $chunks, $gen_s, $JOBS)")
  q -d "$DB" -c "INSERT INTO bench_meta VALUES ('chunks', '$chunks'), ('gen_seconds', '$gen_s'),
      ('gen_jobs', '$JOBS'), ('summary', \$\$$summary\$\$);
      UPDATE bench_meta SET value = 'complete' WHERE key = 'status'"
  log "generated: $summary"
fi

log "tables (heap+toast / indexes):"
q -d "$DB" -F $'\t' -c "SELECT relname, pg_size_pretty(pg_table_size(oid)), pg_size_pretty(pg_indexes_size(oid)),
    reltuples::bigint FROM pg_class WHERE relname IN ('customers','orders','events','documents')
    ORDER BY pg_total_relation_size(oid) DESC" |
  while IFS=$'\t' read -r n t i r; do printf '           %-10s %9s / %-9s %12s rows\n' "$n" "$t" "$i" "$r"; done
DB_BYTES=$(db_size)

# Compressibility check (also warms the page cache so that every timed run reads from memory).
log "compressibility: pg_dump -Fc -Z0 | zstd -3 ..."
COMP=$(python3 "$BENCH/_bench.py" compressibility --host "$PGHOST" --port "$PORT" --user "$PGUSER" \
  --db "$DB" --pgbin "$PGBIN")
read -r RAW ZST RATIO < <(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['raw_dump_bytes'], d['zstd3_bytes'], d['ratio'])" "$COMP")
log "pg_database_size $DB_BYTES bytes; raw dump $RAW bytes -> zstd -3 $ZST bytes: ${RATIO}x"
python3 -c "import sys; r=float(sys.argv[1]); sys.exit(0 if 2.5 <= r <= 4.0 else 1)" "$RATIO" \
  || log "WARNING: compressibility ${RATIO}x is outside the intended 2.5-4x"

META=$(python3 -c "import json,sys; print(json.dumps({'pg_database_size': int(sys.argv[1]),
  'raw_dump_bytes': int(sys.argv[2]), 'zstd3_bytes': int(sys.argv[3]), 'zstd3_ratio': float(sys.argv[4]),
  'generation': sys.argv[5], 'reused': sys.argv[6] == '1'}))" \
  "$DB_BYTES" "$RAW" "$ZST" "$RATIO" "$(meta summary)" "$reuse")

# ---------------------------------------------------------------- the measurements
# The figures are CPU-bound on 2 cores: anything else running skews them (seen: 12.2 s vs
# 17.3 s for the same raw dump while a test suite ran alongside).
read -r load1 _ < /proc/loadavg
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 0.5 else 1)" "$load1" \
  || log "WARNING: load average is $load1 before the timed runs; other work on this machine skews the figures"
FLAGS=(--restore-jobs "$RESTORE_JOBS")
[[ ${BENCH_S3:-1} == 0 ]] && FLAGS+=(--skip-s3)
[[ ${BENCH_RESTORE:-1} == 0 ]] && FLAGS+=(--skip-restore)
rc=0
"$PY" "$BENCH/_bench.py" run --host "$PGHOST" --port "$PORT" --user "$PGUSER" --db "$DB" \
  --pgbin "$PGBIN" --root "$ROOT" --venv "$VENV" --outdir "$OUT" \
  --json "$OUT/backup_bench.json" --repeat "$REPEAT" --meta "$META" "${FLAGS[@]}" || rc=$?
exit $rc
