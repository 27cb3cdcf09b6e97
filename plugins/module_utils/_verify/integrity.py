# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integrity checks on a test-restored database: row counts against the manifest, foreign
keys without orphans (every one found in the catalog), the user's assertions, amcheck."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.dbdr.backup.plugins.module_utils import _pg
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError
from ansible_collections.dbdr.backup.plugins.module_utils._verify.record import Check

# Foreign keys declared on a table itself (clones on partitions are checked through their
# parent), with both sides' columns quoted, and whether each side is partitioned.
_FOREIGN_KEYS = """
SELECT c.conname, c.conrelid::regclass::text, c.confrelid::regclass::text, c.confmatchtype,
       ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.conkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.ord),
       ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.confkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num ORDER BY k.ord),
       child.relkind = 'p', parent.relkind = 'p'
FROM pg_constraint c
JOIN pg_class child ON child.oid = c.conrelid
JOIN pg_class parent ON parent.oid = c.confrelid
WHERE c.contype = 'f' AND c.conparentid = 0
ORDER BY 2, 1
"""


def row_count_checks_in(params, dbname, database, jobs):
    """Count every recorded table in the restored copy; a table that cannot be counted (missing
    from the restore) is a mismatch, not an aborted run."""
    def count(session, table):
        try:
            return [(table, _pg.count_rows(session, *table))]
        except DbdrError:
            return [(table, None)]
    tables = [(s, n) for s, n, _r in database.tables]
    return row_count_checks(database, dict(_pg.in_sessions(params, dbname, tables, jobs, count)))


def row_count_checks(database, counts):
    checks = []
    for row in database.compare_rows(counts):
        subject = "%s.%s.%s" % (database.name, row["schema"], row["name"])
        if row["match"]:
            checks.append(Check("row_count", subject, "ok", "%s rows" % row["restored_rows"]))
        else:
            checks.append(Check("row_count", subject, "row_count_mismatch", "%s rows restored, the manifest records %s"
                                % (row["restored_rows"], row["backup_rows"])))
    return checks


def orphan_query(child, parent, match_full, child_cols, parent_cols, child_partitioned, parent_partitioned):
    """Count the child rows whose key finds no parent row, as the constraint's own trigger
    would look (ONLY for plain tables, the whole tree for partitioned ones)."""
    join = " AND ".join("p.%s = c.%s" % (p, c) for p, c in zip(parent_cols, child_cols))
    all_set = " AND ".join("c.%s IS NOT NULL" % c for c in child_cols)
    orphan = "(%s AND NOT EXISTS (SELECT 1 FROM %s%s p WHERE %s))" % (
        all_set, "" if parent_partitioned else "ONLY ", parent, join)
    if match_full and len(child_cols) > 1:
        # MATCH FULL: a key that is partly NULL is itself a violation.
        some_set = " OR ".join("c.%s IS NOT NULL" % c for c in child_cols)
        orphan = "(%s OR ((%s) AND NOT (%s)))" % (orphan, some_set, all_set)
    return "SELECT count(*) FROM %s%s c WHERE %s" % ("" if child_partitioned else "ONLY ", child, orphan)


def foreign_key_checks(params, dbname, label, jobs):
    """`dbname` is the scratch database, `label` the backed-up database's name used in subjects."""
    conn = _pg.connect(params, dbname)
    try:
        keys = _pg.fetch_all(conn, _FOREIGN_KEYS)
    except DbdrError as exc:
        return [Check("foreign_key", label, "fk_orphans", "foreign keys could not be listed: %s" % exc.message)]
    finally:
        conn.close()

    def check(session, key):
        name, child, parent, match, child_cols, parent_cols, child_part, parent_part = key
        subject = "%s.%s (%s -> %s)" % (label, name, child, parent)
        query = orphan_query(child, parent, match == "f", child_cols, parent_cols, child_part, parent_part)
        try:
            orphans = _pg.fetch_value(session, query)
        except DbdrError as exc:
            return [Check("foreign_key", subject, "fk_orphans", "could not be checked: %s" % exc.message)]
        if orphans:
            return [Check("foreign_key", subject, "fk_orphans", "%d row(s) of %s reference no row of %s"
                          % (orphans, child, parent))]
        return [Check("foreign_key", subject, "ok", "no orphans")]
    return _pg.in_sessions(params, dbname, keys, jobs, check)


