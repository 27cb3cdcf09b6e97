# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Do a planned backup: lock, stream every dump into the repository, write the manifest last.

A failure anywhere removes what this run wrote, leaves no manifest, and raises an error that
names the stage; the lock is released in every case.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import socket
import tempfile
import threading
import time

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.dbdr.backup.plugins.module_utils import _compression, _gpg, _pg
from ansible_collections.dbdr.backup.plugins.module_utils._audit import write_audit
from ansible_collections.dbdr.backup.plugins.module_utils._catalog import is_complete, stored_backups
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError, LockedError, StageError, StorageError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import (
    backup_id_for, backup_prefix, backups_prefix, isoformat, lock_key, manifest_key, object_key,
    utc_now)
from ansible_collections.dbdr.backup.plugins.module_utils._manifest import DatabaseRecord, Manifest, StoredObjectRecord
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import (
    HashingReader, Pipeline, Stage, clean_env, run_checked)

COLLECTION_VERSION = "0.1.0"


class BackupResult:
    def __init__(self, manifest, duration_seconds, orphans_removed, audit_key, warnings):
        self.manifest = manifest
        self.duration_seconds = duration_seconds
        self.orphans_removed = orphans_removed
        self.audit_key = audit_key
        self.warnings = warnings

    @property
    def bytes(self):
        return self.manifest.total_bytes

    @property
    def throughput_bytes_per_second(self):
        return int(self.bytes / self.duration_seconds) if self.duration_seconds > 0 else None


def _tail_stages(plan):
    stages = []
    compress = _compression.compress_stage(plan.compression)
    if compress is not None:
        stages.append(compress)
    if plan.recipients:
        stages.append(_gpg.encrypt_stage(plan.gnupghome, plan.recipients))
    return stages


class _LivePipelines:
    """Pipelines running in worker threads, so that a failure or SIGTERM in the main thread
    can stop them all at once instead of waiting for every dump to finish."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pipes = set()

    def add(self, pipe):
        with self._lock:
            self._pipes.add(pipe)

    def discard(self, pipe):
        with self._lock:
            self._pipes.discard(pipe)

    def kill_all(self):
        with self._lock:
            pipes = list(self._pipes)
        for pipe in pipes:
            pipe.kill()


def _store(plan, backup_id, name, stages, size_hint, written, live):
    """Run the stages into the repository; returns the StoredObjectRecord fields."""
    key = object_key(plan.request.cluster, backup_id, name)
    with Pipeline(stages) as pipe:
        live.add(pipe)
        try:
            reader = HashingReader(pipe.stdout)
            plan.repository.put_stream(key, reader, plan.request.gfs_class, size_hint=size_hint)
            # Stored now (an existing key was refused above, never recorded): ours to remove on failure.
            written.append(key)
            pipe.finish()
        finally:
            live.discard(pipe)
    return reader.bytes, reader.hexdigest()


class _RowCounter(threading.Thread):
    """Counts rows in the dump's snapshot while pg_dump streams, on the connection that exported it."""

    def __init__(self, conn, tables):
        super(_RowCounter, self).__init__(name="dbdr-row-counter")
        self.daemon = True
        self.conn = conn
        self.tables = tables
        self.counts = []
        self.error = None

    def run(self):
        try:
            for schema, name in self.tables:
                self.counts.append((schema, name, _pg.count_rows(self.conn, schema, name)))
        except Exception as exc:  # pylint: disable=broad-except
            self.error = exc


def _tables_to_count(relations, db_plan):
    """The tables whose data pg_dump writes: included ones (or all) minus excluded ones."""
    chosen = db_plan.include if db_plan.include is not None else relations
    excluded = set(db_plan.exclude)
    return [(s, n) for s, n, kind in chosen if kind == "r" and (s, n, kind) not in excluded]


def _dump_argv(plan, db_plan, snapshot, output_dir=None):
    request = plan.request
    argv = [plan.tools["pg_dump"]["path"], "--no-password", "--compress=0", "--snapshot=" + snapshot]
    if request.dump_format == "custom":
        argv.append("--format=custom")
    else:
        argv.extend(["--format=directory", "--jobs=%d" % request.jobs, "--file=" + output_dir])
    if request.schema_only:
        argv.append("--schema-only")
    if request.data_only:
        argv.append("--data-only")
    if request.lock_wait_timeout:
        argv.append("--lock-wait-timeout=%ds" % request.lock_wait_timeout)
    for schema, name, _kind in db_plan.include or []:
        argv.append("--table=" + _pg.exact_table_pattern(schema, name))
    for schema, name, _kind in db_plan.exclude:
        argv.append("--exclude-table=" + _pg.exact_table_pattern(schema, name))
    return argv


