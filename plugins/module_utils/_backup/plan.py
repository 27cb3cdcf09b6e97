# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide a backup: validate every input and resolve names, reading only.

Everything that can be wrong with the input is found here, before the first write, and the
resulting plan is what check mode reports.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.dbdr.backup.plugins.module_utils import _compression, _gpg, _pg
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import (
    backups_prefix, database_object_name, globals_object_name, validate_cluster)
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import check_scratch_space, version_output
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import GFS_CLASSES, open_repository

_LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")


class BackupRequest:
    """Validated option values of pg_backup, as plain Python values."""

    def __init__(self, cluster, repository, connection, encryption=None, compression=None, kind="logical",
                 databases=("all",), include_globals=True, dump_format="custom", jobs=1, schema_only=False,
                 data_only=False, tables=(), exclude_tables=(), labels=None, gfs_class="daily", pg_bin_dir=None,
                 tmp_dir=None, lock_wait_timeout=None):
        self.cluster = cluster
        self.repository = repository
        self.connection = connection
        self.encryption = encryption or {"type": "gpg"}
        self.compression = compression or {}
        self.kind = kind
        self.databases = list(databases or ["all"])
        self.include_globals = include_globals
        self.dump_format = dump_format
        self.jobs = int(jobs) if jobs is not None else 1
        self.schema_only = schema_only
        self.data_only = data_only
        self.tables = list(tables or [])
        self.exclude_tables = list(exclude_tables or [])
        self.labels = dict(labels or {})
        self.gfs_class = gfs_class
        self.pg_bin_dir = pg_bin_dir
        self.tmp_dir = tmp_dir
        self.lock_wait_timeout = lock_wait_timeout


class DatabasePlan:
    def __init__(self, name, object_name, size_bytes, include, exclude, properties=None):
        self.properties = properties
        self.name = name
        self.object_name = object_name
        self.size_bytes = size_bytes
        self.include = include          # [(schema, name, relkind)] or None for "every table"
        self.exclude = exclude          # [(schema, name, relkind)]

    def to_dict(self):
        data = {"name": self.name, "object": self.object_name, "size_bytes": self.size_bytes}
        if self.include is not None:
            data["tables"] = ["%s.%s" % (s, n) for s, n, _k in self.include]
        if self.exclude:
            data["exclude_tables"] = ["%s.%s" % (s, n) for s, n, _k in self.exclude]
        return data


class BackupPlan:
    def __init__(self, request, repository, server, databases, globals_object, tools, recipients, gnupghome,
                 compression, is_superuser):
        self.request = request
        self.repository = repository
        self.server = server
        self.databases = databases
        self.globals_object = globals_object
        self.tools = tools
        self.recipients = recipients
        self.gnupghome = gnupghome
        self.compression = compression
        self.is_superuser = is_superuser

    @property
    def encryption_type(self):
        return "gpg" if self.recipients else "none"

    @property
    def destination(self):
        return self.repository.describe(backups_prefix(self.request.cluster))

    def to_dict(self):
        objects = [d.object_name for d in self.databases]
        if self.globals_object:
            objects.insert(0, self.globals_object)
        return {
            "cluster": self.request.cluster, "kind": self.request.kind, "destination": self.destination,
            "repository_type": self.repository.type, "format": self.request.dump_format,
            "databases": [d.to_dict() for d in self.databases], "globals": bool(self.globals_object),
            "objects": objects + ["manifest.json"],
            "compression": self.compression,
            "encryption": {"type": self.encryption_type, "recipients": [r.fingerprint for r in self.recipients]},
            "gfs_class": self.request.gfs_class, "labels": self.request.labels,
            "server_version": self.server.version,
        }


def _validate_request(request):
    validate_cluster(request.cluster)
    if request.kind != "logical":
        raise InputError("kind %r is not supported by this version of pg_backup (logical only)" % (request.kind,))
    if request.dump_format not in ("custom", "directory"):
        raise InputError("format must be custom or directory, got %r" % (request.dump_format,))
    if request.schema_only and request.data_only:
        raise InputError("schema_only and data_only are mutually exclusive")
    if request.jobs < 1 or request.jobs > 64:
        raise InputError("jobs must be between 1 and 64")
    if request.gfs_class not in GFS_CLASSES:
        raise InputError("gfs_class must be one of %s" % ", ".join(GFS_CLASSES))
    for key, value in list(request.labels.items()):
        if not _LABEL_KEY_RE.match(str(key)):
            raise InputError("label key %r: use 1-63 characters from letters, digits, '_', '.', '-'" % (key,))
        if isinstance(value, (bool, int, float)):
            value = request.labels[key] = str(value).lower() if isinstance(value, bool) else str(value)
        if not isinstance(value, str) or len(value) > 256:
            raise InputError("label %r must be a string of at most 256 characters" % (key,))
    if not request.databases:
        raise InputError("databases is empty")
    if "all" in request.databases and len(request.databases) > 1:
        raise InputError("databases: 'all' cannot be combined with named databases")
    if (request.tables or request.exclude_tables) and (request.databases == ["all"] or len(request.databases) != 1):
        raise InputError("tables / exclude_tables need exactly one named database in databases")
    if request.tmp_dir and not os.path.isdir(request.tmp_dir):
        raise InputError("tmp_dir %r is not a directory" % (request.tmp_dir,))


