# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore the globals (pg_dumpall --globals-only): create the roles and tablespaces that do
not exist, leave existing ones exactly as they are, and say which were which."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.dbdr.backup.plugins.module_utils import _pg
from ansible_collections.dbdr.backup.plugins.module_utils._restore.database import RestoreStepError

_IDENT = r'("(?:[^"]|"")*"|[^\s;"]+)'
_ROLE_STATEMENT = re.compile(r'^(?:CREATE ROLE|ALTER ROLE|COMMENT ON ROLE)\s+' + _IDENT, re.S)
_TABLESPACE_STATEMENT = re.compile(
    r'^(?:CREATE TABLESPACE|ALTER TABLESPACE|COMMENT ON TABLESPACE|GRANT .* ON TABLESPACE|REVOKE .* ON TABLESPACE)\s+'
    + _IDENT, re.S)
_CREATE_ROLE = re.compile(r'^CREATE ROLE\s+' + _IDENT + r'\s*$', re.S)
_CREATE_TABLESPACE = re.compile(r'^CREATE TABLESPACE\s+' + _IDENT, re.S)
_MEMBERSHIP = re.compile(r'^GRANT\s+' + _IDENT + r'\s+TO\s+' + _IDENT + r'(.*)$', re.S)
_GRANTED_BY = re.compile(r'\s+GRANTED BY\s+' + _IDENT, re.S)


def unquote(name):
    if name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def _quoted_end(text, start, backslash_escapes):
    """Index just after the quoted string or identifier that opens at text[start]."""
    quote, j, n = text[start], start + 1, len(text)
    while j < n:
        if backslash_escapes and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            if j + 1 < n and text[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def split_statements(text):
    """SQL statements of a pg_dumpall script, without comments or psql meta-commands.

    Knows what pg_dumpall writes: quoted strings ('' and E'' escapes), quoted identifiers,
    dollar quotes, -- comments, and backslash commands (\\restrict) on lines of their own."""
    statements, current = [], []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        ch = text[i]
        meta_command = at_line_start and ch == "\\" and not "".join(current).strip()
        if meta_command or text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            at_line_start = True
            continue
        at_line_start = ch == "\n"
        if ch in "'\"":
            # A backslash escapes only in E'' strings (an E that is not the end of a word).
            escape = ch == "'" and text[i - 1:i] in ("e", "E") and not re.match(r"\w", text[i - 2:i - 1])
            end = _quoted_end(text, i, escape)
            current.append(text[i:end])
            i = end
            continue
        if ch == "$":
            match = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", text[i:])
            if match:
                tag = match.group(0)
                end = text.find(tag, i + len(tag))
                end = n if end < 0 else end + len(tag)
                current.append(text[i:end])
                i = end
                continue
        if ch == ";":
            statement = "".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    rest = "".join(current).strip()
    if rest:
        statements.append(rest)
    return statements


def _describe(statement):
    """A statement for an error message, without a password verifier."""
    return re.split(r"\sPASSWORD\s", statement, 1)[0][:160]


def _existing(conn, query):
    return set(r[0] for r in _pg.fetch_all(conn, query))


def plan_globals(conn, text):
    """Split the script into what runs in one transaction (roles) and what cannot (tablespaces),
    dropping every statement about a role or tablespace that already exists."""
    roles = _existing(conn, "SELECT rolname FROM pg_roles")
    tablespaces = _existing(conn, "SELECT spcname FROM pg_tablespace")
    report = {"roles_created": [], "roles_skipped": [], "tablespaces_created": [], "tablespaces_skipped": [],
              "memberships_skipped": []}
    in_transaction, tablespace_statements = [], []
    for statement in split_statements(text):
        match = _TABLESPACE_STATEMENT.match(statement)
        if match:
            name = unquote(match.group(1))
            if name in tablespaces:
                if _CREATE_TABLESPACE.match(statement):
                    report["tablespaces_skipped"].append(name)
                continue
            if _CREATE_TABLESPACE.match(statement):
                report["tablespaces_created"].append(name)
            tablespace_statements.append(statement)
            continue
        match = _MEMBERSHIP.match(statement)
        if match:
            role, member = unquote(match.group(1)), unquote(match.group(2))
            if member in roles:
                # An existing role keeps the memberships it has now (one revoked since the
                # backup stays revoked).
                report["memberships_skipped"].append("%s TO %s" % (role, member))
                continue
            grantor = _GRANTED_BY.search(statement)
            if grantor and unquote(grantor.group(1)) not in roles:
                statement = _GRANTED_BY.sub("", statement)
            in_transaction.append(statement)
            continue
        match = _ROLE_STATEMENT.match(statement)
        if match:
            name = unquote(match.group(1))
            if name in roles:
                if _CREATE_ROLE.match(statement):
                    report["roles_skipped"].append(name)
                continue
            if _CREATE_ROLE.match(statement):
                report["roles_created"].append(name)
        in_transaction.append(statement)
    return in_transaction, tablespace_statements, report


def restore_globals(conn, text):
    """Roles and memberships in one transaction (all or nothing); then each tablespace (which
    PostgreSQL cannot create inside a transaction)."""
    in_transaction, tablespace_statements, report = plan_globals(conn, text)
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            for statement in in_transaction:
                try:
                    cur.execute(statement)
                except _pg.psycopg2.Error as exc:
                    raise RestoreStepError("%s (in: %s)" % (str(exc).strip().splitlines()[0], _describe(statement)),
                                           stage="globals")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True
    for statement in tablespace_statements:
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        except _pg.psycopg2.Error as exc:
            raise RestoreStepError("roles were restored, but a tablespace statement failed: %s (in: %s)"
                                   % (str(exc).strip().splitlines()[0], _describe(statement)), stage="globals")
    report["statements"] = len(in_transaction) + len(tablespace_statements)
    return report
