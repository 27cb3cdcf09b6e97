# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Databases on the target server during a restore: staging databases, their properties,
the markers that identify what restore created, the session terminator and the swap.

A marker is a COMMENT ON DATABASE holding JSON after MARKER_PREFIX; it survives renames and
lets a later run find staging databases a killed run left, and the pre-restore copies.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import time
import zlib

from ansible_collections.dbdr.backup.plugins.module_utils import _pg
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError, LockedError

MARKER_PREFIX = "dbdr.backup:"
MAX_NAME_BYTES = 63          # NAMEDATALEN - 1
# pg_advisory_lock(int4, int4): our class id ('dbdr') and a hash of the database name.
_LOCK_CLASS = 0x64626472


class RestoreStepError(DbdrError):
    """A step of the restore failed on the target server."""


def ident(name):
    return _pg.quote_ident(name)


def literal(conn, value):
    return _pg.sql.Literal(value).as_string(conn)


def truncate_utf8(text, max_bytes):
    raw = text.encode("utf-8")[:max_bytes]
    return raw.decode("utf-8", "ignore")


def staging_name(target, restore_id):
    digest = hashlib.sha1(target.encode("utf-8")).hexdigest()[:8]
    return "dbdr_staging_%s_%s" % (restore_id.lower(), digest)


def pre_restore_name(target, restore_id):
    suffix = "__pre_restore_%s" % restore_id.lower()
    return truncate_utf8(target, MAX_NAME_BYTES - len(suffix)) + suffix


