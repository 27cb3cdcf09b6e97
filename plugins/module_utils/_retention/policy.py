# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GFS retention, the decide step: which backups a policy keeps, and why. Pure: no storage.

Candidates for GFS slots are whole backups (not partial, not pre-restore safety backups) with
a readable manifest. keep_last keeps the newest N of them. Each GFS class buckets them by
period in the policy's timezone (daily: local date, weekly: ISO year and week, monthly, yearly);
a period's representative is its OLDEST candidate, so that once a backup represents a period it
always does (promotion is monotonic, S3 tags never churn); the representatives of the newest N
periods that hold candidates are kept (gaps do not shorten history).

Protections keep a backup whatever the policy: the newest verified-good backup, the newest
one whose last test restore (backup_verify level restore) passed, one younger
than min_age, one labelled keep, one whose manifest cannot be read.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import GFS_CLASSES

try:
    import zoneinfo
    HAS_ZONEINFO = True
except ImportError:  # Python < 3.9
    zoneinfo = None
    HAS_ZONEINFO = False

COUNTS = ("keep_last",) + GFS_CLASSES
DEFAULT_MIN_AGE = 86400

REASON_KEEP_LAST = "keep_last"
REASON_VERIFIED = "newest verified-good"
REASON_VERIFIED_WHOLE = "newest verified-good whole backup"
REASON_RESTORE_PROVEN = "newest backup proven by a test restore"
REASON_MIN_AGE = "younger than min_age"
REASON_LABEL = "labelled keep"
REASON_UNREADABLE = "unreadable manifest"


def class_rank(gfs_class):
    """Order of the GFS classes (daily < weekly < monthly < yearly); -1 for anything else."""
    return GFS_CLASSES.index(gfs_class) if gfs_class in GFS_CLASSES else -1


def longest_class(classes):
    """The longest-lived of some GFS classes, or None."""
    ranked = [c for c in classes if class_rank(c) >= 0]
    return max(ranked, key=class_rank) if ranked else None


