"""GFS retention, the decide step (no storage): which backups a policy keeps, and why.

Expected sets are written out by hand from a calendar, not computed by the code under test.
Europe/Berlin is UTC+1 (CET) until 2026-03-29 01:00Z and from 2026-10-25 01:00Z, UTC+2 (CEST)
in between; a backup at 23:30Z is therefore on the NEXT local day all year round.
"""

import datetime

import pytest

from ansible_collections.dbdr.backup.plugins.module_utils._catalog import BackupEntry
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._manifest import DatabaseRecord, Manifest, StoredObjectRecord
from ansible_collections.dbdr.backup.plugins.module_utils._retention.policy import (
    Policy, decide, longest_class, period_of, warnings_for)
from ansible_collections.dbdr.backup.plugins.module_utils._verify.record import Check, VerificationRecord

UTC = datetime.timezone.utc


def utc(text):
    return datetime.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def entry(backup_id, labels=None, dump=None, verifications=(), unreadable=False, level="checksum"):
    """A backup as the catalog shows it; verifications: results of its checks (at `level`),
    oldest first."""
    if unreadable:
        return BackupEntry(backup_id, None, "manifest is not valid JSON")
    started = utc(backup_id).isoformat()
    manifest = Manifest(backup_id, "main", "logical", started, started,
                        [StoredObjectRecord("app.pgdump", "database", 10, "ab" * 32, database="app")],
                        [DatabaseRecord("app", "app.pgdump")], labels=labels, dump=dump)
    records = [VerificationRecord(backup_id, "main", level, started, started, [Check("checksum", "app.pgdump", r)])
               for r in verifications]
    return BackupEntry(backup_id, manifest, None, [], records)


def kept(decisions):
    return dict((d.backup_id, d.reasons) for d in decisions if d.keep)


def deleted(decisions):
    return sorted(d.backup_id for d in decisions if not d.keep)


# --- a synthetic year in Europe/Berlin ----------------------------------------------------------

DST_EXTRAS = [
    "20260328T224500Z",   # 2026-03-28 23:45 CET
    "20260329T003000Z",   # 2026-03-29 01:30 CET
    "20260329T013000Z",   # 2026-03-29 03:30 CEST (the clocks jumped at 01:00Z)
    "20261025T003000Z",   # 2026-10-25 02:30 CEST
    "20261025T013000Z",   # 2026-10-25 02:30 CET (the same wall time again, an hour later)
    "20261025T223000Z",   # 2026-10-25 23:30 CET
]
PARTIAL_W53 = "20261227T231000Z"       # local 2026-12-28 00:10: would be daily/weekly representative
SAFETY_DEC = "20261130T231000Z"        # local 2026-12-01 00:10: would be the monthly representative
PARTIAL_YOUNG = "20270101T010000Z"     # local 2027-01-01 02:00, 5 hours old at NOW
UNREADABLE = "20260501T120000Z"
KEEP_LABEL = "20260401T233000Z"
VERIFIED = "20260615T233000Z"          # its only verification passed
WITHDRAWN = "20260701T233000Z"         # passed, then failed: no longer verified good
NOW = utc("20270101T060000Z")          # local 2027-01-01 07:00


def year_of_backups():
    ids = ["20251231T223000Z", "20251231T233000Z"]   # local 2025-12-31 23:30 and 2026-01-01 00:30
    day = datetime.date(2026, 1, 1)
    while day.year == 2026:
        ids.append(day.strftime("%Y%m%dT233000Z"))
        day += datetime.timedelta(days=1)
    entries = {}
    for backup_id in ids + DST_EXTRAS:
        entries[backup_id] = entry(backup_id)
    entries[KEEP_LABEL] = entry(KEEP_LABEL, labels={"keep": "true", "reason": "audit 2026"})
    entries[VERIFIED] = entry(VERIFIED, verifications=["ok"])
    entries[WITHDRAWN] = entry(WITHDRAWN, verifications=["ok", "checksum_mismatch"])
    entries[PARTIAL_W53] = entry(PARTIAL_W53, dump={"schema_only": True})
    entries[SAFETY_DEC] = entry(SAFETY_DEC, labels={"purpose": "pre-restore"})
    entries[PARTIAL_YOUNG] = entry(PARTIAL_YOUNG, dump={"tables": ["public.orders"]})
    entries[UNREADABLE] = entry(UNREADABLE, unreadable=True)
    return [entries[k] for k in sorted(entries)]


