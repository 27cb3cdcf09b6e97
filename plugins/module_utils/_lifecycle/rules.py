# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lifecycle rules from a tier specification, checked against S3's own rules before any write.

Pure: no storage. Each GFS class becomes up to two rules (see docs/lifecycle.md):

* ``dbdr:<class>@<prefix>`` expires the manifests (``dbdr-class=<class>``, ``dbdr-data=false``);
* ``dbdr:<class>-data@<prefix>`` moves backup *data* (``dbdr-data=true``) to colder storage
  classes and expires it a day after the manifests. Manifests never transition: the catalog,
  retention and restore read them at once, and an archived manifest would hide its backup;
* ``dbdr:<class>-untagged@<prefix>`` expires what carries the class but no data tag (objects
  written before the tag existed) a day after the data.

Rule ids carry the prefix so that several repositories (prefixes) can share one bucket, each
s3_lifecycle task owning only its own rules."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import math

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import TAG_CLASS, TAG_DATA, validate_cluster
from ansible_collections.dbdr.backup.plugins.module_utils._retention.policy import Policy
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import ARCHIVE_STORAGE_CLASSES, GFS_CLASSES

RULE_ID_PREFIX = "dbdr:"
MAX_RULES = 1000
MAX_ID_LENGTH = 255

# S3's transition waterfall: an object only moves to a class further down this list
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-transition-general-considerations.html).
STORAGE_CLASSES = ("STANDARD_IA", "INTELLIGENT_TIERING", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
# ...except this pair, which the waterfall leaves out.
FORBIDDEN_STEPS = {("ONEZONE_IA", "GLACIER_IR")}
# Objects must be 30 days old before S3 moves them into an IA class, and must stay 30 days in
# an IA class before the next transition; S3 refuses rules that say otherwise.
IA_CLASSES = ("STANDARD_IA", "ONEZONE_IA")
IA_MINIMUM_DAYS = 30
# Minimum storage durations: deleting or moving earlier is billed as if the object stayed.
MINIMUM_STORAGE_DAYS = {"STANDARD_IA": 30, "ONEZONE_IA": 30, "GLACIER_IR": 90, "GLACIER": 90, "DEEP_ARCHIVE": 180}
# Days a GFS period lasts, for checking expirations against a retention policy and projecting costs.
PERIOD_DAYS = {"daily": 1.0, "weekly": 7.0, "monthly": 365.25 / 12, "yearly": 365.25}


class Transition:
    def __init__(self, days, storage_class):
        self.days = days
        self.storage_class = storage_class

    def to_s3(self):
        return {"Days": self.days, "StorageClass": self.storage_class}


class Tier:
    """The lifecycle of one GFS class (or of a WAL prefix): transitions, then expiration."""

    def __init__(self, name, transitions=(), expire_days=None):
        self.name = name
        self.transitions = list(transitions)
        self.expire_days = expire_days

    def storage_days(self, horizon_days):
        """[(storage_class, days)] an object spends in each class up to its expiry (or the horizon)."""
        end = self.expire_days if self.expire_days is not None else horizon_days
        spans, start, current = [], 0, "STANDARD"
        for transition in self.transitions:
            if transition.days >= end:
                break
            spans.append((current, transition.days - start))
            start, current = transition.days, transition.storage_class
        spans.append((current, max(0, end - start)))
        return [(cls, days) for cls, days in spans if days > 0]


class LifecycleSpec:
    """The validated input of s3_lifecycle and the rules it stands for."""

    def __init__(self, prefix, tiers, wal_clusters, wal_tier, abort_days, noncurrent_days, raw_rules, warnings):
        self.prefix = prefix
        self.tiers = tiers
        self.wal_clusters = wal_clusters
        self.wal_tier = wal_tier
        self.abort_days = abort_days
        self.noncurrent_days = noncurrent_days
        self.raw_rules = raw_rules
        self.warnings = warnings

    def owns(self, rule_id):
        """Whether a rule id is one this spec manages (ours, for this prefix)."""
        return is_managed_id(rule_id, self.prefix)

    def managed_rules(self):
        rules = []
        for tier in self.tiers:
            rules.extend(tier_rules(self.prefix, tier))
        for cluster in self.wal_clusters:
            rules.append(wal_rule(self.prefix, cluster, self.wal_tier))
        if self.abort_days:
            rules.append(_rule(managed_id("abort-multipart", self.prefix), {"Prefix": self.prefix},
                               AbortIncompleteMultipartUpload={"DaysAfterInitiation": self.abort_days}))
        if self.noncurrent_days:
            # A versioned bucket keeps what retention deletes as noncurrent versions (and a delete
            # marker); this rule makes those go for good, and clears markers left alone.
            rules.append(_rule(managed_id("noncurrent", self.prefix), {"Prefix": self.prefix},
                               NoncurrentVersionExpiration={"NoncurrentDays": self.noncurrent_days},
                               Expiration={"ExpiredObjectDeleteMarker": True}))
        return rules

    def desired_rules(self):
        return self.managed_rules() + [copy.deepcopy(rule) for rule in self.raw_rules]


def managed_id(name, prefix):
    return "%s%s@%s" % (RULE_ID_PREFIX, name, prefix)


def is_managed_id(rule_id, prefix):
    return bool(rule_id) and rule_id.startswith(RULE_ID_PREFIX) and rule_id.endswith("@" + prefix) \
        and "@" not in rule_id[len(RULE_ID_PREFIX):-len("@" + prefix)]


def _rule(rule_id, filter_, **actions):
    rule = {"ID": rule_id, "Status": "Enabled", "Filter": filter_}
    rule.update(actions)
    return rule


def _tag_filter(prefix, tags):
    """S3 wants a bare Tag for one predicate and And for several (an empty prefix is no predicate)."""
    tag_list = [{"Key": key, "Value": value} for key, value in tags]
    if not prefix and len(tag_list) == 1:
        return {"Tag": tag_list[0]}
    and_ = {"Tags": tag_list}
    if prefix:
        and_["Prefix"] = prefix
    return {"And": and_}


def tier_rules(prefix, tier):
    """Manifests (dbdr-data=false) expire on the day; their data (dbdr-data=true) a day later,
    and anything of the class without the data tag (written before it existed) a day after
    that. Data is uploaded before its manifest, and S3 rounds expiry up to the next midnight
    UTC: with one rule for both, a backup taken across midnight would lose its data a day
    before its manifest, and be listed but broken for that day. Manifest first, as retention."""
    rules = []
    if tier.expire_days is not None:
        rules.append(_rule(managed_id(tier.name, prefix), _tag_filter(prefix, [(TAG_CLASS, tier.name), (TAG_DATA, "false")]),
                           Expiration={"Days": tier.expire_days}))
    data = {}
    if tier.transitions:
        data["Transitions"] = [t.to_s3() for t in tier.transitions]
    if tier.expire_days is not None:
        data["Expiration"] = {"Days": tier.expire_days + 1}
    rules.append(_rule(managed_id(tier.name + "-data", prefix),
                       _tag_filter(prefix, [(TAG_CLASS, tier.name), (TAG_DATA, "true")]), **data))
    if tier.expire_days is not None:
        rules.append(_rule(managed_id(tier.name + "-untagged", prefix), _tag_filter(prefix, [(TAG_CLASS, tier.name)]),
                           Expiration={"Days": tier.expire_days + 2}))
    return rules


def wal_prefix(prefix, cluster):
    return "%s%s/wal/" % (prefix, cluster)


def wal_rule(prefix, cluster, tier):
    actions = {}
    if tier.transitions:
        actions["Transitions"] = [t.to_s3() for t in tier.transitions]
    if tier.expire_days is not None:
        actions["Expiration"] = {"Days": tier.expire_days}
    return _rule(managed_id("wal:" + cluster, prefix), {"Prefix": wal_prefix(prefix, cluster)}, **actions)


# --- validation ------------------------------------------------------------------------

def normalize_prefix(prefix):
    prefix = (prefix or "").strip("/")
    if ".." in prefix.split("/"):
        raise InputError("prefix must not contain '..'")
    if "@" in prefix:
        raise InputError("prefix must not contain '@' (it separates the prefix in rule ids)")
    return prefix + "/" if prefix else ""


def _days(where, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("%s must be a whole number of days, got %r" % (where, value))
    if value < minimum:
        raise InputError("%s must be at least %d, got %d" % (where, minimum, value))
    return value


def parse_tier(where, data, name):
    if not isinstance(data, dict):
        raise InputError("%s must be a dictionary with transitions and/or expire_days" % where)
    unknown = sorted(set(data) - {"transitions", "expire_days", "clusters"})
    if unknown:
        raise InputError("%s: unknown option(s) %s (expected transitions, expire_days)" % (where, ", ".join(unknown)))
    transitions = []
    for index, item in enumerate(data.get("transitions") or []):
        spot = "%s.transitions[%d]" % (where, index)
        if not isinstance(item, dict) or set(item) - {"days", "storage_class"} or "days" not in item \
                or "storage_class" not in item:
            raise InputError("%s must be {days: N, storage_class: CLASS}" % spot)
        storage_class = str(item["storage_class"]).upper()
        if storage_class not in STORAGE_CLASSES:
            raise InputError("%s.storage_class %r is not a storage class S3 transitions to (one of %s)"
                             % (spot, item["storage_class"], ", ".join(STORAGE_CLASSES)))
        transitions.append(Transition(_days(spot + ".days", item["days"]), storage_class))
    expire_days = data.get("expire_days")
    if expire_days is not None:
        expire_days = _days(where + ".expire_days", expire_days, minimum=1)
    if not transitions and expire_days is None:
        raise InputError("%s has neither transitions nor expire_days: leave it out instead" % where)
    tier = Tier(name, transitions, expire_days)
    check_order(where, tier)
    return tier


def check_order(where, tier):
    """S3's rules for one rule's transitions and expiration, with messages that say which."""
    previous = None
    for transition in tier.transitions:
        if transition.storage_class in IA_CLASSES and transition.days < IA_MINIMUM_DAYS:
            raise InputError("%s: S3 moves objects to %s only once they are %d days old (got days: %d)"
                             % (where, transition.storage_class, IA_MINIMUM_DAYS, transition.days))
        if previous is not None:
            if transition.storage_class == previous.storage_class:
                raise InputError("%s: two transitions to %s" % (where, transition.storage_class))
            if STORAGE_CLASSES.index(transition.storage_class) < STORAGE_CLASSES.index(previous.storage_class) \
                    or (previous.storage_class, transition.storage_class) in FORBIDDEN_STEPS:
                raise InputError("%s: S3 cannot move objects from %s to %s (transitions go down the order %s)"
                                 % (where, previous.storage_class, transition.storage_class, " -> ".join(STORAGE_CLASSES)))
            gap = IA_MINIMUM_DAYS if previous.storage_class in IA_CLASSES else 1
            if transition.days < previous.days + gap:
                raise InputError("%s: the transition to %s (day %d) must come at least %d day(s) after the one to %s "
                                 "(day %d)%s" % (where, transition.storage_class, transition.days, gap,
                                                 previous.storage_class, previous.days,
                                                 "; objects stay 30 days in an IA class" if gap > 1 else ""))
        previous = transition
    if tier.expire_days is not None and previous is not None and tier.expire_days <= previous.days:
        raise InputError("%s: expire_days (%d) must come after the last transition (to %s on day %d)"
                         % (where, tier.expire_days, previous.storage_class, previous.days))


def storage_warnings(where, tier):
    """Early-deletion charges: leaving a class before its minimum storage duration still pays for it."""
    warnings = []
    spans = tier.transitions + ([Transition(tier.expire_days, None)] if tier.expire_days is not None else [])
    for current, following in zip(spans, spans[1:]):
        minimum = MINIMUM_STORAGE_DAYS.get(current.storage_class)
        if minimum and following.days - current.days < minimum:
            warnings.append("%s: objects leave %s after %d days, but S3 bills at least %d days there"
                            % (where, current.storage_class, following.days - current.days, minimum))
    return warnings


def retention_days(policy, gfs_class):
    """How long backup_retention keeps backups of a class at most, assuming one backup per period
    and no gaps: N periods, plus one for the day the promotion to a longer class happens."""
    count = policy.counts.get(gfs_class) or 0
    return int(math.ceil(PERIOD_DAYS[gfs_class] * (count + 1))) if count else 0


def warning_margin(gfs_class, needed):
    """Days beyond the bare minimum below which an expiry earns a warning: gaps in daily and
    weekly backups (weekends, missed runs) stretch what retention keeps by half; for the long
    classes, one more period."""
    if gfs_class in ("daily", "weekly"):
        return int(math.ceil(needed * 0.5))
    return int(math.ceil(PERIOD_DAYS[gfs_class]))


def retention_conflicts(tiers, policy):
    """(errors, warnings) for expirations that would delete backups the retention policy keeps."""
    errors, warnings = [], []
    for tier in tiers:
        needed = retention_days(policy, tier.name)
        if not needed or tier.expire_days is None:
            continue
        if tier.expire_days < needed:
            errors.append("tiers.%s.expire_days=%d deletes %s backups that the retention policy keeps (%s: %d "
                          "periods); use at least %d, or let backup_retention expire them"
                          % (tier.name, tier.expire_days, tier.name, tier.name, policy.counts[tier.name], needed))
        elif tier.expire_days < needed + warning_margin(tier.name, needed):
            warnings.append("tiers.%s.expire_days=%d leaves little margin over the %d days the retention policy keeps "
                            "%s backups when there is one per period; with gaps (no backups at weekends, missed runs) "
                            "retention reaches further back and the lifecycle rule deletes what it keeps"
                            % (tier.name, tier.expire_days, needed, tier.name))
    daily = dict((t.name, t) for t in tiers).get("daily")
    if daily is not None and daily.expire_days is not None and policy.keep_last > daily.expire_days:
        warnings.append("policy.keep_last=%d keeps the %d newest backups, which with one backup a day reach back "
                        "further than tiers.daily.expire_days=%d: S3 expires the older ones regardless"
                        % (policy.keep_last, policy.keep_last, daily.expire_days))
    return errors, warnings


def _rule_with_id(index, rule):
    where = "rules[%d]" % index
    if not isinstance(rule, dict):
        raise InputError("%s must be an S3 lifecycle rule (a dictionary with ID, Status, Filter and actions)" % where)
    rule_id = rule.get("ID")
    if not rule_id or not isinstance(rule_id, str):
        raise InputError("%s needs an ID (rules are matched by ID to stay idempotent)" % where)
    return rule


def check_raw_rule(index, rule):
    where = "rules[%d]" % index
    rule_id = _rule_with_id(index, rule)["ID"]
    if rule_id.startswith(RULE_ID_PREFIX):
        raise InputError("%s: ID %r starts with %r, which is reserved for the rules this module builds"
                         % (where, rule_id, RULE_ID_PREFIX))
    if len(rule_id) > MAX_ID_LENGTH:
        raise InputError("%s: ID is longer than %d characters" % (where, MAX_ID_LENGTH))
    if rule.get("Status") not in ("Enabled", "Disabled"):
        raise InputError("%s (%s): Status must be Enabled or Disabled" % (where, rule_id))
    if "Prefix" in rule and "Filter" in rule:
        raise InputError("%s (%s): give Filter or the legacy Prefix, not both" % (where, rule_id))
    actions = {"Expiration", "Transitions", "NoncurrentVersionTransitions", "NoncurrentVersionExpiration",
               "AbortIncompleteMultipartUpload"}
    unknown = sorted(set(rule) - actions - {"ID", "Status", "Filter", "Prefix"})
    if unknown:
        raise InputError("%s (%s): unknown key(s) %s" % (where, rule_id, ", ".join(unknown)))
    if not set(rule) & actions:
        raise InputError("%s (%s): the rule has no action (%s)" % (where, rule_id, ", ".join(sorted(actions))))
    rule = pruned(rule)   # null fields (YAML's `Date:` with no value) that botocore would refuse
    transitions = []
    for spot, item in enumerate(rule.get("Transitions") or []):
        if not isinstance(item, dict) or "Days" not in item or "StorageClass" not in item:
            raise InputError("%s (%s).Transitions[%d] needs Days and StorageClass (Date is not supported)"
                             % (where, rule_id, spot))
        transitions.append({"days": item["Days"], "storage_class": item["StorageClass"]})
    expiration = rule.get("Expiration") or {}
    tier_data = {"transitions": transitions}
    if "Days" in expiration:
        tier_data["expire_days"] = expiration["Days"]
    if transitions or "expire_days" in tier_data:
        parse_tier("%s (%s)" % (where, rule_id), tier_data, rule_id)
    if rule.get("AbortIncompleteMultipartUpload") and _has_tags(rule.get("Filter") or {}):
        raise InputError("%s (%s): S3 does not allow AbortIncompleteMultipartUpload with a tag filter" % (where, rule_id))
    if expiration.get("ExpiredObjectDeleteMarker"):
        if "Days" in expiration or "Date" in expiration:
            raise InputError("%s (%s): ExpiredObjectDeleteMarker cannot be combined with Days or Date in one Expiration"
                             % (where, rule_id))
        if _has_tags(rule.get("Filter") or {}):
            raise InputError("%s (%s): S3 does not allow ExpiredObjectDeleteMarker with a tag filter" % (where, rule_id))
    noncurrent = rule.get("NoncurrentVersionExpiration")
    if noncurrent is not None:
        if not isinstance(noncurrent, dict) or "NoncurrentDays" not in noncurrent:
            raise InputError("%s (%s): NoncurrentVersionExpiration needs NoncurrentDays" % (where, rule_id))
        _days("%s (%s).NoncurrentVersionExpiration.NoncurrentDays" % (where, rule_id), noncurrent["NoncurrentDays"], 1)
    return modern(rule)


def pruned(value, unwanted=lambda v: v is None):
    """`value` with the dict entries that are `unwanted` (after pruning them) left out, at any depth."""
    if isinstance(value, dict):
        cleaned = ((k, pruned(v, unwanted)) for k, v in value.items())
        return dict((k, v) for k, v in cleaned if not unwanted(v))
    if isinstance(value, list):
        return [pruned(v, unwanted) for v in value]
    return value


def modern(rule):
    """A rule in the V2 shape: S3 refuses a configuration that mixes the legacy rule-level
    Prefix (older tools write it) with Filter, and ours always use Filter."""
    if "Prefix" in rule and "Filter" not in rule:
        rule = dict(rule)
        rule["Filter"] = {"Prefix": rule.pop("Prefix") or ""}
    return rule


def _has_tags(filter_):
    return "Tag" in filter_ or bool((filter_.get("And") or {}).get("Tags"))


def build_spec(prefix="", tiers=None, wal=None, abort_incomplete_multipart_days=7,
               noncurrent_version_expiration_days=None, rules=None, retention_policy=None, allow_empty=False):
    """Validate everything (before any request is made) and return the LifecycleSpec."""
    prefix = normalize_prefix(prefix)
    tiers = tiers or {}
    unknown = sorted(set(tiers) - set(GFS_CLASSES))
    if unknown:
        raise InputError("tiers: unknown GFS class(es) %s (one of %s)" % (", ".join(unknown), ", ".join(GFS_CLASSES)))
    parsed = [parse_tier("tiers." + name, tiers[name], name) for name in GFS_CLASSES if tiers.get(name) is not None]
    warnings = []
    for tier in parsed:
        warnings.extend(storage_warnings("tiers." + tier.name, tier))

    wal_clusters, wal_tier = [], None
    if wal:
        wal = dict(wal)
        wal_clusters = [validate_cluster(c) for c in (wal.get("clusters") or [])]
        if not wal_clusters:
            raise InputError("wal.clusters must name the clusters whose WAL archive the rule covers")
        if len(set(wal_clusters)) != len(wal_clusters):
            raise InputError("wal.clusters lists a cluster twice")
        wal_tier = parse_tier("wal", wal, "wal")
        warnings.extend(storage_warnings("wal", wal_tier))
        if any(t.storage_class in ARCHIVE_STORAGE_CLASSES for t in wal_tier.transitions):
            warnings.append("wal: archived WAL (GLACIER/DEEP_ARCHIVE) must be restored from the archive tier "
                            "before a point-in-time recovery can replay it; that takes hours")

    abort_days = None
    if abort_incomplete_multipart_days:
        abort_days = _days("abort_incomplete_multipart_days", abort_incomplete_multipart_days, minimum=1)
    noncurrent_days = None
    if noncurrent_version_expiration_days is not None:
        noncurrent_days = _days("noncurrent_version_expiration_days", noncurrent_version_expiration_days, minimum=1)

    policy = Policy.from_dict(retention_policy) if retention_policy else None
    if policy is not None:
        errors, retention_warnings = retention_conflicts(parsed, policy)
        if errors:
            raise InputError("; ".join(errors))
        warnings.extend(retention_warnings)
    if wal_tier is not None:
        check_wal_expiry(parsed, wal_tier, policy)

    if allow_empty:
        # state absent: raw rules only name what to remove.
        raw = [_rule_with_id(index, rule) for index, rule in enumerate(rules or [])]
    else:
        raw = [check_raw_rule(index, rule) for index, rule in enumerate(rules or [])]
    ids = [rule["ID"] for rule in raw]
    duplicates = sorted(set(i for i in ids if ids.count(i) > 1))
    if duplicates:
        raise InputError("rules: duplicate ID(s) %s" % ", ".join(duplicates))
    spec = LifecycleSpec(prefix, parsed, wal_clusters, wal_tier or Tier("wal"), abort_days, noncurrent_days, raw, warnings)
    too_long = [rule["ID"] for rule in spec.managed_rules() if len(rule["ID"]) > MAX_ID_LENGTH]
    if too_long:
        raise InputError("prefix is too long: rule id %s would exceed %d characters" % (too_long[0], MAX_ID_LENGTH))
    if not spec.desired_rules() and not allow_empty:
        raise InputError("nothing to manage: give tiers, wal, rules, abort_incomplete_multipart_days or "
                         "noncurrent_version_expiration_days (use state: absent to remove our rules)")
    return spec


def check_wal_expiry(tiers, wal_tier, policy=None):
    """WAL is needed as long as the oldest base backup it can roll forward: never expire it
    sooner. A class kept without an expiry here (no tier, or a tier without expire_days) and
    not bounded by the retention policy keeps its backups for ever, so WAL must not expire."""
    if wal_tier.expire_days is None:
        return
    by_name = dict((t.name, t) for t in tiers)
    longest, unbounded = 0, []
    for name in GFS_CLASSES:
        tier = by_name.get(name)
        kept = tier.expire_days if tier is not None else None
        if policy is not None:
            retained = retention_days(policy, name)
            kept = retained if kept is None else min(kept, retained)
        if kept is None:
            unbounded.append(name)
        else:
            longest = max(longest, kept)
    if unbounded:
        raise InputError("wal.expire_days: %s backups have no expiry here (no tiers.<class>.expire_days%s), so the "
                         "WAL they need must not expire either; give them an expiry%s, or leave wal.expire_days out "
                         "and let retention remove WAL that no backup needs"
                         % (", ".join(unbounded), "" if policy else " and no retention_policy",
                            "" if policy else " or the retention_policy"))
    if wal_tier.expire_days <= longest:
        raise InputError("wal.expire_days (%d) must be longer than the longest-kept backups (%d days): WAL still "
                         "needed to restore them would be deleted" % (wal_tier.expire_days, longest))
