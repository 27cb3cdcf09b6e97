# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The status of a cluster's repository: backups, RPO, size anomalies, bytes per class, cost.

One plain dict (see build_status) consumed by backup_info, the webhook alerts, the
Prometheus textfile and the HTML report. Pure apart from reading the catalog's repository
for S3 class tags; takes plain values.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import math

from ansible_collections.dbdr.backup.plugins.module_utils._catalog import current_class, data_time, parse_timestamp
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import (
    backup_id_time, backups_prefix, isoformat)
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import GFS_CLASSES

# USD per GiB-month (AWS bills "GB-month" of 2^30 bytes), storage only: Amazon S3 list prices for
# US East (N. Virginia), first 50 TB/month tier, https://aws.amazon.com/s3/pricing/ (the figures
# in force since the Glacier price changes of late 2021, as of 2026-11). REDUCED_REDUNDANCY is
# a legacy class no longer on the page: its last listed price. LOCAL (a directory) costs nothing here.
DEFAULT_PRICES = {
    "STANDARD": 0.023,
    "INTELLIGENT_TIERING": 0.023,
    "STANDARD_IA": 0.0125,
    "ONEZONE_IA": 0.01,
    "GLACIER_IR": 0.004,
    "GLACIER": 0.0036,
    "DEEP_ARCHIVE": 0.00099,
    "REDUCED_REDUNDANCY": 0.024,
    "LOCAL": 0.0,
}
DEFAULT_CURRENCY = "USD"
GIB = 1024 ** 3
# A baseline is the median of this many previous whole backups of the same databases.
BASELINE_BACKUPS = 5
UNKNOWN_CLASS = "unknown"


def validate_options(rpo_target=86400, rpo_critical=None, anomaly_threshold=0.5, prices=None, currency="USD",
                     since=None):
    """Check the options of a status request before anything is read; returns `since` parsed
    (or None). Raises InputError with a message naming the option."""
    if rpo_target is None or rpo_target <= 0:
        raise InputError("rpo_target must be a positive number of seconds, got %r" % (rpo_target,))
    if rpo_critical is not None and rpo_critical < rpo_target:
        raise InputError("rpo_critical (%r) must be at least rpo_target (%r)" % (rpo_critical, rpo_target))
    if anomaly_threshold is None or anomaly_threshold < 0:
        raise InputError("size_anomaly_threshold must be 0 or more (0.5 means +-50%%), got %r" % (anomaly_threshold,))
    validate_prices(prices, currency)
    return parse_timestamp(since, "since") if since else None


def validate_prices(prices=None, currency=DEFAULT_CURRENCY):
    """prices (per GiB-month, by storage class) and currency, checked before anything is read."""
    for storage_class, price in (prices or {}).items():
        try:
            value = float(price)
        except (TypeError, ValueError):
            raise InputError("prices.%s must be a number (price per GiB-month), got %r" % (storage_class, price))
        if value < 0 or math.isnan(value) or math.isinf(value):
            raise InputError("prices.%s must be 0 or more, got %r" % (storage_class, price))
    if not currency or not str(currency).strip():
        raise InputError("currency must not be empty")


def price_table(prices=None):
    """The default prices with `prices` overriding or adding storage classes (upper case)."""
    table = dict(DEFAULT_PRICES)
    for storage_class, price in (prices or {}).items():
        table[str(storage_class).upper()] = float(price)
    return table


def build_status(catalog, repository, now, rpo_target=86400, rpo_critical=None, anomaly_threshold=0.5, prices=None,
                 currency=DEFAULT_CURRENCY, filters=None):
    """The status dict of a catalog (see docs/monitoring.md). `filters` ({labels, gfs_class, since})
    narrow the `backups` list only; everything else describes the whole repository."""
    validate_options(rpo_target, rpo_critical, anomaly_threshold, prices, currency)
    cluster = catalog.cluster
    readable = [e for e in catalog.entries if e.manifest is not None]
    classes = dict((e.backup_id, current_class(repository, cluster, e) or UNKNOWN_CLASS) for e in catalog.entries)
    anomalies = size_anomalies(readable, anomaly_threshold)
    backups = [_backup_dict(e, classes[e.backup_id], anomalies.get(e.backup_id)) for e in readable]
    newest = catalog.newest(whole=True)
    verified = catalog.newest_verified_good()
    status = {
        "cluster": cluster,
        "repository": repository.describe(backups_prefix(cluster)),
        "generated_at": isoformat(now),
        "backups": backups,
        "unreadable": [{"backup_id": e.backup_id, "error": e.error} for e in catalog.entries if e.manifest is None],
        "newest_complete": newest.backup_id if newest else None,
        "newest_verified_good": verified.backup_id if verified else None,
        "rpo": rpo_status(newest, now, rpo_target, rpo_critical),
        "verifications": _verifications(catalog.records),
        "bytes_by_class": bytes_by_class(catalog.entries, classes),
    }
    status["cost"] = cost_estimate(status["bytes_by_class"], prices, currency)
    if filters:
        status = apply_filters(status, filters)
    return status