def _dump_database(plan, db_plan, backup_id, passfile, written, live):
    request = plan.request
    started = time.monotonic()
    conn = _pg.connect(request.connection, db_plan.name, autocommit=False)
    tmp = counter = None
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        snapshot, snapshot_at = _pg.fetch_all(conn, "SELECT pg_export_snapshot(), clock_timestamp()")[0]
        tables = [] if request.schema_only else _tables_to_count(_pg.user_relations(conn), db_plan)
        if plan.server.in_recovery and tables:
            # On a standby pg_dump leaves out unlogged tables' data (it cannot read it); so do we.
            unlogged = set(_pg.unlogged_tables(conn))
            tables = [t for t in tables if t not in unlogged]
        counter = _RowCounter(conn, tables)
        env = request.connection.child_env(db_plan.name, passfile)
        if request.dump_format == "custom":
            counter.start()
            stages = [Stage("pg_dump", _dump_argv(plan, db_plan, snapshot), env=env)] + _tail_stages(plan)
            size, sha = _store(plan, backup_id, db_plan.object_name, stages, db_plan.size_bytes, written, live)
        else:
            # Directory format needs a real directory (pg_dump --jobs writes files in parallel).
            tmp = tempfile.mkdtemp(prefix="dbdr-dump-", dir=request.tmp_dir)
            counter.start()
            run_checked(Stage("pg_dump", _dump_argv(plan, db_plan, snapshot, os.path.join(tmp, "dump")), env=env))
            tar = Stage("tar", ["tar", "-C", tmp, "-cf", "-", "dump"], env=clean_env())
            size, sha = _store(plan, backup_id, db_plan.object_name, [tar] + _tail_stages(plan), db_plan.size_bytes,
                               written, live)
        counter.join()
        if counter.error is not None:
            raise StageError("counting rows in database %r failed: %s" % (db_plan.name, counter.error), stage="row count")
        conn.rollback()
    finally:
        if counter is not None and counter.is_alive():
            # A failed dump: stop the count query before closing its connection.
            conn.cancel()
            counter.join()
        conn.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    record = StoredObjectRecord(db_plan.object_name, "database", size, sha, database=db_plan.name)
    database = DatabaseRecord(db_plan.name, db_plan.object_name, db_plan.size_bytes, counter.counts,
                              round(time.monotonic() - started, 3), db_plan.properties, isoformat(snapshot_at))
    return record, database


def _dump_globals(plan, backup_id, passfile, written, live):
    request = plan.request
    argv = [plan.tools["pg_dumpall"]["path"], "--no-password", "--globals-only", "-l", request.connection.login_db]
    if not plan.is_superuser:
        # Role passwords live in pg_authid, which only superusers may read.
        argv.append("--no-role-passwords")
    stages = [Stage("pg_dumpall", argv, env=request.connection.child_env(None, passfile))] + _tail_stages(plan)
    size, sha = _store(plan, backup_id, plan.globals_object, stages, None, written, live)
    info = {"object": plan.globals_object, "role_passwords": plan.is_superuser}
    return StoredObjectRecord(plan.globals_object, "globals", size, sha), info


def _allocate_backup_id(repository, cluster):
    """The UTC start second; wait for the next one if a backup already used it."""
    for _attempt in range(5):
        moment = utc_now().replace(microsecond=0)
        backup_id = backup_id_for(moment)
        if not repository.list_keys(backup_prefix(cluster, backup_id)):
            return backup_id, moment
        time.sleep(1.05 - utc_now().microsecond / 1e6)
    raise StorageError("could not allocate a new backup id in %s" % repository.describe(backups_prefix(cluster)))


def _sweep_orphans(repository, cluster, warnings):
    """Remove what failed or killed runs left: backups without a manifest, partial uploads.

    Safe because the caller holds the cluster's lock: nothing else is writing backups now.
    """
    removed = repository.sweep_incomplete(backups_prefix(cluster))
    for backup_id, objects in sorted(stored_backups(repository, cluster).items()):
        if is_complete(cluster, backup_id, objects):
            continue
        try:
            for stored in objects:
                repository.delete(stored.key)
                removed += 1
        except StorageError as exc:
            warnings.append("could not remove the objects of incomplete backup %s (ignored: it has no manifest; "
                            "backup_retention removes such leftovers): %s" % (backup_id, exc))
    return removed


def _cleanup(repository, written, warnings):
    """Remove what a failed run wrote; returns the keys that could not be removed."""
    left = []
    for key in reversed(written):
        try:
            repository.delete(key)
        except Exception as exc:  # pylint: disable=broad-except
            left.append(key)
            warnings.append("could not remove %s after the failure (it has no manifest and is ignored): %s"
                            % (repository.describe(key), exc))
    return left


