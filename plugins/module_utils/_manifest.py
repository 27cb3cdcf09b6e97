# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest model (storage format v1): one JSON document per backup, written last."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import re

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import (
    FORMAT_VERSION, validate_backup_id, validate_cluster)

KINDS = ("logical", "physical")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = ("format_version", "backup_id", "cluster", "kind", "started_at", "finished_at", "objects")


class StoredObjectRecord:
    """An object of a backup as the manifest records it: SHA-256 and size of the stored bytes."""

    def __init__(self, name, kind, size, sha256, database=None):
        self.name = name
        self.kind = kind
        self.size = size
        self.sha256 = sha256
        self.database = database

    def to_dict(self):
        data = {"name": self.name, "kind": self.kind, "bytes": self.size, "sha256": self.sha256}
        if self.database is not None:
            data["database"] = self.database
        return data

    @classmethod
    def from_dict(cls, data):
        try:
            record = cls(data["name"], data["kind"], int(data["bytes"]), data["sha256"], data.get("database"))
        except (KeyError, TypeError, ValueError):
            raise InputError("manifest has a malformed object entry: %r" % (data,))
        if not isinstance(record.name, str) or "/" in record.name or record.name in ("", ".", "..") \
                or not _SHA256_RE.match(str(record.sha256)) or record.size < 0:
            raise InputError("manifest has an invalid object entry: %r" % (data,))
        return record


class DatabaseRecord:
    """A database in a logical backup: its real name, its object and its tables' row counts."""

    def __init__(self, name, object_name, size_bytes=None, tables=None, duration_seconds=None, properties=None,
                 snapshot_at=None):
        self.snapshot_at = snapshot_at      # when the dump's snapshot was taken (UTC ISO 8601)
        self.name = name
        self.object_name = object_name
        self.size_bytes = size_bytes
        self.tables = tables or []
        self.duration_seconds = duration_seconds
        # Owner, encoding, locale, grants and settings of the database itself (pg_dump
        # without --create leaves them out of the archive); absent in older manifests.
        self.properties = properties

    def compare_rows(self, counts):
        """Each recorded table against {(schema, name): rows} counted in a restored copy."""
        comparison = []
        for schema, name, expected in self.tables:
            actual = counts.get((schema, name))
            comparison.append({"schema": schema, "name": name, "backup_rows": expected, "restored_rows": actual,
                               "match": expected is None or actual == expected})
        return comparison

    def to_dict(self):
        data = {"name": self.name, "object": self.object_name, "size_bytes": self.size_bytes,
                "duration_seconds": self.duration_seconds,
                "tables": [{"schema": s, "name": n, "rows": r} for s, n, r in self.tables]}
        if self.properties is not None:
            data["properties"] = self.properties
        if self.snapshot_at is not None:
            data["snapshot_at"] = self.snapshot_at
        return data

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("object"), str):
            raise InputError("manifest has a database entry without name or object")
        tables = [(t["schema"], t["name"], t.get("rows")) for t in data.get("tables", [])]
        return cls(data["name"], data["object"], data.get("size_bytes"), tables, data.get("duration_seconds"),
                   data.get("properties"), data.get("snapshot_at"))


