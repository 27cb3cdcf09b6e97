"""The status builder on synthetic catalogs: RPO boundaries, size anomalies, bytes per class,
cost, filters, alerts."""

import datetime

import pytest

from ansible_collections.dbdr.backup.plugins.module_utils import _status
from ansible_collections.dbdr.backup.plugins.module_utils._catalog import BackupEntry, Catalog
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import backup_id_time
from ansible_collections.dbdr.backup.plugins.module_utils._manifest import DatabaseRecord, Manifest, StoredObjectRecord
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import StoredObject
from ansible_collections.dbdr.backup.plugins.module_utils._verify.record import Check, VerificationRecord

UTC = datetime.timezone.utc
GIB = 1024 ** 3
NOW = datetime.datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


class FakeRepository:
    """describe() and S3-like class tags (None = no tags, as on a local directory)."""

    def __init__(self, tags=None):
        self.tags = tags

    def describe(self, key=""):
        return "s3://bucket/pfx/" + key

    def get_class(self, key):
        if self.tags is None:
            return None
        return self.tags.get(key.split("/")[2])


def iso(moment):
    return moment.isoformat()


def entry(backup_id, size=1000, databases=("app",), labels=None, gfs_class="daily", kind="logical", dump=None,
          storage_class="STANDARD", verifications=(), snapshot_offset=60, manifest_size=500, finished_offset=120):
    start = backup_id_time(backup_id)
    snapshot = iso(start + datetime.timedelta(seconds=snapshot_offset)) if snapshot_offset is not None else None
    per_db = size // max(len(databases), 1)
    objects = [StoredObjectRecord("%s.pgdump" % d, "database", per_db, "ab" * 32, database=d) for d in databases]
    manifest = Manifest(backup_id, "main", kind, iso(start), iso(start + datetime.timedelta(seconds=finished_offset)),
                        objects, [DatabaseRecord(d, "%s.pgdump" % d, snapshot_at=snapshot) for d in databases],
                        gfs_class=gfs_class, labels=labels, dump=dump)
    stored = [StoredObject("main/backups/%s/%s.pgdump" % (backup_id, d), per_db, storage_class=storage_class)
              for d in databases]
    # On S3 only dumps go to the chosen storage class; the manifest stays in STANDARD.
    manifest_class = "LOCAL" if storage_class == "LOCAL" else "STANDARD"
    stored.append(StoredObject("main/backups/%s/manifest.json" % backup_id, manifest_size, storage_class=manifest_class))
    return BackupEntry(backup_id, manifest, None, stored, list(verifications))


def record(backup_id, ok=True, finished="2026-11-22T05:00:00+00:00", level="restore"):
    checks = [Check("checksum", "app.pgdump", "ok"),
              Check("rows", "public.orders", "ok" if ok else "row_count_mismatch", None if ok else "5 != 6")]
    return VerificationRecord(backup_id, "main", level, finished, finished, checks, restore_seconds=12.5,
                              rto_target=3600)


def catalog(*entries, records=None):
    if records is None:
        records = dict((e.backup_id, e.verifications) for e in entries if e.verifications)
    return Catalog("main", list(entries), {}, records, [])


def status_of(*entries, repository=None, **kwargs):
    return _status.build_status(catalog(*entries), repository or FakeRepository(), NOW, **kwargs)


# --- RPO ----------------------------------------------------------------------------------

