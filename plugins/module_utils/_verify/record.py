# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification records: what a verification found, one immutable JSON document per run
under <cluster>/verify/<backup_id>/ (the manifest itself is never rewritten)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError, NotFoundError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import (
    BACKUP_ID_RE, FORMAT_VERSION, verify_key, verify_prefix)

LEVELS = ("checksum", "readable", "restore")
# The fixed vocabulary of a check's result: alerts, reports and auditors key on these words.
RESULTS = ("ok", "missing", "checksum_mismatch", "size_mismatch", "decrypt_failed", "unreadable",
           "row_count_mismatch", "fk_orphans", "assertion_failed", "rto_exceeded")


class Check:
    """One thing verified about one subject (an object, a database, a table, an assertion)."""

    def __init__(self, check, subject, result, detail=None):
        if result not in RESULTS:
            raise ValueError("unknown check result %r" % (result,))
        self.check = check
        self.subject = subject
        self.result = result
        self.detail = detail

    @property
    def ok(self):
        return self.result == "ok"

    def to_dict(self):
        return {"check": self.check, "subject": self.subject, "result": self.result, "detail": self.detail}

    @classmethod
    def from_dict(cls, data):
        try:
            return cls(data["check"], data.get("subject"), data["result"], data.get("detail"))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError("verification record has a malformed check: %r" % (data,))


class VerificationRecord:
    def __init__(self, backup_id, cluster, level, started_at, finished_at, checks, restore_seconds=None,
                 rto_target=None, host=None, server=None, tools=None, duration_seconds=None, steps=None):
        self.format_version = FORMAT_VERSION
        self.backup_id = backup_id
        self.cluster = cluster
        self.level = level
        self.started_at = started_at
        self.finished_at = finished_at
        self.duration_seconds = duration_seconds
        self.checks = list(checks)
        self.restore_seconds = restore_seconds
        self.rto_target = rto_target
        self.host = host
        self.server = server
        self.tools = tools or {}
        self.steps = steps or []     # [{"step", "seconds"}]: where the time went

    @property
    def result(self):
        """ok only when every check is ok: a verification that checked nothing proves nothing."""
        return "ok" if self.checks and all(c.ok for c in self.checks) else "failed"

    @property
    def ok(self):
        return self.result == "ok"

    def counts(self):
        """{result word: number of checks}."""
        counts = {}
        for check in self.checks:
            counts[check.result] = counts.get(check.result, 0) + 1
        return counts

    def failures(self):
        return [c for c in self.checks if not c.ok]

    def to_dict(self):
        return {
            "format_version": self.format_version, "backup_id": self.backup_id, "cluster": self.cluster,
            "level": self.level, "result": self.result, "started_at": self.started_at,
            "finished_at": self.finished_at, "duration_seconds": self.duration_seconds,
            "restore_seconds": self.restore_seconds, "rto_target": self.rto_target, "host": self.host,
            "server": self.server, "tools": self.tools, "counts": self.counts(), "steps": self.steps,
            "checks": [c.to_dict() for c in self.checks],
        }

    def summary(self):
        """What a module returns and the reports show per run: the checks that failed only."""
        data = self.to_dict()
        data["checks"] = [c.to_dict() for c in self.failures()]
        data["checks_total"] = len(self.checks)
        return data

    def to_json(self):
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw):
        try:
            data = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError("verification record is not valid JSON: %s" % exc)
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise InputError("verification record has no supported format_version")
        if data.get("level") not in LEVELS or not BACKUP_ID_RE.match(str(data.get("backup_id"))):
            raise InputError("verification record has an unknown level or backup id")
        if not isinstance(data.get("checks"), list):
            raise InputError("verification record has no list of checks")
        record = cls(data["backup_id"], data.get("cluster"), data["level"], data.get("started_at"),
                     data.get("finished_at"), [Check.from_dict(c) for c in data["checks"]],
                     data.get("restore_seconds"), data.get("rto_target"), data.get("host"), data.get("server"),
                     data.get("tools"), data.get("duration_seconds"), data.get("steps"))
        if data.get("result") != record.result:
            raise InputError("verification record says %r but its checks say %r" % (data.get("result"), record.result))
        return record


def write_record(repository, record, moment):
    """Store the record (never overwriting one); returns its key."""
    key = verify_key(record.cluster, record.backup_id, moment)
    # Tagged apart from the GFS classes: lifecycle rules for backups leave the proof alone.
    repository.put_bytes(key, record.to_json(), "verify")
    return key


def load_records(repository, cluster, keys=None):
    """Every verification record of a cluster: ({backup_id: [records, oldest first]}, [problems]).
    A record that cannot be read is reported, never trusted."""
    prefix = verify_prefix(cluster)
    if keys is None:
        keys = repository.list_keys(prefix)
    records, problems = {}, []
    for key in keys:
        parts = key[len(prefix):].split("/")
        if len(parts) != 2 or not BACKUP_ID_RE.match(parts[0]) or not parts[1].endswith(".json"):
            continue
        try:
            record = VerificationRecord.from_json(repository.get_bytes(key))
        except NotFoundError:
            continue   # removed by retention while we listed
        except InputError as exc:
            problems.append("%s: %s" % (repository.describe(key), exc.message))
            continue
        if record.backup_id != parts[0]:
            problems.append("%s: names backup %s" % (repository.describe(key), record.backup_id))
            continue
        records.setdefault(parts[0], []).append(record)
    for items in records.values():
        items.sort(key=lambda r: (r.finished_at or "", r.started_at or ""))
    return records, problems
