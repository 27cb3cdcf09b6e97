#!/usr/bin/env bash
# dbdr.backup demo: a local PostgreSQL cluster with sample data, a demo GPG key, and one
# run of playbooks/backup.yml into a local repository, all under .demo/ in the checkout.
#
#   scripts/demo.sh [start]   set up (idempotent) and run the backup playbook
#   scripts/demo.sh stop      stop the demo cluster and its gpg-agent (data is kept)
#
# `make demo` runs it after installing what it needs; `make clean` stops it and removes .demo/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="${ROOT}/.demo"
PGBIN="${DBDR_PG_BIN_DIR:-/usr/lib/postgresql/15/bin}"
PGDATA="${DEMO}/pgdata"
RUNDIR="${DEMO}/run"
PGLOG="${RUNDIR}/postgresql.log"
PORTFILE="${DEMO}/port"
GNUPGHOME_DEMO="${DEMO}/gnupg"
REPO_DIR="${DEMO}/repository"
VARS="${DEMO}/vars.yml"
INVENTORY="${DEMO}/inventory.ini"
VENV_PY="${ROOT}/.venv/bin/python"
DEFAULT_PORT=55432
KEY_UID="dbdr demo <demo@dbdr.invalid>"

log() { printf '==> %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_busy() {
  # true when something listens on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_running() {
  [ -f "${PGDATA}/postmaster.pid" ] && as_pg "${PGBIN}/pg_ctl" -D "${PGDATA}" status >/dev/null 2>&1
}

