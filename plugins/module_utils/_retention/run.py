# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GFS retention against a repository: plan (read the catalog, decide, what check mode shows)
and run (delete, re-tag, sweep leftovers, audit).

Deleting a backup removes its manifest first, then its other objects, then its verification
records: a crash anywhere leaves at worst a directory without a manifest, which is no longer a
backup, and which the next run (or the next pg_backup) removes under the cluster's lock.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.dbdr.backup.plugins.module_utils._audit import write_audit
from ansible_collections.dbdr.backup.plugins.module_utils._catalog import (
    current_class, is_complete, read_catalog, stored_backups)
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError, LockedError, StorageError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import (
    BACKUP_ID_RE, backup_prefix, backups_prefix, isoformat, lock_key, manifest_key, utc_now,
    validate_cluster, verify_prefix)
from ansible_collections.dbdr.backup.plugins.module_utils._retention.policy import (
    Policy, class_rank, decide, warnings_for)

OPERATION = "retention"


class Retag:
    def __init__(self, decision, current, target):
        self.decision = decision
        self.current = current
        self.target = target

    def to_dict(self):
        return {"backup_id": self.decision.backup_id, "from": self.current, "to": self.target}


class RetentionPlan:
    """What a run does: the decision for every backup, the promotions to re-tag, the leftovers
    and the verification records of backups that no longer exist. Check mode returns this."""

    def __init__(self, repository, cluster, policy, now, catalog, decisions, retags, orphan_records, warnings):
        self.repository = repository
        self.cluster = cluster
        self.policy = policy
        self.now = now
        self.catalog = catalog
        self.decisions = decisions
        self.retags = retags
        self.orphan_records = orphan_records   # {backup_id: [keys]}
        self.warnings = warnings

    @property
    def kept(self):
        return [d for d in self.decisions if d.keep]

    @property
    def to_delete(self):
        return [d for d in self.decisions if not d.keep]

    @property
    def leftovers(self):
        return self.catalog.leftovers

    @property
    def changes(self):
        return bool(self.to_delete or self.retags or self.leftovers or self.orphan_records)

    def confirmation_message(self):
        doomed = ", ".join("%s (%s)" % (d.backup_id, _size_text(_stored_bytes(d.entry))) for d in self.to_delete)
        return ("backup_retention would delete %d backup(s) of cluster %r from %s and needs confirm: true "
                "(check mode lists the plan). Would delete: %s. Would keep %d: %s"
                % (len(self.to_delete), self.cluster, self.repository.describe(backups_prefix(self.cluster)),
                   doomed, len(self.kept), ", ".join(d.backup_id for d in self.kept) or "none"))

    def to_result(self):
        """The result of a dry run: the same keys a real run returns, saying what would happen."""
        return {
            "policy": self.policy.to_dict(),
            "kept": [d.to_dict() for d in self.kept],
            "deleted": [_deleted_dict(d.entry) for d in self.to_delete],
            "retagged": [r.to_dict() for r in self.retags],
            "leftovers_removed": sorted(self.leftovers),
            "verification_records_removed": sorted(self.orphan_records),
            "bytes_freed": sum(_stored_bytes(d.entry) for d in self.to_delete)
            + sum(o.size or 0 for objects in self.leftovers.values() for o in objects),
            "notes": (["leftovers (backup directories without a manifest) are removed only if no backup is "
                       "running at the time"] if self.leftovers else []),
        }


def _stored_bytes(entry):
    return sum(o.size or 0 for o in entry.objects)


def _size_text(size):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return str(size)


def _deleted_dict(entry):
    return {"backup_id": entry.backup_id, "started_at": entry.manifest.started_at if entry.manifest else None,
            "total_bytes": _stored_bytes(entry)}


