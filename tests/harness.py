"""Real components for the dbdr.backup tests: PostgreSQL, GnuPG, an S3 server, Ansible.

Everything here starts real programs (no mocks) in temporary directories and cleans up
after itself.  ``tests/conftest.py`` wraps these classes in session-scoped fixtures; they
can also be used directly, e.g. ``with PostgresServer() as pg: ...``.

Rules kept throughout: argument lists (never a shell), secrets never in argv (SQL goes to
psql on stdin, passphrases through a file descriptor, Ansible variables through a 0600
JSON file given as ``-e @file``).
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS_ROOT = REPO_ROOT / ".tmp" / "collections"
COLLECTION_LINK = COLLECTIONS_ROOT / "ansible_collections" / "dbdr" / "backup"
CALLBACK_DIR = Path(__file__).resolve().parent / "ansible_plugins" / "callback"
PG_BIN_DIR = Path(os.environ.get("DBDR_PG_BIN_DIR", "/usr/lib/postgresql/15/bin"))
VENV_BIN = Path(sys.executable).parent

PG_PASSWORD_ROLE = "dbdr_pw"
PG_PASSWORD = "S3cret-pw!"


class HarnessError(RuntimeError):
    """A component of the test harness could not be set up."""


# --------------------------------------------------------------------------- helpers


def run(argv, *, input=None, env=None, cwd=None, check=True, timeout=120, text=True):  # pylint: disable=redefined-builtin
    """subprocess.run with an argument list; raises HarnessError with the output on failure."""
    proc = subprocess.run(  # noqa: S603
        [str(a) for a in argv], input=input, env=env, cwd=cwd, capture_output=True,
        text=text, timeout=timeout, check=False,
    )
    if check and proc.returncode != 0:
        raise HarnessError(
            "command failed (rc=%d): %s\n--- stdout ---\n%s\n--- stderr ---\n%s"
            % (proc.returncode, " ".join(str(a) for a in argv), proc.stdout, proc.stderr)
        )
    return proc


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port, host="127.0.0.1"):
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def quote_ident(name):
    """PostgreSQL identifier quoting: any name, including quotes, spaces and unicode."""
    if "\x00" in name:
        raise ValueError("identifiers cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value):
    """PostgreSQL string literal (standard_conforming_strings is on by default)."""
    if "\x00" in value:
        raise ValueError("literals cannot contain NUL")
    return "'" + value.replace("'", "''") + "'"


def ensure_collection_link():
    """Make ``.tmp/collections/ansible_collections/dbdr/backup`` point at the checkout."""
    COLLECTION_LINK.parent.mkdir(parents=True, exist_ok=True)
    if COLLECTION_LINK.is_symlink() and os.readlink(COLLECTION_LINK) == str(REPO_ROOT):
        return COLLECTIONS_ROOT
    if COLLECTION_LINK.is_symlink() or COLLECTION_LINK.is_file():
        COLLECTION_LINK.unlink()
    elif COLLECTION_LINK.exists():
        shutil.rmtree(COLLECTION_LINK)
    try:
        COLLECTION_LINK.symlink_to(REPO_ROOT)
    except FileExistsError:  # created concurrently
        pass
    return COLLECTIONS_ROOT


def _ensure_postgres_user():
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        run(["useradd", "--system", "--home-dir", "/var/lib/postgresql", "--shell", "/bin/bash", "postgres"])
        return pwd.getpwnam("postgres")


def _clean_pg_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"})
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------- PostgreSQL


class Component:
    """A real component a test session runs: ``setup()`` starts it, ``cleanup()`` removes every
    trace of it, also after a failed ``setup()``.  Usable as a context manager."""

    def setup(self):
        return self

    def cleanup(self):
        """Subclasses remove what setup() made."""

    def __enter__(self):
        try:
            return self.setup()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()


class PostgresServer(Component):
    """A throwaway PostgreSQL cluster (default: version 15) on 127.0.0.1.

    pg_hba: ``postgres`` is trusted (socket and TCP, including replication); every other
    role must authenticate with scram-sha-256.  A superuser ``dbdr_pw`` with password
    ``S3cret-pw!`` exists for password tests (``PG_PASSWORD_ROLE``/``PG_PASSWORD``).
    """

    host = "127.0.0.1"
    user = "postgres"

    def __init__(self, bin_dir=PG_BIN_DIR, port=None, extra_conf=None):
        self.bin_dir = Path(bin_dir)
        self.port = port
        self.extra_conf = dict(extra_conf or {})
        self.base = None
        self.datadir = None
        self.socket_dir = None
        self.logfile = None
        self.password_user = PG_PASSWORD_ROLE
        self.password = PG_PASSWORD
        self._as_postgres = os.geteuid() == 0
        self._running = False

    # -- lifecycle
    def _pg_argv(self, *argv):
        if self._as_postgres:
            return ["runuser", "-u", "postgres", "--", *argv]
        return list(argv)

    def setup(self):
        if not (self.bin_dir / "initdb").exists():
            raise HarnessError("PostgreSQL binaries not found in %s (run make deps)" % self.bin_dir)
        self.base = Path(tempfile.mkdtemp(prefix="dbdr-pg-"))
        if self._as_postgres:
            pw = _ensure_postgres_user()
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        os.chmod(self.base, 0o755)  # the socket dir must be reachable for clients
        self.datadir = self.base / "data"
        self.socket_dir = self.base
        self.logfile = self.base / "postgresql.log"
        run(self._pg_argv(self.bin_dir / "initdb", "-D", self.datadir, "-A", "trust", "-U", "postgres",
                          "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"),
            env=_clean_pg_env(), cwd=self.base)
        hba = (
            "# dbdr test cluster: postgres trusted, every other role needs a password\n"
            "local   all          postgres                  trust\n"
            "local   replication  postgres                  trust\n"
            "local   all          all                       scram-sha-256\n"
            "local   replication  all                       scram-sha-256\n"
            "host    all          postgres   127.0.0.1/32   trust\n"
            "host    replication  postgres   127.0.0.1/32   trust\n"
            "host    all          all        127.0.0.1/32   scram-sha-256\n"
            "host    replication  all        127.0.0.1/32   scram-sha-256\n"
        )
        self._write_as_owner(self.datadir / "pg_hba.conf", hba)
        if self.extra_conf:
            conf = "".join("%s = %s\n" % (k, v) for k, v in self.extra_conf.items())
            with open(self.datadir / "postgresql.auto.conf", "a", encoding="utf-8") as fh:
                fh.write(conf)
        if self.port is None or not port_is_free(self.port):
            self.port = free_port()
        for attempt in range(3):
            try:
                self.start()
                break
            except HarnessError:
                if attempt == 2:
                    raise
                self.port = free_port()
        self.psql(
            "CREATE ROLE %s LOGIN SUPERUSER PASSWORD %s"
            % (quote_ident(self.password_user), quote_literal(self.password))
        )
        return self

    def _write_as_owner(self, path, content):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(content)
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, 0o600)

    def start(self):
        opts = (
            "-p %d -k %s -c listen_addresses=127.0.0.1 -c wal_level=replica "
            "-c max_wal_senders=5 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            % (self.port, self.socket_dir)
        )
        run(self._pg_argv(self.bin_dir / "pg_ctl", "-D", self.datadir, "-o", opts, "-l", self.logfile,
                          "-w", "-t", "60", "start"),
            env=_clean_pg_env(), cwd=self.base, check=False)
        # pg_ctl -w can report failure although a postmaster runs; check for real.
        for _attempt in range(100):
            if self.is_ready():
                self._running = True
                return
            time.sleep(0.1)
        raise HarnessError("PostgreSQL did not start on port %s; log:\n%s" % (self.port, self.log_tail()))

    def stop(self, mode="fast"):
        if self.datadir is None or not (self.datadir / "postmaster.pid").exists():
            self._running = False
            return
        run(self._pg_argv(self.bin_dir / "pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", "60", "stop"),
            env=_clean_pg_env(), cwd=self.base, check=False)
        self._running = False

    def restart(self):
        self.stop()
        self.start()

    def cleanup(self):
        try:
            self.stop(mode="immediate")
        finally:
            if self.base is not None:
                shutil.rmtree(self.base, ignore_errors=True)
                self.base = None

    # -- state
    @property
    def running(self):
        return self._running

    def is_ready(self):
        proc = run([self.bin_dir / "pg_isready", "-h", self.host, "-p", self.port, "-U", self.user, "-t", "1"],
                   env=_clean_pg_env(), check=False, timeout=10)
        return proc.returncode == 0

    def log_tail(self, lines=40):
        try:
            return "\n".join(Path(self.logfile).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- connection details
    def dsn(self, db="postgres", user=None):
        """A libpq keyword/value connection string (no password)."""
        return "host=%s port=%d user=%s dbname=%s" % (
            self.host, self.port, _conninfo_quote(user or self.user), _conninfo_quote(db))

    def conn_params(self, db="postgres", password=False):
        """Module-style connection options (community.postgresql names)."""
        params = {"login_host": self.host, "login_port": self.port, "login_user": self.user, "login_db": db}
        if password:
            params.update(login_user=self.password_user, login_password=self.password)
        return params

    def env(self, db="postgres", user=None, password=None):
        """Environment for libpq client programs; the password goes in PGPASSWORD, never argv."""
        extra = {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": user or self.user, "PGDATABASE": db}
        if password is not None:
            extra["PGPASSWORD"] = password
        return _clean_pg_env(extra)

    # -- SQL
    def psql(self, sql, db="postgres", user=None, password=None, check=True):
        """Run SQL (read from stdin) with psql -X -A -t -q -v ON_ERROR_STOP=1 over TCP; return stdout.

        The trailing newline is removed.  The database name goes through PGDATABASE so no
        name is ever parsed as a connection string.
        """
        proc = run([self.bin_dir / "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
                   input=sql, env=self.env(db=db, user=user, password=password), check=False, timeout=300)
        if check and proc.returncode != 0:
            raise HarnessError("psql failed (rc=%d) on db %r:\n%s\n--- stderr ---\n%s"
                               % (proc.returncode, db, sql[:2000], proc.stderr))
        return proc.stdout[:-1] if proc.stdout.endswith("\n") else proc.stdout

    def scalar(self, sql, db="postgres"):
        """First column of the first row, as a string."""
        out = self.psql(sql, db=db)
        return out.split("\n", 1)[0] if out else out

    def create_db(self, name, template="template0"):
        self.psql("CREATE DATABASE %s TEMPLATE %s ENCODING 'UTF8'" % (quote_ident(name), quote_ident(template)))
        return name

    def drop_db(self, name):
        self.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % quote_ident(name))

    def databases(self):
        out = self.psql("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1")
        return out.split("\n") if out else []

    def db_exists(self, name):
        return self.scalar("SELECT count(*) FROM pg_database WHERE datname = %s" % quote_literal(name)) == "1"

    def count(self, db, schema, table):
        return int(self.scalar("SELECT count(*) FROM %s.%s" % (quote_ident(schema), quote_ident(table)), db=db))

    def table_counts(self, db):
        """{"schema.table": rowcount} for every ordinary table outside the system schemas."""
        out = self.psql(
            "SELECT coalesce(json_agg(json_build_array(n.nspname, c.relname) ORDER BY n.nspname, c.relname), '[]') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
            db=db)
        return {"%s.%s" % (schema, table): self.count(db, schema, table) for schema, table in json.loads(out)}

    def table_checksums(self, db):
        """{"schema.table": md5 of every row's text, in order}: equal maps mean equal data."""
        out = self.psql(
            "SELECT coalesce(json_agg(json_build_array(n.nspname, c.relname) ORDER BY n.nspname, c.relname), '[]') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
            db=db)
        sums = {}
        for schema, table in json.loads(out):
            sums["%s.%s" % (schema, table)] = self.scalar(
                "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM %s.%s t"
                % (quote_ident(schema), quote_ident(table)), db=db)
        return sums


def _conninfo_quote(value):
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------- sample data

SAMPLE_ODD_DB = 'odd "db" name ü'
SAMPLE_CUSTOMERS = 2000
SAMPLE_ORDERS = 5000

_SAMPLE_APP_SQL = r'''
CREATE TABLE public.customers (
    id serial PRIMARY KEY,
    name text NOT NULL,
    email text,
    created timestamptz NOT NULL,
    meta jsonb
);
CREATE TABLE public.orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES public.customers (id),
    amount numeric(12,2) NOT NULL,
    note text,
    payload bytea
);
CREATE INDEX orders_customer_idx ON public.orders (customer_id);
INSERT INTO public.customers (name, email, created, meta)
SELECT 'Customer ' || g,
       'customer' || g || '@example.invalid',
       timestamptz '2024-01-01 00:00:00+00' + g * interval '37 minutes',
       jsonb_build_object('tier', (ARRAY['free','pro','enterprise'])[1 + g % 3], 'n', g)
FROM generate_series(1, {customers}) AS g;
INSERT INTO public.orders (customer_id, amount, note, payload)
SELECT 1 + (g * 7919) % {customers},
       round(((g * 104729) % 100000) / 100.0, 2),
       CASE WHEN g % 10 = 0 THEN 'note ' || md5(g::text) || E' with \\ backslash, ''quotes'' and ñ' END,
       decode(md5(g::text), 'hex')
FROM generate_series(1, {orders}) AS g;
CREATE SCHEMA "Sales Data";
CREATE TABLE "Sales Data"."Quarterly ""Report""" (
    quarter text PRIMARY KEY,
    revenue numeric(14,2) NOT NULL
);
INSERT INTO "Sales Data"."Quarterly ""Report""" (quarter, revenue)
SELECT (2023 + (g - 1) / 4) || '-Q' || (1 + (g - 1) % 4), g * 1000.50
FROM generate_series(1, 10) AS g;
CREATE TABLE public."Ünïcode tåble" (id int PRIMARY KEY, "Wört" text);
INSERT INTO public."Ünïcode tåble" SELECT g, 'wört ' || g || ' – ✓' FROM generate_series(1, 5) AS g;
CREATE VIEW public.customer_totals AS
SELECT c.id, c.name, sum(o.amount) AS total
FROM public.customers c LEFT JOIN public.orders o ON o.customer_id = c.id GROUP BY c.id, c.name;
ANALYZE;
'''

_SAMPLE_ODD_SQL = """
CREATE TABLE public.items (id int PRIMARY KEY, label text NOT NULL);
INSERT INTO public.items VALUES (1, 'one'), (2, 'two "quoted"'), (3, 'drei ü');
"""


def load_sample(pg):
    """(Re)create the sample databases; return {db: {"schema.table": rowcount}}."""
    for name in ("app", SAMPLE_ODD_DB):
        pg.drop_db(name)
        pg.create_db(name)
    pg.psql(_SAMPLE_APP_SQL.format(customers=SAMPLE_CUSTOMERS, orders=SAMPLE_ORDERS), db="app")
    pg.psql(_SAMPLE_ODD_SQL, db=SAMPLE_ODD_DB)
    expected = {
        "app": {
            "public.customers": SAMPLE_CUSTOMERS,
            "public.orders": SAMPLE_ORDERS,
            'Sales Data.Quarterly "Report"': 10,
            "public.Ünïcode tåble": 5,
        },
        SAMPLE_ODD_DB: {"public.items": 3},
    }
    for db, tables in expected.items():
        actual = pg.table_counts(db)
        if actual != tables:
            raise HarnessError("sample data in %r: expected %r, found %r" % (db, tables, actual))
    return expected


# --------------------------------------------------------------------------- GnuPG


class GnupgHome(Component):
    """A temporary GNUPGHOME with three keys.

    - ``fpr``: no passphrase (ed25519 + cv25519, never expires)
    - ``passphrase_fpr``: protected by ``passphrase``
    - ``expired_fpr``: created on 2020-01-01 with a one-day expiry, so expired now
    - ``public_key_file``: the plain key's ASCII-armoured public key, outside ``home``
    """

    PLAIN_UID = "dbdr test <test@dbdr.invalid>"
    PASS_UID = "dbdr passphrase test <pass@dbdr.invalid>"
    EXPIRED_UID = "dbdr expired test <expired@dbdr.invalid>"

    def __init__(self, passphrase="correct horse battery staple"):
        self.passphrase = passphrase
        self.base = None
        self.home = None
        self.fpr = None
        self.passphrase_fpr = None
        self.expired_fpr = None
        self.public_key_file = None

    @property
    def env(self):
        env = dict(os.environ)
        env["GNUPGHOME"] = str(self.home)
        return env

    def gpg(self, *args, input=None, check=True, text=True):  # pylint: disable=redefined-builtin
        """Run gpg --batch with this home; secrets go through ``input`` (stdin), never args."""
        return run(["gpg", "--batch", "--no-tty", *args], input=input, env=self.env, check=check, text=text)

    def _gen(self, uid, expire, passphrase=None, faked_time=None):
        args = ["--status-fd", "1"]
        if faked_time:
            args += ["--faked-system-time", faked_time]
        if passphrase is None:
            args += ["--passphrase", "", "--pinentry-mode", "loopback"]
            stdin = None
        else:
            args += ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
            stdin = passphrase + "\n"
        proc = self.gpg(*args, "--quick-gen-key", uid, "future-default", "default", expire, input=stdin)
        match = re.search(r"^\[GNUPG:\] KEY_CREATED [BP] ([0-9A-F]{40,64})$", proc.stdout, re.M)
        if not match:
            raise HarnessError("no KEY_CREATED status from gpg:\n%s\n%s" % (proc.stdout, proc.stderr))
        return match.group(1)

    def setup(self):
        self.base = Path(tempfile.mkdtemp(prefix="dbdr-gpg-"))
        self.home = self.base / "home"
        self.home.mkdir(mode=0o700)
        os.chmod(self.home, 0o700)
        # Never cache passphrases: a test of a wrong passphrase must not be answered from the cache.
        (self.home / "gpg-agent.conf").write_text(
            "default-cache-ttl 0\nmax-cache-ttl 0\nallow-loopback-pinentry\n", encoding="ascii")
        self.fpr = self._gen(self.PLAIN_UID, "never")
        self.passphrase_fpr = self._gen(self.PASS_UID, "never", passphrase=self.passphrase)
        self.expired_fpr = self._gen(self.EXPIRED_UID, "1d", faked_time="20200101T000000!")
        self.public_key_file = self.base / "plain-public.asc"
        exported = self.gpg("--armor", "--export", self.fpr).stdout
        if "BEGIN PGP PUBLIC KEY BLOCK" not in exported:
            raise HarnessError("gpg --export returned no key")
        self.public_key_file.write_text(exported, encoding="ascii")
        return self

    def encrypt(self, data, *recipients):
        """Encrypt bytes to fingerprints (trust model always, as a backup tool would)."""
        argv = ["--trust-model", "always", "--compress-algo", "none", "--cipher-algo", "AES256", "--encrypt"]
        for r in recipients:
            argv += ["--recipient", r]
        return self.gpg(*argv, input=data, text=False).stdout

    def decrypt(self, data, passphrase=None):
        """Decrypt bytes; a passphrase goes through a 0600 file (stdin carries the data)."""
        if passphrase is None:
            return self.gpg("--pinentry-mode", "loopback", "--passphrase", "", "--decrypt", input=data, text=False).stdout
        with tempfile.NamedTemporaryFile("w", dir=self.base, delete=True) as fh:
            os.chmod(fh.name, 0o600)
            fh.write(passphrase)
            fh.flush()
            return self.gpg("--pinentry-mode", "loopback", "--passphrase-file", fh.name, "--decrypt",
                            input=data, text=False).stdout

    def cleanup(self):
        if self.home is not None:
            for component in ("gpg-agent", "keyboxd", "dirmngr"):
                run(["gpgconf", "--kill", component], env=self.env, check=False, timeout=30)
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None


# --------------------------------------------------------------------------- S3 (moto)


class S3Server(Component):
    """``moto_server`` on 127.0.0.1 on a free port; dummy credentials testing/testing."""

    access_key = "AKIADBDRTESTKEY00001"
    secret_key = "dbdr-test-secret-key-do-not-log-0001"
    region = "us-east-1"

    def __init__(self, env=None):
        self.extra_env = dict(env or {})
        self.proc = None
        self.base = None
        self.port = None
        self.endpoint_url = None
        self.logfile = None

    def setup(self, timeout=30):
        exe = VENV_BIN / "moto_server"
        if not exe.exists():
            found = shutil.which("moto_server")
            if not found:
                raise HarnessError("moto_server not found (run make venv)")
            exe = Path(found)
        self.base = Path(tempfile.mkdtemp(prefix="dbdr-s3-"))
        self.logfile = self.base / "moto.log"
        env = dict(os.environ)
        env.update({"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                    "AWS_DEFAULT_REGION": self.region, "PYTHONUNBUFFERED": "1"})
        env.update(self.extra_env)
        # stderr goes to a file: moto logs every request there, a pipe would fill up.
        with open(self.logfile, "wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603  pylint: disable=consider-using-with
                [str(exe), "-H", "127.0.0.1", "-p", "0"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, cwd=self.base, start_new_session=True)
        deadline = time.monotonic() + timeout
        pattern = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")
        while time.monotonic() < deadline:
            text = self.logfile.read_text(encoding="utf-8", errors="replace")
            match = pattern.search(text)
            if match:
                self.port = int(match.group(1))
                self.endpoint_url = "http://127.0.0.1:%d" % self.port
                break
            if self.proc.poll() is not None:
                raise HarnessError("moto_server exited (rc=%s):\n%s" % (self.proc.returncode, text))
            time.sleep(0.05)
        else:
            self.stop()
            raise HarnessError("moto_server did not report its port within %ss" % timeout)
        return self

    def client(self, service="s3", **kwargs):
        import boto3  # pylint: disable=import-outside-toplevel

        return boto3.client(service, endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region, **kwargs)

    def create_bucket(self, name, **kwargs):
        self.client().create_bucket(Bucket=name, **kwargs)
        return name

    def reset(self):
        """Forget every bucket and object (moto's reset API)."""
        req = urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            resp.read()

    def env(self):
        """Environment variables that point AWS SDKs (boto3, aws cli) at this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region,
                "AWS_ENDPOINT_URL": self.endpoint_url}

    def repository(self, bucket, prefix="dbdr", **extra):
        """A ``repository`` option dict for the modules."""
        repo = {"type": "s3", "bucket": bucket, "prefix": prefix, "region": self.region,
                "endpoint_url": self.endpoint_url, "access_key": self.access_key, "secret_key": self.secret_key}
        repo.update(extra)
        return repo

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self.base is not None:
                shutil.rmtree(self.base, ignore_errors=True)
                self.base = None


class FaultRule:
    """Which requests a FaultProxy spoils, and how.

    A request matches when its method equals ``method`` (any method if None), ``path``
    (a regex, ``re.search`` on the URL path without the query) matches, and ``query`` is a
    substring of the raw query string.  Of the matching requests, ``nth`` spoils only the
    Nth one (1-based), ``times`` the first N, and neither of them every one.

    ``action``: ``"error"`` answers ``status`` with an S3 XML error body carrying ``code``
    (the request body is read first, so the connection stays usable); ``"reset"`` closes
    the connection with a TCP reset before answering.
    """

    def __init__(self, method=None, path=None, query=None, action="error", status=500, code=None,
                 nth=None, times=None):
        if action not in ("error", "reset"):
            raise ValueError("action must be error or reset")
        self.method = method.upper() if method else None
        self.path = re.compile(path) if path else None
        self.query = query
        self.action = action
        self.status = status
        self.code = code or {500: "InternalError", 503: "SlowDown"}.get(status, "InternalError")
        self.nth = nth
        self.times = times
        self.matched = 0   # matching requests seen
        self.applied = 0   # faults injected

    def matches(self, method, path, query):
        return ((self.method is None or method == self.method)
                and (self.path is None or self.path.search(path) is not None)
                and (self.query is None or self.query in query))

    def fires(self):
        """Count one matching request; True when this one gets the fault."""
        self.matched += 1
        if self.nth is not None:
            fire = self.matched == self.nth
        elif self.times is not None:
            fire = self.matched <= self.times
        else:
            fire = True
        if fire:
            self.applied += 1
        return fire

    def __repr__(self):
        return "FaultRule(%s %s ?%s -> %s %s, matched=%d, applied=%d)" % (
            self.method or "*", self.path.pattern if self.path else "*", self.query or "*", self.action,
            self.status if self.action == "error" else "", self.matched, self.applied)


class FaultProxy:
    """An HTTP proxy in front of an S3 endpoint (moto) that injects faults by rule.

    Standard library only: a threaded ``http.server`` on 127.0.0.1 (free port) forwarding
    each request unchanged (Host header included, so SigV4 signatures stay valid) to
    ``upstream`` with ``http.client``.  Point a client's ``endpoint_url`` at ``endpoint_url``.
    ``add(FaultRule(...))`` spoils matching requests; ``log`` lists every request as
    ``(method, path, query, status or "reset", fault: bool)``.
    """

    def __init__(self, upstream, rules=()):
        split = urllib.parse.urlsplit(upstream)
        if split.scheme != "http":
            raise ValueError("FaultProxy forwards plain HTTP only, got %r" % upstream)
        self.upstream_host = split.hostname
        self.upstream_port = split.port or 80
        self.rules = list(rules)
        self.log = []
        self._lock = threading.Lock()
        self._server = None
        self._thread = None
        self.port = None
        self.endpoint_url = None

    def add(self, rule):
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self):
        with self._lock:
            self.rules = []

    def _pick(self, method, path, query):
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, query) and rule.fires():
                    return rule
        return None

    def _record(self, entry):
        with self._lock:
            self.log.append(entry)

    def faults(self):
        """The log entries of requests that got a fault."""
        with self._lock:
            return [e for e in self.log if e[4]]

    def start(self):
        proxy = self
        hop_by_hop = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                      "upgrade", "proxy-authorization", "proxy-authenticate", "content-length", "expect"}

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _read_body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reset(self):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def _handle(self):
                path, _sep, query = self.path.partition("?")
                rule = proxy._pick(self.command, path, query)
                if rule is not None and rule.action == "reset":
                    proxy._record((self.command, path, query, "reset", True))
                    self._reset()
                    return
                body = self._read_body()
                if rule is not None:
                    payload = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                               "<Message>injected by the dbdr test FaultProxy</Message>"
                               "<RequestId>dbdr-fault</RequestId></Error>" % rule.code).encode("utf-8")
                    proxy._record((self.command, path, query, rule.status, True))
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop_by_hop}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    proxy._record((self.command, path, query, resp.status, False))
                    self.send_response(resp.status, resp.reason)
                    for key, value in resp.getheaders():
                        if key.lower() not in hop_by_hop:
                            self.send_header(key, value)
                    # A HEAD answer has no body but tells the object's length.
                    length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length if length is not None else str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request, client_address):  # a client hanging up is not news
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.endpoint_url = "http://127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="dbdr-fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------- Ansible


class RunResult:
    """Outcome of one ansible / ansible-playbook run with the dbdr_json callback."""

    def __init__(self, argv, rc, stdout, stderr):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self._doc = None

    @property
    def json(self):
        """The parsed callback document ({"plays": [...], "stats": {...}})."""
        if self._doc is None:
            self._doc = _find_json_document(self.stdout)
        return self._doc

    @property
    def stats(self):
        return self.json.get("stats", {})

    def results(self, host="localhost"):
        """[(task dict, result dict)] for ``host`` in run order."""
        out = []
        for play in self.json.get("plays", []):
            for task in play.get("tasks", []):
                if host in task.get("hosts", {}):
                    out.append((task["task"], task["hosts"][host]))
        return out

    def task_results(self, name_or_module, host="localhost"):
        """Result dicts of tasks whose name, action (FQCN) or short module name matches."""
        out = []
        for task, res in self.results(host):
            action = task.get("action") or res.get("action") or ""
            if name_or_module in (task.get("name"), action, action.rsplit(".", 1)[-1]):
                out.append(res)
        return out

    def task_result(self, name_or_module, host="localhost"):
        """The single result of a task; fails if there is not exactly one."""
        found = self.task_results(name_or_module, host)
        assert len(found) == 1, "expected one result for %r, found %d\n%s" % (name_or_module, len(found), self.describe())
        return found[0]

    @property
    def last_result(self):
        found = self.results()
        return found[-1][1] if found else None

    def describe(self, limit=20000):
        def cut(text):
            return text if len(text) <= limit else "...(cut)...\n" + text[-limit:]
        return "command: %s\nrc: %s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(self.argv), self.rc, cut(self.stdout), cut(self.stderr))

    def __repr__(self):
        return "<RunResult rc=%s>" % self.rc


class BackgroundRun:
    """An ansible-playbook started by ``AnsibleRunner.start_playbook``.

    ``pid`` is ansible-playbook's, which leads its own session (process group): ``kill()``
    ends it and everything it started that stayed in the group.
    """

    def __init__(self, argv, proc, stdout_path, stderr_path):
        self.argv = argv
        self.proc = proc
        self.pid = proc.pid
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    def poll(self):
        return self.proc.poll()

    def output(self):
        """(stdout, stderr) so far."""
        return (Path(self.stdout_path).read_text(encoding="utf-8", errors="replace"),
                Path(self.stderr_path).read_text(encoding="utf-8", errors="replace"))

    def describe(self, limit=20000):
        out, err = self.output()
        return RunResult(self.argv, self.proc.returncode, out, err).describe(limit)

    def wait(self, timeout=300, expect_rc=0):
        """Wait for the end; the RunResult (asserting ``expect_rc`` unless None)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise HarnessError("ansible-playbook did not finish within %ss\n%s" % (timeout, self.describe()))
        out, err = self.output()
        result = RunResult(self.argv, self.proc.returncode, out, err)
        if expect_rc is not None:
            assert result.rc == expect_rc, "expected rc=%s\n%s" % (expect_rc, result.describe())
        return result

    def kill(self, sig=signal.SIGKILL):
        """Signal ansible-playbook's process group (if any of it is left) and reap ansible-playbook."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)


def send_signal(pids, signum):
    """Signal every pid; one already gone is not an error."""
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def process_tree(root_pid):
    """{pid: argv list} of root_pid's living descendants (from /proc), root excluded."""
    parents, cmdlines = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as fh:
                stat = fh.read().decode("utf-8", "replace")
            with open("/proc/%s/cmdline" % entry, "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        # The command name (2nd field) is in parentheses and may hold spaces.
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue
        parents[int(entry)] = int(fields[1])
        cmdlines[int(entry)] = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0") if a]
    tree, frontier = {}, {root_pid}
    while frontier:
        children = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in tree}
        for pid in children:
            tree[pid] = cmdlines[pid]
        frontier = children
    return tree


def _find_json_document(text):
    decoder = json.JSONDecoder()
    for match in re.finditer(r"^\{", text, re.M):
        try:
            doc, _end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(doc, dict) and "plays" in doc:
            return doc
    raise ValueError("no dbdr_json document in ansible output:\n%s" % text[-5000:])


class AnsibleRunner(Component):
    """Runs the collection the way users do: ansible-playbook / ansible against localhost."""

    def __init__(self, python=None):
        self.python = str(python or sys.executable)
        self.bin_dir = Path(self.python).parent
        self.base = None
        self.inventory = None
        self._counter = 0

    def setup(self):
        ensure_collection_link()
        self.base = Path(tempfile.mkdtemp(prefix="dbdr-ansible-"))
        os.chmod(self.base, 0o700)
        self.inventory = self.base / "inventory.ini"
        self.inventory.write_text(
            "localhost ansible_connection=local ansible_python_interpreter=%s\n" % self.python, encoding="utf-8")
        (self.base / "ansible.cfg").write_text("[defaults]\n", encoding="utf-8")
        for sub in ("home", "local_tmp", "remote_tmp"):
            (self.base / sub).mkdir(mode=0o700)
        return self

    def cleanup(self):
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def env(self, extra=None):
        env = dict(os.environ)
        env.update({
            "ANSIBLE_CONFIG": str(self.base / "ansible.cfg"),
            "ANSIBLE_HOME": str(self.base / "home"),
            "ANSIBLE_LOCAL_TEMP": str(self.base / "local_tmp"),
            "ANSIBLE_REMOTE_TEMP": str(self.base / "remote_tmp"),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR),
            "ANSIBLE_STDOUT_CALLBACK": "dbdr_json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_VERBOSE_TO_STDERR": "1",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "1",
            "PATH": "%s:%s" % (self.bin_dir, os.environ.get("PATH", "/usr/bin:/bin")),
        })
        for key, value in (extra or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = str(value)
        return env

    def _vars_file(self, extra_vars):
        self._counter += 1
        path = self.base / ("extra-vars-%03d.json" % self._counter)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(extra_vars, fh)
        return path

    def _resolve_playbook(self, playbook):
        if isinstance(playbook, Path):
            path = playbook if playbook.is_absolute() else REPO_ROOT / playbook
            if not path.exists():
                raise FileNotFoundError(path)
            return path
        text = str(playbook)
        if "\n" not in text and text.strip().endswith((".yml", ".yaml")):
            path = Path(text) if os.path.isabs(text) else REPO_ROOT / text
            if not path.exists():
                raise FileNotFoundError(path)
            return path
        self._counter += 1
        path = self.base / ("playbook-%03d.yml" % self._counter)
        path.write_text(text, encoding="utf-8")
        return path

    def _exec(self, argv, expect_rc, env, timeout):
        proc = subprocess.run(  # noqa: S603
            argv, capture_output=True, text=True, env=self.env(env), cwd=self.base, timeout=timeout, check=False)
        result = RunResult(argv, proc.returncode, proc.stdout, proc.stderr)
        if expect_rc is not None:
            assert result.rc == expect_rc, "expected rc=%s\n%s" % (expect_rc, result.describe())
        return result

    def run_playbook(self, playbook, extra_vars=None, check=False, diff=False, verbosity=0, expect_rc=0,
                     env=None, limit=None, tags=None, timeout=900):
        """Run a playbook (a path, absolute or relative to the checkout, or YAML text)."""
        argv = self._playbook_argv(playbook, extra_vars, check, diff, verbosity, limit, tags)
        return self._exec(argv, expect_rc, env, timeout)

    def start_playbook(self, playbook, extra_vars=None, check=False, diff=False, verbosity=0, env=None,
                       limit=None, tags=None):
        """Start ``run_playbook`` in the background; returns a BackgroundRun.

        ansible-playbook runs in a session of its own with stdout/stderr in files; call
        ``.wait(expect_rc=...)`` for the RunResult, and ``.kill()`` in a ``finally``.
        """
        argv = self._playbook_argv(playbook, extra_vars, check, diff, verbosity, limit, tags)
        self._counter += 1
        out = self.base / ("background-%03d.stdout" % self._counter)
        err = self.base / ("background-%03d.stderr" % self._counter)
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = subprocess.Popen(  # noqa: S603  pylint: disable=consider-using-with
                argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=self.env(env), cwd=self.base,
                start_new_session=True)
        return BackgroundRun(argv, proc, out, err)

    def _playbook_argv(self, playbook, extra_vars, check, diff, verbosity, limit, tags):
        argv = [str(self.bin_dir / "ansible-playbook"), "-i", str(self.inventory)]
        if extra_vars:
            argv += ["-e", "@%s" % self._vars_file(extra_vars)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if verbosity:
            argv.append("-" + "v" * verbosity)
        if limit:
            argv += ["--limit", limit]
        if tags:
            argv += ["--tags", ",".join(tags) if isinstance(tags, (list, tuple)) else tags]
        argv.append(str(self._resolve_playbook(playbook)))
        return argv

    def run_adhoc(self, module, args=None, check=False, verbosity=0, expect_rc=0, env=None, extra_vars=None,
                  diff=False, timeout=900):
        """``ansible localhost -m MODULE -a '<json>'``.

        ``args`` are visible in argv: pass secrets as ``extra_vars`` (a 0600 file) and
        reference them from ``args`` with ``"{{ var }}"``.
        """
        argv = [str(self.bin_dir / "ansible"), "localhost", "-i", str(self.inventory), "-m", module]
        if args:  # ansible treats an empty JSON object as raw params
            argv += ["-a", json.dumps(args)]
        if extra_vars:
            argv += ["-e", "@%s" % self._vars_file(extra_vars)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if verbosity:
            argv.append("-" + "v" * verbosity)
        return self._exec(argv, expect_rc, env, timeout)


# --------------------------------------------------------------------------- webhook receiver


class WebhookServer(Component):
    """A real HTTP server on 127.0.0.1 that records every POST (path, headers, raw body and its
    JSON) and answers from ``plan``: (status, text) or "hang" per request, then 200 "ok"."""

    def __init__(self, path="/hooks/T000/B000/SECRETTOKEN"):
        self.path = path
        self.requests = []
        self.plan = []
        self.release = threading.Event()
        self._server = None
        self._thread = None

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self._server.server_address[1]

    @property
    def url(self):
        return self.base + self.path

    def setup(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # pylint: disable=invalid-name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    parsed = json.loads(body.decode("utf-8"))
                except ValueError:
                    parsed = None
                receiver.requests.append({"path": self.path, "headers": self.headers, "body": body, "json": parsed})
                action = receiver.plan.pop(0) if receiver.plan else (200, "ok")
                if action == "hang":
                    receiver.release.wait(10)
                    return
                status, text = action
                payload = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def events(self):
        return [r["json"]["event"] for r in self.requests]

    def cleanup(self):
        if self._server is not None:
            self.release.set()
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None