def test_shape_of_the_status():
    status = status_of(entry("20261122T030000Z", labels={"reason": "nightly"}))
    assert set(status) == {"cluster", "repository", "generated_at", "backups", "unreadable", "newest_complete",
                           "newest_verified_good", "rpo", "verifications", "bytes_by_class", "cost"}
    assert status["repository"] == "s3://bucket/pfx/main/backups/"
    assert status["generated_at"] == "2026-11-23T12:00:00+00:00"
    backup = status["backups"][0]
    assert set(backup) == {"backup_id", "started_at", "finished_at", "duration_seconds", "total_bytes", "gfs_class",
                           "labels", "whole", "kind", "databases", "storage_classes", "size_anomaly", "verification"}
    assert backup["duration_seconds"] == 120.0   # not recorded: finish - start
    assert backup["storage_classes"] == {"STANDARD": 1500}
    assert backup["labels"] == {"reason": "nightly"} and backup["whole"] is True and backup["verification"] is None
    assert set(status["rpo"]) == {"target_seconds", "critical_seconds", "age_seconds", "status", "newest_backup_at"}
    assert set(status["cost"]) == {"currency", "monthly", "by_storage_class", "prices"}


@pytest.mark.parametrize("age, target, critical, expected", [
    (3600, 3600, None, "ok"),              # exactly at the target is still ok
    (3601, 3600, None, "warning"),
    (7200, 3600, None, "warning"),         # default critical limit: twice the target
    (7201, 3600, None, "critical"),
    (5000, 3600, 5000, "warning"),
    (5001, 3600, 5000, "critical"),
])
def test_rpo_boundaries(age, target, critical, expected):
    # The data time is the snapshot (60 s after the start), not the start of the backup.
    start = NOW - datetime.timedelta(seconds=age + 60)
    status = status_of(entry(start.strftime("%Y%m%dT%H%M%SZ")), rpo_target=target, rpo_critical=critical)
    assert status["rpo"]["age_seconds"] == age
    assert status["rpo"]["status"] == expected
    assert status["rpo"]["critical_seconds"] == (critical or 2 * target)
    assert status["rpo"]["newest_backup_at"] == iso(NOW - datetime.timedelta(seconds=age))


def test_rpo_uses_finish_time_without_snapshots_and_newest_whole_backup_only():
    old = entry("20261123T080000Z", snapshot_offset=None, finished_offset=1800)     # data at 08:30
    partial = entry("20261123T110000Z", dump={"schema_only": True})
    safety = entry("20261123T113000Z", labels={"purpose": "pre-restore"})
    status = status_of(old, partial, safety, rpo_target=3 * 3600)
    assert status["newest_complete"] == "20261123T080000Z"
    assert status["rpo"]["newest_backup_at"] == "2026-11-23T08:30:00+00:00"
    assert status["rpo"]["age_seconds"] == 3.5 * 3600 and status["rpo"]["status"] == "warning"
    assert [b["whole"] for b in status["backups"]] == [True, False, False]


def test_no_backup_at_all_is_critical():
    status = status_of()
    assert status["rpo"] == {"target_seconds": 86400, "critical_seconds": 172800, "age_seconds": None,
                             "status": "critical", "newest_backup_at": None}
    assert status["newest_complete"] is None and status["newest_verified_good"] is None
    assert status["backups"] == [] and status["bytes_by_class"] == [] and status["cost"]["monthly"] == 0


def test_unreadable_backups_are_listed_apart_and_never_count():
    broken = BackupEntry("20261123T100000Z", None, "manifest is not valid JSON",
                         [StoredObject("main/backups/20261123T100000Z/manifest.json", 3, storage_class="STANDARD")])
    status = status_of(entry("20261122T030000Z"), broken)
    assert status["unreadable"] == [{"backup_id": "20261123T100000Z", "error": "manifest is not valid JSON"}]
    assert [b["backup_id"] for b in status["backups"]] == ["20261122T030000Z"]
    assert status["newest_complete"] == "20261122T030000Z"
    assert {"gfs_class": "unknown", "storage_class": "STANDARD", "bytes": 3, "backups": 1} in status["bytes_by_class"]


