# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL: connections, child-process environments, catalog queries and tool lookup."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import os
import re
import shutil
import tempfile

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.dbdr.backup.plugins.module_utils._errors import ConnectError, DbdrError, InputError
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import clean_env, version_output

try:
    import psycopg2
    from psycopg2 import sql
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

APPLICATION_NAME = "dbdr.backup"
# libpq settings (never secrets) that psycopg2 picks up from the module's environment; the
# client tools get the same ones so that both reach the same server the same way.
_LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGSERVICE", "PGSERVICEFILE", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL",
              "PGSSLROOTCERT", "PGOPTIONS", "PGTARGETSESSIONATTRS", "PGGSSENCMODE", "PGKRBSRVNAME")


class QueryError(DbdrError):
    """A catalog or data query failed (permissions, invalid pattern, server error)."""

    stage = "query"


class ConnectionParams:
    """The community.postgresql connection options, as plain values."""

    def __init__(self, host=None, port=5432, user="postgres", password=None, unix_socket=None,
                 ssl_mode="prefer", ca_cert=None, login_db="postgres", connect_timeout=10):
        self.host = host or None
        self.port = int(port) if port else 5432
        self.user = user or "postgres"
        self.password = password or None
        self.unix_socket = unix_socket or None
        self.ssl_mode = ssl_mode or "prefer"
        self.ca_cert = ca_cert or None
        self.login_db = login_db or "postgres"
        self.connect_timeout = int(connect_timeout or 10)

    @property
    def effective_host(self):
        # community.postgresql: a socket directory wins when no host is given.
        if self.host:
            return self.host
        return self.unix_socket

    def describe(self):
        return "%s@%s:%s" % (self.user, self.effective_host or "<default socket>", self.port)

    def libpq_kwargs(self, dbname):
        kwargs = {"dbname": dbname, "user": self.user, "port": self.port, "sslmode": self.ssl_mode,
                  "connect_timeout": self.connect_timeout, "application_name": APPLICATION_NAME}
        if self.effective_host:
            kwargs["host"] = self.effective_host
        if self.password:
            kwargs["password"] = self.password
        if self.ca_cert:
            kwargs["sslrootcert"] = self.ca_cert
        return kwargs

    def child_env(self, dbname=None, passfile=None):
        """Environment for pg_dump & co: libpq variables instead of argv, no inherited secrets."""
        # Built from scratch: PGPASSWORD or cloud credentials of the module never reach the child.
        env = clean_env(**dict((k, os.environ[k]) for k in _LIBPQ_ENV if k in os.environ))
        env["PGUSER"] = self.user
        env["PGPORT"] = str(self.port)
        env["PGSSLMODE"] = self.ssl_mode
        env["PGCONNECT_TIMEOUT"] = str(self.connect_timeout)
        env["PGAPPNAME"] = APPLICATION_NAME
        if self.effective_host:
            env["PGHOST"] = self.effective_host
        if self.ca_cert:
            env["PGSSLROOTCERT"] = self.ca_cert
        if dbname is not None:
            env["PGDATABASE"] = dbname
        if passfile is not None:
            env["PGPASSFILE"] = passfile
        elif os.environ.get("PGPASSFILE"):
            # The operator's own password file (no login_password given).
            env["PGPASSFILE"] = os.environ["PGPASSFILE"]
        return env


def _pgpass_escape(value):
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextlib.contextmanager
def password_file(params):
    """A 0600 pgpass file in a private directory, for children that must authenticate."""
    if not params.password:
        yield None
        return
    directory = tempfile.mkdtemp(prefix="dbdr-pgpass-")
    path = os.path.join(directory, "pgpass")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("*:*:*:*:%s\n" % _pgpass_escape(params.password))
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _explain_connect_error(params, dbname, exc):
    text = str(exc).strip()
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        reason = "authentication failed for user %r (wrong or missing password)" % params.user
    elif "does not exist" in lowered and "database" in lowered:
        reason = "database %r does not exist" % dbname
    elif "could not connect" in lowered or "connection refused" in lowered or "timeout" in lowered \
            or "no such file" in lowered or "could not translate host" in lowered:
        reason = "server unreachable"
    else:
        reason = "connection failed"
    # libpq messages never contain the password; keep them for the operator.
    return ConnectError("%s at %s: %s" % (reason, params.describe(), text.splitlines()[0] if text else text))


