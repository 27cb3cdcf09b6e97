# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Do a planned restore.

Order of work, so that production is never the place where something half-happens:
verify every object first; restore each database into a staging database and check it
against the manifest; take a safety backup of what will be replaced; then swap names in one
transaction. Any failure before that transaction commits drops the staging databases and
leaves production as it was; the transaction itself either renames everything or nothing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import tempfile
import time

from ansible_collections.dbdr.backup.plugins.module_utils import _pg, _scratch
from ansible_collections.dbdr.backup.plugins.module_utils._audit import write_audit
from ansible_collections.dbdr.backup.plugins.module_utils._backup.run import run_backup
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError, IntegrityError, StageError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import backup_id_for, isoformat, utc_now
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import Stage, clean_env, run_checked
from ansible_collections.dbdr.backup.plugins.module_utils._restore import database as _db
from ansible_collections.dbdr.backup.plugins.module_utils._restore import tables as _tables
from ansible_collections.dbdr.backup.plugins.module_utils._restore.globals import restore_globals
from ansible_collections.dbdr.backup.plugins.module_utils._restore.plan import plan_deferred_safety_backup
from ansible_collections.dbdr.backup.plugins.module_utils._timings import Timings


class RestoreResult:
    def __init__(self):
        self.databases = []
        self.globals = None
        self.safety_backup_id = None
        self.pre_restore_copies = []
        self.pre_restore_dropped = []
        self.leftovers_removed = []
        self.sessions_terminated = 0
        self.timings = Timings()
        self.audit_key = None
        self.warnings = []


class _State:
    """What this run created or changed on the server, so that a failure can undo it. Each
    entry is recorded before the action (undoing is idempotent)."""

    def __init__(self):
        self.staging = []            # staging databases created by this run
        self.closed = []             # (live database, its comment) this run closed to connections
        self.renaming = False        # the rename transaction was sent
        self.swapped = False         # ... and committed: the restored databases are live
        self.committed = False       # a table-level restore committed


def _verify_objects(plan, work_dir, result):
    """Phase 1: every object read back in full before anything is created. A local copy, where
    one is needed, is made by this same pass."""
    started = time.monotonic()
    for target in plan.targets:
        # One pass decrypts and decompresses into a private directory, verified on the way, where
        # a seekable archive is needed (parallel pg_restore, directory format, table restores).
        target.archive = (target.source.local_copy(tempfile.mkdtemp(prefix="db-", dir=work_dir))
                          if target.materialize else None)
        if target.mode == "tables":
            target.listing = _tables.archive_listing(plan.tools["pg_restore"]["path"], target.archive)
        elif target.archive is None:
            target.source.verify()
    result.timings.step("verify", started)


def _count_rows(plan, dbname, tables):
    return _pg.count_rows_parallel(plan.request.connection, dbname, [(s, n) for s, n, _r in tables], plan.request.jobs)


def _compare_rows(target, counts):
    comparison = target.record.compare_rows(counts)
    mismatches = ["%s.%s: %s restored, %s in the backup" % (c["schema"], c["name"], c["restored_rows"], c["backup_rows"])
                  for c in comparison if not c["match"]]
    if mismatches:
        raise IntegrityError("database %r restored from backup %s does not match its manifest: %s"
                             % (target.name, target.source.manifest.backup_id, "; ".join(mismatches[:10])),
                             stage="check")
    return comparison


def _psql(plan, dbname, files, passfile):
    """psql running the files in one transaction, stopping at the first error."""
    argv = [plan.tools["psql"]["path"], "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction"]
    for path in files:
        argv.extend(["-f", path])
    run_checked(Stage("psql", argv, env=plan.request.connection.child_env(dbname, passfile)))