@pytest.mark.parametrize("kwargs, message", [
    ({"rpo_target": -1}, "rpo_target must be a positive"),
    ({"rpo_target": 0}, "rpo_target must be a positive"),
    ({"rpo_target": 3600, "rpo_critical": 60}, "rpo_critical"),
    ({"anomaly_threshold": -0.1}, "size_anomaly_threshold"),
    ({"prices": {"STANDARD": -1}}, "prices.STANDARD"),
    ({"prices": {"STANDARD": "cheap"}}, "prices.STANDARD must be a number"),
    ({"currency": " "}, "currency"),
])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        status_of(entry("20261122T030000Z"), **kwargs)


@pytest.mark.parametrize("since, message", [
    ("2026-11-20T03:00:00", "no UTC offset"),
    ("yesterday", "not an ISO 8601"),
    ("2026-13-40T03:00:00Z", "not a valid time"),
    ("2026-11-20T03:00:00+25:00", "a day or more"),
])
def test_bad_since_is_refused(since, message):
    with pytest.raises(InputError, match=message):
        _status.validate_options(since=since)


# --- verification ---------------------------------------------------------------------------

def test_newest_verified_good_is_the_newest_whose_last_verification_passed():
    first = entry("20261120T030000Z", verifications=[record("20261120T030000Z")])
    withdrawn = entry("20261121T030000Z", verifications=[record("20261121T030000Z", finished="2026-11-21T05:00:00+00:00"),
                                                         record("20261121T030000Z", ok=False)])
    unverified = entry("20261122T030000Z")
    removed = {"20261101T030000Z": [record("20261101T030000Z", finished="2026-11-01T05:00:00+00:00")]}
    records = dict(removed, **dict((e.backup_id, e.verifications) for e in (first, withdrawn)))
    status = _status.build_status(catalog(first, withdrawn, unverified, records=records), FakeRepository(), NOW)
    assert status["newest_verified_good"] == "20261120T030000Z"
    assert status["newest_complete"] == "20261122T030000Z"
    assert status["backups"][1]["verification"] == {"level": "restore", "result": "failed",
                                                    "finished_at": "2026-11-22T05:00:00+00:00",
                                                    "restore_seconds": 12.5, "rto_target": 3600}
    # Every record, also of removed backups, oldest first, with every check.
    assert [(v["backup_id"], v["result"]) for v in status["verifications"]] == [
        ("20261101T030000Z", "ok"), ("20261121T030000Z", "ok"), ("20261120T030000Z", "ok"),
        ("20261121T030000Z", "failed")]
    assert status["verifications"][-1]["checks"][1] == {"check": "rows", "subject": "public.orders",
                                                        "result": "row_count_mismatch", "detail": "5 != 6"}


# --- size anomaly ----------------------------------------------------------------------------

def test_anomaly_against_median_of_previous_five_with_same_databases():
    sizes = [100, 1000, 1000, 1000, 5000, 1000]   # the first falls out of the window of five
    entries = [entry("202611%02dT030000Z" % (10 + i), size=s) for i, s in enumerate(sizes)]
    entries.append(entry("20261117T030000Z", size=1600))   # median 1000: +60% > 50%
    entries.append(entry("20261118T030000Z", size=1500))   # window 1000,1000,5000,1000,1600: median 1000, +50%: ok
    status = status_of(*entries)
    anomalies = dict((b["backup_id"], b["size_anomaly"]) for b in status["backups"])
    assert anomalies["20261110T030000Z"] is None                # no baseline
    assert anomalies["20261111T030000Z"] == {"ratio": 10.0, "baseline_bytes": 100, "threshold": 0.5}
    assert anomalies["20261114T030000Z"] == {"ratio": 5.0, "baseline_bytes": 1000, "threshold": 0.5}
    assert anomalies["20261115T030000Z"] is None                # median of 100,1000,1000,1000,5000 is 1000
    assert anomalies["20261117T030000Z"] == {"ratio": 1.6, "baseline_bytes": 1000, "threshold": 0.5}
    assert anomalies["20261118T030000Z"] is None


