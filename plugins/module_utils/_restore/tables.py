# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Table-level restore: replace the rows of some tables of a live database with the backup's,
in one transaction, leaving every other table untouched.

From a verified local copy of the archive, pg_restore writes the chosen tables' data as SQL
(COPY blocks) into a local file, in foreign-key order; psql runs it between our prelude (lock,
disable user triggers, truncate) and postlude (row counts must equal the manifest's, triggers
back as they were), all under --single-transaction: any error, and nothing happened.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import uuid

from ansible_collections.dbdr.backup.plugins.module_utils import _pg
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import Stage, clean_env, run_checked

_USER_TRIGGERS = """
SELECT t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relname = %s AND NOT t.tgisinternal AND t.tgenabled <> 'D'
 ORDER BY 1
"""
_ENABLE = {"O": "ENABLE TRIGGER", "A": "ENABLE ALWAYS TRIGGER", "R": "ENABLE REPLICA TRIGGER"}


def qualified(schema, name):
    return "%s.%s" % (_pg.quote_ident(schema), _pg.quote_ident(name))


def _literal(text):
    return "'%s'" % text.replace("'", "''")


def load_order(conn, tables):
    """Referenced tables before the tables that reference them (foreign keys are checked
    as rows arrive)."""
    chosen = [(s, n) for s, n, _r in tables]
    edges = set((r[2:], r[:2]) for r in _pg.foreign_keys(conn)
                if r[:2] in chosen and r[2:] in chosen and r[:2] != r[2:])
    ordered, remaining = [], list(chosen)
    while remaining:
        ready = [t for t in remaining if not any(p in remaining and c == t for p, c in edges)]
        if not ready:
            ready = remaining[:1]  # a cycle: deferrable constraints may still make it pass
        for table in ready:
            ordered.append(table)
            remaining.remove(table)
    return ordered


def select_entries(listing, order):
    """The archive's TABLE DATA entries (pg_restore -l lines) of the tables, in load order."""
    entries = []
    for schema, name in order:
        prefix = " TABLE DATA %s %s " % (schema, name)
        hits = [line for line in listing.splitlines() if not line.startswith(";") and prefix in line]
        if not hits:
            raise InputError("the archive holds no data for table %s.%s" % (schema, name))
        if len(hits) > 1:
            raise InputError("the archive listing cannot tell table %s.%s apart from another table (names with "
                             "spaces); restore into a new database instead" % (schema, name))
        entries.append(hits[0])
    return "\n".join(entries) + "\n"


def scripts(conn, tables, lock_timeout):
    """(prelude, postlude) SQL around the data."""
    prelude = ["SET lock_timeout = %s;" % _literal("%ds" % lock_timeout)]
    names = [qualified(s, n) for s, n, _r in tables]
    prelude.append("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE;" % ", ".join(names))
    # pg_restore's script changed search_path, timeouts and row_security: the postlude and
    # post_restore_sql run with the session's normal settings.
    postlude = ["RESET ALL;"]
    tag = "$dbdr_%s$" % uuid.uuid4().hex[:12]
    for schema, name, rows in tables:
        table = qualified(schema, name)
        for trigger, enabled in _pg.fetch_all(conn, _USER_TRIGGERS, (schema, name)):
            # User triggers would write to other tables; FK triggers stay on (they are internal).
            prelude.append("ALTER TABLE %s DISABLE TRIGGER %s;" % (table, _pg.quote_ident(trigger)))
            postlude.append("ALTER TABLE %s %s %s;" % (table, _ENABLE.get(enabled, "ENABLE TRIGGER"),
                                                       _pg.quote_ident(trigger)))
        if rows is not None:
            postlude.append(
                "DO %s DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM ONLY %s; IF n <> %d THEN "
                "RAISE EXCEPTION 'dbdr.backup: %% has %% rows after the restore, the backup recorded %%', %s, n, %d; "
                "END IF; END %s;" % (tag, table, int(rows), _literal("%s.%s" % (schema, name)), int(rows), tag))
    prelude.append("TRUNCATE ONLY %s;" % ", ".join(names))
    return "\n".join(prelude) + "\n", "\n".join(postlude) + "\n"


def archive_listing(pg_restore, archive_path):
    """pg_restore --list of a local archive (custom file or directory)."""
    out = run_checked(Stage("pg_restore --list", [pg_restore, "--list", archive_path], env=clean_env()))
    return out.decode("utf-8", "replace")