def connect(params, dbname=None, autocommit=True):
    dbname = dbname or params.login_db
    try:
        conn = psycopg2.connect(**params.libpq_kwargs(dbname))
    except psycopg2.Error as exc:
        raise _explain_connect_error(params, dbname, exc)
    conn.autocommit = autocommit
    return conn


def fetch_all(conn, query, args=None):
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()
    except psycopg2.Error as exc:
        raise QueryError("query failed: %s" % (str(exc).strip().splitlines() or [exc.__class__.__name__])[0])


def fetch_value(conn, query, args=None):
    rows = fetch_all(conn, query, args)
    return rows[0][0] if rows else None


class ServerInfo:
    def __init__(self, version_num, version, is_superuser, in_recovery, system_identifier):
        self.version_num = version_num
        self.version = version
        self.major = version_num // 10000
        self.is_superuser = is_superuser
        self.in_recovery = in_recovery
        self.system_identifier = system_identifier


def server_info(conn):
    version_num = int(fetch_value(conn, "SHOW server_version_num"))
    version = fetch_value(conn, "SHOW server_version")
    is_superuser = fetch_value(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    in_recovery = fetch_value(conn, "SELECT pg_is_in_recovery()")
    system_identifier = str(fetch_value(conn, "SELECT system_identifier FROM pg_control_system()"))
    return ServerInfo(version_num, version, bool(is_superuser), bool(in_recovery), system_identifier)


def list_databases(conn):
    """Databases a logical backup of 'all' covers: every connectable non-template one."""
    rows = fetch_all(conn, "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname")
    return [row[0] for row in rows]


def database_sizes(conn, names):
    # A size needs CONNECT (or pg_read_all_stats); without it the connect check reports the problem.
    rows = fetch_all(conn, "SELECT datname, CASE WHEN has_database_privilege(oid, 'CONNECT') "
                           "THEN pg_database_size(oid) END FROM pg_database WHERE datname = ANY(%s)", (list(names),))
    return dict(rows)


def database_properties(conn, name, server_version_num):
    """What CREATE DATABASE and the database-level grants and settings need to recreate a
    database as it is: owner, encoding, locale, connection limit, ACL, comment, settings."""
    if server_version_num >= 170000:
        locale = "d.datlocprovider, d.datlocale"
    elif server_version_num >= 150000:
        locale = "d.datlocprovider, d.daticulocale"
    else:
        locale = "'c'::\"char\", NULL::text"
    rows = fetch_all(conn, "SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, "
                           "%s, d.datconnlimit, d.datacl::text, shobj_description(d.oid, 'pg_database'), d.datallowconn "
                           "FROM pg_database d WHERE d.datname = %%s" % locale, (name,))
    if not rows:
        return None
    owner, encoding, collate, ctype, provider, icu_locale, connlimit, acl, comment, allowconn = rows[0]
    settings = fetch_all(conn, "SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, s.setconfig "
                               "FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                               "WHERE d.datname = %s ORDER BY 1 NULLS FIRST", (name,))
    grants = None
    if acl is not None:
        grants = [{"grantee": g, "privilege": p, "grantable": bool(w)} for g, p, w in fetch_all(
            conn, "SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, "
                  "a.is_grantable FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s ORDER BY 1, 2", (name,))]
    return {"owner": owner, "encoding": encoding, "grants": grants, "lc_collate": collate, "lc_ctype": ctype,
            "locale_provider": {"i": "icu", "b": "builtin"}.get(str(provider), "libc"), "icu_locale": icu_locale,
            "connection_limit": connlimit, "acl": acl, "comment": comment, "allow_connections": allowconn,
            "settings": [{"role": role, "config": list(config or [])} for role, config in settings]}


# --- table patterns ------------------------------------------------------------------

_REGEX_SPECIALS = set("|*+?()[]{}.^$\\")


def pattern_to_regexes(pattern):
    """Translate a psql/pg_dump name pattern into (schema_regex or None, name_regex).

    Same rules as psql's processSQLNamePattern: unquoted letters fold to lower case, '*' and
    '?' are wildcards, '.' separates schema from name, double quotes make text literal.
    """
    parts = [[]]
    in_quotes = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == '"':
            if in_quotes and i + 1 < len(pattern) and pattern[i + 1] == '"':
                parts[-1].append('"')
                i += 2
                continue
            in_quotes = not in_quotes
        elif not in_quotes and ch == "*":
            parts[-1].append(".*")
        elif not in_quotes and ch == "?":
            parts[-1].append(".")
        elif not in_quotes and ch == ".":
            parts.append([])
        elif ch == "$":
            parts[-1].append("\\$")
        elif in_quotes and ch in _REGEX_SPECIALS:
            parts[-1].append("\\" + ch)
        elif not in_quotes and "A" <= ch <= "Z":
            parts[-1].append(ch.lower())
        else:
            parts[-1].append(ch)
        i += 1
    if in_quotes:
        raise InputError("table pattern %r has an unterminated double quote" % (pattern,))
    if len(parts) > 2:
        raise InputError("table pattern %r: use [schema.]table (database-qualified patterns are not supported)" % (pattern,))
    regexes = ["^(%s)$" % "".join(p) for p in parts]
    if any(r == "^()$" for r in regexes):
        raise InputError("table pattern %r has an empty part" % (pattern,))
    if len(regexes) == 1:
        return None, regexes[0]
    return regexes[0], regexes[1]


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


def exact_table_pattern(schema, name):
    """A pg_dump --table pattern that matches exactly this one relation."""
    return "%s.%s" % (quote_ident(schema), quote_ident(name))


# Relations pg_dump can select with --table; data is dumped (and counted) for 'r' only.
_USER_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind, c.oid
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""


def user_relations(conn):
    return [(r[0], r[1], r[2]) for r in fetch_all(conn, _USER_RELATIONS)]


def unlogged_tables(conn):
    rows = fetch_all(conn, "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE c.relkind = 'r' AND c.relpersistence = 'u'")
    return [(r[0], r[1]) for r in rows]


def match_patterns(conn, patterns, database, strict):
    """Relations (schema, name, kind) matching any pattern; strict: every pattern must match."""
    matched = []
    seen = set()
    # Like psql and pg_dump, an unqualified pattern matches only tables visible in the search path.
    query = ("SELECT nspname, relname, relkind FROM (%s) rel WHERE relname ~ %%s "
             "AND (CASE WHEN %%s::text IS NULL THEN pg_table_is_visible(oid) ELSE nspname ~ %%s END) "
             "ORDER BY 1, 2" % _USER_RELATIONS)
    for pattern in patterns:
        schema_re, name_re = pattern_to_regexes(pattern)
        hits = [tuple(r) for r in fetch_all(conn, query, (name_re, schema_re, schema_re or ""))]
        if strict and not hits:
            raise InputError("table pattern %r matches no table in database %r" % (pattern, database))
        for hit in hits:
            if hit not in seen:
                seen.add(hit)
                matched.append(hit)
    return matched


_PARTITIONS = """
WITH RECURSIVE tree(oid) AS (
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = %s AND c.relname = %s
    UNION ALL
    SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid
)
SELECT n.nspname, c.relname, c.relkind FROM tree JOIN pg_class c ON c.oid = tree.oid
  JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2
"""


def with_partitions(conn, relations):
    """Relations plus every partition below the partitioned ones: pg_dump before 16 selects a
    partitioned table's definition only, its data lives in the partitions."""
    out, seen = [], set()
    for relation in relations:
        members = [tuple(r) for r in fetch_all(conn, _PARTITIONS, relation[:2])] if relation[2] == "p" else [relation]
        for member in members:
            if member not in seen:
                seen.add(member)
                out.append(member)
    return out


_FOREIGN_KEYS = """
SELECT rn.nspname, r.relname, tn.nspname, t.relname
  FROM pg_constraint c
  JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace
  JOIN pg_class t ON t.oid = c.confrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
 WHERE c.contype = 'f'
"""


def foreign_keys(conn):
    """(referencing schema, table, referenced schema, table) of every foreign key."""
    return [tuple(r) for r in fetch_all(conn, _FOREIGN_KEYS)]


def in_sessions(params, dbname, items, jobs, func):
    """func(session, item) -> list for every item, spread over `jobs` sessions of dbname;
    the lists joined."""
    if not items:
        return []

    def work(share):
        out = []
        session = connect(params, dbname)
        try:
            for item in share:
                out.extend(func(session, item))
        finally:
            session.close()
        return out
    workers = max(1, min(jobs, len(items)))
    shares = [items[i::workers] for i in range(workers)]
    joined = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(work, shares):
            joined.extend(part)
    return joined


def count_rows_parallel(params, dbname, tables, jobs):
    """{(schema, name): rows} counted by `jobs` sessions, each taking a share of the tables."""
    return dict(in_sessions(params, dbname, list(tables), jobs, lambda session, t: [(t, count_rows(session, *t))]))


def restore_argv(pg_restore, dbname, no_owner=False, no_privileges=False, jobs=1, archive=None):
    """pg_restore into dbname, stopping at the first error; without `archive` it reads stdin
    (a stream, so one job)."""
    argv = [pg_restore, "--no-password", "--exit-on-error", "--dbname=" + dbname]
    if no_owner:
        argv.append("--no-owner")
    if no_privileges:
        argv.append("--no-privileges")
    if archive is not None:
        if jobs > 1:
            argv.append("--jobs=%d" % jobs)
        argv.append(archive)
    return argv


def count_rows(conn, schema, name):
    query = sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
    return int(fetch_value(conn, query))


# --- client tools ----------------------------------------------------------------------

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+([0-9]+)(?:\.([0-9]+))?")


def find_pg_tool(tool, server_major, bin_dir=None):
    """The client tool to use against a server: explicit bin_dir, then the Debian/RHEL
    per-version directories for the server's major version, then PATH."""
    candidates = []
    if bin_dir:
        candidates.append(os.path.join(bin_dir, tool))
    else:
        candidates.extend([
            "/usr/lib/postgresql/%d/bin/%s" % (server_major, tool),
            "/usr/pgsql-%d/bin/%s" % (server_major, tool),
        ])
        found = shutil.which(tool)
        if found:
            candidates.append(found)
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise InputError("%s not found (looked in %s); install the PostgreSQL %d client tools or set pg_bin_dir"
                     % (tool, ", ".join(candidates) or "PATH", server_major))


def tool_version(path):
    out = version_output(path)
    match = _VERSION_RE.search(out)
    if not match:
        raise InputError("cannot read the version of %s from %r" % (path, out.strip()))
    return int(match.group(1)), out


_DUMP_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+([0-9]+)")


def restore_tools(manifest, server_major, needs, bin_dir=None):
    """{tool: {path, version}} of the client tools that restore this backup: pg_restore must be
    at least as new as the pg_dump that wrote it."""
    tools = {}
    match = _DUMP_VERSION_RE.search((manifest.tools or {}).get("pg_dump") or "")
    dump_major = int(match.group(1)) if match else None
    for tool in needs:
        path = find_pg_tool(tool, server_major, bin_dir)
        major, text = tool_version(path)
        if tool == "pg_restore" and dump_major and major < dump_major:
            raise InputError("%s is version %d but the backup was written by pg_dump %d: install the PostgreSQL %d "
                             "client tools or set pg_bin_dir" % (path, major, dump_major, dump_major))
        tools[tool] = {"path": path, "version": text.strip().splitlines()[0] if text else ""}
    return tools
