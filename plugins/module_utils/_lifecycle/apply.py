# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a bucket's lifecycle configuration, merge our rules into it, write it back when it differs.

S3 replaces the whole configuration on every write, so rules this module does not manage are
carried over unchanged (unless purge). Comparison is on a normal form: rules keyed by ID, filters
in one shape, transitions by day, tags by key, empty and default values dropped. What S3 adds
or reorders never shows as a change."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

from ansible_collections.dbdr.backup.plugins.module_utils import _aws as aws
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._lifecycle.rules import MAX_RULES
from ansible_collections.dbdr.backup.plugins.module_utils._retry import retried

try:
    from botocore.exceptions import ClientError
except ImportError:  # pragma: no cover - the module reports missing boto3
    ClientError = Exception

NO_CONFIGURATION = ("NoSuchLifecycleConfiguration",)


class Lifecycle:
    """A bucket's lifecycle configuration: the rules and the bucket-wide transition size default."""

    def __init__(self, rules, minimum_object_size=None):
        self.rules = rules
        self.minimum_object_size = minimum_object_size


def read_lifecycle(client, bucket):
    return _read(client, bucket, what="read the lifecycle configuration of bucket %s" % bucket)


def write_lifecycle(client, bucket, lifecycle):
    _write(client, bucket, lifecycle, what="write the lifecycle configuration of bucket %s" % bucket)


@retried()
@aws.translate_errors_named()
def _read(client, bucket, what):
    try:
        answer = client.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as exc:
        if aws.error_code(exc)[0] in NO_CONFIGURATION:
            return Lifecycle([])
        raise
    return Lifecycle(answer.get("Rules") or [], answer.get("TransitionDefaultMinimumObjectSize"))


@retried()
@aws.translate_errors_named()
def _write(client, bucket, lifecycle, what):
    if not lifecycle.rules:
        client.delete_bucket_lifecycle(Bucket=bucket)
        return
    args = {"Bucket": bucket, "LifecycleConfiguration": {"Rules": lifecycle.rules}}
    if lifecycle.minimum_object_size:
        # Keep the bucket's choice: S3 would otherwise reset it to its default on this write.
        args["TransitionDefaultMinimumObjectSize"] = lifecycle.minimum_object_size
    client.put_bucket_lifecycle_configuration(**args)


def normal_filter(rule):
    filter_ = copy.deepcopy(rule.get("Filter"))
    if filter_ is None:
        filter_ = {"Prefix": rule.get("Prefix") or ""}
    filter_ = dict((k, v) for k, v in filter_.items() if v is not None)
    and_ = filter_.get("And")
    if and_ is not None:
        and_ = dict((k, v) for k, v in and_.items() if v not in (None, "", []))
        if and_.get("Tags"):
            and_["Tags"] = sorted(and_["Tags"], key=lambda t: (t.get("Key"), t.get("Value")))
        if len(and_) == 1 and len(and_.get("Tags") or []) == 1:
            return {"Tag": and_["Tags"][0]}
        if list(and_) == ["Prefix"]:
            return {"Prefix": and_["Prefix"]}
        return {"And": and_}
    if not filter_:
        return {"Prefix": ""}
    return filter_


def _drop_empty(value):
    if isinstance(value, dict):
        cleaned = ((k, _drop_empty(v)) for k, v in value.items())
        return dict((k, v) for k, v in cleaned if v is not None and v is not False and v != [] and v != {})
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def normal_rule(rule):
    """One rule in the form used for comparison."""
    rule = copy.deepcopy(rule)
    rule["Filter"] = normal_filter(rule)
    rule.pop("Prefix", None)
    for key in ("Transitions", "NoncurrentVersionTransitions"):
        if rule.get(key):
            rule[key] = sorted(rule[key], key=lambda t: (t.get("Days", t.get("NoncurrentDays", 0)),
                                                         t.get("StorageClass")))
            for item in rule[key]:
                if item.get("StorageClass"):
                    item["StorageClass"] = item["StorageClass"].upper()
    return _drop_empty(rule)


def normal_rules(rules):
    return dict((rule.get("ID"), normal_rule(rule)) for rule in rules)


class Plan:
    def __init__(self, before, after, added, updated, removed, kept):
        self.before = before
        self.after = after
        self.added = added
        self.updated = updated
        self.removed = removed
        self.kept = kept

    @property
    def changed(self):
        return bool(self.added or self.updated or self.removed)


def plan_lifecycle(current, spec, purge=False, absent=False):
    """The configuration to write: rules we don't manage (unless purge), then ours."""
    desired = [] if absent else spec.desired_rules()
    raw_ids = set(rule["ID"] for rule in spec.raw_rules)
    desired_ids = set(rule["ID"] for rule in desired)
    kept, removed = [], []
    for rule in current.rules:
        rule_id = rule.get("ID")
        if rule_id in desired_ids:
            continue
        if spec.owns(rule_id) or (absent and rule_id in raw_ids) or (purge and not absent):
            removed.append(rule_id)
        else:
            kept.append(rule)
    after_rules = kept + desired
    if len(after_rules) > MAX_RULES:
        raise InputError("the configuration would hold %d rules; S3 allows %d" % (len(after_rules), MAX_RULES))
    before_by_id, after_by_id = normal_rules(current.rules), normal_rules(after_rules)
    added = [i for i in after_by_id if i not in before_by_id]
    updated = [i for i in after_by_id if i in before_by_id and before_by_id[i] != after_by_id[i]]
    return Plan(current, Lifecycle(after_rules, current.minimum_object_size), added, updated, removed,
                [rule.get("ID") for rule in kept])
