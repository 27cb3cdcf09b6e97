# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide a restore, reading only: which backup, which objects, which databases become what,
which tools, which steps. Every check that needs no data transfer happens here, so that bad
input fails before anything is written; the plan is what check mode and the confirmation
message show.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.dbdr.backup.plugins.module_utils import _compression, _gpg, _pg
from ansible_collections.dbdr.backup.plugins.module_utils._backup.plan import BackupRequest, plan_backup
from ansible_collections.dbdr.backup.plugins.module_utils._catalog import choose_backup
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError, InputError
from ansible_collections.dbdr.backup.plugins.module_utils._fetch import ObjectSource
from ansible_collections.dbdr.backup.plugins.module_utils._layout import backups_prefix, validate_cluster
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import check_scratch_space
from ansible_collections.dbdr.backup.plugins.module_utils._restore import database as _db
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import open_repository

MODES = ("auto", "new", "swap", "tables", "globals")
DESTRUCTIVE = ("swap", "tables")


class RestoreRequest:
    """Validated option values of the restore module, as plain Python values."""

    def __init__(self, cluster, repository, connection, encryption=None, compression=None, backup_id="latest",
                 before=None, databases=None, target_database=None, mode="auto", tables=None, confirm=False, jobs=1,
                 safety_backup=True, safety_backup_cluster=None, keep_pre_restore=None, post_restore_sql=None,
                 analyze=True, no_owner=False, no_privileges=False, terminate_timeout=30, pg_bin_dir=None,
                 tmp_dir=None):
        self.cluster = cluster
        self.repository = repository
        self.connection = connection
        self.encryption = encryption or {}
        self.compression = compression or {}
        self.backup_id = backup_id or "latest"
        self.before = before
        self.databases = list(databases or [])
        self.target_database = target_database or None
        self.mode = mode or "auto"
        self.tables = list(tables or [])
        self.confirm = bool(confirm)
        self.jobs = int(jobs) if jobs is not None else 1
        self.safety_backup = safety_backup
        self.safety_backup_cluster = safety_backup_cluster or cluster
        self.keep_pre_restore = keep_pre_restore
        self.post_restore_sql = list(post_restore_sql or [])
        self.analyze = analyze
        self.no_owner = no_owner
        self.no_privileges = no_privileges
        self.terminate_timeout = int(terminate_timeout or 30)
        self.pg_bin_dir = pg_bin_dir
        self.tmp_dir = tmp_dir


class DatabaseTarget:
    """One database of the backup and what the restore makes of it."""

    def __init__(self, record, source, target, mode, live_properties=None, tables=None, materialize=False):
        self.record = record
        self.source = source
        self.target = target
        self.mode = mode
        self.live_properties = live_properties
        self.tables = tables or []
        self.materialize = materialize
        self.staging = None        # set while running
        self.archive = None
        self.listing = None
        self.previous = None

    @property
    def name(self):
        return self.record.name

    def properties(self):
        """Encoding and locale come from the backup (they are the data's); owner, grants and
        settings from the live database being replaced, when there is one."""
        recorded = dict(self.record.properties or {})
        if self.live_properties:
            merged = dict(self.live_properties)
            for key in ("encoding", "lc_collate", "lc_ctype", "locale_provider", "icu_locale"):
                if recorded.get(key):
                    merged[key] = recorded[key]
            return merged
        return recorded

    def to_dict(self):
        data = {"database": self.name, "target": self.target, "mode": self.mode, "object": self.source.name,
                "bytes": self.source.record.size,
                "local_copy": self.materialize, "tables_in_backup": len(self.record.tables)}
        if self.mode == "tables":
            data["tables"] = [{"schema": s, "name": n, "rows": r} for s, n, r in self.tables]
        return data