psql_demo() {
  # psql_demo DB [psql args...]; SQL on stdin. The database name goes through PGDATABASE.
  local db="$1"; shift
  PGHOST=127.0.0.1 PGPORT="${PORT}" PGUSER=postgres PGDATABASE="${db}" \
    "${PGBIN}/psql" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

stop_demo() {
  if pg_running; then
    log "stopping the demo PostgreSQL cluster"
    as_pg "${PGBIN}/pg_ctl" -D "${PGDATA}" -m fast -w stop >/dev/null
  fi
  if [ -d "${GNUPGHOME_DEMO}" ]; then
    GNUPGHOME="${GNUPGHOME_DEMO}" gpgconf --kill gpg-agent >/dev/null 2>&1 || true
  fi
}

start_cluster() {
  [ -x "${PGBIN}/initdb" ] || die "PostgreSQL binaries not found in ${PGBIN} (run make deps)"
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  mkdir -p "${DEMO}" "${RUNDIR}"
  chmod 0755 "${DEMO}" "${RUNDIR}"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "${RUNDIR}"; fi

  if pg_running; then
    PORT="$(cat "${PORTFILE}")"
    log "demo cluster already running on 127.0.0.1:${PORT}"
    return
  fi

  if [ ! -f "${PGDATA}/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in ${PGDATA}"
    rm -rf "${PGDATA}"
    mkdir -p "${PGDATA}"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "${PGDATA}"; fi
    chmod 0700 "${PGDATA}"
    as_pg "${PGBIN}/initdb" -D "${PGDATA}" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
  fi

  PORT="${DEFAULT_PORT}"
  while port_busy "${PORT}"; do
    PORT=$((PORT + 1))
    [ "${PORT}" -lt $((DEFAULT_PORT + 100)) ] || die "no free port in ${DEFAULT_PORT}..$((DEFAULT_PORT + 99))"
  done
  [ "${PORT}" -eq "${DEFAULT_PORT}" ] || log "port ${DEFAULT_PORT} is busy, using ${PORT}"
  echo "${PORT}" > "${PORTFILE}"

  log "starting PostgreSQL on 127.0.0.1:${PORT} (socket in ${RUNDIR})"
  # -o is split by a shell inside pg_ctl: paths here contain no spaces unless the checkout does.
  as_pg "${PGBIN}/pg_ctl" -D "${PGDATA}" -l "${PGLOG}" -w -t 60 \
    -o "-p ${PORT} -k ${RUNDIR} -c listen_addresses=127.0.0.1 -c wal_level=replica -c max_wal_senders=5" \
    start >/dev/null || { cat "${PGLOG}" >&2 || true; die "PostgreSQL did not start"; }
}

db_exists() {
  [ "$(printf 'SELECT count(*) FROM pg_database WHERE datname = %s' "'$1'" | psql_demo postgres -f -)" = 1 ]
}

load_shop() {
  if db_exists shop; then
    log "database shop already loaded"
    return
  fi
  log "loading sample database shop"
  psql_demo postgres -c 'CREATE DATABASE shop' >/dev/null
  if ! psql_demo shop --single-transaction -f - >/dev/null <<'SQL'
CREATE TABLE customers (
    id          serial PRIMARY KEY,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    email       text NOT NULL UNIQUE,
    country     char(2) NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE TABLE products (
    id          serial PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    category    text NOT NULL,
    price       numeric(10,2) NOT NULL CHECK (price >= 0)
);
CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    status      text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'refunded')),
    ordered_at  timestamptz NOT NULL
);
CREATE TABLE order_items (
    order_id    bigint NOT NULL REFERENCES orders (id),
    product_id  int NOT NULL REFERENCES products (id),
    quantity    int NOT NULL CHECK (quantity > 0),
    unit_price  numeric(10,2) NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_ordered_at_idx ON orders (ordered_at);

INSERT INTO customers (first_name, last_name, email, country, created_at)
SELECT f, l, lower(f) || '.' || lower(l) || g || '@example.com', c,
       timestamptz '2023-01-01 08:00+00' + g * interval '97 minutes'
FROM generate_series(1, 5000) AS g,
     LATERAL (SELECT (ARRAY['Ana','Ben','Chloé','Dmitri','Emma','Farid','Grace','Hiro','Ines','Jonas',
                            'Kemal','Lena','Mateo','Nora','Omar','Priya','Quinn','Rosa','Sven','Yuki'])[1 + g % 20] AS f,
                     (ARRAY['Smith','Müller','García','Rossi','Dubois','Kowalski','Tanaka','Okafor','Silva',
                            'Nguyen','Jensen','Novak','Haddad','Olsen','Costa'])[1 + (g * 7) % 15] AS l,
                     (ARRAY['DE','FR','US','GB','ES','IT','PL','JP','BR','SE'])[1 + (g * 3) % 10] AS c) AS n;

INSERT INTO products (sku, name, category, price)
SELECT 'SKU-' || lpad(g::text, 5, '0'),
       (ARRAY['Espresso beans','Pour-over kettle','Ceramic mug','Grinder','Milk frother','Tea sampler',
              'French press','Travel cup','Scale','Filter papers'])[1 + g % 10] || ' #' || g,
       (ARRAY['coffee','equipment','tableware','tea'])[1 + g % 4],
       round((4.5 + (g * 37) % 250 + ((g * 13) % 100) / 100.0)::numeric, 2)
FROM generate_series(1, 400) AS g;

INSERT INTO orders (customer_id, status, ordered_at)
SELECT 1 + (g * 7919) % 5000,
       (ARRAY['paid','paid','paid','shipped','shipped','pending','refunded'])[1 + g % 7],
       timestamptz '2024-01-01 00:00+00' + g * interval '4 minutes 13 seconds'
FROM generate_series(1, 40000) AS g;

INSERT INTO order_items (order_id, product_id, quantity, unit_price)
SELECT o.id, p.id, 1 + (o.id + k) % 4, p.price
FROM orders o
CROSS JOIN generate_series(0, 2) AS k
JOIN products p ON p.id = 1 + (o.id * 31 + k * 131) % 400
WHERE k <= o.id % 3;

CREATE VIEW revenue_by_month AS
SELECT date_trunc('month', o.ordered_at) AS month, sum(i.quantity * i.unit_price) AS revenue
FROM orders o JOIN order_items i ON i.order_id = o.id
WHERE o.status IN ('paid', 'shipped')
GROUP BY 1;
ANALYZE;
SQL
  then
    psql_demo postgres -c 'DROP DATABASE IF EXISTS shop' >/dev/null || true
    die "loading the shop database failed"
  fi
}

load_analytics() {
  if db_exists analytics; then
    log "database analytics already loaded"
    return
  fi
  log "loading sample database analytics"
  psql_demo postgres -c 'CREATE DATABASE analytics' >/dev/null
  if ! psql_demo analytics --single-transaction -f - >/dev/null <<'SQL'
CREATE TABLE page_views (
    id          bigserial PRIMARY KEY,
    viewed_at   timestamptz NOT NULL,
    path        text NOT NULL,
    referrer    text,
    session_id  uuid NOT NULL,
    duration_ms int NOT NULL
);
INSERT INTO page_views (viewed_at, path, referrer, session_id, duration_ms)
SELECT timestamptz '2024-06-01 00:00+00' + g * interval '17 seconds',
       (ARRAY['/','/shop','/shop/coffee','/shop/tea','/cart','/checkout','/blog/brewing-guide'])[1 + g % 7],
       (ARRAY[NULL,'https://search.example/','https://news.example/','https://social.example/'])[1 + g % 4],
       md5((g / 6)::text)::uuid,
       200 + (g * 7907) % 60000
FROM generate_series(1, 50000) AS g;
CREATE TABLE daily_stats AS
SELECT viewed_at::date AS day, count(*) AS views, count(DISTINCT session_id) AS sessions
FROM page_views GROUP BY 1;
ALTER TABLE daily_stats ADD PRIMARY KEY (day);
ANALYZE;
SQL
  then
    psql_demo postgres -c 'DROP DATABASE IF EXISTS analytics' >/dev/null || true
    die "loading the analytics database failed"
  fi
}

demo_fpr() {
  # fingerprint of the demo key's primary key, or nothing (gpg exits 2 when none exists)
  { gpg --batch --with-colons --list-secret-keys "=${KEY_UID}" 2>/dev/null || true; } \
    | awk -F: '$1 == "fpr" {print $10; exit}'
}

ensure_gpg_key() {
  mkdir -p "${GNUPGHOME_DEMO}"
  chmod 0700 "${GNUPGHOME_DEMO}"
  export GNUPGHOME="${GNUPGHOME_DEMO}"
  FPR="$(demo_fpr)"
  if [ -z "${FPR}" ]; then
    log "generating the demo GPG key (no passphrase) in ${GNUPGHOME_DEMO}"
    gpg --batch --quiet --passphrase '' --pinentry-mode loopback \
      --quick-gen-key "${KEY_UID}" future-default default never 2>/dev/null
    FPR="$(demo_fpr)"
  fi
  [ -n "${FPR}" ] || die "could not find or create the demo GPG key"
  unset GNUPGHOME
  log "demo GPG key fingerprint: ${FPR}"
}

write_vars() {
  mkdir -p "${REPO_DIR}"
  cat > "${VARS}" <<EOF
---
# Written by scripts/demo.sh; rewritten on every run.
dbdr_hosts: localhost
dbdr_login_host: 127.0.0.1
dbdr_login_port: ${PORT}
dbdr_login_user: postgres
dbdr_cluster: demo
dbdr_repository: {type: local, path: "${REPO_DIR}"}
dbdr_encryption: {type: gpg, recipients: ["${FPR}"], gnupghome: "${GNUPGHOME_DEMO}"}
dbdr_databases: [all]
EOF
  printf 'localhost ansible_connection=local ansible_python_interpreter=%s\n' "${VENV_PY}" > "${INVENTORY}"
  log "wrote ${VARS}"
}

run_playbook() {
  local playbook="${ROOT}/playbooks/backup.yml"
  [ -x "${VENV_PY}" ] || die "${VENV_PY} missing (run make venv)"
  [ -f "${playbook}" ] || die "${playbook} does not exist yet"
  log "running playbooks/backup.yml"
  ANSIBLE_COLLECTIONS_PATH="${ROOT}/.tmp/collections" \
    "${ROOT}/.venv/bin/ansible-playbook" -i "${INVENTORY}" -e "@${VARS}" "${playbook}"
}

show_repository() {
  log "stored in ${REPO_DIR}:"
  "${VENV_PY}" - "${REPO_DIR}" <<'PY'
import json
import os
import sys

root = sys.argv[1]
files = []
for dirpath, _dirs, names in os.walk(root):
    for name in names:
        path = os.path.join(dirpath, name)
        files.append((os.path.relpath(path, root), os.path.getsize(path)))
for rel, size in sorted(files):
    print("%12d  %s" % (size, rel))
manifests = sorted(rel for rel, _ in files if os.path.basename(rel) == "manifest.json")
if not manifests:
    print("(no manifest.json: no complete backup)")
    sys.exit(0)
with open(os.path.join(root, manifests[-1]), encoding="utf-8") as fh:
    manifest = json.load(fh)
summary = {
    "manifest": manifests[-1],
    "backup_id": manifest.get("backup_id"),
    "databases": [
        {"name": d.get("name"),
         "tables": len(d.get("tables") or []),
         "rows": sum((t.get("rows") or 0) for t in (d.get("tables") or []))}
        for d in manifest.get("databases", [])
    ],
    "objects": [
        {"name": o.get("name"), "bytes": o.get("bytes"), "sha256": o.get("sha256")}
        for o in manifest.get("objects", [])
    ],
}
print("==> newest manifest (summary):")
print(json.dumps(summary, indent=2, ensure_ascii=False))
PY
}

cmd="${1:-start}"
case "${cmd}" in
  start)
    start_cluster
    load_shop
    load_analytics
    ensure_gpg_key
    write_vars
    run_playbook
    show_repository
    ;;
  stop)
    stop_demo
    ;;
  *)
    die "usage: $0 [start|stop]"
    ;;
esac