def _restore_database(plan, target, passfile, state, result, warnings):
    request = plan.request
    conn = plan.conn
    detail = {"database": target.name, "target": target.target, "mode": target.mode, "steps": []}
    started = time.monotonic()
    state.staging.append(target.staging)
    _db.create_staging(conn, target.staging, target.properties(), plan.server,
                       {"kind": "staging", "target": target.target, "restore_id": plan.restore_id,
                        "backup_id": plan.manifest.backup_id})
    env = request.connection.child_env(target.staging, passfile)
    restore = Stage("pg_restore", _pg.restore_argv(plan.tools["pg_restore"]["path"], target.staging, request.no_owner,
                                                   request.no_privileges, request.jobs, target.archive), env=env)
    if target.archive is not None:
        run_checked(restore)
    else:
        target.source.run(consumers=[restore])
    result.timings.step("restore %s" % target.name, started)

    started = time.monotonic()
    detail["tables"] = _compare_rows(target, _count_rows(plan, target.staging, target.record.tables))
    result.timings.step("check %s" % target.name, started)

    if request.post_restore_sql:
        started = time.monotonic()
        _psql(plan, target.staging, request.post_restore_sql, passfile)
        result.timings.step("post_restore_sql %s" % target.name, started)
    if request.analyze:
        started = time.monotonic()
        run_checked(Stage("vacuumdb", [plan.tools["vacuumdb"]["path"], "--no-password", "--analyze-only", "--quiet",
                                       "--jobs=%d" % max(1, request.jobs), "--dbname=" + target.staging], env=env))
        result.timings.step("analyze %s" % target.name, started)
    _db.apply_properties(conn, target.staging, target.properties(), warnings,
                         lambda: _pg.connect(request.connection, target.staging))
    return detail


def _restore_tables(plan, target, passfile, work_dir, state, result):
    request = plan.request
    started = time.monotonic()
    dbconn = _pg.connect(request.connection, target.target)
    try:
        order = _tables.load_order(dbconn, target.tables)
        prelude, postlude = _tables.scripts(dbconn, target.tables, request.terminate_timeout)
    finally:
        dbconn.close()
    rows = dict(((s, n), r) for s, n, r in target.tables)
    listing = _tables.select_entries(target.listing, order)
    paths = {}
    for name, text in (("list", listing), ("prelude.sql", prelude), ("postlude.sql", postlude)):
        paths[name] = os.path.join(work_dir, name)
        fd = os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    # The chosen tables' rows as SQL in a local file first: psql then runs over complete,
    # checked input, and production tables are locked only while it loads them.
    paths["data.sql"] = os.path.join(work_dir, "data.sql")
    run_checked(Stage("pg_restore", [plan.tools["pg_restore"]["path"], "--data-only", "--use-list=" + paths["list"],
                                     "--file=" + paths["data.sql"], target.archive], env=clean_env()))
    os.chmod(paths["data.sql"], 0o600)
    _psql(plan, target.target, [paths["prelude.sql"], paths["data.sql"], paths["postlude.sql"]] +
          request.post_restore_sql, passfile)
    state.committed = True
    result.timings.step("restore tables %s" % target.name, started)
    if request.analyze:
        started = time.monotonic()
        dbconn = _pg.connect(request.connection, target.target)
        try:
            _db.execute(dbconn, "ANALYZE %s" % ", ".join(_tables.qualified(s, n) for s, n, _r in target.tables),
                        step="analyze")
        finally:
            dbconn.close()
        result.timings.step("analyze %s" % target.name, started)
    return {"database": target.name, "target": target.target, "mode": "tables",
            "tables": [{"schema": s, "name": n, "backup_rows": rows[(s, n)], "restored_rows": rows[(s, n)],
                        "match": True} for s, n in order]}