def load_timezone(name):
    if not isinstance(name, str) or not name.strip():
        raise InputError("policy.timezone must be an IANA time zone name such as UTC or Europe/Berlin")
    if name.strip() in ("UTC", "Etc/UTC", "Z"):
        # The default works on hosts without the tz database (minimal containers, no tzdata).
        return datetime.timezone.utc
    if not HAS_ZONEINFO:
        raise InputError("policy.timezone needs Python 3.9 or later (zoneinfo) on the managed host")
    try:
        return zoneinfo.ZoneInfo(name.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InputError("policy.timezone %r is not a known IANA time zone (like UTC, Europe/Berlin, "
                         "America/New_York): %s" % (name, exc))


class Policy:
    """A validated retention policy. Counts are numbers of backups (keep_last) or of periods."""

    def __init__(self, keep_last=0, daily=0, weekly=0, monthly=0, yearly=0, timezone="UTC",
                 min_age=DEFAULT_MIN_AGE):
        self.counts = {}
        for name, value in zip(COUNTS, (keep_last, daily, weekly, monthly, yearly)):
            self.counts[name] = _count(name, value)
        self.min_age = _count("min_age", DEFAULT_MIN_AGE if min_age is None else min_age)
        self.tz = load_timezone("UTC" if timezone is None else timezone)
        self.timezone = timezone.strip() if timezone is not None else "UTC"
        if not any(self.counts.values()):
            raise InputError("the policy keeps nothing (keep_last, daily, weekly, monthly and yearly are all 0); "
                             "refusing to expire every backup")

    @classmethod
    def from_dict(cls, data):
        data = dict(data or {})
        unknown = sorted(set(data) - set(COUNTS) - {"timezone", "min_age"})
        if unknown:
            raise InputError("unknown policy option(s): %s" % ", ".join(unknown))
        return cls(**dict((k, v) for k, v in data.items() if v is not None))

    @property
    def keep_last(self):
        return self.counts["keep_last"]

    def to_dict(self):
        data = dict(self.counts)
        data.update(timezone=self.timezone, min_age=self.min_age)
        return data


def _count(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("policy.%s must be a whole number, got %r" % (name, value))
    if value < 0:
        raise InputError("policy.%s must not be negative, got %d" % (name, value))
    return value


def period_of(gfs_class, moment, tz):
    """The period label of a UTC moment for a GFS class, counted in tz: 2026-11-20, 2026-W47,
    2026-11, 2026. Labels sort like the periods they name."""
    local = moment.astimezone(tz)
    if gfs_class == "daily":
        return local.strftime("%Y-%m-%d")
    if gfs_class == "weekly":
        iso = local.isocalendar()
        return "%04d-W%02d" % (iso[0], iso[1])
    if gfs_class == "monthly":
        return "%04d-%02d" % (local.year, local.month)
    if gfs_class == "yearly":
        return "%04d" % local.year
    raise ValueError("unknown GFS class %r" % (gfs_class,))


class Decision:
    """What the policy does with one backup: keep it (with every reason) or delete it."""

    def __init__(self, entry):
        self.entry = entry
        self.reasons = []
        self.gfs_reasons = []   # (class, period)

    @property
    def backup_id(self):
        return self.entry.backup_id

    @property
    def keep(self):
        return bool(self.reasons)

    @property
    def gfs_class(self):
        """The longest GFS class this backup is kept for: what its S3 objects are tagged with."""
        return longest_class([c for c, _p in self.gfs_reasons])

    def add(self, reason):
        if reason not in self.reasons:
            self.reasons.append(reason)

    def add_gfs(self, gfs_class, period):
        self.gfs_reasons.append((gfs_class, period))
        self.add("%s %s" % (gfs_class, period))

    def to_dict(self):
        return {"backup_id": self.backup_id, "reasons": list(self.reasons), "gfs_class": self.gfs_class}


def _restore_proven(entry):
    """Its newest restore-level verification passed."""
    restores = [r for r in getattr(entry, "verifications", None) or [] if r.level == "restore"]
    return bool(restores) and restores[-1].ok


def decide(entries, policy, now):
    """One Decision per entry (catalog.BackupEntry-like: backup_id, time, manifest, error, whole,
    verified_good), in the order given; `now` is an aware datetime."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    entries = sorted(entries, key=lambda e: e.backup_id)
    decisions = [Decision(e) for e in entries]
    by_id = dict((d.backup_id, d) for d in decisions)

    # Protections first, so that their reasons lead the list.
    readable = [d for d in decisions if d.entry.manifest is not None]
    verified = [d for d in readable if d.entry.verified_good]
    if verified:
        verified[-1].add(REASON_VERIFIED)
        verified_whole = [d for d in verified if d.entry.whole]
        if verified_whole and verified_whole[-1] is not verified[-1]:
            # A verified safety or partial backup must not leave the proven whole one unprotected.
            verified_whole[-1].add(REASON_VERIFIED_WHOLE)
    # A nightly checksum verification of the newest backup must not take the protection away
    # from the backup the last DR drill restored.
    proven = [d for d in readable if _restore_proven(d.entry)]
    if proven:
        proven[-1].add(REASON_RESTORE_PROVEN)
    min_age = datetime.timedelta(seconds=policy.min_age)
    for decision in decisions:
        entry = decision.entry
        if entry.manifest is None:
            decision.add(REASON_UNREADABLE)
            continue
        if now - entry.time < min_age:
            decision.add(REASON_MIN_AGE)
        if entry.manifest.protected:
            decision.add(REASON_LABEL)

    candidates = [d for d in readable if d.entry.whole]   # oldest first
    if policy.keep_last:
        for decision in candidates[-policy.keep_last:]:
            decision.add(REASON_KEEP_LAST)
    for gfs_class in GFS_CLASSES:
        count = policy.counts[gfs_class]
        if not count:
            continue
        representatives = {}
        for decision in candidates:
            # Oldest first: the first candidate seen in a period represents it.
            representatives.setdefault(period_of(gfs_class, decision.entry.time, policy.tz), decision)
        for period in sorted(representatives, reverse=True)[:count]:
            by_id[representatives[period].backup_id].add_gfs(gfs_class, period)
    return decisions


def warnings_for(decisions):
    return ["backup %s is kept because its manifest cannot be read (look at it): %s"
            % (d.backup_id, d.entry.error or "unknown error") for d in decisions if d.entry.manifest is None]
