# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prove backups: plan which backups and what it takes (read-only), then verify each one at
the chosen level and store a verification record.

Levels build on each other: checksum (stored bytes against the manifest), readable (+ gpg,
decompression, the archive's table of contents), restore (+ a full test restore into a
scratch database, row counts, foreign keys, assertions, amcheck, restore time against the
RTO target). The scratch database is dropped in every case, also on failure and interrupt,
and a killed run's scratch database is dropped by the next one."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import socket
import time
import uuid

from ansible_collections.dbdr.backup.plugins.module_utils import _gpg, _pg, _scratch
from ansible_collections.dbdr.backup.plugins.module_utils._catalog import read_catalog
from ansible_collections.dbdr.backup.plugins.module_utils._errors import (
    DbdrError, InputError, IntegrityError, LockedError, StageError, StorageError)
from ansible_collections.dbdr.backup.plugins.module_utils._fetch import ObjectSource
from ansible_collections.dbdr.backup.plugins.module_utils._layout import (
    backups_prefix, isoformat, utc_now, validate_backup_id, validate_cluster)
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import Stage, check_scratch_space, run_checked
from ansible_collections.dbdr.backup.plugins.module_utils._restore import database as _db
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import ARCHIVE_STORAGE_CLASSES, open_repository
from ansible_collections.dbdr.backup.plugins.module_utils._timings import Timings
from ansible_collections.dbdr.backup.plugins.module_utils._verify import integrity, objects
from ansible_collections.dbdr.backup.plugins.module_utils._verify.record import (
    LEVELS, Check, VerificationRecord, write_record)

SCRATCH_PREFIX = "dbdr_verify_"
COPY_PREFIX = "dbdr-verify-copy-"   # local copies under tmp_dir


class VerifyRequest:
    """Validated option values of backup_verify."""

    def __init__(self, cluster, repository, connection=None, encryption=None, backup_id="latest", level="checksum",
                 databases=None, assertions=None, amcheck=False, rto_target=None, jobs=1, no_owner=True,
                 no_privileges=True, pg_bin_dir=None, tmp_dir=None):
        self.cluster = cluster
        self.repository = repository
        self.connection = connection
        self.encryption = encryption or {}
        self.backup_id = backup_id or "latest"
        self.level = level or "checksum"
        self.databases = list(databases or [])
        self.assertions = list(assertions or [])
        self.amcheck = bool(amcheck)
        self.rto_target = rto_target
        self.jobs = int(jobs) if jobs is not None else 1
        self.no_owner = no_owner
        self.no_privileges = no_privileges
        self.pg_bin_dir = pg_bin_dir
        self.tmp_dir = tmp_dir


class VerifyPlan:
    def __init__(self, request, repository, entries, assertions, gnupghome, passphrase, server=None, tools=None):
        self.request = request
        self.repository = repository
        self.entries = entries          # BackupEntry to verify, oldest first
        self.assertions = assertions    # {database: [{"name", "sql"}]}
        self.gnupghome = gnupghome
        self.passphrase = passphrase
        self.server = server
        self.tools = tools or {}
        self.skipped = []               # [{"backup_id", "reason"}]: archived, not verified

    def to_dict(self):
        return {
            "level": self.request.level, "repository": self.repository.describe(backups_prefix(self.request.cluster)),
            "backups": [{"backup_id": e.backup_id, "objects": [o.name for o in e.manifest.objects] if e.manifest else [],
                         "databases": _databases_of(self.request, e.manifest) if e.manifest else [],
                         "manifest_error": e.error} for e in self.entries],
            "scratch_server": self.request.connection.describe() if self.server else None,
            "assertions": sum(len(a) for a in self.assertions.values()), "amcheck": self.request.amcheck,
            "rto_target": self.request.rto_target, "skipped": self.skipped,
        }


def _validate(request):
    validate_cluster(request.cluster)
    if request.level not in LEVELS:
        raise InputError("level must be one of %s, got %r" % (", ".join(LEVELS), request.level))
    if request.backup_id not in ("latest", "all"):
        validate_backup_id(request.backup_id)
    if request.jobs < 1:
        raise InputError("jobs must be 1 or more")
    if request.rto_target is not None and request.rto_target <= 0:
        raise InputError("rto_target must be a positive number of seconds")
    if request.level != "restore":
        for option, value in (("assertions", request.assertions), ("amcheck", request.amcheck),
                              ("rto_target", request.rto_target)):
            if value:
                raise InputError("%s needs level: restore (a test restore into a scratch database)" % option)
    if request.tmp_dir and not os.path.isdir(request.tmp_dir):
        raise InputError("tmp_dir %r is not a directory" % (request.tmp_dir,))


