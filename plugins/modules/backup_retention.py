#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_retention
short_description: Expire backups of a dbdr.backup repository by a GFS policy (keep last, daily, weekly, monthly, yearly)
version_added: 0.1.0
description:
  - Applies a grandfather-father-son policy to the backups of one cluster in a local or S3 repository.
  - Whole backups (not partial, not pre-restore safety backups) with a readable manifest are the candidates.
    O(policy.keep_last) keeps the newest of them. Each GFS class buckets them by period counted in
    O(policy.timezone) (daily by local calendar date, weekly by ISO year and week starting on Monday, monthly,
    yearly); the representative of a period is its B(oldest) candidate, and the representatives of the newest
    periods that hold candidates are kept (a gap without backups does not shorten the history kept).
  - Whatever the policy, it never deletes the newest verified-good backup (the newest whose latest verification
    by M(dbdr.backup.backup_verify) passed, and also the newest verified-good whole backup when that is another
    one), a backup younger than O(policy.min_age), a backup labelled C(keep), or a backup whose manifest cannot be
    read (it is kept for a person to look at, with a warning).
  - Partial backups and pre-restore safety backups never fill GFS slots; they are kept only by those protections,
    so they are deleted once older than O(policy.min_age) unless labelled C(keep) or the newest verified-good.
  - Backups in progress have no manifest and are never touched. Backup directories without a manifest left by a
    crashed backup or a crashed retention run are removed only while holding the cluster's lock, which a running
    M(dbdr.backup.pg_backup) holds; when it is taken, they are left for the next run and the result says so.
  - A backup is deleted manifest first, then its other objects, then its verification records, so a backup that
    is half deleted is never listed as complete; running again after a crash finishes the job.
  - On S3, a backup promoted to a longer-lived class (daily < weekly < monthly < yearly) has every object re-tagged
    with C(dbdr-class=<class>) so that lifecycle rules (M(dbdr.backup.s3_lifecycle)) take over. Tags are only ever
    promoted, never demoted.
  - Verification records of backups that no longer exist are removed.
  - An audit record of every run (outside check mode, and unless refused for want of O(confirm)) is stored under
    C(<cluster>/audit/), with the kept, deleted and re-tagged backups; a failed run's record says what it did first.
author:
  - dbdr.backup maintainers (@dbdr-backup)
extends_documentation_fragment:
  - dbdr.backup.repository
options:
  policy:
    description:
      - The GFS policy. A policy whose counts are all V(0) would delete every backup and is refused.
    type: dict
    required: true
    suboptions:
      keep_last:
        description: Keep the newest this many candidate backups.
        type: int
        default: 0
      daily:
        description: Keep the first backup of each of the newest this many days that hold backups.
        type: int
        default: 0
      weekly:
        description: Keep the first backup of each of the newest this many ISO weeks (Monday to Sunday) that hold backups.
        type: int
        default: 0
      monthly:
        description: Keep the first backup of each of the newest this many calendar months that hold backups.
        type: int
        default: 0
      yearly:
        description: Keep the first backup of each of the newest this many calendar years that hold backups.
        type: int
        default: 0
      timezone:
        description:
          - IANA time zone name (for example V(Europe/Berlin)) in which days, weeks, months and years are counted.
            Backup ids stay UTC.
          - An unknown name fails the task before anything is read or changed.
        type: str
        default: UTC
      min_age:
        description: Never delete a backup younger than this many seconds (measured from its id, the UTC start time).
        type: int
        default: 86400
  confirm:
    description:
      - Deleting backups is destructive. When a run would delete at least one backup and this is not V(true), the
        task fails, changes nothing, and its message lists what would be deleted. Use check mode to see the plan.
      - Re-tagging and removing leftovers of crashed runs need no confirmation.
    type: bool
    default: false
notes:
  - Check mode is the dry run. It returns the same keys as a real run (RV(kept) with the reasons, RV(deleted),
    RV(retagged), RV(leftovers_removed)) describing what a real run would do, reads the repository only, and reports
    C(changed=true) when a real run would delete, re-tag or remove anything.
  - On S3, lifecycle rules act on the C(dbdr-class) tag independently of this module, and expire objects in no
    particular order. Give each class an expiry longer than this policy keeps it, so that this module does the
    deleting (manifest first) and lifecycle rules are only the backstop. See docs/retention.md.
  - Needs python-boto3 for S3 repositories only; needs no PostgreSQL connection.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: The dry run; lists what would be kept (with the reasons), deleted, re-tagged and removed.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: See what the policy would expire (the dry run)
  dbdr.backup.backup_retention:
    cluster: prod-main
    repository: {type: s3, bucket: acme-db-backups, prefix: postgres, region: eu-central-1}
    policy: {keep_last: 3, daily: 14, weekly: 8, monthly: 12, yearly: 7, timezone: Europe/Berlin}
  check_mode: true
  register: retention_plan

