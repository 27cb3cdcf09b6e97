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
import shutil
import subprocess
import tempfile
import time

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.dbdr.backup.plugins.module_utils import _pg
from ansible_collections.dbdr.backup.plugins.module_utils._audit import write_audit
from ansible_collections.dbdr.backup.plugins.module_utils._backup.run import run_backup
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError, IntegrityError, StageError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import backup_id_for, isoformat, utc_now
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import Pipeline, Stage, clean_env, run_checked
from ansible_collections.dbdr.backup.plugins.module_utils._restore import database as _db
from ansible_collections.dbdr.backup.plugins.module_utils._restore import tables as _tables
from ansible_collections.dbdr.backup.plugins.module_utils._restore.globals import restore_globals


class Timings:
    """Seconds spent per step, in order: the achieved RTO, broken down."""

    def __init__(self):
        self.steps = []
        self._clock = time.monotonic()

    def step(self, name, started):
        self.steps.append({"step": name, "seconds": round(time.monotonic() - started, 3)})

    @property
    def total(self):
        return round(time.monotonic() - self._clock, 3)


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
    """What this run created or changed on the server, so that a failure can undo it."""

    def __init__(self):
        self.staging = []            # staging databases created by this run
        self.closed = []             # live databases whose connections this run disallowed
        self.swapped = False


def _restore_argv(plan, target, archive):
    request = plan.request
    argv = [plan.tools["pg_restore"]["path"], "--no-password", "--exit-on-error", "--dbname=" + target.staging]
    if request.no_owner:
        argv.append("--no-owner")
    if request.no_privileges:
        argv.append("--no-privileges")
    if archive is not None:
        if request.jobs > 1:
            argv.append("--jobs=%d" % request.jobs)
        argv.append(archive)
    return argv


def _local_copy(plan, target, work_dir):
    """Decrypt and decompress once into a private directory, verified on the way: for a
    parallel pg_restore (which needs a seekable file) or a directory-format dump."""
    directory = tempfile.mkdtemp(prefix="db-", dir=work_dir)
    if (plan.manifest.dump or {}).get("format") == "directory":
        target.source.run(consumers=[Stage("tar", ["tar", "-x", "-C", directory, "-f", "-"], env=clean_env())])
        return os.path.join(directory, "dump")
    path = os.path.join(directory, "dump.pgdump")
    target.source.materialize(path)
    return path


def _verify_objects(plan, work_dir, result):
    """Phase 1: every object read back in full before anything is created. A local copy, where
    one is needed, is made by this same pass."""
    started = time.monotonic()
    for target in plan.targets:
        target.archive = _local_copy(plan, target, work_dir) if target.materialize else None
        if target.mode == "tables":
            target.listing = _tables.verify_and_list(target.source, plan.tools["pg_restore"]["path"], work_dir,
                                                     target.archive)
        elif target.archive is None:
            target.source.verify()
    result.timings.step("verify", started)


