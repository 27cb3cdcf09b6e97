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
import time

from ansible_collections.dbdr.backup.plugins.module_utils import _aws as aws
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._lifecycle.rules import MAX_RULES, RULE_ID_PREFIX, modern, pruned


NO_CONFIGURATION = ("NoSuchLifecycleConfiguration",)


class Lifecycle:
    """A bucket's lifecycle configuration: the rules and the bucket-wide transition size default."""

    def __init__(self, rules, minimum_object_size=None):
        self.rules = rules
        self.minimum_object_size = minimum_object_size


def read_lifecycle(client, bucket):
    answer = aws.call("read the lifecycle configuration of bucket %s" % bucket,
                      client.get_bucket_lifecycle_configuration, missing=NO_CONFIGURATION, Bucket=bucket)
    if answer is None:
        return Lifecycle([])
    return Lifecycle(answer.get("Rules") or [], answer.get("TransitionDefaultMinimumObjectSize"))


def write_lifecycle(client, bucket, lifecycle):
    what = "write the lifecycle configuration of bucket %s" % bucket
    if not lifecycle.rules:
        aws.call(what, client.delete_bucket_lifecycle, Bucket=bucket)
        return
    args = {"Bucket": bucket, "LifecycleConfiguration": {"Rules": lifecycle.rules}}
    if lifecycle.minimum_object_size:
        # Keep the bucket's choice: S3 would otherwise reset it to its default on this write.
        args["TransitionDefaultMinimumObjectSize"] = lifecycle.minimum_object_size
    aws.call(what, client.put_bucket_lifecycle_configuration, **args)


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


def _empty(value):
    return value is None or value is False or value == [] or value == {}


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
    return pruned(rule, _empty)


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


def overlapping_prefixes(rules, prefix):
    """Prefixes of other repositories' dbdr rules in the bucket that nest with ours ("" nests
    with all): a rule filtered by the shorter prefix also acts on the other's backups."""
    found = set()
    for rule in rules:
        rule_id = rule.get("ID") or ""
        if not rule_id.startswith(RULE_ID_PREFIX) or "@" not in rule_id:
            continue
        other = rule_id.rsplit("@", 1)[1]
        if other != prefix and (other.startswith(prefix) or prefix.startswith(other)):
            found.add(other)
    return sorted(found)


def plan_lifecycle(current, spec, purge=False, absent=False):
    """The configuration to write: rules we don't manage (unless purge), then ours."""
    desired = [] if absent else spec.desired_rules()
    if not absent and not purge:
        nested = overlapping_prefixes(current.rules, spec.prefix)
        if nested:
            raise InputError("the bucket holds dbdr lifecycle rules for prefix(es) %s, which nest with %r: a rule "
                             "filtered by the shorter prefix acts on both repositories and the shortest expiry wins; "
                             "give the repositories prefixes that do not nest (or remove those rules)"
                             % (", ".join(repr(p) for p in nested), spec.prefix))
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
            kept.append(modern(rule))
    after_rules = kept + desired
    if len(after_rules) > MAX_RULES:
        raise InputError("the configuration would hold %d rules; S3 allows %d" % (len(after_rules), MAX_RULES))
    before_by_id, after_by_id = normal_rules(current.rules), normal_rules(after_rules)
    added = [i for i in after_by_id if i not in before_by_id]
    updated = [i for i in after_by_id if i in before_by_id and before_by_id[i] != after_by_id[i]]
    return Plan(current, Lifecycle(after_rules, current.minimum_object_size), added, updated, removed,
                [rule.get("ID") for rule in kept])


# S3 applies a new lifecycle configuration with a delay; reads may show the old one meanwhile.
PROPAGATION_SECONDS = 60


def converge(client, bucket, spec, purge=False, absent=False, check_mode=False, sleep=time.sleep,
             clock=time.monotonic):
    """Read, plan and (unless check mode) write; returns (plan, warnings).

    The configuration is read again just before the write and the plan redone if it moved (a
    task for another prefix of the bucket ran meanwhile), and after the write it is read until
    it shows our rules, so that the next run (or task) starts from what S3 really holds."""
    plan = plan_lifecycle(read_lifecycle(client, bucket), spec, purge=purge, absent=absent)
    if not plan.changed or check_mode:
        return plan, []
    latest = read_lifecycle(client, bucket)
    if normal_rules(latest.rules) != normal_rules(plan.before.rules):
        plan = plan_lifecycle(latest, spec, purge=purge, absent=absent)
        if not plan.changed:
            return plan, []
    write_lifecycle(client, bucket, plan.after)
    wanted = normal_rules(plan.after.rules)
    deadline = clock() + PROPAGATION_SECONDS
    while normal_rules(read_lifecycle(client, bucket).rules) != wanted:
        if clock() >= deadline:
            return plan, ["S3 does not show the new lifecycle configuration of %s after %d s; it may still be "
                          "propagating (run the task again later to confirm)" % (bucket, PROPAGATION_SECONDS)]
        sleep(2)
    return plan, []