def _remove_leftovers(plan, result):
    """What earlier runs for these targets left when they were killed: staging databases
    (marked, or named for the target but killed before the marker was set), and live databases
    they had closed to connections. Safe: we hold the targets' locks."""
    targets = dict((_db.staging_name(t.target, "x")[-8:], t.target) for t in plan.targets)
    for name, marker in _db.leftover_databases(plan.conn, "staging", "dbdr_staging_", _STAGING_RE):
        if (marker is not None and marker.get("target") in targets.values()) or \
                (marker is None and name[-8:] in targets):
            _db.drop(plan.conn, name)
            result.leftovers_removed.append(name)
    for name, marker in _db.marked_databases(plan.conn, "closed_by_restore"):
        if name in targets.values():
            _db.in_one_transaction(plan.conn, [_db.allow_statement(name, True), _db.comment_statement(
                plan.conn, name, marker.get("comment"))], step="cleanup")
            result.warnings.append("database %r had been closed to connections by restore %s, which was killed; "
                                   "connections are allowed again" % (name, marker.get("restore_id")))


_STAGING_RE = re.compile(r"^dbdr_staging_[0-9]{8}t[0-9]{6}z_[0-9a-f]{8}$")
SCRATCH_PREFIX = "dbdr-restore-"


def _safety_backup(plan, result):
    if plan.safety_plan is None:
        return
    started = time.monotonic()
    try:
        backup = run_backup(plan.safety_plan)
    except DbdrError as exc:
        raise StageError("the safety backup of the live database failed, nothing was replaced: %s" % exc,
                         stage="safety backup")
    result.safety_backup_id = backup.manifest.backup_id
    result.warnings.extend(backup.warnings)
    result.timings.step("safety backup", started)


def _swap(plan, state, result):
    """Close the staging and live databases to new sessions and end theirs, then rename
    everything in one transaction."""
    conn = plan.conn
    started = time.monotonic()
    swaps = [t for t in plan.targets if t.mode == "swap"]
    news = [t for t in plan.targets if t.mode == "new"]
    for target in swaps + news:
        # A monitoring agent connected to the staging database would make the rename fail.
        _db.allow_connections(conn, target.staging, False)
        _db.terminate_sessions(conn, target.staging, plan.request.terminate_timeout)
    for target in swaps:
        comment = _db.user_comment(target.live_properties.get("comment"))
        target.previous = _db.pre_restore_name(target.target, plan.restore_id)
        if _db.exists(conn, target.previous):
            raise StageError("database %r already exists; cannot keep the current %r under that name"
                             % (target.previous, target.target), stage="swap")
        state.closed.append((target.target, comment))
        # Closed with a marker, so that a later run can reopen it if this one is killed now.
        _db.in_one_transaction(conn, [_db.allow_statement(target.target, False), _db.comment_statement(
            conn, target.target, _db.marker_text({"kind": "closed_by_restore", "restore_id": plan.restore_id,
                                                  "comment": comment}))], step="swap")
        result.sessions_terminated += _db.terminate_sessions(conn, target.target, plan.request.terminate_timeout)
    statements = []
    for target in swaps:
        comment = _db.user_comment(target.live_properties.get("comment"))
        statements += [
            _db.rename_statement(target.target, target.previous),
            _db.rename_statement(target.staging, target.target),
            _db.allow_statement(target.target, True),
            _db.comment_statement(conn, target.target, comment),
            _db.comment_statement(conn, target.previous, _db.marker_text({
                "kind": "pre_restore", "of": target.target, "name": target.previous, "restore_id": plan.restore_id,
                "restored_backup_id": plan.manifest.backup_id, "replaced_at": isoformat(utc_now()),
                "comment": comment}))]
    for target in news:
        statements += [_db.rename_statement(target.staging, target.target), _db.allow_statement(target.target, True),
                       _db.comment_statement(conn, target.target,
                                             _db.user_comment((target.record.properties or {}).get("comment")))]
    state.renaming = True
    _db.in_one_transaction(conn, statements)
    state.swapped = True
    state.staging = []
    state.closed = []
    for target in swaps:
        if _subscriptions(conn, target.previous):
            result.warnings.append("%r keeps logical replication subscriptions and stays closed to connections so "
                                   "that they do not apply changes there; the subscriptions of the restored %r "
                                   "are disabled until you enable them" % (target.previous, target.target))
            continue
        # The previous database stays readable for the people who need to look into it.
        _db.allow_connections(conn, target.previous, True)
    result.timings.step("swap", started)