class RestorePlan:
    def __init__(self, request, repository, manifest, skipped, server, tools, gnupghome, passphrase, targets,
                 globals_source, safety_plan, warnings):
        self.request = request
        self.repository = repository
        self.manifest = manifest
        self.skipped = skipped
        self.server = server
        self.tools = tools
        self.gnupghome = gnupghome
        self.passphrase = passphrase    # secret: never in to_dict()
        self.targets = targets
        self.globals_source = globals_source
        self.safety_plan = safety_plan
        self.warnings = warnings
        self.plan_safety_later = False
        self.conn = None           # the maintenance connection while running
        self.restore_id = None

    @property
    def mode(self):
        return self.request.mode

    @property
    def destructive(self):
        return any(t.mode in DESTRUCTIVE for t in self.targets)

    def steps(self):
        request = self.request
        steps = ["verify %d object(s) of backup %s against the manifest (size, SHA-256, decryption, decompression)"
                 % (len(self.targets) + (1 if self.globals_source else 0), self.manifest.backup_id)]
        if self.globals_source:
            steps.append("create the roles and tablespaces of the backup that do not exist on %s (existing ones are "
                         "left as they are)" % request.connection.describe())
        for t in self.targets:
            if t.mode == "tables":
                steps.append("restore tables %s of %r into the existing database %r in one transaction "
                             "(their rows are replaced; every other table is untouched)"
                             % (", ".join("%s.%s" % (s, n) for s, n, _r in t.tables), t.name, t.target))
                continue
            steps.append("restore %r into a new staging database%s, check row counts of %d table(s)"
                         % (t.name, " (%d parallel jobs from a local copy)" % request.jobs if t.materialize else "",
                            len(t.record.tables)))
        if request.post_restore_sql:
            steps.append("run %s" % ", ".join(request.post_restore_sql))
        if request.analyze:
            steps.append("ANALYZE")
        if self.plan_safety_later:
            steps.append("allow connections to %s again (closed by a restore that was killed), then take a safety "
                         "backup of it" % ", ".join(repr(t.target) for t in self.targets
                                                    if not (t.live_properties or {}).get("allow_connections", True)))
        if self.safety_plan is not None:
            steps.append("take a safety backup (label purpose=pre-restore) of %s into %s"
                         % (", ".join(repr(d.name) for d in self.safety_plan.databases), self.safety_plan.destination))
        for t in self.targets:
            if t.mode == "swap":
                steps.append("end the sessions of %r, rename it to %r and the staging database to %r"
                             % (t.target, _db.pre_restore_name(t.target, "<restore id>"), t.target))
            elif t.mode == "new":
                steps.append("rename the staging database to %r" % t.target)
        if request.keep_pre_restore is not None and any(t.mode == "swap" for t in self.targets):
            steps.append("drop pre-restore copies beyond the newest %d per database" % request.keep_pre_restore)
        return steps

    def to_dict(self):
        manifest = self.manifest
        return {
            "backup_id": manifest.backup_id, "backup_started_at": manifest.started_at,
            "backup_finished_at": manifest.finished_at, "cluster": manifest.cluster,
            "source": self.repository.describe(backups_prefix(manifest.cluster) + manifest.backup_id + "/"),
            "skipped_backups": [{"backup_id": i, "reason": r} for i, r in self.skipped],
            "mode": self.request.mode, "target_server": self.request.connection.describe(),
            "databases": [t.to_dict() for t in self.targets],
            "globals": self.globals_source.name if self.globals_source else None,
            "safety_backup": self.safety_plan.to_dict() if self.safety_plan is not None else None,
            "steps": self.steps(), "destructive": self.destructive,
        }

    def confirmation_message(self):
        return ("restore would change existing data and needs confirm: true. Planned, from backup %s (taken %s): %s"
                % (self.manifest.backup_id, self.manifest.started_at, "; ".join(self.steps())))


def _validate_request(request):
    validate_cluster(request.cluster)
    validate_cluster(request.safety_backup_cluster)
    if request.mode not in MODES:
        raise InputError("mode must be one of %s, got %r" % (", ".join(MODES), request.mode))
    if request.backup_id != "latest" and request.before:
        raise InputError("give either backup_id or before, not both")
    if request.tables and request.mode != "tables":
        raise InputError("tables is only used with mode: tables")
    if request.mode == "tables":
        if not request.tables:
            raise InputError("mode tables needs tables: the schema-qualified tables to restore")
        if len(request.databases) != 1:
            raise InputError("mode tables needs exactly one database in databases")
    if request.mode == "globals" and (request.databases or request.target_database):
        raise InputError("mode globals restores roles and tablespaces only; leave databases and target_database out")
    if request.target_database is not None:
        if len(request.databases) != 1:
            raise InputError("target_database renames one database: name exactly one in databases")
        if len(request.target_database.encode("utf-8")) > _db.MAX_NAME_BYTES:
            raise InputError("target_database %r is longer than PostgreSQL's 63 bytes" % (request.target_database,))
    if not 1 <= request.jobs <= 64:
        raise InputError("jobs must be between 1 and 64")
    if request.keep_pre_restore is not None and request.keep_pre_restore < 0:
        raise InputError("keep_pre_restore must be 0 or more")
    if request.keep_pre_restore == 0 and not request.safety_backup and request.mode in ("auto", "swap"):
        raise InputError("keep_pre_restore: 0 with safety_backup: false would leave no way back to the replaced "
                         "database; keep at least one copy or take the safety backup")
    if request.terminate_timeout < 1:
        raise InputError("terminate_timeout must be at least 1 second")
    for path in request.post_restore_sql:
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise InputError("post_restore_sql file %r does not exist or is not readable" % (path,))
    if request.tmp_dir and not os.path.isdir(request.tmp_dir):
        raise InputError("tmp_dir %r is not a directory" % (request.tmp_dir,))