class Manifest:
    def __init__(self, backup_id, cluster, kind, started_at, finished_at, objects, databases=None,
                 server=None, tools=None, host=None, compression=None, encryption=None, dump=None,
                 gfs_class="daily", labels=None, globals_info=None, physical=None, duration_seconds=None):
        self.format_version = FORMAT_VERSION
        self.backup_id = backup_id
        self.cluster = cluster
        self.kind = kind
        self.started_at = started_at
        self.finished_at = finished_at
        self.duration_seconds = duration_seconds
        self.objects = list(objects)
        self.databases = list(databases or [])
        self.server = server or {}
        self.tools = tools or {}
        self.host = host
        self.compression = compression or {}
        self.encryption = encryption or {}
        self.dump = dump or {}
        self.gfs_class = gfs_class
        self.labels = labels or {}
        self.globals_info = globals_info
        self.physical = physical

    @property
    def total_bytes(self):
        return sum(o.size for o in self.objects)

    @property
    def partial(self):
        """What a partial backup (schema or data only, some tables) leaves out; "" when whole."""
        dump = self.dump or {}
        parts = []
        if dump.get("schema_only"):
            parts.append("schema only")
        if dump.get("data_only"):
            parts.append("data only")
        if dump.get("tables"):
            parts.append("only tables %s" % ", ".join(dump["tables"]))
        if dump.get("exclude_tables"):
            parts.append("without tables %s" % ", ".join(dump["exclude_tables"]))
        return ", ".join(parts)

    @property
    def safety_backup(self):
        """Taken by restore of what it was about to replace (label purpose=pre-restore)."""
        return (self.labels or {}).get("purpose") == "pre-restore"

    @property
    def protected(self):
        """Labelled keep: retention never deletes it."""
        value = (self.labels or {}).get("keep")
        return value is not None and str(value).strip().lower() not in ("", "false", "no", "0", "off")

    def to_dict(self):
        data = {
            "format_version": self.format_version, "backup_id": self.backup_id, "cluster": self.cluster,
            "kind": self.kind, "started_at": self.started_at, "finished_at": self.finished_at,
            "duration_seconds": self.duration_seconds, "host": self.host, "server": self.server,
            "tools": self.tools, "gfs_class": self.gfs_class, "labels": self.labels,
            "compression": self.compression, "encryption": self.encryption, "dump": self.dump,
            "total_bytes": self.total_bytes,
            "objects": [o.to_dict() for o in self.objects],
            "databases": [d.to_dict() for d in self.databases],
        }
        if self.globals_info is not None:
            data["globals"] = self.globals_info
        if self.physical is not None:
            data["physical"] = self.physical
        return data

    def to_json(self):
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

    def summary(self):
        """What a module returns: enough to act on, without per-table detail."""
        return {
            "backup_id": self.backup_id, "cluster": self.cluster, "kind": self.kind,
            "started_at": self.started_at, "finished_at": self.finished_at, "gfs_class": self.gfs_class,
            "labels": self.labels, "total_bytes": self.total_bytes,
            "compression": self.compression.get("algorithm"), "encryption": self.encryption.get("type"),
            "recipients": [r["fingerprint"] for r in self.encryption.get("recipients", [])],
            "databases": [{"name": d.name, "object": d.object_name, "tables": len(d.tables),
                           "rows": sum(r or 0 for _s, _n, r in d.tables)} for d in self.databases],
            "objects": [o.to_dict() for o in self.objects],
        }

    @classmethod
    def from_json(cls, raw, expected_id=None, expected_cluster=None):
        try:
            data = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError("manifest is not valid JSON: %s" % exc)
        if not isinstance(data, dict):
            raise InputError("manifest is not a JSON object")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise InputError("manifest lacks %s" % ", ".join(missing))
        if data["format_version"] != FORMAT_VERSION:
            raise InputError("manifest format_version %r is not supported (this collection reads %d)"
                             % (data["format_version"], FORMAT_VERSION))
        validate_backup_id(data["backup_id"])
        validate_cluster(data["cluster"])
        if expected_id is not None and data["backup_id"] != expected_id:
            raise InputError("manifest names backup %r but is stored as %r" % (data["backup_id"], expected_id))
        if expected_cluster is not None and data["cluster"] != expected_cluster:
            raise InputError("manifest names cluster %r but is stored under %r" % (data["cluster"], expected_cluster))
        if data["kind"] not in KINDS:
            raise InputError("manifest kind %r is unknown" % (data["kind"],))
        if not isinstance(data["objects"], list) or not isinstance(data.get("databases", []), list):
            raise InputError("manifest objects and databases must be lists")
        try:
            objects = [StoredObjectRecord.from_dict(o) for o in data["objects"]]
            databases = [DatabaseRecord.from_dict(d) for d in data.get("databases", [])]
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError("manifest has a malformed entry: %s" % (exc,))
        return cls(
            data["backup_id"], data["cluster"], data["kind"], data["started_at"], data["finished_at"],
            objects, databases,
            data.get("server"), data.get("tools"), data.get("host"), data.get("compression"),
            data.get("encryption"), data.get("dump"), data.get("gfs_class", "daily"), data.get("labels"),
            data.get("globals"), data.get("physical"), data.get("duration_seconds"))