def _subscriptions(conn, name):
    return _pg.fetch_value(conn, "SELECT count(*) FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                                 "WHERE d.datname = %s", (name,))


def _prune_pre_restore(plan, result):
    keep = plan.request.keep_pre_restore
    targets = set(t.target for t in plan.targets if t.mode == "swap")
    # Only copies still under the name this collection gave them: a database a person renamed
    # (say, back into production after a rollback) is theirs now, whatever its comment says.
    copies = [(name, marker) for name, marker in _db.marked_databases(plan.conn, "pre_restore")
              if marker.get("of") in targets and marker.get("name") == name and name not in targets]
    copies.sort(key=lambda c: (c[1].get("of"), c[1].get("restore_id") or ""), reverse=True)
    kept = {}
    for name, marker in copies:
        of = marker.get("of")
        kept[of] = kept.get(of, 0) + 1
        if keep is not None and kept[of] > keep:
            _db.drop(plan.conn, name, step="cleanup pre-restore copies")
            result.pre_restore_dropped.append(name)
            continue
        result.pre_restore_copies.append({"name": name, "of": of, "restore_id": marker.get("restore_id"),
                                          "restored_backup_id": marker.get("restored_backup_id"),
                                          "replaced_at": marker.get("replaced_at")})


def _undo(plan, state, warnings):
    """After a failure before the swap committed: drop what this run created, reopen what it
    closed. Runs on a new connection (the old one may be what failed), never raises."""
    backend = getattr(plan, "backend_pid", None)
    try:
        conn = _pg.connect(plan.request.connection)
    except Exception as exc:  # pylint: disable=broad-except
        for name in state.staging:
            warnings.append("staging database %r could not be dropped (%s); the next restore of the same database "
                            "drops it, or run DROP DATABASE yourself" % (name, exc))
        for name, _comment in state.closed:
            warnings.append("database %r is closed to connections and could not be reopened (%s): run ALTER "
                            "DATABASE ... WITH ALLOW_CONNECTIONS true" % (name, exc))
        return
    try:
        _db.execute(conn, "SET lock_timeout = '30s'", step="cleanup")
        if backend:
            # A session of ours the server still thinks alive would hold its locks.
            _pg.fetch_all(conn, "SELECT pg_terminate_backend(%s) WHERE %s <> pg_backend_pid()", (backend, backend))
        for name, comment in list(state.closed):
            try:
                _db.in_one_transaction(conn, [_db.allow_statement(name, True), _db.comment_statement(conn, name, comment)],
                                       step="cleanup")
            except Exception as exc:  # pylint: disable=broad-except
                warnings.append("could not allow connections to %r again: %s (ALTER DATABASE ... WITH "
                                "ALLOW_CONNECTIONS true)" % (name, exc))
        for name in list(state.staging):
            try:
                _db.drop(conn, name)
            except Exception as exc:  # pylint: disable=broad-except
                warnings.append("staging database %r could not be dropped (%s); the next restore of the same "
                                "database drops it" % (name, exc))
    except Exception as exc:  # pylint: disable=broad-except
        warnings.append("cleanup after the failure was incomplete: %s" % exc)
    finally:
        conn.close()


def _swap_committed(plan):
    """After an error during the rename transaction: did it commit? (The staging names are
    gone exactly when it did.)"""
    try:
        conn = _pg.connect(plan.request.connection)
    except Exception:  # pylint: disable=broad-except
        return None
    try:
        names = [t.staging for t in plan.targets if t.staging]
        return not any(_db.exists(conn, name) for name in names)
    except Exception:  # pylint: disable=broad-except
        return None
    finally:
        conn.close()


def _run(plan, work_dir, passfile, state, result):
    if plan.globals_source is not None:
        started = time.monotonic()
        text = plan.globals_source.read_small().decode("utf-8")
        result.timings.step("verify", started)
        started = time.monotonic()
        result.globals = restore_globals(plan.conn, text)
        result.timings.step("globals", started)
        return
    _verify_objects(plan, work_dir, result)
    for target in plan.targets:
        if target.mode == "tables":
            continue
        target.staging = _db.staging_name(target.target, plan.restore_id)
        result.databases.append(_restore_database(plan, target, passfile, state, result, result.warnings))
    _safety_backup(plan, result)
    for target in plan.targets:
        if target.mode == "tables":
            result.databases.append(_restore_tables(plan, target, passfile, work_dir, state, result))
    if any(t.mode in ("swap", "new") for t in plan.targets):
        _swap(plan, state, result)
        for detail, target in zip(result.databases, [t for t in plan.targets if t.mode != "tables"]):
            detail["previous_database"] = getattr(target, "previous", None)
    if any(t.mode == "swap" for t in plan.targets):
        _prune_pre_restore(plan, result)


def run_restore(plan):
    started = utc_now()
    plan.restore_id = backup_id_for(started)
    result = RestoreResult()
    result.warnings.extend(plan.warnings)
    state = _State()
    audit = {"plan": plan.to_dict(), "restore_id": plan.restore_id}
    locks = _db.TargetLocks(plan.request.connection)
    work_dir = scratch_lock = None
    try:
        for name in sorted(set(t.target for t in plan.targets)) or ["<globals>"]:
            locks.take(name)
        plan.conn = _pg.connect(plan.request.connection)
        plan.backend_pid = _pg.fetch_value(plan.conn, "SELECT pg_backend_pid()")
        _remove_leftovers(plan, result)
        plan_deferred_safety_backup(plan)
        result.leftovers_removed.extend(_scratch.remove_stale(SCRATCH_PREFIX, plan.request.tmp_dir))
        work_dir, scratch_lock = _scratch.make(SCRATCH_PREFIX, plan.request.tmp_dir)
        with _pg.password_file(plan.request.connection) as passfile:
            _run(plan, work_dir, passfile, state, result)
    except BaseException as exc:
        if state.renaming and not state.swapped and _swap_committed(plan):
            state.swapped = True
        exc.swapped = state.swapped or state.committed
        if not exc.swapped:
            _undo(plan, state, result.warnings)
        audit.update({"error": str(exc) or exc.__class__.__name__, "warnings": result.warnings})
        _audit(plan, started, "failed", audit, result)
        if not isinstance(exc, DbdrError) and isinstance(exc, Exception):
            wrapped = StageError("unexpected %s: %s" % (exc.__class__.__name__, exc), stage="restore")
            wrapped.swapped, wrapped.warnings = exc.swapped, result.warnings
            raise wrapped
        exc.warnings = result.warnings
        raise
    finally:
        if work_dir:
            _scratch.release(work_dir, scratch_lock)
        if plan.conn is not None:
            try:
                plan.conn.close()
            except Exception:  # pylint: disable=broad-except
                pass
        locks.release()
    audit.update({"result": result_dict(result), "warnings": result.warnings})
    _audit(plan, started, "ok", audit, result)
    return result


def _audit(plan, started, outcome, details, result):
    try:
        result.audit_key = write_audit(plan.repository, plan.manifest.cluster, "restore", started, outcome, details)
    except Exception as exc:  # pylint: disable=broad-except
        # The restore itself is what matters now; a read-only repository is reported, not fatal.
        result.warnings.append("the audit record could not be written to the repository: %s" % exc)


def result_dict(result):
    return {
        "databases": result.databases, "globals": result.globals, "safety_backup_id": result.safety_backup_id,
        "pre_restore_copies": result.pre_restore_copies, "pre_restore_dropped": result.pre_restore_dropped,
        "leftovers_removed": result.leftovers_removed, "sessions_terminated": result.sessions_terminated,
        "steps": result.timings.steps, "duration_seconds": result.timings.total,
    }