def _suitability(request):
    def suitable(manifest):
        if manifest.safety_backup and request.backup_id == "latest":
            # The state a restore replaced is rarely what "latest" should bring back.
            return "a pre-restore safety backup (choose it by backup_id)"
        if manifest.kind != "logical":
            return "a %s backup (this restore reads logical backups)" % manifest.kind
        if request.mode == "globals":
            if not any(o.kind == "globals" for o in manifest.objects):
                return "it holds no globals"
            return None
        names = [d.name for d in manifest.databases]
        missing = [d for d in request.databases if d not in names]
        if missing:
            return "it does not hold database%s %s" % ("s" if len(missing) > 1 else "", ", ".join(repr(m) for m in missing))
        partial = manifest.partial
        if partial and request.mode == "tables" and "schema only" not in partial:
            return None   # the chosen tables are checked against what it holds
        if partial and (request.backup_id == "latest" or request.mode != "new"):
            # A whole database must never be replaced by a backup that holds only part of it.
            return "a partial backup (%s)%s" % (partial, "; restore it with mode new" if request.mode != "new" else "")
        return None
    return suitable


def _encryption(request, manifest):
    if (manifest.encryption or {}).get("type") != "gpg":
        return None, None
    if not _gpg.HAS_GNUPG:
        raise InputError("python-gnupg is required to decrypt this backup (pip install python-gnupg)")
    fingerprints = [r.get("fingerprint") for r in manifest.encryption.get("recipients", [])]
    home = _gpg.check_secret_key(fingerprints, request.encryption.get("gnupghome"))
    return home, _gpg.read_passphrase(request.encryption)


def _resolve_tables(conn, request, record, database):
    """(schema, name, rows) of the backup matching the patterns; partitioned parents expand to
    their partitions, whose rows the backup holds."""
    in_backup = [(s, n) for s, n, _r in record.tables]
    rows_of = dict(((s, n), r) for s, n, r in record.tables)
    chosen = []
    for pattern in request.tables:
        schema_re, name_re = _pg.pattern_to_regexes(pattern)
        if schema_re is None:
            raise InputError("table %r: qualify it with its schema (for example public.orders)" % (pattern,))
        hits = [t for t in in_backup if re.match(schema_re, t[0]) and re.match(name_re, t[1])]
        if not hits:
            live = _pg.match_patterns(conn, [pattern], database, strict=False)
            expanded = [(s, n) for s, n, _k in _pg.with_partitions(conn, live)]
            hits = [t for t in expanded if t in rows_of]
        if not hits:
            raise InputError("table %r is not in the backup of database %r (it holds %d tables)"
                             % (pattern, record.name, len(in_backup)))
        for hit in hits:
            if hit not in chosen:
                chosen.append(hit)
    return [(s, n, rows_of[(s, n)]) for s, n in chosen]


def _check_live_tables(conn, tables, target):
    relations = dict(((s, n), k) for s, n, k in _pg.user_relations(conn))
    missing = [(s, n) for s, n, _r in tables if relations.get((s, n)) != "r"]
    if missing:
        raise InputError("table%s %s do%s not exist as tables in database %r: mode tables replaces the rows of "
                         "existing tables; restore the database with mode new and target_database, then copy "
                         "the table over" % ("s" if len(missing) > 1 else "",
                                             ", ".join("%s.%s" % m for m in missing),
                                             "" if len(missing) > 1 else "es", target))
    chosen = set((s, n) for s, n, _r in tables)
    outside = sorted(set("%s.%s references %s.%s" % (rs, rn, ts, tn)
                         for rs, rn, ts, tn in _pg.foreign_keys(conn)
                         if (ts, tn) in chosen and (rs, rn) not in chosen))
    if outside:
        raise InputError("other tables hold foreign keys to the tables to restore (%s); replacing the rows would "
                         "change them too. Add them to tables, or restore into a new database and copy rows over"
                         % "; ".join(outside))


def _connect(request, dbname=None):
    return _pg.connect(request.connection, dbname)


