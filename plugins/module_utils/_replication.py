# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 replication of a backup bucket: the wanted ReplicationConfiguration from our options, S3's
answer normalized, the two compared, and the checks S3 itself would only make after a write (or
not at all: a KMS-encrypted bucket whose rules replicate nothing is accepted silently).

The comparison happens on one canonical rule shape (our option names, snake_case), which is
also what the module returns and shows in its diff. Everything S3 may answer that the options
do not model lands in the rule's ``other`` entry, so it counts as a difference instead of
being dropped without a trace."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.dbdr.backup.plugins.module_utils import _aws as aws
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError, NotFoundError


# Replica storage classes that make sense for an offsite copy (the API also knows OUTPOSTS,
# SNOW, EXPRESS_ONEZONE, FSX_OPENZFS, which cannot be replication targets of a normal bucket).
STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER",
                   "DEEP_ARCHIVE", "REDUCED_REDUNDANCY")
# S3 Replication Time Control has one fixed threshold.
RTC_MINUTES = 15
MAX_ID_LENGTH = 255
MAX_PREFIX_LENGTH = 1024
ROLE_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):iam::\d{12}:role/[\w+=,.@/-]+$")
BUCKET_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):s3:::(?P<name>[^/\s]+)$")
BUCKET_NAME = re.compile(r"^[A-Za-z0-9._-]{3,255}$")
# Default encryptions whose objects S3 replicates only when a rule opts in (SseKmsEncryptedObjects).
KMS_ENCRYPTION = ("aws:kms", "aws:kms:dsse")
# Destination settings the options do not model; kept visible under the rule's `other`.
UNMODELED_DESTINATION = (("Account", "destination_account"), ("AccessControlTranslation", "access_control_translation"))


class ReplicationRequest(object):
    """What the user asked for, validated: the source bucket, state, role, canonical rules, purge,
    and the region to reach each destination bucket in (None: the module's own)."""

    def __init__(self, bucket, state, role_arn, rules, purge, destination_regions):
        self.bucket = bucket
        self.state = state
        self.role_arn = role_arn
        self.rules = rules
        self.purge = purge
        self.destination_regions = destination_regions


class Plan(object):
    """The decision: `before`/`after` in the canonical shape (None: no configuration), the S3
    document to put (None when deleting or unchanged) and the action (put, delete or None)."""

    def __init__(self, before, after, document, action):
        self.before = before
        self.after = after
        self.document = document
        self.action = action

    @property
    def changed(self):
        return self.action is not None


# --------------------------------------------------------------------------- names and ARNs


def partition_of(role_arn):
    match = ROLE_ARN.match(role_arn or "")
    return match.group("partition") if match else "aws"


def bucket_name(name_or_arn):
    """The bucket name of a name or an S3 bucket ARN."""
    match = BUCKET_ARN.match(name_or_arn or "")
    return match.group("name") if match else name_or_arn


def bucket_arn(name_or_arn, partition="aws"):
    """The ARN S3 wants in Destination.Bucket, for a name or an ARN."""
    if BUCKET_ARN.match(name_or_arn or ""):
        return name_or_arn
    return "arn:%s:s3:::%s" % (partition, name_or_arn)


def default_rule_id(destination):
    """A stable id for a rule without one (S3 would invent a random one, and the next run would
    not recognize the rule). It names the destination only, so that changing a rule's prefix or
    storage class updates the rule instead of adding a second one."""
    return "dbdr-" + bucket_name(destination)


# --------------------------------------------------------------------------- canonical rules


def _rule(rule_id, priority, enabled, prefix, destination_arn, storage_class=None, delete_marker_replication=False,
          replica_kms_key_id=None, replicate_kms_encrypted=False, replication_time_control=False, metrics=False,
          other=None):
    rule = dict(id=rule_id, priority=priority, enabled=enabled, prefix=prefix,
                destination_bucket=bucket_name(destination_arn), destination_bucket_arn=destination_arn,
                storage_class=storage_class, delete_marker_replication=delete_marker_replication,
                replica_kms_key_id=replica_kms_key_id, replicate_kms_encrypted=replicate_kms_encrypted,
                replication_time_control=replication_time_control, metrics=metrics)
    if other:
        rule["other"] = other
    return rule