def _assertions(request, entries):
    """{database: [{"name", "sql"}]}. A bare SQL string belongs to the only database verified;
    with several, each assertion must name its database."""
    names = set()
    for entry in entries:
        if entry.manifest is not None:
            names.update(_databases_of(request, entry.manifest))
    out = {}
    for index, item in enumerate(request.assertions, 1):
        if isinstance(item, str):
            item = {"sql": item}
        if not isinstance(item, dict) or not isinstance(item.get("sql"), str) or not item["sql"].strip():
            raise InputError("assertion %d must be SQL text, or a dict with sql (and database, name)" % index)
        database = item.get("database")
        if database is None:
            if len(names) != 1:
                raise InputError("assertion %d names no database, and the backups hold %s; give it a database"
                                 % (index, ", ".join(repr(n) for n in sorted(names)) or "none"))
            database = next(iter(names))
        elif database not in names:
            raise InputError("assertion %d is for database %r, which the verified backups do not hold" % (index, database))
        out.setdefault(database, []).append({"name": item.get("name") or "assertion %d" % index, "sql": item["sql"]})
    return out


def _databases_of(request, manifest):
    return [d.name for d in manifest.databases if not request.databases or d.name in request.databases]


def _choose(request, catalog):
    if not catalog.entries:
        raise InputError("no complete backup of cluster %r in the repository" % request.cluster)
    if request.backup_id == "all":
        return list(catalog.entries)
    if request.backup_id == "latest":
        # As restore's "latest": the newest whole backup (not a partial or a pre-restore safety
        # backup); a newer one whose manifest cannot be read is verified instead, and fails.
        for entry in reversed(catalog.entries):
            if entry.manifest is None or entry.whole:
                return [entry]
        return [catalog.entries[-1]]
    entry = catalog.get(request.backup_id)
    if entry is None:
        raise InputError("backup %s of cluster %r not found (no manifest: it does not exist or never completed)"
                         % (request.backup_id, request.cluster))
    return [entry]


# Listings show the storage class; whether an object can be read now takes a HEAD (it may have
# been restored from the archive tier, or sit in an Intelligent-Tiering archive tier).
MAYBE_ARCHIVED = ARCHIVE_STORAGE_CLASSES + ("INTELLIGENT_TIERING",)


def _skip_archived(repository, entries):
    """With backup_id all, backups that a lifecycle rule moved to an archive class (and that
    nobody restored from it) cannot be read: they are skipped with the reason, not failed, so
    that a routine run does not alert on every archived monthly. Asked for by id, they fail."""
    readable, skipped = [], []
    for entry in entries:
        archived = [o for o in entry.objects if o.storage_class in MAYBE_ARCHIVED]
        states = [repository.archive_state(o.key) for o in archived]
        waiting = [(o, state) for o, state in zip(archived, states) if state is not None]
        if waiting:
            classes = sorted(set(o.storage_class for o, _state in waiting))
            skipped.append({"backup_id": entry.backup_id, "reason": "%d object(s) in %s not restored from the archive "
                            "tier%s; restore them to verify this backup (docs/lifecycle.md)"
                            % (len(waiting), "/".join(classes),
                               " (a restore is running)" if all(st == "restoring" for _o, st in waiting) else "")})
        else:
            readable.append(entry)
    if skipped and not readable:
        raise InputError("every backup of the cluster is in an archive storage class: %s"
                         % "; ".join("%s: %s" % (s["backup_id"], s["reason"]) for s in skipped))
    return readable, skipped