def _encryption(request, repository):
    spec = request.encryption
    kind = spec.get("type") or "gpg"
    if kind == "none":
        if repository.type == "s3" and not spec.get("allow_unencrypted"):
            raise InputError("refusing to store unencrypted backups in S3: set encryption.allow_unencrypted: true "
                             "to ask for that explicitly, or use encryption.type: gpg")
        return None, []
    if kind != "gpg":
        raise InputError("encryption.type must be gpg or none, got %r" % (kind,))
    if not _gpg.HAS_GNUPG:
        raise InputError("python-gnupg is required for GPG encryption (pip install python-gnupg)")
    return _gpg.resolve_recipients(spec.get("recipients") or [], spec.get("gnupghome"))


def _version_line(path):
    out = version_output(path)
    return out.splitlines()[0] if out else os.path.basename(path)


def _resolve_databases(conn, request, server):
    available = _pg.list_databases(conn)
    if request.databases == ["all"]:
        return available
    every = dict((name, allow) for name, allow in _pg.fetch_all(conn, "SELECT datname, datallowconn FROM pg_database"))
    missing = [d for d in request.databases if d not in every]
    if missing:
        raise InputError("database%s %s not found on server %s (available: %s)" % (
            "s" if len(missing) > 1 else "", ", ".join(repr(m) for m in missing),
            request.connection.describe(), ", ".join(repr(a) for a in available) or "none"))
    closed = [d for d in request.databases if not every[d]]
    if closed:
        raise InputError("database %s does not allow connections (datallowconn is false)" % ", ".join(repr(c) for c in closed))
    seen = []
    for name in request.databases:
        if name not in seen:
            seen.append(name)
    return seen


def plan_backup(request):
    _validate_request(request)
    if not _pg.HAS_PSYCOPG2:
        raise InputError("psycopg2 is required on the database host (pip install psycopg2-binary)")
    compression = _compression.settings(request.compression.get("algorithm"), request.compression.get("level"),
                                        request.compression.get("threads"))
    repository = open_repository(request.repository)
    gnupghome, recipients = _encryption(request, repository)
    repository.check_access(request.cluster)

    conn = _pg.connect(request.connection)
    try:
        server = _pg.server_info(conn)
        names = _resolve_databases(conn, request, server)
        sizes = _pg.database_sizes(conn, names)
        properties = dict((name, _pg.database_properties(conn, name, server.version_num)) for name in names)
    finally:
        conn.close()

    tools = {}
    for tool in ("pg_dump", "pg_dumpall") if request.include_globals else ("pg_dump",):
        path = _pg.find_pg_tool(tool, server.major, request.pg_bin_dir)
        major, text = _pg.tool_version(path)
        if major < server.major:
            raise InputError("%s is version %d but the server is %s: install the PostgreSQL %d client tools "
                             "or set pg_bin_dir" % (path, major, server.version, server.major))
        tools[tool] = {"path": path, "version": text}
    if compression["algorithm"] != "none":
        tools[compression["algorithm"]] = {"path": compression["algorithm"],
                                           "version": _version_line(compression["algorithm"])}
    if recipients:
        gpg = _gpg.gpg_binary()
        tools["gpg"] = {"path": gpg, "version": _version_line(gpg)}

    databases = []
    encryption_type = "gpg" if recipients else "none"
    for name in names:
        include, exclude = None, []
        # Connecting now finds a missing CONNECT privilege before anything is written.
        dbconn = _pg.connect(request.connection, name)
        try:
            if request.tables:
                include = _pg.with_partitions(dbconn, _pg.match_patterns(dbconn, request.tables, name, strict=True))
            if request.exclude_tables:
                excluded = _pg.match_patterns(dbconn, request.exclude_tables, name, strict=False)
                exclude = _pg.with_partitions(dbconn, excluded)
        finally:
            dbconn.close()
        databases.append(DatabasePlan(
            name, database_object_name(name, request.dump_format, compression["algorithm"], encryption_type),
            sizes.get(name), include, exclude, properties.get(name)))
    if request.dump_format == "directory":
        # A dump is usually smaller than its database (indexes are defined, not dumped).
        check_scratch_space(request.tmp_dir, max([d.size_bytes or 0 for d in databases] or [0]) // 2,
                            "format directory stages the uncompressed dump",
                            "set tmp_dir to a larger file system or use format custom (streamed, no staging)")
    globals_object = globals_object_name(compression["algorithm"], encryption_type) if request.include_globals else None
    return BackupPlan(request, repository, server, databases, globals_object, tools, recipients, gnupghome,
                      compression, server.is_superuser)