def desired_rule(options, index, partition):
    """The canonical rule of one element of the `rules` option (Ansible's defaults applied)."""
    prefix = options.get("prefix") or ""
    destination = options["destination_bucket"]
    rtc = bool(options.get("replication_time_control"))
    kms_key = options.get("replica_kms_key_id") or None
    priority = options.get("priority")
    return _rule(
        rule_id=options.get("id") or default_rule_id(destination),
        priority=index + 1 if priority is None else priority,
        enabled=options.get("enabled", True) is not False,
        prefix=prefix,
        destination_arn=bucket_arn(destination, partition),
        storage_class=options.get("storage_class") or None,
        delete_marker_replication=bool(options.get("delete_marker_replication")),
        replica_kms_key_id=kms_key,
        # S3 replicates SSE-KMS objects only when asked, and then needs the replica's key.
        replicate_kms_encrypted=kms_key is not None,
        replication_time_control=rtc,
        # Replication Time Control requires the replication metrics.
        metrics=rtc)


def _enabled(block):
    return isinstance(block, dict) and block.get("Status") == "Enabled"


def _filter(rule, other):
    """(prefix, tags) of a rule's Filter; V1 rules carry a top-level Prefix instead."""
    if "Filter" not in rule:
        other["schema"] = "V1"
        return rule.get("Prefix") or "", {}
    flt = rule.get("Filter") or {}
    if "And" in flt:
        flt = dict(flt["And"], Tags=flt["And"].get("Tags") or [])
    tags = dict((t["Key"], t["Value"]) for t in flt.get("Tags") or [])
    if "Tag" in flt:
        tags[flt["Tag"]["Key"]] = flt["Tag"]["Value"]
    return flt.get("Prefix") or "", tags


def canonical_rule(rule):
    """The canonical shape of a rule as S3 returns it.

    Equivalent spellings collapse: ``Filter: {}``, ``{Prefix: ""}`` and ``{And: {Prefix: ""}}`` are
    all "every object"; a missing block and one whose Status is Disabled mean the same; tags are a
    dict. V1 rules (no Filter) replicate delete markers by definition and are marked as such.
    """
    other = {}
    prefix, tags = _filter(rule, other)
    if tags:
        other["filter_tags"] = dict(sorted(tags.items()))
    destination = rule.get("Destination") or {}
    for key, name in UNMODELED_DESTINATION:
        if destination.get(key):
            other[name] = destination[key]
    criteria = rule.get("SourceSelectionCriteria") or {}
    if _enabled(criteria.get("ReplicaModifications")):
        other["replica_modifications"] = True
    if _enabled(rule.get("ExistingObjectReplication")):
        other["existing_object_replication"] = True
    rtc = destination.get("ReplicationTime") or {}
    if _enabled(rtc) and (rtc.get("Time") or {}).get("Minutes", RTC_MINUTES) != RTC_MINUTES:
        other["replication_time_minutes"] = rtc["Time"]["Minutes"]
    if "Filter" in rule:
        delete_markers = _enabled(rule.get("DeleteMarkerReplication"))
    else:
        delete_markers = True
    return _rule(
        rule_id=rule.get("ID"),
        priority=rule.get("Priority"),
        enabled=rule.get("Status") == "Enabled",
        prefix=prefix,
        destination_arn=destination.get("Bucket"),
        storage_class=destination.get("StorageClass") or None,
        delete_marker_replication=delete_markers,
        replica_kms_key_id=(destination.get("EncryptionConfiguration") or {}).get("ReplicaKmsKeyID") or None,
        replicate_kms_encrypted=_enabled(criteria.get("SseKmsEncryptedObjects")),
        replication_time_control=_enabled(rtc),
        metrics=_enabled(destination.get("Metrics")),
        other=other)