def run_backup(plan):
    request = plan.request
    started = utc_now()
    holder = {"operation": "backup", "started_at": isoformat(started)}
    result = None
    try:
        with plan.repository.lock(lock_key(request.cluster), holder):
            result = _run_locked(plan, started)
    except LockedError as exc:
        try:
            write_audit(plan.repository, request.cluster, "backup", started, "refused",
                        {"plan": plan.to_dict(), "error": str(exc)})
        except Exception:  # pylint: disable=broad-except
            pass
        raise
    except StorageError as exc:
        if result is None:
            raise
        # The backup is complete (manifest written); only releasing the lock failed.
        result.warnings.append("backup complete, but the lock could not be released: %s" % exc)
    return result


def _dump_all(plan, backup_id, passfile, written, live):
    request = plan.request
    objects, results, globals_info = [], [], None
    if plan.globals_object:
        record, globals_info = _dump_globals(plan, backup_id, passfile, written, live)
        objects.append(record)
    workers = request.jobs if request.dump_format == "custom" else 1
    if workers > 1 and len(plan.databases) > 1:
        pool = ThreadPoolExecutor(max_workers=workers)
        futures = []
        try:
            futures = [pool.submit(_dump_database, plan, db, backup_id, passfile, written, live)
                       for db in plan.databases]
            results = [f.result() for f in futures]
        except BaseException:
            # Stop the other dumps now rather than waiting for each one to finish.
            for future in futures:
                future.cancel()
            live.kill_all()
            raise
        finally:
            pool.shutdown(wait=True)
    else:
        results = [_dump_database(plan, db, backup_id, passfile, written, live) for db in plan.databases]
    return objects, results, globals_info


def _run_locked(plan, started):
    request = plan.request
    repository = plan.repository
    clock = time.monotonic()
    warnings = []
    audit_details = {"plan": plan.to_dict()}
    written = []
    live = _LivePipelines()
    lock = lock_key(request.cluster)
    try:
        backup_id, started = _allocate_backup_id(repository, request.cluster)
        audit_details["backup_id"] = backup_id
        orphans = _sweep_orphans(repository, request.cluster, warnings)
        with _pg.password_file(request.connection) as passfile:
            objects, results, globals_info = _dump_all(plan, backup_id, passfile, written, live)
        databases = []
        for record, database in results:
            objects.append(record)
            databases.append(database)
        finished = utc_now()
        manifest = Manifest(
            backup_id, request.cluster, request.kind, isoformat(started), isoformat(finished), objects, databases,
            server={"version": plan.server.version, "version_num": plan.server.version_num,
                    "system_identifier": plan.server.system_identifier, "in_recovery": plan.server.in_recovery},
            tools=dict((k, v["version"]) for k, v in plan.tools.items()), host=socket.gethostname(),
            compression=plan.compression,
            encryption={"type": plan.encryption_type, "cipher": _gpg.CIPHER if plan.recipients else None,
                        "recipients": [r.to_dict() for r in plan.recipients]},
            dump={"format": request.dump_format, "schema_only": request.schema_only, "data_only": request.data_only,
                  "tables": request.tables, "exclude_tables": request.exclude_tables,
                  "dbdr_backup_version": COLLECTION_VERSION},
            gfs_class=request.gfs_class, labels=request.labels, globals_info=globals_info,
            duration_seconds=round(time.monotonic() - clock, 3))
        # Still ours? (A lost S3 lock means another run may have swept our objects.)
        repository.check_lock(lock)
        # The manifest is written last: until it exists, the backup does not. It is recorded
        # before the write so that a failure after it reached storage still removes it first.
        key = manifest_key(request.cluster, backup_id)
        written.append(key)
        repository.put_bytes(key, manifest.to_json(), request.gfs_class)
    except BaseException as exc:
        live.kill_all()
        left = _cleanup(repository, written, warnings)
        if left and isinstance(exc, DbdrError):
            # A writer without delete permission (backup_iam): say so in the task's message.
            exc.message += ("; %d object(s) without a manifest could not be removed (%s) and are left for "
                            "backup_retention's leftover sweep" % (len(left), ", ".join(left)))
        audit_details["error"] = str(exc) or exc.__class__.__name__
        audit_details["warnings"] = warnings
        try:
            write_audit(repository, request.cluster, "backup", started, "failed", audit_details)
        except Exception:  # pylint: disable=broad-except
            pass
        if isinstance(exc, DbdrError) or not isinstance(exc, Exception):
            raise
        raise StageError("unexpected %s: %s" % (exc.__class__.__name__, exc), stage="backup")
    audit_details.update({"bytes": manifest.total_bytes, "objects": [o.to_dict() for o in objects],
                          "warnings": warnings})
    audit = None
    try:
        audit = write_audit(repository, request.cluster, "backup", started, "ok", audit_details)
    except Exception as exc:  # pylint: disable=broad-except
        # The backup exists; failing the task now would only invite a needless second one.
        warnings.append("backup complete, but its audit record could not be written: %s" % exc)
    return BackupResult(manifest, round(time.monotonic() - clock, 3), orphans, audit, warnings)