def _count_rows(plan, dbname, tables):
    def count(table):
        conn = _pg.connect(plan.request.connection, dbname)
        try:
            return table, _pg.count_rows(conn, table[0], table[1])
        finally:
            conn.close()
    workers = max(1, min(plan.request.jobs, len(tables)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(count, [(s, n) for s, n, _r in tables]))


def _compare_rows(target, counts):
    comparison, mismatches = [], []
    for schema, name, expected in target.record.tables:
        actual = counts.get((schema, name))
        match = expected is None or actual == expected
        comparison.append({"schema": schema, "name": name, "backup_rows": expected, "restored_rows": actual,
                           "match": match})
        if not match:
            mismatches.append("%s.%s: %s restored, %s in the backup" % (schema, name, actual, expected))
    if mismatches:
        raise IntegrityError("database %r restored from backup %s does not match its manifest: %s"
                             % (target.name, target.source.manifest.backup_id, "; ".join(mismatches[:10])),
                             stage="check")
    return comparison


def _psql(plan, dbname, files, passfile, upstream=(), source=None):
    """psql running the files ('-' is its stdin) in one transaction; its input comes from
    `upstream` stages, fed by the backup object `source` when given."""
    argv = [plan.tools["psql"]["path"], "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "--single-transaction"]
    for path in files:
        argv.extend(["-f", path])
    stages = list(upstream) + [Stage("psql", argv, env=plan.request.connection.child_env(dbname, passfile))]
    if source is not None:
        source.run(consumers=stages)
    elif len(stages) > 1:
        with Pipeline(stages, stdout=subprocess.DEVNULL) as pipe:
            pipe.finish()
    else:
        run_checked(stages[0])


def _restore_database(plan, target, passfile, state, result, warnings):
    request = plan.request
    conn = plan.conn
    detail = {"database": target.name, "target": target.target, "mode": target.mode, "steps": []}
    started = time.monotonic()
    _db.create_staging(conn, target.staging, target.properties(), plan.server,
                       {"kind": "staging", "target": target.target, "restore_id": plan.restore_id,
                        "backup_id": plan.manifest.backup_id})
    state.staging.append(target.staging)
    env = request.connection.child_env(target.staging, passfile)
    restore = Stage("pg_restore", _restore_argv(plan, target, target.archive), env=env)
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
    _db.apply_properties(conn, target.staging, target.properties(), warnings)
    return detail


def _restore_tables(plan, target, passfile, work_dir, result):
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
    argv = [plan.tools["pg_restore"]["path"], "--data-only", "--use-list=" + paths["list"], "--file=-"]
    files = [paths["prelude.sql"], "-", paths["postlude.sql"]] + request.post_restore_sql
    if target.archive is not None:
        _psql(plan, target.target, files, passfile,
              upstream=[Stage("pg_restore", argv + [target.archive], env=clean_env())])
    else:
        # pg_restore stops reading once the chosen tables are out; `tee -p /dev/null` reads the
        # object to its end anyway, so that nothing upstream dies of a broken pipe.
        drain = Stage("tee", ["tee", "-p", "/dev/null"], env=clean_env())
        _psql(plan, target.target, files, passfile, upstream=[drain, Stage("pg_restore", argv, env=clean_env())],
              source=target.source)
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
    """Staging databases of earlier runs for these targets that were killed before cleaning
    up. Safe: we hold the targets' advisory locks, so no other restore is using them."""
    targets = set(t.target for t in plan.targets)
    for name, marker in _db.marked_databases(plan.conn, "staging"):
        if marker.get("target") in targets and name.startswith("dbdr_staging_"):
            _db.drop(plan.conn, name)
            result.leftovers_removed.append(name)


SCRATCH_PREFIX = "dbdr-restore-"
_SCRATCH_RE = re.compile(r"^%s([0-9]+)-" % re.escape(SCRATCH_PREFIX))


def _remove_stale_scratch(tmp_dir, result):
    """Local copies a killed restore left (they can be as big as the database): removed when
    the process that made them is gone."""
    base = tmp_dir or tempfile.gettempdir()
    try:
        entries = os.listdir(base)
    except OSError:
        return
    for name in entries:
        match = _SCRATCH_RE.match(name)
        if not match:
            continue
        try:
            os.kill(int(match.group(1)), 0)
            continue   # still running (or the pid was reused): not ours to judge
        except ProcessLookupError:
            pass
        except OSError:
            continue
        shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        result.leftovers_removed.append(os.path.join(base, name))


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
    """End the sessions of the live databases, then rename everything in one transaction."""
    conn = plan.conn
    started = time.monotonic()
    swaps = [t for t in plan.targets if t.mode == "swap"]
    news = [t for t in plan.targets if t.mode == "new"]
    for target in swaps:
        _db.allow_connections(conn, target.target, False)
        state.closed.append(target.target)
        result.sessions_terminated += _db.terminate_sessions(conn, target.target, plan.request.terminate_timeout)
    renames, comments = [], []
    for target in swaps:
        target.previous = _db.pre_restore_name(target.target, plan.restore_id)
        if _db.exists(conn, target.previous):
            raise StageError("database %r already exists; cannot keep the current %r under that name"
                             % (target.previous, target.target), stage="swap")
        renames.append((target.target, target.previous))
        renames.append((target.staging, target.target))
        comment = _db.user_comment(target.live_properties.get("comment"))
        comments.append((target.previous, _db.marker_text({
            "kind": "pre_restore", "of": target.target, "name": target.previous, "restore_id": plan.restore_id,
            "restored_backup_id": plan.manifest.backup_id, "replaced_at": isoformat(utc_now()),
            "comment": comment})))
        comments.append((target.target, comment))
    for target in news:
        renames.append((target.staging, target.target))
        comments.append((target.target, _db.user_comment((target.record.properties or {}).get("comment"))))
    _db.rename_all(conn, renames, comments)
    state.swapped = True
    state.staging = []
    for target in swaps:
        # The previous database stays readable for the people who need to look into it.
        _db.allow_connections(conn, target.previous, True)
        state.closed.remove(target.target)
    result.timings.step("swap", started)


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
    """After a failure: drop what this run created, reopen what it closed. Production is as
    it was (the swap transaction either committed or changed nothing)."""
    try:
        conn = plan.conn if plan.conn is not None and not plan.conn.closed else _pg.connect(plan.request.connection)
    except DbdrError as exc:
        for name in state.staging:
            warnings.append("staging database %r could not be dropped (%s); the next restore of the same database "
                            "drops it, or run DROP DATABASE yourself" % (name, exc))
        return
    try:
        conn.rollback() if not conn.autocommit else None
    except Exception:  # pylint: disable=broad-except
        pass
    conn.autocommit = True
    for name in list(state.closed):
        try:
            _db.allow_connections(conn, name, True, step="cleanup")
        except DbdrError as exc:
            warnings.append("could not allow connections to %r again: %s (ALTER DATABASE ... ALLOW_CONNECTIONS "
                            "true)" % (name, exc))
    for name in list(state.staging):
        try:
            _db.drop(conn, name)
        except DbdrError as exc:
            warnings.append("staging database %r could not be dropped (%s); the next restore of the same database "
                            "drops it" % (name, exc))


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
            result.databases.append(_restore_tables(plan, target, passfile, work_dir, result))
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
    plan.conn = _pg.connect(plan.request.connection)
    work_dir = None
    try:
        for name in sorted(set(t.target for t in plan.targets)) or ["<globals>"]:
            _db.lock_target(plan.conn, name)
        _remove_leftovers(plan, result)
        _remove_stale_scratch(plan.request.tmp_dir, result)
        work_dir = tempfile.mkdtemp(prefix="%s%d-" % (SCRATCH_PREFIX, os.getpid()), dir=plan.request.tmp_dir)
        with _pg.password_file(plan.request.connection) as passfile:
            _run(plan, work_dir, passfile, state, result)
    except BaseException as exc:
        exc.swapped = state.swapped
        if not state.swapped:
            _undo(plan, state, result.warnings)
        audit.update({"error": str(exc) or exc.__class__.__name__, "warnings": result.warnings})
        _audit(plan, started, "failed", audit, result)
        if isinstance(exc, DbdrError) or not isinstance(exc, Exception):
            exc.warnings = result.warnings
            raise
        raise StageError("unexpected %s: %s" % (exc.__class__.__name__, exc), stage="restore")
    finally:
        if work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
        try:
            plan.conn.close()
        except Exception:  # pylint: disable=broad-except
            pass
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
