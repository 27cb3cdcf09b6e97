# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a repository holds: the backups of a cluster (those with a manifest), and choosing one.

Read-only; shared by restore, verification, information and retention.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re

from ansible_collections.dbdr.backup.plugins.module_utils._errors import (
    InputError, NotFoundError, StorageError, TransientStorageError)
from ansible_collections.dbdr.backup.plugins.module_utils._layout import (
    BACKUP_ID_RE, backup_id_time, backups_prefix, manifest_key, validate_backup_id)
from ansible_collections.dbdr.backup.plugins.module_utils._manifest import Manifest
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import GFS_CLASSES
from ansible_collections.dbdr.backup.plugins.module_utils._verify.record import load_records

_TIMESTAMP_RE = re.compile(
    r"^(\d{4})-?(\d{2})-?(\d{2})[T ](\d{2}):?(\d{2})(?::?(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)$", re.I)


def parse_timestamp(text, option="before"):
    """An ISO 8601 timestamp that must carry its offset (a bare local time is ambiguous):
    2026-11-20T03:00:00+00:00, ...Z, +0000, fractions, or the backup-id form 20261120T030000Z."""
    text = str(text).strip()
    match = _TIMESTAMP_RE.match(text)
    if not match:
        if re.match(r"^\d{4}-?\d{2}-?\d{2}[T ]\d{2}:?\d{2}(:?\d{2}([.,]\d+)?)?$", text):
            raise InputError("%s %r has no UTC offset; write it like 2026-11-20T03:00:00+00:00" % (option, text))
        raise InputError("%s %r is not an ISO 8601 timestamp (like 2026-11-20T03:00:00+00:00)" % (option, text))
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                                   int((fraction or "0")[:6].ljust(6, "0")))
    except ValueError as exc:
        raise InputError("%s %r is not a valid time: %s" % (option, text, exc))
    if offset.upper() == "Z":
        delta = datetime.timedelta(0)
    else:
        digits = offset[1:].replace(":", "")
        delta = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        if offset[0] == "-":
            delta = -delta
    try:
        zone = datetime.timezone(delta)
    except ValueError:
        raise InputError("%s %r has an offset of a day or more; UTC offsets lie between -23:59 and +23:59"
                         % (option, text))
    return moment.replace(tzinfo=zone).astimezone(datetime.timezone.utc)


def data_time(manifest):
    """When the backup's data was taken: the latest snapshot of its databases (recorded since
    0.1.0), else its finish time, which is never earlier."""
    moments = [d.snapshot_at for d in manifest.databases]
    if moments and all(moments):
        return max(parse_timestamp(m, "snapshot_at") for m in moments)
    return parse_timestamp(manifest.finished_at, "finished_at")


def stored_backups(repository, cluster):
    """{backup_id: [StoredObject]} of every directory below the cluster's backups that is named
    like a backup id, complete or not."""
    prefix = backups_prefix(cluster)
    by_id = {}
    for stored in repository.list_objects(prefix):
        backup_id = stored.key[len(prefix):].split("/", 1)[0]
        if BACKUP_ID_RE.match(backup_id):
            by_id.setdefault(backup_id, []).append(stored)
    return by_id


def is_complete(cluster, backup_id, objects):
    """A backup is complete when its manifest is there (it is written last)."""
    return any(o.key == manifest_key(cluster, backup_id) for o in objects)


def backup_ids(repository, cluster):
    """Ids of the complete backups (manifest present), oldest first."""
    return sorted(i for i, objects in stored_backups(repository, cluster).items() if is_complete(cluster, i, objects))


class BackupEntry:
    """A backup as the repository holds it: its manifest (or why it cannot be read), its
    stored objects with their storage classes, and its verification records."""

    def __init__(self, backup_id, manifest=None, error=None, objects=None, verifications=None):
        self.backup_id = backup_id
        self.manifest = manifest
        self.error = error
        self.objects = objects or []          # StoredObject (key, size, storage_class)
        self.verifications = verifications or []   # VerificationRecord, oldest first

    @property
    def time(self):
        return backup_id_time(self.backup_id)

    @property
    def whole(self):
        """A full backup of its databases: what GFS slots, "latest" and RPO count."""
        return self.manifest is not None and not self.manifest.partial and not self.manifest.safety_backup

    @property
    def last_verification(self):
        return self.verifications[-1] if self.verifications else None

    @property
    def verified_good(self):
        """Its newest verification passed (a later failed one withdraws an earlier proof)."""
        last = self.last_verification
        return last is not None and last.ok