def plan_verify(request):
    """Everything checked that can be before a byte is written: options, repository, backups,
    key material, scratch server, client tools and scratch space."""
    _validate(request)
    repository = open_repository(request.repository)
    repository.check_readable(request.cluster)
    catalog = read_catalog(repository, request.cluster, with_verifications=False)
    entries = _choose(request, catalog)
    skipped = []
    if request.backup_id == "all":
        entries, skipped = _skip_archived(repository, entries)
    for name in request.databases:
        if not any(e.manifest and name in [d.name for d in e.manifest.databases] for e in entries):
            raise InputError("database %r is in none of the backups to verify%s" % (
                name, " (%d archived backup(s) were left out)" % len(skipped) if skipped else ""))
    assertions = _assertions(request, entries) if request.level == "restore" else {}
    gnupghome, passphrase = None, None
    if request.level != "checksum":
        # A key that is missing or wrong is a finding (decrypt_failed), not an input error:
        # proving that this host can decrypt the backups is part of the drill.
        gnupghome = _gpg.keyring_dir(request.encryption.get("gnupghome"))
        passphrase = _gpg.read_passphrase(request.encryption)
    plan = VerifyPlan(request, repository, entries, assertions, gnupghome, passphrase)
    plan.skipped = skipped
    manifests = [e.manifest for e in entries if e.manifest is not None]
    if request.level == "readable" and manifests:
        major = max(int((m.server or {}).get("version_num") or 0) // 10000 for m in manifests)
        plan.tools = _pg.restore_tools(_newest_dump(manifests), major or 15, ["pg_restore"], request.pg_bin_dir)
    if request.level == "restore":
        _plan_scratch(plan, manifests)
    return plan


def _newest_dump(manifests):
    return max(manifests, key=lambda m: (m.tools or {}).get("pg_dump") or "")


def _plan_scratch(plan, manifests):
    request = plan.request
    conn = _pg.connect(request.connection)
    try:
        plan.server = _pg.server_info(conn)
        if plan.server.in_recovery:
            raise InputError("the scratch server %s is a standby (read-only); test restores need a primary"
                             % request.connection.describe())
        if not plan.server.is_superuser and not _pg.fetch_value(
                conn, "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user"):
            raise InputError("test restores create scratch databases: %r needs CREATEDB (or superuser) on %s"
                             % (request.connection.user, request.connection.describe()))
        if request.amcheck and not _pg.fetch_value(conn, "SELECT count(*) FROM pg_available_extensions "
                                                         "WHERE name = 'amcheck'"):
            raise InputError("amcheck is not available on the scratch server (install postgresql-contrib)")
        if request.amcheck and not plan.server.is_superuser:
            # amcheck is not a trusted extension: only a superuser creates it in the scratch database.
            raise InputError("amcheck: true needs a superuser on the scratch server (CREATE EXTENSION amcheck); "
                             "%r is not one" % (request.connection.user,))
    finally:
        conn.close()
    if manifests:
        plan.tools = _pg.restore_tools(_newest_dump(manifests), plan.server.major, ["pg_restore"], request.pg_bin_dir)
    local_copy = [d for m in manifests for d in m.databases
                  if _materialize(request, m) and (not request.databases or d.name in request.databases)]
    if local_copy:
        # One database's copy at a time exists; the largest one must fit.
        needed = max((d.size_bytes or 0) for d in local_copy) // 2
        check_scratch_space(request.tmp_dir, needed, "the parallel test restore decrypts and decompresses the dump",
                            "set tmp_dir to a larger file system, or jobs: 1 to stream without a local copy")


def _materialize(request, manifest):
    return request.jobs > 1 or (manifest.dump or {}).get("format") == "directory"


# --- running -------------------------------------------------------------------------------

class VerifyResult:
    def __init__(self):
        self.error = None        # the DbdrError that stopped the run early, if one did
        self.records = []        # (VerificationRecord, key)
        self.scratch_removed = []
        self.warnings = []

    @property
    def ok(self):
        return self.error is None and all(r.ok for r, _key in self.records)

    def failure_summary(self, limit=10):
        """One line per failed backup: its result words and what they are about."""
        lines = []
        for record, _key in self.records:
            if not record.ok:
                found = sorted(set("%s (%s)" % (c.result, c.subject) for c in record.failures()))
                more = " and %d more" % (len(found) - limit) if len(found) > limit else ""
                lines.append("%s: %s%s" % (record.backup_id, ", ".join(found[:limit]), more))
        return "; ".join(lines)


def run_verify(plan, result=None):
    """Verify each planned backup and store its record. An error that stops the run (the
    scratch server gone, the repository unwritable) is kept on the result with the records
    written before it, so that they are still reported and published. Pass `result` to see
    what was done also when a signal interrupts the run."""
    result = result if result is not None else VerifyResult()
    try:
        if plan.request.level == "restore":
            _remove_stale_scratch(plan, result)
            result.scratch_removed.extend(_scratch.remove_stale(COPY_PREFIX, plan.request.tmp_dir))
        for entry in plan.entries:
            record = _verify_one(plan, entry, result)
            key = write_record(plan.repository, record, utc_now())
            result.records.append((record, key))
    except DbdrError as exc:
        result.error = exc
    return result


def _verify_one(plan, entry, result):
    request = plan.request
    started = utc_now()
    record = VerificationRecord(entry.backup_id, request.cluster, request.level, isoformat(started), None, [],
                                rto_target=request.rto_target, host=socket.gethostname(),
                                tools=dict((k, v["version"]) for k, v in plan.tools.items()))
    clock = time.monotonic()
    if entry.manifest is None:
        record.checks.append(Check("manifest", "manifest.json", "unreadable", entry.error))
    else:
        manifest = entry.manifest
        sources = [ObjectSource(plan.repository, manifest, o, plan.gnupghome, plan.passphrase) for o in manifest.objects]
        by_object = dict((d.object_name, d) for d in manifest.databases)
        if request.level == "restore":
            record.server = plan.server.version if plan.server else None
            _restore_level(plan, manifest, sources, by_object, record, result)
        else:
            for source in sources:
                if request.level == "checksum":
                    record.checks.extend(objects.checksum(source))
                else:
                    record.checks.extend(objects.readable(source, plan.tools["pg_restore"]["path"],
                                                          by_object.get(source.name)))
    record.finished_at = isoformat(utc_now())
    record.duration_seconds = round(time.monotonic() - clock, 3)
    return record


def _restore_level(plan, manifest, sources, by_object, record, result):
    request = plan.request
    restore_seconds = 0.0
    restored_any = False
    for source in sources:
        database = by_object.get(source.name)
        if database is None:
            # Globals (and anything else that is not a database) are proven readable.
            record.checks.extend(objects.readable(source, plan.tools["pg_restore"]["path"]))
            continue
        if request.databases and database.name not in request.databases:
            # Not test-restored, but still proven to the level below: a record of level
            # restore never leaves an object of the backup unread.
            record.checks.extend(objects.readable(source, plan.tools["pg_restore"]["path"], database))
            continue
        found = objects.present(source)
        if found is not None:
            record.checks.append(found)
            continue
        seconds, checks, steps = _test_restore(plan, manifest, source, database, result)
        record.checks.extend(checks)
        record.steps.extend(steps)
        if seconds is not None:
            restore_seconds += seconds
            restored_any = True
    if restored_any:
        record.restore_seconds = round(restore_seconds, 3)
        if request.rto_target:
            within = restore_seconds <= request.rto_target
            record.checks.append(Check("rto", "restore", "ok" if within else "rto_exceeded",
                                       "restored in %.2f s; target %g s" % (restore_seconds, request.rto_target)))


def scratch_name(backup_id, run_id):
    return "%s%s_%s" % (SCRATCH_PREFIX, backup_id.lower(), run_id)


def _test_restore(plan, manifest, source, database, result):
    """Restore one database into a scratch database, check it, drop it. Returns (seconds the
    restore took, or None when it failed; checks; timed steps)."""
    request = plan.request
    name = scratch_name(manifest.backup_id, uuid.uuid4().hex[:8])
    steps = Timings()
    lock = _db.TargetLocks(request.connection)
    try:
        lock.take(name)
        conn = _pg.connect(request.connection)
    except BaseException:
        lock.release()
        raise
    work_dir = copy_lock = None
    try:
        started = time.monotonic()
        _db.create_staging(conn, name, database.properties or {}, plan.server, {
            "kind": "verify", "backup_id": manifest.backup_id, "database": database.name,
            "host": socket.gethostname(), "pid": os.getpid()})
        steps.step("create %s" % database.name, started)
        started = time.monotonic()
        restore = (plan.tools["pg_restore"]["path"], name, request.no_owner, request.no_privileges, request.jobs)
        try:
            with _pg.password_file(request.connection) as passfile:
                env = request.connection.child_env(name, passfile)
                if _materialize(request, manifest):
                    work_dir, copy_lock = _scratch.make(COPY_PREFIX, request.tmp_dir)
                    archive = source.local_copy(work_dir)
                    steps.step("local copy %s" % database.name, started)
                    copied = time.monotonic()
                    run_checked(Stage("pg_restore", _pg.restore_argv(*restore, archive=archive), env=env))
                    steps.step("pg_restore %s" % database.name, copied)
                else:
                    source.run(consumers=[Stage("pg_restore", _pg.restore_argv(*restore), env=env)])
                    steps.step("pg_restore %s (streamed, reading the object)" % database.name, started)
        except (IntegrityError, StageError, StorageError) as exc:
            if isinstance(exc, StageError) and exc.stage == "pg_restore":
                # pg_restore may stop on damaged bytes before the checksum is known: name
                # the damage if there is any, else the restore failed on a sound archive.
                try:
                    source.checksum()
                except (IntegrityError, StorageError) as damage:
                    return None, [objects.failure_check(source, damage)], steps.steps
                return None, [Check("restore", database.name, "unreadable", exc.message)], steps.steps
            return None, [objects.failure_check(source, exc)], steps.steps
        seconds = time.monotonic() - started
        checks = [Check("checksum", source.name, "ok", "%d bytes, SHA-256 matches" % source.record.size)]
        if source.encrypted:
            checks.append(Check("decrypt", source.name, "ok", "decrypted with the keyring"))
        checks.append(Check("restore", database.name, "ok", "restored in %.1f s" % seconds))
        checks.extend(_integrity(plan, name, database, steps))
        return seconds, checks, steps.steps
    finally:
        started = time.monotonic()
        if work_dir:
            _scratch.release(work_dir, copy_lock)
        _drop_scratch(plan, conn, name, result)
        lock.release()
        steps.step("drop %s" % database.name, started)


def _integrity(plan, name, database, steps):
    """The checks of a restored scratch database, each timed."""
    request = plan.request
    checks = []
    started = time.monotonic()
    counts = _pg.count_rows_parallel(request.connection, name, [(s, n) for s, n, _r in database.tables], request.jobs)
    checks.extend(integrity.row_count_checks(database, counts))
    steps.step("row counts %s" % database.name, started)
    started = time.monotonic()
    checks.extend(integrity.foreign_key_checks(request.connection, name, database.name, request.jobs))
    steps.step("foreign keys %s" % database.name, started)
    assertions = plan.assertions.get(database.name, [])
    if assertions:
        started = time.monotonic()
        checks.extend(integrity.assertion_checks(request.connection, name, database.name, assertions))
        steps.step("assertions %s" % database.name, started)
    if request.amcheck:
        started = time.monotonic()
        checks.extend(integrity.amcheck_checks(request.connection, name, database.name, plan.server.version_num,
                                               request.jobs))
        steps.step("amcheck %s" % database.name, started)
    return checks


def _drop_scratch(plan, conn, name, result):
    """Drop the scratch database; a broken connection is replaced by a fresh one."""
    try:
        try:
            _db.drop(conn, name, step="drop scratch database")
        except (DbdrError, _pg.psycopg2.Error):
            fresh = _pg.connect(plan.request.connection)
            try:
                _db.drop(fresh, name, step="drop scratch database")
            finally:
                fresh.close()
    except (DbdrError, _pg.psycopg2.Error) as exc:
        result.warnings.append("the scratch database %r could not be dropped (the next verification drops it): %s"
                               % (name, exc))
    finally:
        try:
            conn.close()
        except Exception:  # pylint: disable=broad-except
            pass


_SCRATCH_RE = re.compile(r"^%s[0-9]{8}t[0-9]{6}z_[0-9a-f]{8}$" % SCRATCH_PREFIX)


def _remove_stale_scratch(plan, result):
    """Scratch databases of verifications that were killed - marked, or named like one (killed
    before the marker was set) - that no running verification holds the lock of."""
    conn = _pg.connect(plan.request.connection)
    try:
        for name, _marker in _db.leftover_databases(conn, "verify", SCRATCH_PREFIX, _SCRATCH_RE):
            lock = _db.TargetLocks(plan.request.connection)
            try:
                lock.take(name)
                _db.drop(conn, name, step="drop stale scratch database")
                result.scratch_removed.append(name)
            except LockedError:
                continue   # a running verification's
            except DbdrError as exc:
                result.warnings.append("the scratch database %r a killed verification left could not be dropped: %s"
                                       % (name, exc))
            finally:
                lock.release()
    finally:
        conn.close()