def _target_for(request, conn, record, source, server):
    target = request.target_database or record.name
    live = _pg.database_properties(conn, target, server.version_num)
    if live and target == request.connection.login_db and request.mode != "tables":
        raise InputError("database %r is the login_db this restore connects to; set login_db to another database "
                         "(for example template1) to replace it" % (target,))
    mode = request.mode
    if mode == "auto":
        mode = "swap" if live else "new"
    if mode == "new" and live:
        raise InputError("database %r exists on %s; mode new never touches an existing database (use mode swap "
                         "with confirm: true to replace it, or choose another target_database)"
                         % (target, request.connection.describe()))
    if mode in ("swap", "tables") and not live:
        raise InputError("database %r does not exist on %s; use mode new to create it"
                         % (target, request.connection.describe()))
    if mode == "swap" and not live.get("allow_connections", True):
        marker = _db.parse_marker(live.get("comment"))
        if (marker or {}).get("kind") != "closed_by_restore":
            raise InputError("database %r does not allow connections (datallowconn false): is maintenance in "
                             "progress? If not, run ALTER DATABASE ... WITH ALLOW_CONNECTIONS true first" % (target,))
        # Closed by a restore that was killed: this run reopens it under the lock, then goes on.
    tables = []
    if mode == "tables":
        dbconn = _connect(request, target)
        try:
            tables = _resolve_tables(dbconn, request, record, target)
            _check_live_tables(dbconn, tables, target)
        finally:
            dbconn.close()
    return DatabaseTarget(record, source, target, mode, live_properties=live if mode == "swap" else None,
                          tables=tables)


def _privileges(conn, request, server, targets, mode):
    if server.is_superuser:
        return
    user = request.connection.user
    attrs = _pg.fetch_all(conn, "SELECT rolcreatedb, rolcreaterole, pg_has_role(current_user, 'pg_signal_backend', "
                                "'MEMBER') FROM pg_roles WHERE rolname = current_user")[0]
    if mode == "globals":
        if not attrs[1]:
            raise InputError("restoring globals needs a superuser or a role with CREATEROLE; %r has neither" % user)
        return
    if any(t.mode in ("new", "swap") for t in targets) and not attrs[0]:
        raise InputError("restoring a database needs a superuser or a role with CREATEDB; %r has neither" % user)
    for t in targets:
        if t.mode == "swap":
            if t.live_properties.get("owner") != user:
                raise InputError("swapping database %r needs a superuser or its owner (%r); connected as %r"
                                 % (t.target, t.live_properties.get("owner"), user))
            if not attrs[2]:
                raise InputError("ending the sessions of %r needs a superuser or membership in pg_signal_backend"
                                 % (t.target,))


def _safety_plan(request, plan_targets, manifest, gnupghome):
    swaps = [t for t in plan_targets if t.mode in DESTRUCTIVE]
    if not swaps or not request.safety_backup:
        return None
    encryption = dict(request.encryption)
    encryption.pop("passphrase", None)
    encryption.pop("passphrase_file", None)
    if (manifest.encryption or {}).get("type") == "gpg":
        encryption["type"] = "gpg"
        if not encryption.get("recipients"):
            # The keys the backup was encrypted to: their public halves are in this keyring.
            encryption["recipients"] = [r["fingerprint"] for r in manifest.encryption.get("recipients", [])]
        encryption["gnupghome"] = gnupghome
    elif not encryption.get("recipients"):
        encryption["type"] = "none"
    tables = []
    if swaps[0].mode == "tables":
        tables = [_pg.exact_table_pattern(s, n) for s, n, _r in swaps[0].tables]
    backup_request = BackupRequest(
        cluster=request.safety_backup_cluster, repository=request.repository, connection=request.connection,
        encryption=encryption, compression=request.compression, databases=[t.target for t in swaps],
        include_globals=False, tables=tables, labels={"purpose": "pre-restore", "restore_of": manifest.backup_id},
        pg_bin_dir=request.pg_bin_dir, tmp_dir=request.tmp_dir,
        # A session holding an exclusive lock must fail the restore cleanly, not hang it.
        lock_wait_timeout=request.terminate_timeout)
    try:
        return plan_backup(backup_request)
    except DbdrError as exc:
        hint = " (encryption.recipients chooses the keys it is encrypted to)" if exc.stage == "encryption" else ""
        raise exc.__class__("safety backup: %s%s" % (exc.message, hint), stage=exc.stage)