def test_a_year_in_berlin_keeps_exactly_the_expected_set():
    policy = Policy(keep_last=2, daily=5, weekly=3, monthly=4, yearly=3, timezone="Europe/Berlin", min_age=86400)
    entries = year_of_backups()
    assert len(entries) == 2 + 365 + 6 + 3 + 1
    decisions = decide(entries, policy, NOW)
    assert kept(decisions) == {
        "20251231T223000Z": ["yearly 2025"],                      # local 2025-12-31 23:30
        "20251231T233000Z": ["yearly 2026"],                      # local 2026-01-01 00:30: first of 2026
        KEEP_LABEL: ["labelled keep"],
        UNREADABLE: ["unreadable manifest"],
        VERIFIED: ["newest verified-good"],
        "20260930T233000Z": ["monthly 2026-10"],                  # local 10-01 01:30 CEST
        "20261031T233000Z": ["monthly 2026-11"],                  # local 11-01 00:30 CET
        "20261130T233000Z": ["monthly 2026-12"],                  # the safety backup before it does not count
        "20261213T233000Z": ["weekly 2026-W51"],                  # local Mon 12-14
        "20261220T233000Z": ["weekly 2026-W52"],                  # local Mon 12-21
        "20261227T233000Z": ["daily 2026-12-28", "weekly 2026-W53"],   # the partial before it does not count
        "20261228T233000Z": ["daily 2026-12-29"],
        "20261229T233000Z": ["daily 2026-12-30"],
        "20261230T233000Z": ["keep_last", "daily 2026-12-31"],
        # local 2027-01-01 00:30: still ISO week 2026-W53, whose first backup is older.
        "20261231T233000Z": ["younger than min_age", "keep_last", "daily 2027-01-01", "monthly 2027-01",
                             "yearly 2027"],
        PARTIAL_YOUNG: ["younger than min_age"],
    }
    by_id = dict((d.backup_id, d) for d in decisions)
    assert by_id["20261231T233000Z"].gfs_class == "yearly"
    assert by_id["20261227T233000Z"].gfs_class == "weekly"
    assert by_id["20261230T233000Z"].gfs_class == "daily"
    assert by_id[VERIFIED].gfs_class is None and by_id[PARTIAL_YOUNG].gfs_class is None
    gone = deleted(decisions)
    assert len(gone) == len(entries) - 16
    for backup_id in DST_EXTRAS + [PARTIAL_W53, SAFETY_DEC, WITHDRAWN, "20260101T233000Z", "20261226T233000Z"]:
        assert backup_id in gone
    assert warnings_for(decisions) == [
        "backup %s is kept because its manifest cannot be read (look at it): manifest is not valid JSON" % UNREADABLE]


def _until(now):
    return [e for e in year_of_backups() if e.time <= now]


def test_daily_periods_around_the_spring_dst_change():
    now = utc("20260330T120000Z")    # Monday 2026-03-30 14:00 CEST
    entries = _until(now)
    berlin = decide(entries, Policy(daily=3, weekly=2, timezone="Europe/Berlin", min_age=0), now)
    assert kept(berlin) == {
        "20260322T233000Z": ["weekly 2026-W13"],                     # local Mon 03-23 00:30 CET
        "20260327T233000Z": ["daily 2026-03-28"],                    # not the 23:45 CET one of that day
        "20260328T233000Z": ["daily 2026-03-29"],                    # 00:30 CET, before 01:30 CET and 03:30 CEST
        "20260329T233000Z": ["daily 2026-03-30", "weekly 2026-W14"],   # 01:30 CEST
    }
    # Counted in UTC, the same backups fall on other days.
    in_utc = decide(entries, Policy(daily=3, weekly=2, timezone="UTC", min_age=0), now)
    assert kept(in_utc) == {
        "20260316T233000Z": ["weekly 2026-W12"],                     # Mon 03-16 in UTC
        "20260323T233000Z": ["weekly 2026-W13"],                     # 20260322T233000Z is Sun in UTC
        "20260327T233000Z": ["daily 2026-03-27"],
        "20260328T224500Z": ["daily 2026-03-28"],
        "20260329T003000Z": ["daily 2026-03-29"],
    }