# --- the parts ---------------------------------------------------------------------------

def backup_time(entry):
    """When the backup's data was taken (its newest snapshot, else finish time, else id)."""
    try:
        return data_time(entry.manifest)
    except (InputError, ValueError):
        pass
    try:
        return parse_timestamp(entry.manifest.finished_at, "finished_at")
    except (InputError, ValueError):
        return entry.time


def _backup_dict(entry, gfs_class, anomaly):
    manifest = entry.manifest
    last = entry.last_verification
    by_storage_class = {}
    for stored in entry.objects:
        key = stored.storage_class or UNKNOWN_CLASS
        by_storage_class[key] = by_storage_class.get(key, 0) + (stored.size or 0)
    return {
        "backup_id": entry.backup_id,
        "started_at": manifest.started_at,
        "finished_at": manifest.finished_at,
        "duration_seconds": _duration(manifest),
        "total_bytes": manifest.total_bytes,
        "gfs_class": gfs_class,
        "labels": dict(manifest.labels or {}),
        "whole": entry.whole,
        "kind": manifest.kind,
        "databases": [d.name for d in manifest.databases],
        "storage_classes": by_storage_class,
        "size_anomaly": anomaly,
        "verification": None if last is None else {
            "level": last.level, "result": last.result, "finished_at": last.finished_at,
            "restore_seconds": last.restore_seconds, "rto_target": last.rto_target},
    }


def _duration(manifest):
    if manifest.duration_seconds is not None:
        return manifest.duration_seconds
    try:
        delta = parse_timestamp(manifest.finished_at, "finished_at") - parse_timestamp(manifest.started_at, "started_at")
    except (InputError, ValueError):
        return None
    return round(delta.total_seconds(), 3)


def rpo_status(newest, now, rpo_target, rpo_critical=None):
    """RPO of the newest whole backup (or None): ok up to the target, warning up to the critical
    limit (default twice the target), critical beyond it or without any backup."""
    critical = rpo_critical if rpo_critical is not None else 2 * rpo_target
    result = {"target_seconds": rpo_target, "critical_seconds": critical, "age_seconds": None,
              "status": "critical", "newest_backup_at": None}
    if newest is None:
        return result
    taken = backup_time(newest)
    age = round((now - taken).total_seconds(), 3)
    result.update(age_seconds=age, newest_backup_at=isoformat(taken))
    result["status"] = "ok" if age <= rpo_target else "warning" if age <= critical else "critical"
    return result


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def size_anomalies(entries, threshold):
    """{backup_id: anomaly} for whole backups whose size is off by more than `threshold` from the
    median of up to BASELINE_BACKUPS previous whole backups of the same kind and databases."""
    history = {}
    anomalies = {}
    for entry in entries:
        if not entry.whole:
            continue
        manifest = entry.manifest
        group = (manifest.kind, frozenset(d.name for d in manifest.databases))
        previous = history.setdefault(group, [])
        size = manifest.total_bytes
        if previous:
            baseline = _median(previous[-BASELINE_BACKUPS:])
            if baseline > 0:
                ratio = size / float(baseline)
                if abs(ratio - 1) > threshold:
                    anomalies[entry.backup_id] = {"ratio": round(ratio, 4), "baseline_bytes": int(round(baseline)),
                                                  "threshold": threshold}
        previous.append(size)
    return anomalies