def plan_retention(repository, cluster, policy, now):
    """Validate, read the catalog, decide. `policy` is a dict (the module's option) or a Policy;
    `now` an aware datetime. Reads only."""
    validate_cluster(cluster)
    if not isinstance(policy, Policy):
        policy = Policy.from_dict(policy)
    repository.check_readable(cluster)
    catalog = read_catalog(repository, cluster)
    decisions = decide(catalog.entries, policy, now)
    warnings = warnings_for(decisions)
    warnings.extend("verification record not trusted: %s" % p for p in catalog.problems)
    if not any(d.entry.manifest is not None and d.entry.verified_good for d in decisions) and decisions:
        warnings.append("no backup of cluster %r is verified good yet (run dbdr.backup.backup_verify): "
                        "retention has no proven backup to protect" % cluster)
    retags = _plan_retags(repository, cluster, decisions)
    existing = set(d.backup_id for d in decisions) | set(catalog.leftovers)
    orphan_records = {}
    for key in repository.list_keys(verify_prefix(cluster)):
        backup_id = key[len(verify_prefix(cluster)):].split("/", 1)[0]
        if BACKUP_ID_RE.match(backup_id) and backup_id not in existing:
            orphan_records.setdefault(backup_id, []).append(key)
    return RetentionPlan(repository, cluster, policy, now, catalog, decisions, retags, orphan_records, warnings)


def _plan_retags(repository, cluster, decisions):
    """Promotions only: a kept backup whose longest GFS class outlives its current tag."""
    if not repository.class_tags:
        return []
    retags = []
    for decision in decisions:
        target = decision.gfs_class if decision.keep else None
        if target is None:
            continue
        current = current_class(repository, cluster, decision.entry)
        if class_rank(target) > class_rank(current):
            retags.append(Retag(decision, current, target))
    return retags


class RetentionResult:
    def __init__(self, plan):
        self.plan = plan
        self.deleted = []               # entries fully deleted
        self.retagged = []              # Retag
        self.leftovers_removed = []     # backup ids
        self.records_removed = []       # backup ids
        self.bytes_freed = 0
        self.notes = []
        self.warnings = list(plan.warnings)
        self.audit_key = None

    @property
    def changed(self):
        return bool(self.deleted or self.retagged or self.leftovers_removed or self.records_removed)

    def to_result(self):
        return {
            "policy": self.plan.policy.to_dict(),
            "kept": [d.to_dict() for d in self.plan.kept],
            "deleted": [_deleted_dict(e) for e in self.deleted],
            "retagged": [r.to_dict() for r in self.retagged],
            "leftovers_removed": list(self.leftovers_removed),
            "verification_records_removed": list(self.records_removed),
            "bytes_freed": self.bytes_freed,
            "notes": list(self.notes),
            "audit_record": self.audit_key,
        }

    def audit_details(self, error=None):
        details = {
            "policy": self.plan.policy.to_dict(),
            "kept": [d.to_dict() for d in self.plan.kept],
            "deleted": [e.backup_id for e in self.deleted],
            "retagged": [r.to_dict() for r in self.retagged],
            "leftovers_removed": list(self.leftovers_removed),
            "verification_records_removed": list(self.records_removed),
            "bytes_freed": self.bytes_freed,
            "notes": list(self.notes),
        }
        if error is not None:
            details["error"] = error
        return details


def run_retention(plan):
    """Carry the plan out. Raises a DbdrError naming what was left (and writes a failed audit
    record) when something fails; whatever was left is finished by the next run."""
    repository, cluster = plan.repository, plan.cluster
    started = utc_now()
    result = RetentionResult(plan)
    try:
        repository.check_access(cluster)
        for decision in plan.to_delete:
            result.bytes_freed += delete_backup(repository, cluster, decision.entry)
            result.deleted.append(decision.entry)
        for retag in plan.retags:
            _retag(repository, cluster, retag)
            result.retagged.append(retag)
        if plan.leftovers:
            _sweep_leftovers(repository, cluster, started, result)
        _remove_orphan_records(repository, cluster, plan.orphan_records, result)
    except BaseException as exc:
        # Also on a signal: the audit says what was done before it.
        try:
            write_audit(repository, cluster, OPERATION, started, "failed", result.audit_details(str(exc)))
        except Exception:  # pylint: disable=broad-except
            pass
        raise
    try:
        result.audit_key = write_audit(repository, cluster, OPERATION, started, "ok", result.audit_details())
    except DbdrError as exc:
        result.warnings.append("retention finished, but its audit record could not be written: %s" % exc)
    return result