def test_anomaly_baseline_per_set_of_databases_and_even_median():
    entries = [entry("20261110T030000Z", size=1000), entry("20261111T030000Z", size=3000),
               entry("20261112T030000Z", size=10, databases=("other",)),        # its own group: no baseline
               entry("20261113T030000Z", size=900, databases=("app", "other")),  # its own group too
               entry("20261114T030000Z", size=4000)]                             # median(1000, 3000) = 2000: x2
    entries.insert(3, entry("20261112T120000Z", size=10, dump={"data_only": True}))   # partial: never counted
    status = status_of(*entries, anomaly_threshold=0.9)
    anomalies = dict((b["backup_id"], b["size_anomaly"]) for b in status["backups"])
    assert anomalies["20261111T030000Z"] == {"ratio": 3.0, "baseline_bytes": 1000, "threshold": 0.9}
    assert anomalies["20261112T030000Z"] is None and anomalies["20261113T030000Z"] is None
    assert anomalies["20261112T120000Z"] is None
    assert anomalies["20261114T030000Z"] == {"ratio": 2.0, "baseline_bytes": 2000, "threshold": 0.9}
    # A smaller backup is as suspicious as a larger one.
    shrunk = status_of(entry("20261110T030000Z", size=1000), entry("20261111T030000Z", size=400))
    assert shrunk["backups"][1]["size_anomaly"] == {"ratio": 0.4, "baseline_bytes": 1000, "threshold": 0.5}


# --- classes and cost ------------------------------------------------------------------------

def test_gfs_class_from_s3_tags_over_manifest():
    entries = [entry("20261101T030000Z", gfs_class="daily"), entry("20261122T030000Z", gfs_class="daily")]
    tagged = status_of(*entries, repository=FakeRepository({"20261101T030000Z": "monthly"}))
    assert [b["gfs_class"] for b in tagged["backups"]] == ["monthly", "daily"]
    untagged = status_of(*entries)
    assert [b["gfs_class"] for b in untagged["backups"]] == ["daily", "daily"]