def s3_rule(rule):
    """The S3 API shape (V2 schema: Filter, Priority, DeleteMarkerReplication) of a canonical rule
    we manage."""
    destination = {"Bucket": rule["destination_bucket_arn"]}
    if rule["storage_class"]:
        destination["StorageClass"] = rule["storage_class"]
    if rule["replica_kms_key_id"]:
        destination["EncryptionConfiguration"] = {"ReplicaKmsKeyID": rule["replica_kms_key_id"]}
    if rule["replication_time_control"]:
        destination["ReplicationTime"] = {"Status": "Enabled", "Time": {"Minutes": RTC_MINUTES}}
    if rule["metrics"]:
        destination["Metrics"] = {"Status": "Enabled", "EventThreshold": {"Minutes": RTC_MINUTES}}
    out = {
        "ID": rule["id"],
        "Priority": rule["priority"],
        "Status": "Enabled" if rule["enabled"] else "Disabled",
        "Filter": {"Prefix": rule["prefix"]},
        "DeleteMarkerReplication": {"Status": "Enabled" if rule["delete_marker_replication"] else "Disabled"},
        "Destination": destination,
    }
    if rule["replicate_kms_encrypted"]:
        out["SourceSelectionCriteria"] = {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
    return out


def _sort_key(rule):
    priority = rule.get("priority")
    return (priority is None, priority if priority is not None else 0, rule.get("id") or "")


def describe(role_arn, rules):
    """The canonical configuration: what the module returns and diffs. Order never matters to S3,
    so rules are sorted by priority, then id."""
    return {"role_arn": role_arn, "rules": sorted(rules, key=_sort_key)}


def canonical_configuration(document):
    """The canonical shape of a GetBucketReplication ReplicationConfiguration, or None."""
    if not document:
        return None
    return describe(document.get("Role"), [canonical_rule(r) for r in document.get("Rules") or []])


# --------------------------------------------------------------------------- validation


def request_from_params(params):
    """A ReplicationRequest from the module's options; every problem of the options themselves is
    reported at once, before anything is read or written."""
    problems = []
    bucket = params.get("bucket") or ""
    state = params.get("state") or "present"
    if not BUCKET_NAME.match(bucket):
        problems.append("bucket %r is not a valid bucket name" % bucket)
    if state == "absent":
        if params.get("rules"):
            problems.append("state=absent removes the whole replication configuration and takes no rules; "
                            "to remove single rules, list the ones to keep with purge=true")
        _raise(problems)
        return ReplicationRequest(bucket, state, None, [], True, {})
    role_arn = params.get("role_arn") or ""
    if not ROLE_ARN.match(role_arn):
        problems.append("role_arn %r is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)" % role_arn)
    options = params.get("rules") or []
    if not options:
        problems.append("rules is empty: give at least one rule (or use state=absent)")
    partition = partition_of(role_arn)
    rules, regions = [], {}
    for index, option in enumerate(options):
        where = "rules[%d]" % index
        destination = option.get("destination_bucket") or ""
        name = bucket_name(destination)
        if destination.startswith("arn:") and not BUCKET_ARN.match(destination):
            problems.append("%s: destination_bucket %r is neither a bucket name nor an S3 bucket ARN "
                            "(arn:aws:s3:::<name>)" % (where, destination))
        elif not BUCKET_NAME.match(name):
            problems.append("%s: destination_bucket %r is not a valid bucket name" % (where, destination))
        elif name == bucket:
            problems.append("%s: destination_bucket %s is the source bucket itself: replication needs a second "
                            "bucket (in another region for an offsite copy)" % (where, name))
        if option.get("storage_class") and option["storage_class"] not in STORAGE_CLASSES:
            problems.append("%s: storage_class %r is not one of %s"
                            % (where, option["storage_class"], ", ".join(STORAGE_CLASSES)))
        if option.get("priority") is not None and option["priority"] < 0:
            problems.append("%s: priority must be 0 or more" % where)
        if len(option.get("prefix") or "") > MAX_PREFIX_LENGTH:
            problems.append("%s: prefix is longer than %d characters" % (where, MAX_PREFIX_LENGTH))
        rule = desired_rule(option, index, partition)
        if len(rule["id"]) > MAX_ID_LENGTH:
            problems.append("%s: the rule id %r is longer than %d characters; give a shorter id"
                            % (where, rule["id"], MAX_ID_LENGTH))
        rules.append(rule)
        region = option.get("destination_region")
        if name in regions and regions[name] != region:
            problems.append("%s: destination_region of %s differs between rules" % (where, name))
        regions[name] = region
    problems += duplicate_problems(rules)
    _raise(problems)
    return ReplicationRequest(bucket, state, role_arn, rules, bool(params.get("purge")), regions)


def duplicate_problems(rules):
    """Duplicate ids and priorities among the rules the bucket would hold (S3 rejects both)."""
    problems = []
    for key, label in (("id", "id"), ("priority", "priority")):
        seen = {}
        for rule in rules:
            if rule.get(key) is None:
                continue
            seen.setdefault(rule[key], []).append(rule["id"])
        for value, ids in sorted(seen.items(), key=lambda item: str(item[0])):
            if len(ids) > 1:
                problems.append("%s %s is used by %d rules (%s); each rule needs its own"
                                % (label, value, len(ids), ", ".join(str(i) for i in ids)))
    return problems


def _raise(problems):
    if problems:
        raise InputError("; ".join(problems))


# --------------------------------------------------------------------------- decide


def plan(request, current):
    """The Plan that turns the `current` ReplicationConfiguration (S3 shape, or None) into what
    `request` asks for. Pure; raises InputError when the resulting rules conflict."""
    before = canonical_configuration(current)
    if request.state == "absent":
        return Plan(before, None, None, "delete" if current else None)
    managed = set(rule["id"] for rule in request.rules)
    kept = []
    if not request.purge and current:
        kept = [r for r in current.get("Rules") or [] if r.get("ID") not in managed]
    v1 = [r.get("ID") for r in kept if "Filter" not in r]
    if v1:
        raise InputError("the bucket holds replication rules in the old schema without Filter (%s); S3 does not "
                         "mix them with the rules given here: rewrite them, or use purge=true to replace them"
                         % ", ".join(str(i) for i in v1))
    after_rules = list(request.rules) + [canonical_rule(r) for r in kept]
    _raise(duplicate_problems(after_rules))
    after = describe(request.role_arn, after_rules)
    if after == before:
        return Plan(before, after, None, None)
    document = {"Role": request.role_arn,
                "Rules": [s3_rule(r) for r in sorted(request.rules, key=_sort_key)] + kept}
    return Plan(before, after, document, "put")


# --------------------------------------------------------------------------- S3


def read_configuration(client, bucket):
    """The bucket's ReplicationConfiguration (S3 shape) or None."""
    answer = aws.call("read the replication configuration of s3://%s" % bucket, client.get_bucket_replication,
                      missing=("ReplicationConfigurationNotFoundError",), Bucket=bucket)
    return answer["ReplicationConfiguration"] if answer else None


def write(client, bucket, decided):
    """Carry out a Plan."""
    if decided.action == "put":
        aws.call("write the replication configuration of s3://%s" % bucket, client.put_bucket_replication,
                 Bucket=bucket, ReplicationConfiguration=decided.document)
    elif decided.action == "delete":
        aws.call("delete the replication configuration of s3://%s" % bucket, client.delete_bucket_replication,
                 Bucket=bucket)


def versioning(client, bucket):
    """"Enabled", "Suspended" or None (never enabled)."""
    answer = aws.call("read the versioning of s3://%s" % bucket, client.get_bucket_versioning, Bucket=bucket)
    return answer.get("Status")


def default_encryption(client, bucket):
    """The SSEAlgorithm of the bucket's default encryption rule, or None."""
    answer = aws.call("read the default encryption of s3://%s" % bucket, client.get_bucket_encryption,
                      missing=("ServerSideEncryptionConfigurationNotFoundError",), Bucket=bucket)
    rules = ((answer or {}).get("ServerSideEncryptionConfiguration") or {}).get("Rules") or []
    for rule in rules:
        algorithm = (rule.get("ApplyServerSideEncryptionByDefault") or {}).get("SSEAlgorithm")
        if algorithm:
            return algorithm
    return None


def object_lock_enabled(client, bucket):
    answer = aws.call("read the Object Lock configuration of s3://%s" % bucket, client.get_object_lock_configuration,
                      missing=("ObjectLockConfigurationNotFoundError",), Bucket=bucket)
    return ((answer or {}).get("ObjectLockConfiguration") or {}).get("ObjectLockEnabled") == "Enabled"


def location(client, bucket):
    """The bucket's region (S3 answers None for us-east-1 and EU for the oldest eu-west-1 buckets)."""
    answer = aws.call("read the location of s3://%s" % bucket, client.get_bucket_location, Bucket=bucket)
    constraint = answer.get("LocationConstraint")
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(constraint, constraint)


def check_buckets(client, client_for, req):
    """What S3 requires of the buckets, checked before any write: the source and every
    destination exist and have versioning enabled; the source's KMS-encrypted objects would be
    replicated; a source with Object Lock has destinations with Object Lock. Returns warnings;
    raises InputError listing every problem.

    `client_for(region)` gives a client for a destination's region (None: `client`)."""
    problems, warnings = [], []
    bucket = req.bucket
    try:
        status = versioning(client, bucket)
    except NotFoundError:
        raise InputError("the source bucket s3://%s does not exist (or is not visible with these credentials)" % bucket)
    if status != "Enabled":
        problems.append("versioning is %s on the source bucket s3://%s; S3 replicates only from and to versioned "
                        "buckets: enable it first" % (status or "not enabled", bucket))
    source_region = location(client, bucket)
    source_encryption = default_encryption(client, bucket)
    source_locked = object_lock_enabled(client, bucket)
    if source_encryption in KMS_ENCRYPTION:
        unencrypted = [r["id"] for r in req.rules if not r["replica_kms_key_id"]]
        if unencrypted:
            problems.append("s3://%s encrypts with %s by default, and S3 does not replicate KMS-encrypted objects "
                            "unless the rule names the replica's KMS key: set replica_kms_key_id on rule(s) %s"
                            % (bucket, source_encryption, ", ".join(unencrypted)))
    for name, region in sorted(req.destination_regions.items()):
        destination_client = client_for(region) if region else client
        try:
            status = versioning(destination_client, name)
        except NotFoundError:
            problems.append("the destination bucket s3://%s does not exist (or is not visible with these credentials)"
                            % name)
            continue
        if status != "Enabled":
            problems.append("versioning is %s on the destination bucket s3://%s; S3 replicates only to versioned "
                            "buckets: enable it first" % (status or "not enabled", name))
        if source_locked and not object_lock_enabled(destination_client, name):
            problems.append("s3://%s uses Object Lock but the destination s3://%s does not; S3 cannot replicate "
                            "locked objects into it" % (bucket, name))
        destination_region = location(destination_client, name)
        if destination_region == source_region:
            warnings.append("s3://%s is in the same region (%s) as s3://%s: that is a second copy, not an offsite one"
                            % (name, source_region, bucket))
    for rule in req.rules:
        key = rule["replica_kms_key_id"]
        if key and not key.startswith("arn:"):
            warnings.append("rule %s: replica_kms_key_id %s is not a key ARN; S3 resolves key ids and aliases in the "
                            "account of whoever writes the replica, which may not be yours: give the key ARN"
                            % (rule["id"], key))
    _raise(problems)
    return warnings