def test_daily_periods_around_the_autumn_dst_change():
    now = utc("20261027T120000Z")    # Tuesday 2026-10-27 13:00 CET
    entries = _until(now)
    berlin = decide(entries, Policy(daily=4, timezone="Europe/Berlin", min_age=0), now)
    assert kept(berlin) == {
        KEEP_LABEL: ["labelled keep"],
        UNREADABLE: ["unreadable manifest"],
        VERIFIED: ["newest verified-good"],
        "20261023T233000Z": ["daily 2026-10-24"],
        "20261024T233000Z": ["daily 2026-10-25"],   # 01:30 CEST, before both 02:30s and 23:30 CET
        "20261025T233000Z": ["daily 2026-10-26"],
        "20261026T233000Z": ["daily 2026-10-27"],
    }
    in_utc = decide(entries, Policy(daily=4, timezone="UTC", min_age=0), now)
    assert kept(in_utc) == {
        KEEP_LABEL: ["labelled keep"],
        UNREADABLE: ["unreadable manifest"],
        VERIFIED: ["newest verified-good"],
        "20261023T233000Z": ["daily 2026-10-23"],
        "20261024T233000Z": ["daily 2026-10-24"],
        "20261025T003000Z": ["daily 2026-10-25"],
        "20261026T233000Z": ["daily 2026-10-26"],
    }


def test_new_york_counts_days_behind_utc():
    # 2026-11-01 06:30Z is 01:30 EST, after the fall-back at 06:00Z; 05:30Z is 01:30 EDT.
    entries = [entry(i) for i in ("20261101T033000Z", "20261101T053000Z", "20261101T063000Z", "20261102T043000Z",
                                  "20261102T053000Z")]
    decisions = decide(entries, Policy(daily=3, timezone="America/New_York", min_age=0), utc("20261103T000000Z"))
    assert kept(decisions) == {
        "20261101T033000Z": ["daily 2026-10-31"],   # 23:30 EDT
        "20261101T053000Z": ["daily 2026-11-01"],   # 01:30 EDT, the first of two 01:30s
        "20261102T053000Z": ["daily 2026-11-02"],   # 00:30 EST; 04:30Z was 23:30 EST on 11-01
    }


# --- periods and ISO weeks ------------------------------------------------------------------------

@pytest.mark.parametrize("moment, tz, expected", [
    ("20261231T233000Z", "Europe/Berlin", ("2027-01-01", "2026-W53", "2027-01", "2027")),
    ("20261231T233000Z", "UTC", ("2026-12-31", "2026-W53", "2026-12", "2026")),
    ("20270103T230000Z", "Europe/Berlin", ("2027-01-04", "2027-W01", "2027-01", "2027")),   # Monday
    ("20241229T230000Z", "Europe/Berlin", ("2024-12-30", "2025-W01", "2024-12", "2024")),   # ISO year ahead
    ("20241229T230000Z", "UTC", ("2024-12-29", "2024-W52", "2024-12", "2024")),
    ("20210103T120000Z", "UTC", ("2021-01-03", "2020-W53", "2021-01", "2021")),           # ISO year behind
    ("20260301T043000Z", "America/New_York", ("2026-02-28", "2026-W09", "2026-02", "2026")),
])
def test_periods(moment, tz, expected):
    zone = Policy(daily=1, timezone=tz).tz
    assert tuple(period_of(c, utc(moment), zone) for c in ("daily", "weekly", "monthly", "yearly")) == expected


def test_weekly_across_the_iso_year_boundary():
    ids = ["20261217T120000Z", "20261224T120000Z", "20261230T120000Z", "20270102T120000Z", "20270105T120000Z"]
    decisions = decide([entry(i) for i in ids], Policy(weekly=3, min_age=0), utc("20270106T000000Z"))
    assert kept(decisions) == {
        "20261224T120000Z": ["weekly 2026-W52"],
        "20261230T120000Z": ["weekly 2026-W53"],   # Wed; Sat 2027-01-02 is the same ISO week
        "20270105T120000Z": ["weekly 2027-W01"],
    }