def _verifications(records):
    every = [r for items in records.values() for r in items]
    every.sort(key=lambda r: (r.finished_at or "", r.started_at or "", r.backup_id))
    return [{"backup_id": r.backup_id, "level": r.level, "result": r.result, "started_at": r.started_at,
             "finished_at": r.finished_at, "restore_seconds": r.restore_seconds, "rto_target": r.rto_target,
             "checks": [c.to_dict() for c in r.checks]} for r in every]


def _class_order(gfs_class):
    return GFS_CLASSES.index(gfs_class) if gfs_class in GFS_CLASSES else len(GFS_CLASSES)


def bytes_by_class(entries, classes):
    """Stored bytes (every object of every complete backup, manifest included) per GFS class and
    storage class, with the number of backups holding some of them."""
    totals = {}
    for entry in entries:
        gfs_class = classes.get(entry.backup_id) or UNKNOWN_CLASS
        for stored in entry.objects:
            key = (gfs_class, stored.storage_class or UNKNOWN_CLASS)
            item = totals.setdefault(key, {"gfs_class": key[0], "storage_class": key[1], "bytes": 0, "backups": set()})
            item["bytes"] += stored.size or 0
            item["backups"].add(entry.backup_id)
    rows = []
    for key in sorted(totals, key=lambda k: (_class_order(k[0]), k[0], k[1])):
        item = totals[key]
        rows.append(dict(item, backups=len(item["backups"])))
    return rows


def cost_estimate(rows, prices=None, currency=DEFAULT_CURRENCY):
    """Monthly storage cost of `rows` (bytes_by_class) at the price table; storage classes without
    a price are left out (see unpriced_classes)."""
    table = price_table(prices)
    by_storage_class = {}
    for row in rows:
        price = table.get(row["storage_class"])
        if price is None:
            continue
        cost = row["bytes"] / float(GIB) * price
        by_storage_class[row["storage_class"]] = by_storage_class.get(row["storage_class"], 0.0) + cost
    by_storage_class = dict((k, round(v, 6)) for k, v in by_storage_class.items())
    return {"currency": currency, "monthly": round(sum(by_storage_class.values()), 6),
            "by_storage_class": by_storage_class, "prices": table}


def unpriced_classes(status):
    """Storage classes holding bytes that the price table has no price for."""
    prices = status["cost"]["prices"]
    return sorted(set(r["storage_class"] for r in status["bytes_by_class"] if r["storage_class"] not in prices))


# --- filters -------------------------------------------------------------------------------

def apply_filters(status, filters):
    """A copy of status whose `backups` keeps those matching every filter: labels (all equal),
    gfs_class (one of), since (started at or after; a datetime or an ISO 8601 text)."""
    filters = filters or {}
    labels = filters.get("labels") or {}
    classes = filters.get("gfs_class") or []
    since = filters.get("since")
    if since is not None and not isinstance(since, datetime.datetime):
        since = parse_timestamp(since, "since")

    def matches(backup):
        if any(k not in backup["labels"] or str(backup["labels"][k]) != str(v) for k, v in labels.items()):
            return False
        if classes and backup["gfs_class"] not in classes:
            return False
        return since is None or backup_id_time(backup["backup_id"]) >= since
    filtered = dict(status)
    filtered["backups"] = [b for b in status["backups"] if matches(b)]
    return filtered


# --- alerts --------------------------------------------------------------------------------

def alerts(status, events):
    """The (event, details) pairs the status calls for, among `events`: rpo_breach (warning or
    critical) or rpo_ok, and size_anomaly when the newest whole backup is anomalous. Give it the
    unfiltered status: a filter must not hide the newest backup. The details have the shape
    _notify.details_from_status gives."""
    found = []
    rpo = status["rpo"]
    details = dict(rpo, newest_backup_id=status["newest_complete"])
    if rpo["status"] in ("warning", "critical"):
        if "rpo_breach" in events:
            found.append(("rpo_breach", details))
    elif "rpo_ok" in events:
        found.append(("rpo_ok", details))
    if "size_anomaly" in events and status["newest_complete"]:
        for backup in status["backups"]:
            if backup["backup_id"] == status["newest_complete"] and backup["size_anomaly"]:
                found.append(("size_anomaly", dict(backup["size_anomaly"], backup_id=backup["backup_id"],
                                                   total_bytes=backup["total_bytes"], databases=backup["databases"])))
    return found