def delete_backup(repository, cluster, entry):
    """Manifest first (from then on it is no longer a backup), then every other object, then its
    verification records. Returns the bytes freed."""
    backup_id = entry.backup_id
    manifest = manifest_key(cluster, backup_id)
    sizes = dict((o.key, o.size or 0) for o in entry.objects)
    try:
        repository.delete(manifest)
    except DbdrError as exc:
        raise StorageError("could not delete the manifest of backup %s, so nothing of it was deleted: %s"
                           % (backup_id, exc))
    freed = sizes.get(manifest, 0)
    try:
        # Listed again: whatever the backup holds goes, also objects the catalog did not show.
        freed += _remove_all_of(repository, cluster, backup_id, repository.list_objects(backup_prefix(cluster, backup_id)),
                                sizes)
    except DbdrError as exc:
        raise StorageError(
            "deleting backup %s failed after its manifest was removed (it is no longer listed as a backup; "
            "the next backup_retention run, or the next pg_backup, removes what is left of %s): %s"
            % (backup_id, repository.describe(backup_prefix(cluster, backup_id)), exc))
    return freed


def _remove_all_of(repository, cluster, backup_id, objects, sizes=None):
    """Delete the objects of a backup id (no manifest among them any more), then its
    verification records. Returns the bytes freed."""
    freed = 0
    for stored in objects:
        repository.delete(stored.key)
        freed += stored.size or (sizes or {}).get(stored.key, 0)
    for key in repository.list_keys(verify_prefix(cluster, backup_id)):
        repository.delete(key)
    return freed


def _retag(repository, cluster, retag):
    """Every object of the backup, the manifest last: the manifest's tag is what the next plan
    compares, so an interrupted re-tag is redone."""
    manifest = manifest_key(cluster, retag.decision.backup_id)
    keys = [o.key for o in retag.decision.entry.objects if o.key != manifest] + [manifest]
    try:
        for key in keys:
            repository.set_class(key, retag.target)
    except DbdrError as exc:
        raise StorageError("re-tagging backup %s as %s failed (the next run does it again): %s"
                           % (retag.decision.backup_id, retag.target, exc))


def _sweep_leftovers(repository, cluster, started, result):
    """Remove backup directories without a manifest (crashed retention or crashed backup), only
    while holding the cluster's lock: without it, such a directory may be a backup in progress."""
    holder = {"operation": OPERATION, "started_at": isoformat(started)}
    try:
        with repository.lock(lock_key(cluster), holder):
            # Listed again under the lock: a backup running at planning time may have finished since.
            for backup_id, objects in sorted(stored_backups(repository, cluster).items()):
                if is_complete(cluster, backup_id, objects):
                    continue
                try:
                    result.bytes_freed += _remove_all_of(repository, cluster, backup_id, objects)
                except DbdrError as exc:
                    raise StorageError("could not remove the leftovers of backup %s (no manifest; ignored by "
                                       "everything else, removed by the next run): %s" % (backup_id, exc))
                result.leftovers_removed.append(backup_id)
    except LockedError as exc:
        result.notes.append("leftovers %s were left alone: a backup is running (%s); the next run removes them"
                            % (", ".join(sorted(result.plan.leftovers)), exc))


def _remove_orphan_records(repository, cluster, orphan_records, result):
    """Verification records of backups that no longer exist (and are not being written)."""
    for backup_id, keys in sorted(orphan_records.items()):
        if repository.list_keys(backup_prefix(cluster, backup_id)):
            continue   # a backup under that id appeared since the plan: its records are not orphans
        try:
            for key in keys:
                repository.delete(key)
        except DbdrError as exc:
            raise StorageError("could not remove the verification records of removed backup %s: %s"
                               % (backup_id, exc))
        result.records_removed.append(backup_id)