def plan_restore(request):
    _validate_request(request)
    if not _pg.HAS_PSYCOPG2:
        raise InputError("psycopg2 is required on the database host (pip install psycopg2-binary)")
    repository = open_repository(request.repository)
    # Reading is enough for a restore (a safety backup checks write access when it is planned).
    repository.check_readable(request.cluster)
    manifest, skipped = choose_backup(repository, request.cluster, request.backup_id, request.before,
                                      _suitability(request))
    warnings = []
    gnupghome, passphrase = _encryption(request, manifest)
    algorithm = (manifest.compression or {}).get("algorithm") or "none"
    if algorithm != "none":
        _compression.settings(algorithm, None)  # the tool is installed

    by_name = dict((o.name, o) for o in manifest.objects)

    def source_of(name):
        record = by_name.get(name)
        if record is None:
            raise InputError("manifest of backup %s lists no object %r" % (manifest.backup_id, name))
        source = ObjectSource(repository, manifest, record, gnupghome, passphrase)
        source.check_present()
        return source

    conn = _connect(request)
    try:
        server = _pg.server_info(conn)
        if server.in_recovery:
            raise InputError("the target server %s is a standby (read-only); restore into the primary"
                             % request.connection.describe())
        backup_major = int((manifest.server or {}).get("version_num") or 0) // 10000
        if backup_major > server.major:
            warnings.append("the backup comes from PostgreSQL %d and the target runs %d: objects using newer "
                            "features will fail to restore" % (backup_major, server.major))
        globals_source = None
        targets = []
        if request.mode == "globals":
            globals_source = source_of(next(o.name for o in manifest.objects if o.kind == "globals"))
        else:
            wanted = request.databases or [d.name for d in manifest.databases]
            if not wanted:
                raise InputError("backup %s holds no database" % manifest.backup_id)
            records = dict((d.name, d) for d in manifest.databases)
            seen = set()
            for name in wanted:
                record = records[name]
                target = _target_for(request, conn, record, source_of(record.object_name), server)
                if target.target in seen:
                    raise InputError("two databases would be restored as %r" % target.target)
                seen.add(target.target)
                targets.append(target)
            previous = [_db.pre_restore_name(t.target, "20000101T000000Z") for t in targets if t.mode == "swap"]
            if len(set(previous)) != len(previous):
                raise InputError("the pre-restore copies of two databases would get the same (shortened) name; "
                                 "restore them one at a time")
            for t in targets:
                if t.mode == "swap":
                    subscriptions = _pg.fetch_value(conn, "SELECT count(*) FROM pg_subscription s JOIN pg_database d "
                                                          "ON d.oid = s.subdbid WHERE d.datname = %s", (t.target,))
                    if subscriptions:
                        warnings.append(
                            "database %r has %d logical replication subscription(s): its pre-restore copy stays "
                            "closed to connections so that they stop applying there, and the restored database's "
                            "subscriptions are disabled until you enable them" % (t.target, subscriptions))
        _privileges(conn, request, server, targets, request.mode)
    finally:
        conn.close()

    directory_format = (manifest.dump or {}).get("format") == "directory"
    needs = ["pg_restore"] if targets else []
    if any(t.mode == "tables" for t in targets) or request.post_restore_sql:
        needs.append("psql")
    if request.analyze and any(t.mode != "tables" for t in targets):
        needs.append("vacuumdb")
    tools = _pg.restore_tools(manifest, server.major, needs, request.pg_bin_dir)
    scratch = 0
    for t in targets:
        # Table restores read the archive out of its order (foreign keys first): a local copy.
        t.materialize = t.mode == "tables" or directory_format or request.jobs > 1
        if t.materialize:
            scratch += (t.record.size_bytes or t.source.record.size * 4) // 2
    if scratch:
        check_scratch_space(request.tmp_dir, scratch, "the parallel restore decrypts and decompresses the dump%s"
                            % ("s" if len(targets) > 1 else ""),
                            "set tmp_dir to a larger file system, or jobs: 1 to stream without a local copy")
    reopen = [t.target for t in targets if t.mode == "swap" and not t.live_properties.get("allow_connections", True)]
    # A database a killed restore closed is reopened under the lock first; its safety backup
    # can only be planned then.
    safety = None if reopen else _safety_plan(request, targets, manifest, gnupghome)
    plan = RestorePlan(request, repository, manifest, skipped, server, tools, gnupghome, passphrase, targets,
                       globals_source, safety, warnings)
    plan.plan_safety_later = bool(reopen) and request.safety_backup
    return plan


def plan_deferred_safety_backup(plan):
    if plan.plan_safety_later:
        plan.safety_plan = _safety_plan(plan.request, plan.targets, plan.manifest, plan.gnupghome)
        plan.plan_safety_later = False