def test_bytes_by_class_and_cost_hand_computed():
    entries = [
        entry("20261101T030000Z", size=10 * GIB, gfs_class="monthly", storage_class="GLACIER", manifest_size=0),
        entry("20261115T030000Z", size=4 * GIB, gfs_class="weekly", storage_class="STANDARD_IA", manifest_size=0),
        entry("20261122T030000Z", size=2 * GIB, gfs_class="daily", manifest_size=GIB // 2),
        entry("20261123T030000Z", size=GIB, gfs_class="daily", manifest_size=GIB // 2),
    ]
    status = status_of(*entries)
    assert status["bytes_by_class"] == [
        {"gfs_class": "daily", "storage_class": "STANDARD", "bytes": 4 * GIB, "backups": 2},
        {"gfs_class": "weekly", "storage_class": "STANDARD", "bytes": 0, "backups": 1},
        {"gfs_class": "weekly", "storage_class": "STANDARD_IA", "bytes": 4 * GIB, "backups": 1},
        {"gfs_class": "monthly", "storage_class": "GLACIER", "bytes": 10 * GIB, "backups": 1},
        {"gfs_class": "monthly", "storage_class": "STANDARD", "bytes": 0, "backups": 1},
    ]
    cost = status["cost"]
    # 4 GiB x 0.023 + 4 GiB x 0.0125 + 10 GiB x 0.0036 = 0.092 + 0.05 + 0.036
    assert cost["by_storage_class"] == {"STANDARD": 0.092, "STANDARD_IA": 0.05, "GLACIER": 0.036}
    assert cost["monthly"] == pytest.approx(0.178)
    assert cost["currency"] == "USD" and cost["prices"]["DEEP_ARCHIVE"] == 0.00099

    # Own prices: override one class, add one (an S3-compatible store's own class), other currency.
    own = status_of(*entries, prices={"STANDARD": 0.02, "glacier": 0.01}, currency="EUR")
    assert own["cost"]["by_storage_class"] == {"STANDARD": 0.08, "STANDARD_IA": 0.05, "GLACIER": 0.1}
    assert own["cost"]["monthly"] == pytest.approx(0.23) and own["cost"]["currency"] == "EUR"


def test_local_repository_costs_nothing_and_unknown_classes_are_reported():
    status = status_of(entry("20261122T030000Z", size=GIB, storage_class="LOCAL"))
    assert status["cost"]["by_storage_class"] == {"LOCAL": 0.0} and status["cost"]["monthly"] == 0.0
    odd = status_of(entry("20261122T030000Z", size=GIB, storage_class="COLDLINE"))
    assert _status.unpriced_classes(odd) == ["COLDLINE"]
    assert "COLDLINE" not in odd["cost"]["by_storage_class"]
    assert _status.unpriced_classes(status_of(entry("20261122T030000Z", storage_class="COLDLINE"),
                                              prices={"COLDLINE": 0.004})) == []


# --- filters ---------------------------------------------------------------------------------

def test_filters_narrow_the_list_only():
    entries = [entry("20261101T030000Z", gfs_class="monthly", labels={"reason": "nightly"}),
               entry("20261120T030000Z", labels={"reason": "pre-deploy", "ticket": "42"}),
               entry("20261122T030000Z", labels={"reason": "nightly"}, size=5000)]
    whole = status_of(*entries)

    def ids(**filters):
        return [b["backup_id"] for b in status_of(*entries, filters=filters)["backups"]]
    assert ids(labels={"reason": "nightly"}) == ["20261101T030000Z", "20261122T030000Z"]
    assert ids(labels={"reason": "pre-deploy", "ticket": 42}) == ["20261120T030000Z"]
    assert ids(labels={"ticket": "43"}) == []
    assert ids(labels={"missing": "None"}) == []
    assert ids(gfs_class=["monthly", "yearly"]) == ["20261101T030000Z"]
    assert ids(since="2026-11-20T04:00:00+01:00") == ["20261120T030000Z", "20261122T030000Z"]
    assert ids(since="2026-11-20T03:00:01Z") == ["20261122T030000Z"]
    assert ids(since="2026-11-20T03:00:01Z", labels={"reason": "pre-deploy"}) == []
    narrowed = status_of(*entries, filters={"gfs_class": ["monthly"]})
    # The rest still describes the whole repository (and anomalies use every previous backup).
    for key in ("newest_complete", "rpo", "bytes_by_class", "cost", "verifications", "unreadable"):
        assert narrowed[key] == whole[key]
    assert whole["backups"][2]["size_anomaly"]["ratio"] == 5.0


# --- alerts ----------------------------------------------------------------------------------

def test_alerts_for_rpo_and_newest_anomaly():
    fresh = entry("20261123T110000Z", size=5000)
    status = status_of(entry("20261122T110000Z"), fresh, rpo_target=86400)
    assert status["rpo"]["status"] == "ok"
    events = _status.alerts(status, ["rpo_breach", "size_anomaly"])
    assert [e for e, _d in events] == ["size_anomaly"]
    details = events[0][1]
    assert details["backup_id"] == "20261123T110000Z" and details["ratio"] == 5.0 and details["total_bytes"] == 5000
    assert [e for e, _d in _status.alerts(status, ["rpo_ok"])] == ["rpo_ok"]

    late = status_of(entry("20261120T110000Z"), rpo_target=3600)
    events = _status.alerts(late, ["rpo_breach", "rpo_ok", "size_anomaly"])
    assert [e for e, _d in events] == ["rpo_breach"]
    assert events[0][1]["status"] == "critical" and events[0][1]["newest_backup_id"] == "20261120T110000Z"
    assert _status.alerts(late, ["verify_failed"]) == []
    assert [e for e, _d in _status.alerts(status_of(), ["rpo_breach"])] == ["rpo_breach"]