def test_gaps_do_not_shorten_history():
    ids = ["20260110T030000Z", "20260120T030000Z", "20260205T030000Z", "20260601T030000Z", "20260615T030000Z",
           "20261103T030000Z"]
    decisions = decide([entry(i) for i in ids], Policy(monthly=3, min_age=0), utc("20261201T000000Z"))
    # Months without backups (Mar-May, Jul-Oct, Dec) are not counted.
    assert kept(decisions) == {"20260205T030000Z": ["monthly 2026-02"], "20260601T030000Z": ["monthly 2026-06"],
                               "20261103T030000Z": ["monthly 2026-11"]}


def test_representatives_are_stable_as_backups_accumulate():
    """The first backup of a period stays its representative: promotion never flips back."""
    policy = Policy(daily=2, monthly=12, min_age=0)
    ids = ["20260105T030000Z", "20260106T030000Z", "20260201T120000Z", "20260202T030000Z"]
    first = decide([entry(i) for i in ids], policy, utc("20260203T000000Z"))
    assert kept(first) == {"20260105T030000Z": ["monthly 2026-01"],
                           "20260201T120000Z": ["daily 2026-02-01", "monthly 2026-02"],
                           "20260202T030000Z": ["daily 2026-02-02"]}
    later = decide([entry(i) for i in ids + ["20260202T230000Z", "20260203T030000Z"]], policy,
                   utc("20260204T000000Z"))
    assert kept(later) == {"20260105T030000Z": ["monthly 2026-01"], "20260201T120000Z": ["monthly 2026-02"],
                           "20260202T030000Z": ["daily 2026-02-02"], "20260203T030000Z": ["daily 2026-02-03"]}


# --- protections ---------------------------------------------------------------------------------

def test_min_age_protects_young_backups_whatever_the_policy():
    ids = ["20261120T000000Z", "20261120T060000Z", "20261120T120000Z", "20261120T180000Z"]
    now = utc("20261121T030000Z")
    decisions = decide([entry(i) for i in ids], Policy(daily=1, min_age=86400), now)
    assert kept(decisions) == {
        "20261120T060000Z": ["younger than min_age"],
        "20261120T120000Z": ["younger than min_age"],
        "20261120T180000Z": ["younger than min_age"],
        "20261120T000000Z": ["daily 2026-11-20"],
    }
    # Exactly min_age old is old enough.
    decisions = decide([entry(i) for i in ids], Policy(daily=1, min_age=75600), now)
    assert deleted(decisions) == ["20261120T060000Z"]
    assert deleted(decide([entry(i) for i in ids], Policy(daily=1, min_age=0), now)) == ids[1:]


def test_keep_label_protects():
    entries = [entry("20260101T030000Z", labels={"keep": "yes"}), entry("20260102T030000Z", labels={"keep": "false"}),
               entry("20260103T030000Z", labels={"keep": ""}), entry("20260104T030000Z")]
    decisions = decide(entries, Policy(keep_last=1, min_age=0), utc("20260201T000000Z"))
    assert kept(decisions) == {"20260101T030000Z": ["labelled keep"], "20260104T030000Z": ["keep_last"]}


def test_newest_verified_good_is_never_deleted():
    entries = [entry("20260101T030000Z", verifications=["ok"]),
               entry("20260102T030000Z", verifications=["ok"]),
               entry("20260103T030000Z", verifications=["ok", "missing"]),   # a later failure withdraws it
               entry("20260104T030000Z", verifications=["checksum_mismatch"]),
               entry("20260105T030000Z")]
    decisions = decide(entries, Policy(keep_last=1, min_age=0), utc("20260201T000000Z"))
    assert kept(decisions) == {"20260102T030000Z": ["newest verified-good"], "20260105T030000Z": ["keep_last"]}


def test_a_nightly_checksum_does_not_unprotect_the_backup_the_drill_restored():
    entries = [entry("20260101T030000Z", verifications=["ok"], level="restore"),
               entry("20260102T030000Z", verifications=["ok", "row_count_mismatch"], level="restore"),
               entry("20260103T030000Z"),
               entry("20260104T030000Z", verifications=["ok"]),
               entry("20260105T030000Z")]
    decisions = decide(entries, Policy(keep_last=1, min_age=0), utc("20260201T000000Z"))
    assert kept(decisions) == {"20260101T030000Z": ["newest backup proven by a test restore"],
                               "20260104T030000Z": ["newest verified-good"],
                               "20260105T030000Z": ["keep_last"]}