def exists(conn, name):
    return bool(_pg.fetch_value(conn, "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)))


def role_exists(conn, role):
    return bool(_pg.fetch_value(conn, "SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)))


def execute(conn, statement, args=None, step="restore"):
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
    except _pg.psycopg2.Error as exc:
        raise RestoreStepError("%s" % (str(exc).strip().splitlines() or [exc.__class__.__name__])[0], stage=step)


# --- locks --------------------------------------------------------------------------------

class TargetLocks:
    """Session-level advisory locks, one per target database name: two restores of one database
    never run at once, and a lock dies with its connection when a run is killed.

    Advisory locks belong to the database a session is connected to, so each lock is taken on
    a connection to the same fixed database whatever login_db a run uses: `postgres`, or
    `template1` for a restore of `postgres` itself (which must not be connected to)."""

    def __init__(self, params):
        self.params = params
        self.conns = []

    def take(self, name):
        lock_db = "template1" if name == "postgres" else "postgres"
        conn = _pg.connect(self.params, lock_db)
        self.conns.append(conn)
        key = zlib.crc32(name.encode("utf-8")) - 2 ** 31
        if not _pg.fetch_value(conn, "SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_CLASS, key)):
            raise LockedError("another restore of database %r on this server is running (advisory lock held)"
                              % (name,))

    def release(self):
        for conn in self.conns:
            try:
                conn.close()
            except Exception:  # pylint: disable=broad-except
                pass
        self.conns = []


# --- markers -------------------------------------------------------------------------------

def marker_text(marker):
    return MARKER_PREFIX + json.dumps(marker, sort_keys=True, ensure_ascii=False)


def parse_marker(comment):
    """The marker dict of a comment written by marker_text(), else None."""
    if not comment or not comment.startswith(MARKER_PREFIX):
        return None
    try:
        marker = json.loads(comment[len(MARKER_PREFIX):])
    except ValueError:
        return None
    return marker if isinstance(marker, dict) else None


def user_comment(comment):
    """A database's own comment: the one a marker kept, if the comment is one of our markers
    (a pre-restore copy put back into service by hand still carries its marker)."""
    marker = parse_marker(comment)
    if marker is not None:
        return marker.get("comment")
    if comment and comment.startswith(MARKER_PREFIX):
        return None
    return comment


def comment_statement(conn, name, comment):
    return "COMMENT ON DATABASE %s IS %s" % (ident(name), literal(conn, comment) if comment else "NULL")


def set_marker(conn, name, marker):
    execute(conn, comment_statement(conn, name, marker_text(marker)), step="marker")


def marked_databases(conn, kind):
    """[(datname, marker)] of databases whose marker has this kind (staging / pre_restore)."""
    rows = _pg.fetch_all(conn, "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                               "WHERE shobj_description(oid, 'pg_database') LIKE %s ORDER BY datname",
                         (MARKER_PREFIX + "%",))
    out = []
    for name, comment in rows:
        marker = parse_marker(comment)
        if marker is not None and marker.get("kind") == kind:
            out.append((name, marker))
    return out


def leftover_databases(conn, kind, prefix, name_re):
    """[(name, marker or None)] of the databases a killed run may have left: named with `prefix`
    and marked with this kind, or unmarked but named exactly as such a run names them (it was
    killed between CREATE DATABASE and setting the marker)."""
    marked = dict(marked_databases(conn, kind))
    like = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
    found = []
    for (name,) in _pg.fetch_all(conn, "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", (like,)):
        marker = marked.get(name)
        if marker is not None or name_re.match(name):
            found.append((name, marker))
    return found


# --- creating a database as the original was ----------------------------------------------

def _create_statement(conn, name, props, server):
    parts = ["CREATE DATABASE %s TEMPLATE template0" % ident(name)]
    if props.get("encoding"):
        parts.append("ENCODING %s" % literal(conn, props["encoding"]))
    provider = props.get("locale_provider")
    if provider == "icu" and server.version_num >= 150000 and props.get("icu_locale"):
        parts.append("LOCALE_PROVIDER icu ICU_LOCALE %s" % literal(conn, props["icu_locale"]))
    elif provider == "builtin" and server.version_num >= 170000 and props.get("icu_locale"):
        parts.append("LOCALE_PROVIDER builtin BUILTIN_LOCALE %s" % literal(conn, props["icu_locale"]))
    if props.get("lc_collate"):
        parts.append("LC_COLLATE %s" % literal(conn, props["lc_collate"]))
    if props.get("lc_ctype"):
        parts.append("LC_CTYPE %s" % literal(conn, props["lc_ctype"]))
    return " ".join(parts)


def create_staging(conn, name, props, server, marker):
    """An empty database with the original's encoding and locale, marked as ours."""
    execute(conn, _create_statement(conn, name, props or {}, server), step="create staging database")
    set_marker(conn, name, marker)


def drop(conn, name, step="cleanup"):
    """Drop a database we created; its sessions (only ours could be there) are ended first."""
    if not exists(conn, name):
        return False
    execute(conn, "ALTER DATABASE %s WITH ALLOW_CONNECTIONS false" % ident(name), step=step)
    terminate_sessions(conn, name, timeout=30, step=step)
    execute(conn, "DROP DATABASE %s" % ident(name), step=step)
    return True


def apply_properties(conn, name, props, warnings, connect):
    """Owner, grants, connection limit, comment and settings of the original database.

    Missing roles (globals not restored on this server) are reported, not fatal: the data is
    what matters at that moment, and the warning says what to fix."""
    if not props:
        return
    owner = props.get("owner")
    if owner:
        if role_exists(conn, owner):
            execute(conn, "ALTER DATABASE %s OWNER TO %s" % (ident(name), ident(owner)), step="database properties")
        else:
            warnings.append("database %r: owner role %r does not exist on the target; it is owned by the restoring "
                            "user (restore the globals first)" % (name, owner))
    grants = props.get("grants")
    if grants is not None:
        execute(conn, "REVOKE ALL ON DATABASE %s FROM PUBLIC" % ident(name), step="database properties")
        for grant in grants:
            grantee, privilege, grantable = grant.get("grantee"), grant.get("privilege"), grant.get("grantable")
            if privilege not in ("CREATE", "CONNECT", "TEMPORARY"):
                continue
            if grantee is not None and not role_exists(conn, grantee):
                warnings.append("database %r: not granting %s to missing role %r" % (name, privilege, grantee))
                continue
            execute(conn, "GRANT %s ON DATABASE %s TO %s%s" % (
                privilege, ident(name), "PUBLIC" if grantee is None else ident(grantee),
                " WITH GRANT OPTION" if grantable else ""), step="database properties")
    limit = props.get("connection_limit")
    if limit is not None and int(limit) != -1:
        execute(conn, "ALTER DATABASE %s WITH CONNECTION LIMIT %d" % (ident(name), int(limit)), step="database properties")
    settings = [(entry.get("role"), item) for entry in props.get("settings") or [] for item in entry.get("config") or []]
    if settings:
        _apply_settings(name, settings, warnings, connect)


def _apply_settings(name, settings, warnings, connect):
    """ALTER DATABASE / ALTER ROLE IN DATABASE ... SET, each in its own transaction on a
    connection of its own: set_config(..., true) parses the stored text exactly as the server
    stored it (lists and quoting included) and lasts until the transaction ends, and
    FROM CURRENT records that value. A setting such as default_transaction_read_only or role
    therefore never leaks into the session that does the rest of the restore."""
    conn = connect()
    try:
        conn.autocommit = False
        for role, item in settings:
            setting, _sep, value = item.partition("=")
            if role and not role_exists(conn, role):
                conn.rollback()
                warnings.append("database %r: setting %s of missing role %r not applied" % (name, setting, role))
                continue
            target = ("ALTER ROLE %s IN DATABASE %s" % (ident(role), ident(name))) if role else \
                ("ALTER DATABASE %s" % ident(name))
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT set_config(%s, %s, true)", (setting, value))
                    cur.execute("%s SET %s FROM CURRENT" % (target, ident(setting)))
                conn.commit()
            except _pg.psycopg2.Error as exc:
                conn.rollback()
                warnings.append("database %r: setting %s not applied: %s"
                                % (name, setting, (str(exc).strip().splitlines() or ["?"])[0]))
    finally:
        conn.close()


# --- sessions and the swap -------------------------------------------------------------------

def sessions(conn, name):
    return _pg.fetch_value(conn, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                           (name,))


def terminate_sessions(conn, name, timeout, step="terminate sessions"):
    """End every session of the database; wait until they are gone. Returns how many ended."""
    ended = 0
    deadline = time.monotonic() + timeout
    while True:
        rows = _pg.fetch_all(conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        ended += sum(1 for r in rows if r[0])
        if not sessions(conn, name):
            return ended
        if time.monotonic() > deadline:
            raise RestoreStepError("sessions of database %r did not end within %d seconds" % (name, timeout), stage=step)
        time.sleep(0.2)


def allow_connections(conn, name, allowed, step="swap"):
    execute(conn, allow_statement(name, allowed), step=step)


def in_one_transaction(conn, statements, step="swap"):
    """Run the statements in one transaction: all happen or none. Renames of databases are
    transactional, so a swap done this way never leaves a name missing; comments (markers) and
    ALLOW_CONNECTIONS change in the same transaction, so a database is never live while still
    marked as staging."""
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
        conn.commit()
    except BaseException as exc:
        try:
            conn.rollback()
        except Exception:  # pylint: disable=broad-except
            pass  # a lost connection: the server rolls the transaction back itself
        if isinstance(exc, _pg.psycopg2.Error):
            raise RestoreStepError("nothing was renamed or changed: %s" % (str(exc).strip().splitlines() or ["?"])[0],
                                   stage=step)
        raise
    finally:
        try:
            conn.autocommit = True
        except Exception:  # pylint: disable=broad-except
            pass


def rename_statement(old, new):
    return "ALTER DATABASE %s RENAME TO %s" % (ident(old), ident(new))


def allow_statement(name, allowed):
    return "ALTER DATABASE %s WITH ALLOW_CONNECTIONS %s" % (ident(name), "true" if allowed else "false")