def _first_line(exc):
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]


_QUOTED = re.compile(r'"[^"]*"')


def _error_text(exc):
    """The error's first line; a data or constraint error (SQLSTATE class 22, 23) quotes the
    offending value, which stays out of records and alerts."""
    text = _first_line(exc)
    if (getattr(exc, "pgcode", None) or "")[:2] in ("22", "23"):
        text = _QUOTED.sub('"(value omitted)"', text)
    return text


def assertion_checks(params, dbname, label, assertions):
    """Each assertion passes when it returns no rows, or a single true value. It runs in a
    read-only transaction that is rolled back."""
    checks = []
    conn = _pg.connect(params, dbname, autocommit=False)
    try:
        for assertion in assertions:
            subject = "%s: %s" % (label, assertion["name"])
            try:
                with conn.cursor() as cur:
                    cur.execute("SET TRANSACTION READ ONLY")
                    cur.execute(assertion["sql"])
                    rows = cur.fetchmany(6) if cur.description else []
            except _pg.psycopg2.Error as exc:
                checks.append(Check("assertion", subject, "assertion_failed", "error: %s" % _error_text(exc)))
                continue
            finally:
                conn.rollback()
            if not rows or (len(rows) == 1 and len(rows[0]) == 1 and rows[0][0] is True):
                checks.append(Check("assertion", subject, "ok", "returned no rows" if not rows else "returned true"))
            elif len(rows) == 1 and len(rows[0]) == 1 and rows[0][0] in (False, None):
                checks.append(Check("assertion", subject, "assertion_failed", "returned %s" % rows[0][0]))
            else:
                # Row values stay out of the record: they may be personal data.
                checks.append(Check("assertion", subject, "assertion_failed", "returned %s row%s" % (
                    "more than 5" if len(rows) > 5 else len(rows), "" if len(rows) == 1 else "s")))
    finally:
        conn.close()
    return checks


_BTREE_INDEXES = """
SELECT c.oid::regclass::text FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't'
ORDER BY 1
"""
_HEAP_TABLES = """
SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 't') AND c.relpersistence <> 't' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1
"""


def amcheck_checks(params, dbname, label, server_version_num, jobs):
    """B-tree indexes (bt_index_check) and, on PostgreSQL 14+, heap pages (verify_heapam)."""
    conn = _pg.connect(params, dbname)
    try:
        _pg.fetch_all(conn, "CREATE EXTENSION IF NOT EXISTS amcheck; SELECT 1")
        items = [("index", r[0]) for r in _pg.fetch_all(conn, _BTREE_INDEXES)]
        if server_version_num >= 140000:
            items += [("heap", r[0]) for r in _pg.fetch_all(conn, _HEAP_TABLES)]
    except DbdrError as exc:
        return [Check("amcheck", label, "assertion_failed", "amcheck could not run: %s" % exc.message)]
    finally:
        conn.close()

    def check(session, item):
        kind, relation = item
        subject = "%s: %s %s" % (label, kind, relation)
        try:
            if kind == "index":
                _pg.fetch_all(session, "SELECT bt_index_check(%s::regclass)", (relation,))
                problems = 0
            else:
                problems = _pg.fetch_value(session, "SELECT count(*) FROM verify_heapam(%s::regclass)", (relation,))
        except DbdrError as exc:
            # bt_index_check raises on the corruption it finds: that is the finding.
            return [Check("amcheck", subject, "assertion_failed", exc.message)]
        if problems:
            return [Check("amcheck", subject, "assertion_failed", "%d corrupt item(s)" % problems)]
        return []
    checks = _pg.in_sessions(params, dbname, items, jobs, check)
    if not checks:
        checks.append(Check("amcheck", label, "ok", "%d relations checked" % len(items)))
    return checks