def test_a_verified_safety_backup_does_not_unprotect_the_verified_whole_one():
    entries = [entry("20260101T030000Z", verifications=["ok"]),
               entry("20260102T030000Z", labels={"purpose": "pre-restore"}, verifications=["ok"]),
               entry("20260103T030000Z")]
    decisions = decide(entries, Policy(keep_last=1, min_age=0), utc("20260201T000000Z"))
    assert kept(decisions) == {"20260101T030000Z": ["newest verified-good whole backup"],
                               "20260102T030000Z": ["newest verified-good"],
                               "20260103T030000Z": ["keep_last"]}


def test_partial_and_safety_backups_never_fill_gfs_slots():
    entries = [entry("20260101T030000Z"),
               entry("20260102T010000Z", dump={"data_only": True}),
               entry("20260102T030000Z"),
               entry("20260103T030000Z", labels={"purpose": "pre-restore"}),
               entry("20260104T030000Z", dump={"exclude_tables": ["public.log"]}),
               entry("20260105T030000Z", dump={"tables": ["public.orders"]}, labels={"keep": "1"})]
    decisions = decide(entries, Policy(keep_last=1, daily=3, yearly=1, min_age=0), utc("20260201T000000Z"))
    assert kept(decisions) == {
        "20260101T030000Z": ["daily 2026-01-01", "yearly 2026"],
        "20260102T030000Z": ["keep_last", "daily 2026-01-02"],   # not the data-only one before it
        "20260105T030000Z": ["labelled keep"],
    }
    assert deleted(decisions) == ["20260102T010000Z", "20260103T030000Z", "20260104T030000Z"]


def test_unreadable_manifests_are_kept_and_warned_about():
    entries = [entry("20260101T030000Z", unreadable=True), entry("20260102T030000Z")]
    decisions = decide(entries, Policy(keep_last=1, min_age=0), utc("20260201T000000Z"))
    assert kept(decisions) == {"20260101T030000Z": ["unreadable manifest"], "20260102T030000Z": ["keep_last"]}
    assert len(warnings_for(decisions)) == 1 and "20260101T030000Z" in warnings_for(decisions)[0]


def test_no_backups_no_decisions():
    assert decide([], Policy(keep_last=1), NOW) == []


def test_now_must_be_aware():
    with pytest.raises(ValueError):
        decide([entry("20260101T030000Z")], Policy(keep_last=1), datetime.datetime(2026, 1, 1))


# --- the policy itself ---------------------------------------------------------------------------

def test_policy_defaults_and_dict():
    policy = Policy.from_dict({"daily": 7, "timezone": None})
    assert policy.to_dict() == {"keep_last": 0, "daily": 7, "weekly": 0, "monthly": 0, "yearly": 0,
                                "timezone": "UTC", "min_age": 86400}


@pytest.mark.parametrize("data, message", [
    ({}, "keeps nothing"),
    ({"keep_last": 0, "daily": 0, "weekly": 0, "monthly": 0, "yearly": 0, "timezone": "UTC"}, "keeps nothing"),
    ({"daily": -1}, "must not be negative"),
    ({"daily": 1, "min_age": -5}, "must not be negative"),
    ({"daily": True}, "whole number"),
    ({"daily": "7"}, "whole number"),
    ({"daily": 1, "timezone": "Mars/Olympus_Mons"}, "not a known IANA time zone"),
    ({"daily": 1, "timezone": "../../etc/passwd"}, "not a known IANA time zone"),
    ({"daily": 1, "timezone": "/usr/share/zoneinfo/UTC"}, "not a known IANA time zone"),
    ({"daily": 1, "timezone": ""}, "IANA time zone"),
    ({"daily": 1, "hourly": 3}, "unknown policy option"),
])
def test_bad_policies_are_refused(data, message):
    with pytest.raises(InputError, match=message) as caught:
        Policy.from_dict(data)
    assert caught.value.stage == "validate"


def test_longest_class():
    assert longest_class(["daily", "monthly", "weekly"]) == "monthly"
    assert longest_class(["yearly", "daily"]) == "yearly"
    assert longest_class([]) is None and longest_class(["audit"]) is None