class Catalog:
    """Everything a cluster's repository holds, read in three listings (backups, verification
    records) and one GET per manifest. Shared by verification, information and retention."""

    def __init__(self, cluster, entries, leftovers, records, problems):
        self.cluster = cluster
        self.entries = entries          # complete backups (manifest present), oldest first
        self.leftovers = leftovers      # {backup_id: [StoredObject]} with no manifest
        self.records = records          # {backup_id: [VerificationRecord]}, also of removed backups
        self.problems = problems        # unreadable verification records

    def get(self, backup_id):
        for entry in self.entries:
            if entry.backup_id == backup_id:
                return entry
        return None

    def newest(self, whole=True):
        for entry in reversed(self.entries):
            if entry.manifest is not None and (entry.whole or not whole):
                return entry
        return None

    def newest_verified_good(self):
        for entry in reversed(self.entries):
            if entry.manifest is not None and entry.verified_good:
                return entry
        return None


def current_class(repository, cluster, entry):
    """The GFS class lifecycle rules see for a backup: its manifest's tag where the store tags
    (promotion re-tags it), else the class its manifest recorded."""
    try:
        tagged = repository.get_class(manifest_key(cluster, entry.backup_id))
    except NotFoundError:
        tagged = None   # deleted (by retention) while we read: the listing is a moment in time
    if tagged in GFS_CLASSES:
        return tagged
    return entry.manifest.gfs_class if entry.manifest is not None else None


def read_catalog(repository, cluster, with_verifications=True):
    by_id = stored_backups(repository, cluster)
    records, problems = load_records(repository, cluster) if with_verifications else ({}, [])
    entries, leftovers = [], {}
    for backup_id in sorted(by_id):
        objects = by_id[backup_id]
        if not is_complete(cluster, backup_id, objects):
            leftovers[backup_id] = objects
            continue
        manifest, error = None, None
        try:
            manifest = load_manifest(repository, cluster, backup_id)
        except TransientStorageError:
            raise   # retried already; a flaky store must not turn into "damaged backups"
        except (InputError, StorageError) as exc:
            # Unparseable, tampered, or moved to an archive tier by a lifecycle rule: one
            # backup that cannot be read must not hide the others.
            error = exc.message
        entries.append(BackupEntry(backup_id, manifest, error, objects, records.get(backup_id, [])))
    return Catalog(cluster, entries, leftovers, records, problems)


def load_manifest(repository, cluster, backup_id):
    validate_backup_id(backup_id)
    key = manifest_key(cluster, backup_id)
    try:
        raw = repository.get_bytes(key)
    except NotFoundError:
        raise InputError("backup %s not found in %s (no manifest: it does not exist or never completed)"
                         % (backup_id, repository.describe(backups_prefix(cluster))))
    try:
        return Manifest.from_json(raw, expected_id=backup_id, expected_cluster=cluster)
    except InputError as exc:
        raise InputError("manifest %s is unreadable or tampered with: %s" % (repository.describe(key), exc.message))


def choose_backup(repository, cluster, backup_id="latest", before=None, suitable=None):
    """The backup to use: an explicit id, or the newest complete one (whose data was all taken
    at or before `before`) that `suitable(manifest)` accepts.

    `suitable` returns None when a manifest fits, else the reason it does not. A newest
    backup whose manifest cannot be read stops the choice instead of silently falling back
    to older data. Returns (manifest, [(skipped id, reason)])."""
    if backup_id and backup_id != "latest":
        if before:
            raise InputError("give either backup_id or before, not both")
        manifest = load_manifest(repository, cluster, backup_id)
        reason = suitable(manifest) if suitable else None
        if reason:
            raise InputError("backup %s cannot be used: %s" % (backup_id, reason))
        return manifest, []
    limit = parse_timestamp(before) if before else None
    candidates = backup_ids(repository, cluster)
    if limit is not None:
        candidates = [i for i in candidates if backup_id_time(i) <= limit]
    skipped = []
    for candidate in reversed(candidates):
        manifest = load_manifest(repository, cluster, candidate)
        reason = suitable(manifest) if suitable else None
        if reason is None and limit is not None and data_time(manifest) > limit:
            reason = "its data was taken at %s, after %s" % (data_time(manifest).isoformat(), limit.isoformat())
        if reason is None:
            return manifest, skipped
        skipped.append((candidate, reason))
    where = repository.describe(backups_prefix(cluster))
    if limit is not None:
        raise InputError("no suitable backup of cluster %r taken at or before %s in %s%s"
                         % (cluster, limit.isoformat(), where, _skipped_text(skipped)))
    raise InputError("no suitable backup of cluster %r in %s%s" % (cluster, where, _skipped_text(skipped)))


def _skipped_text(skipped):
    if not skipped:
        return ""
    return " (not suitable: %s)" % "; ".join("%s: %s" % s for s in skipped[:5])
