#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: s3_lifecycle
short_description: Tier and expire backups in S3 by GFS class, idempotently
version_added: 0.1.0
description:
  - Manages the lifecycle configuration of the bucket holding a dbdr.backup repository from a
    tier specification per GFS class (the C(dbdr-class) tag that pg_backup sets and backup_retention
    promotes). Each class gets a rule expiring its manifests (C(dbdr-data=false)), a rule moving its
    backup data (C(dbdr-data=true)) to colder storage classes and expiring it a day after the manifests,
    and a rule expiring objects of the class without the data tag a day later still. Manifests never move
    out of immediate access, so the catalog, retention and restores can always read them.
  - Also manages an abort rule for incomplete multipart uploads, noncurrent version expiration for
    versioned buckets, WAL archive rules that never expire WAL before the backups that need it, and raw
    extra rules.
  - Rules it does not manage (other IDs, other prefixes) are kept unless O(purge=true). S3 replaces the
    whole configuration on each write; the module writes only when the normalized rules differ, so a
    second run reports no change.
  - Everything is validated against S3's own rules before any request that writes (see docs/lifecycle.md).
author:
  - dbdr.backup maintainers (@dbdr-backup)
extends_documentation_fragment:
  - dbdr.backup.aws
options:
  bucket:
    description: Name of the bucket.
    type: str
    required: true
  prefix:
    description:
      - Key prefix of the repository in the bucket (the O(dbdr.backup.pg_backup#module:repository.prefix) given to pg_backup).
      - Rule IDs carry it, so several repositories in one bucket each keep their own rules.
    type: str
    default: ''
  state:
    description:
      - V(present) makes the rules match the specification.
      - V(absent) removes the rules this module manages for O(prefix) and the raw O(rules) named by ID.
    type: str
    choices: [ present, absent ]
    default: present
  purge:
    description:
      - Remove every rule of the bucket that is not in this specification (other prefixes' too).
      - Ignored with O(state=absent), which only ever removes this prefix's rules and the named raw rules.
    type: bool
    default: false
  tiers:
    description:
      - One entry per GFS class. Leave a class out to leave its objects alone.
      - Transitions must go down S3's order STANDARD_IA, INTELLIGENT_TIERING, ONEZONE_IA, GLACIER_IR, GLACIER,
        DEEP_ARCHIVE (not ONEZONE_IA to GLACIER_IR); IA classes only from day 30 and for 30 days at least; the
        expiry after the last transition.
    type: dict
    suboptions:
      daily:
        description: Lifecycle of backups tagged C(dbdr-class=daily).
        type: dict
        suboptions:
          transitions:
            description: Storage classes the backup data moves to, by age in days.
            type: list
            elements: dict
            suboptions:
              days:
                description: Age in days (from the upload) at which the data moves.
                type: int
                required: true
              storage_class:
                description: Storage class it moves to.
                type: str
                required: true
                choices: [ STANDARD_IA, INTELLIGENT_TIERING, ONEZONE_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE ]
          expire_days:
            description:
              - Age in days at which the backup's manifest is deleted (its data a day later). Leave out to keep forever.
              - Keep it above what O(retention_policy) keeps; backup_retention is what should delete backups,
                the expiry is the backstop.
            type: int
      weekly:
        description: Lifecycle of backups tagged C(dbdr-class=weekly).
        type: dict
        suboptions:
          transitions:
            description: Storage classes the backup data moves to, by age in days.
            type: list
            elements: dict
            suboptions:
              days:
                description: Age in days (from the upload) at which the data moves.
                type: int
                required: true
              storage_class:
                description: Storage class it moves to.
                type: str
                required: true
                choices: [ STANDARD_IA, INTELLIGENT_TIERING, ONEZONE_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE ]
          expire_days:
            description:
              - Age in days at which the backup's manifest is deleted (its data a day later). Leave out to keep forever.
              - Keep it above what O(retention_policy) keeps; backup_retention is what should delete backups,
                the expiry is the backstop.
            type: int
      monthly:
        description: Lifecycle of backups tagged C(dbdr-class=monthly).
        type: dict
        suboptions:
          transitions:
            description: Storage classes the backup data moves to, by age in days.
            type: list
            elements: dict
            suboptions:
              days:
                description: Age in days (from the upload) at which the data moves.
                type: int
                required: true
              storage_class:
                description: Storage class it moves to.
                type: str
                required: true
                choices: [ STANDARD_IA, INTELLIGENT_TIERING, ONEZONE_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE ]
          expire_days:
            description:
              - Age in days at which the backup's manifest is deleted (its data a day later). Leave out to keep forever.
              - Keep it above what O(retention_policy) keeps; backup_retention is what should delete backups,
                the expiry is the backstop.
            type: int
      yearly:
        description: Lifecycle of backups tagged C(dbdr-class=yearly).
        type: dict
        suboptions:
          transitions:
            description: Storage classes the backup data moves to, by age in days.
            type: list
            elements: dict
            suboptions:
              days:
                description: Age in days (from the upload) at which the data moves.
                type: int
                required: true
              storage_class:
                description: Storage class it moves to.
                type: str
                required: true
                choices: [ STANDARD_IA, INTELLIGENT_TIERING, ONEZONE_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE ]
          expire_days:
            description:
              - Age in days at which the backup's manifest is deleted (its data a day later). Leave out to keep forever.
              - Keep it above what O(retention_policy) keeps; backup_retention is what should delete backups,
                the expiry is the backstop.
            type: int
  wal:
    description:
      - Rules for the WAL archive of point-in-time recovery, C(<prefix><cluster>/wal/), one per cluster.
      - O(wal.expire_days) must be longer than every tier's expiry and is refused when a tier never expires;
        WAL is needed as long as the oldest base backup it rolls forward.
    type: dict
    suboptions:
      clusters:
        description: Clusters whose WAL archive the rules cover.
        type: list
        elements: str
        required: true
      transitions:
        description: Storage classes the WAL moves to, by age in days.
        type: list
        elements: dict
        suboptions:
          days:
            description: Age in days at which the WAL moves.
            type: int
            required: true
          storage_class:
            description: Storage class it moves to.
            type: str
            required: true
            choices: [ STANDARD_IA, INTELLIGENT_TIERING, ONEZONE_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE ]
      expire_days:
        description: Age in days at which WAL is deleted. Leave out to let retention decide.
        type: int
  abort_incomplete_multipart_days:
    description: Abort multipart uploads left incomplete (a killed backup) after this many days. V(0) for no rule.
    type: int
    default: 7
  noncurrent_version_expiration_days:
    description:
      - For versioned buckets, delete noncurrent versions (what a delete left behind) after this many days,
        and remove delete markers with no versions left.
      - With Object Lock, versions under retention are deleted only once their retention ends.
    type: int
  rules:
    description:
      - Raw extra rules in the S3 API's shape (C(ID), C(Status), C(Filter), actions), matched by ID.
      - IDs starting with C(dbdr:) are reserved.
    type: list
    elements: dict
    default: []
  retention_policy:
    description:
      - The O(dbdr.backup.backup_retention#module:policy) in use. When given, an expiry that would delete
        backups the policy keeps is refused.
    type: dict
  daily_backup_bytes:
    description: Size of one backup, for the projected monthly cost per tier in RV(cost).
    type: int
  prices:
    description: Price per GiB-month by storage class, overriding the defaults (Amazon S3 list prices in USD, us-east-1).
    type: dict
  currency:
    description: Currency name shown with the cost projection.
    type: str
    default: USD
notes:
  - Supports check mode (nothing is written, C(changed) is what a real run would report) and diff mode.
  - S3 holds one lifecycle configuration per bucket. Run one task per bucket at a time (V(run_once), or
    V(throttle=1) when several hosts delegate to the controller); the module re-reads the configuration just
    before writing and waits until S3 shows the new one, which narrows but cannot close the window.
  - Repositories sharing a bucket need prefixes that do not nest (V(prod) and V(prod/eu) do); a rule for the
    shorter prefix acts on both. The module refuses to manage rules next to another prefix's that nest with it.
  - Objects stored before the C(dbdr-data) tag was introduced expire with their class but never transition.
  - Backups that backup_retention keeps for other reasons than their class (keep_last, the newest verified
    backup, label C(keep)) still expire with their class; see docs/retention.md.
seealso:
  - module: dbdr.backup.backup_retention
  - module: dbdr.backup.backup_info
'''

EXAMPLES = r'''
- name: Tier the backups of the prod repository
  dbdr.backup.s3_lifecycle:
    bucket: acme-pg-backups
    prefix: prod
    region: eu-central-1
    tiers:
      daily: {expire_days: 23}
      weekly: {transitions: [{days: 30, storage_class: STANDARD_IA}], expire_days: 95}
      monthly: {transitions: [{days: 30, storage_class: GLACIER_IR}], expire_days: 600}
      yearly: {transitions: [{days: 1, storage_class: DEEP_ARCHIVE}], expire_days: 3300}
    noncurrent_version_expiration_days: 30
    retention_policy: {daily: 14, weekly: 8, monthly: 12, yearly: 7}
    daily_backup_bytes: "{{ 40 * 1024 ** 3 }}"
  register: lifecycle

- name: Keep WAL for PITR, moving it to IA after a month
  dbdr.backup.s3_lifecycle:
    bucket: acme-pg-backups
    prefix: prod
    tiers:
      daily: {expire_days: 16}
    wal:
      clusters: [main]
      transitions: [{days: 30, storage_class: STANDARD_IA}]

- name: Remove the rules this module manages for the prefix
  dbdr.backup.s3_lifecycle:
    bucket: acme-pg-backups
    prefix: prod
    state: absent
'''

RETURN = r'''
rules:
  description: The bucket's lifecycle rules after the run (what a real run writes, in check mode).
  returned: always
  type: list
  elements: dict
managed_rules:
  description: IDs of the rules this task manages (ours for the prefix, and the raw O(rules)).
  returned: always
  type: list
  elements: str
added:
  description: IDs of rules added.
  returned: always
  type: list
  elements: str
updated:
  description: IDs of rules whose content changed.
  returned: always
  type: list
  elements: str
removed:
  description: IDs of rules removed.
  returned: always
  type: list
  elements: str
cost:
  description:
    - Projected monthly storage cost per tier in the steady state for O(daily_backup_bytes), with the bytes
      per storage class, the prices used and the assumptions.
  returned: when O(daily_backup_bytes) is given
  type: dict
  sample: {"currency": "USD", "monthly_cost": 21.5, "tiers": {"daily": {"bytes_by_storage_class": {"STANDARD": 171798691840},
           "monthly_cost": 3.68, "expire_days": 16}}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dbdr.backup.plugins.module_utils import _aws as aws
from ansible_collections.dbdr.backup.plugins.module_utils._argspec import aws_argspec
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError
from ansible_collections.dbdr.backup.plugins.module_utils._glue import check_boto3
from ansible_collections.dbdr.backup.plugins.module_utils._lifecycle.apply import converge, normal_rule
from ansible_collections.dbdr.backup.plugins.module_utils._lifecycle.cost import project_cost
from ansible_collections.dbdr.backup.plugins.module_utils._lifecycle.rules import STORAGE_CLASSES, build_spec


def transitions_option():
    return dict(type="list", elements="dict", options=dict(
        days=dict(type="int", required=True),
        storage_class=dict(type="str", required=True, choices=list(STORAGE_CLASSES))))


def tier_option():
    return dict(type="dict", options=dict(transitions=transitions_option(), expire_days=dict(type="int")))


def argument_spec():
    spec = aws_argspec()
    spec.update(
        bucket=dict(type="str", required=True),
        prefix=dict(type="str", default=""),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        purge=dict(type="bool", default=False),
        tiers=dict(type="dict", options=dict(daily=tier_option(), weekly=tier_option(), monthly=tier_option(),
                                             yearly=tier_option())),
        wal=dict(type="dict", options=dict(clusters=dict(type="list", elements="str", required=True),
                                           transitions=transitions_option(), expire_days=dict(type="int"))),
        abort_incomplete_multipart_days=dict(type="int", default=7),
        noncurrent_version_expiration_days=dict(type="int"),
        rules=dict(type="list", elements="dict", default=[]),
        retention_policy=dict(type="dict"),
        daily_backup_bytes=dict(type="int"),
        prices=dict(type="dict"),
        currency=dict(type="str", default="USD"),
    )
    return spec


def run(module):
    params = module.params
    absent = params["state"] == "absent"
    spec = build_spec(
        prefix=params["prefix"], tiers=params["tiers"], wal=params["wal"],
        abort_incomplete_multipart_days=params["abort_incomplete_multipart_days"],
        noncurrent_version_expiration_days=params["noncurrent_version_expiration_days"],
        rules=params["rules"], retention_policy=params["retention_policy"], allow_empty=absent)
    cost = None
    if params["daily_backup_bytes"] is not None:
        cost = project_cost(spec, params["daily_backup_bytes"], params["prices"], params["currency"])
    plan, warnings = converge(aws.client(params), params["bucket"], spec, purge=params["purge"], absent=absent,
                              check_mode=module.check_mode)
    result = dict(changed=plan.changed, rules=plan.after.rules, added=plan.added, updated=plan.updated,
                  removed=plan.removed,
                  managed_rules=[rule["ID"] for rule in ([] if absent else spec.desired_rules())])
    if cost is not None:
        result["cost"] = cost
    if module._diff:
        result["diff"] = dict(before={"rules": [normal_rule(r) for r in plan.before.rules]},
                              after={"rules": [normal_rule(r) for r in plan.after.rules]})
    return spec.warnings + warnings, result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_boto3(module)
    try:
        warnings, result = run(module)
    except DbdrError as exc:
        module.fail_json(msg=str(exc), stage=exc.stage)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