- name: Expire backups
  dbdr.backup.backup_retention:
    cluster: prod-main
    repository: {type: s3, bucket: acme-db-backups, prefix: postgres, region: eu-central-1}
    policy: {keep_last: 3, daily: 14, weekly: 8, monthly: 12, yearly: 7, timezone: Europe/Berlin}
    confirm: true

- name: Keep only the last week of a scratch cluster's local backups, even fresh ones
  dbdr.backup.backup_retention:
    cluster: scratch
    repository: {type: local, path: /var/backups/dbdr}
    policy: {daily: 7, min_age: 0}
    confirm: true
'''

RETURN = r'''
kept:
  description:
    - The backups kept (oldest first), each with every reason it is kept (V(keep_last), V(daily 2026-11-20),
      V(weekly 2026-W47), V(monthly 2026-11), V(yearly 2026), V(newest verified-good), V(newest backup proven by a test restore), V(younger than min_age),
      V(labelled keep), V(unreadable manifest)) and the longest GFS class among its GFS reasons (null when it is kept
      for other reasons only).
  returned: success
  type: list
  elements: dict
  sample:
    - {backup_id: 20261101T030000Z, reasons: [weekly 2026-W44, monthly 2026-11], gfs_class: monthly}
    - {backup_id: 20261123T030000Z, reasons: [younger than min_age, keep_last, daily 2026-11-23], gfs_class: daily}
deleted:
  description: The backups deleted (in check mode, that would be deleted), oldest first, with their stored bytes.
  returned: success
  type: list
  elements: dict
  sample: [{backup_id: 20261102T030000Z, started_at: "2026-11-02T03:00:00+00:00", total_bytes: 81234567}]
retagged:
  description: Backups whose S3 objects were (would be) re-tagged with a longer-lived class. Empty for local repositories.
  returned: success
  type: list
  elements: dict
  sample: [{backup_id: 20261101T030000Z, from: daily, to: monthly}]
leftovers_removed:
  description:
    - Ids of backup directories without a manifest (left by a crashed backup or retention run) that were removed;
      in check mode, the ones found, which a real run removes unless a backup is running.
  returned: success
  type: list
  elements: str
verification_records_removed:
  description: Ids of backups that no longer exist whose verification records were (would be) removed.
  returned: success
  type: list
  elements: str
bytes_freed:
  description: Stored bytes deleted (in check mode, that would be deleted).
  returned: success
  type: int
notes:
  description: What was left for later, for example leftovers skipped because a backup was running.
  returned: success
  type: list
  elements: str
policy:
  description: The policy applied, with defaults filled in.
  returned: success
  type: dict
  sample: {keep_last: 3, daily: 14, weekly: 8, monthly: 12, yearly: 7, timezone: Europe/Berlin, min_age: 86400}
audit_record:
  description: Repository key of the audit record of this run.
  returned: success, not in check mode
  type: str
plan:
  description: When the task fails for want of O(confirm), what a confirmed run would do (the keys above).
  returned: failure, stage confirm
  type: dict
stage:
  description: The stage that failed (validate, confirm, storage, lock, interrupted).
  returned: failure
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dbdr.backup.plugins.module_utils import _argspec
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError
from ansible_collections.dbdr.backup.plugins.module_utils._glue import Interrupted, check_libraries, raise_on_signals
from ansible_collections.dbdr.backup.plugins.module_utils._layout import utc_now
from ansible_collections.dbdr.backup.plugins.module_utils._retention.run import plan_retention, run_retention
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import open_repository


def argument_spec():
    spec = _argspec.repository_argspec()
    spec.update(
        policy=dict(type="dict", required=True, options=dict(
            keep_last=dict(type="int", default=0),
            daily=dict(type="int", default=0),
            weekly=dict(type="int", default=0),
            monthly=dict(type="int", default=0),
            yearly=dict(type="int", default=0),
            timezone=dict(type="str", default="UTC"),
            min_age=dict(type="int", default=86400),
        )),
        confirm=dict(type="bool", default=False),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_libraries(module, gnupg=False, postgres=False)
    raise_on_signals()
    plan = None
    try:
        plan = plan_retention(open_repository(module.params["repository"]), module.params["cluster"],
                              module.params["policy"], utc_now())
        for warning in plan.warnings:
            module.warn(warning)
        if module.check_mode:
            module.exit_json(changed=plan.changes, **plan.to_result())
        if plan.to_delete and not module.params["confirm"]:
            module.fail_json(msg=plan.confirmation_message(), stage="confirm", plan=plan.to_result())
        result = run_retention(plan)
    except DbdrError as exc:
        module.fail_json(msg=str(exc), stage=exc.stage)
    except Interrupted as exc:
        module.fail_json(msg="retention interrupted (a backup being deleted has lost its manifest at most; the next "
                             "run finishes it): %s" % exc, stage="interrupted")
    for warning in result.warnings:
        if warning not in plan.warnings:
            module.warn(warning)
    module.exit_json(changed=result.changed, **result.to_result())


if __name__ == "__main__":
    main()
