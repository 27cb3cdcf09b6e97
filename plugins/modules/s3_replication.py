#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: s3_replication
short_description: Replication of an S3 backup bucket to a second bucket (the offsite copy), idempotent, with check mode and diff
version_added: 0.1.0
description:
  - Manages the replication configuration of an S3 bucket - the IAM role S3 assumes and the rules that copy new
    objects to one or more destination buckets, normally in another region (the offsite copy of a 3-2-1 set-up).
    C(amazon.aws) has no module for it.
  - Before anything is written, also in check mode, the module checks what S3 requires or would silently get wrong -
    both buckets exist and have versioning enabled, a destination is not the source itself, ids and priorities are
    unique, a source whose default encryption is SSE-KMS has rules that name the replica's KMS key (S3 would
    otherwise replicate none of its objects), and a source with Object Lock replicates only into buckets with Object
    Lock. Every problem found is reported at once and nothing is changed.
  - The configuration S3 returns is normalized before it is compared (equivalent filters, blocks that are absent or
    V(Disabled), rule order), so a second run with the same options reports no change. Settings S3 returns that the
    options do not model (tag filters, destination account, existing-object replication, ...) show up under
    C(other) in RV(replication) and count as a difference.
  - Replication copies objects written after the rule exists. Objects already in the bucket are not copied; use S3
    Batch Replication for them.
author:
  - dbdr.backup maintainers (@dbdr-backup)
extends_documentation_fragment:
  - dbdr.backup.aws
options:
  bucket:
    description: The source bucket.
    type: str
    required: true
  state:
    description:
      - V(present) makes the replication configuration hold O(rules) (and, with O(purge=false), the rules already
        there under other ids).
      - V(absent) removes the whole replication configuration of the bucket.
    type: str
    choices: [ present, absent ]
    default: present
  role_arn:
    description:
      - ARN of the IAM role S3 assumes to replicate. Its trust policy must allow C(s3.amazonaws.com); its permissions
        must allow reading the source's object versions and replicating into the destinations. The role
        C(dbdr.backup.s3_repository) creates such a role.
      - Required with O(state=present).
    type: str
  rules:
    description:
      - The replication rules. Required with O(state=present).
    type: list
    elements: dict
    suboptions:
      id:
        description:
          - Rule id. Default C(dbdr-<destination bucket name>); rules to the same destination need ids of their own.
        type: str
      prefix:
        description:
          - Replicate only objects whose key starts with this string (a plain key prefix, end it with C(/) to mean a
            folder). The default replicates the whole bucket.
        type: str
        default: ''
      destination_bucket:
        description: Name or ARN (C(arn:aws:s3:::<name>)) of the destination bucket.
        type: str
        required: true
      destination_region:
        description: Region of the destination bucket, used to reach it for the checks. Default O(region).
        type: str
      storage_class:
        description:
          - Storage class of the replicas, for example V(STANDARD_IA), V(GLACIER_IR) or V(DEEP_ARCHIVE) for an
            offsite copy that is rarely read. Default - the storage class of the source object.
          - Each class has a minimum storage duration that is billed even when the replica expires earlier
            (30 days for V(STANDARD_IA), 90 for V(GLACIER_IR) and V(GLACIER), 180 for V(DEEP_ARCHIVE)).
        type: str
        choices: [ STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE, REDUCED_REDUNDANCY ]
      delete_marker_replication:
        description:
          - Replicate delete markers. Off by default on purpose - with it, deleting the backups in the source (by
            mistake, or by ransomware holding the credentials) hides them in the offsite copy too.
          - Deletions of a specific object version are never replicated, whatever this says.
        type: bool
        default: false
      replica_kms_key_id:
        description:
          - KMS key (give the key ARN, in the destination's region) that encrypts the replicas. Setting it also makes S3
            replicate objects encrypted with SSE-KMS, which it otherwise skips.
          - Required when the source's default encryption is SSE-KMS.
        type: str
      priority:
        description: Rule priority; the highest wins when rules overlap. Default the rule's position in O(rules), from 1.
        type: int
      enabled:
        description: V(false) keeps the rule but pauses it.
        type: bool
        default: true
      replication_time_control:
        description:
          - S3 Replication Time Control - replicate 99.99% of objects within 15 minutes, with replication metrics.
            Billed extra per GB.
        type: bool
        default: false
  purge:
    description:
      - With V(true) the bucket keeps only O(rules); rules already there under other ids are removed.
      - With V(false) such rules are kept as they are (they must use the current rule schema, with a filter).
    type: bool
    default: false
notes:
  - The caller needs C(s3:GetReplicationConfiguration), C(s3:PutReplicationConfiguration), C(s3:GetBucketVersioning),
    C(s3:GetEncryptionConfiguration), C(s3:GetBucketObjectLockConfiguration) and C(s3:GetBucketLocation) on the buckets,
    and C(iam:PassRole) for O(role_arn).
  - Replication does not run retroactively, is asynchronous (minutes, or within 15 minutes with
    O(rules[].replication_time_control)), and bills the replicas' storage, the replication requests and the
    inter-region transfer.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Reads the buckets and runs every check; nothing is written.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
'''

EXAMPLES = r'''
- name: Offsite copy of the backups in another region, as Standard-IA, delete markers not replicated
  dbdr.backup.s3_replication:
    bucket: acme-db-backups
    region: eu-central-1
    role_arn: arn:aws:iam::123456789012:role/dbdr-s3-replication
    rules:
      - destination_bucket: acme-db-backups-offsite
        destination_region: eu-west-1
        storage_class: STANDARD_IA

- name: KMS-encrypted bucket - the replicas are encrypted with a key of the destination region
  dbdr.backup.s3_replication:
    bucket: acme-db-backups
    region: eu-central-1
    role_arn: arn:aws:iam::123456789012:role/dbdr-s3-replication
    rules:
      - id: offsite
        prefix: postgres/
        destination_bucket: arn:aws:s3:::acme-db-backups-offsite
        destination_region: eu-west-1
        storage_class: GLACIER_IR
        replica_kms_key_id: arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9
    purge: true

- name: Stop replicating
  dbdr.backup.s3_replication:
    bucket: acme-db-backups
    region: eu-central-1
    state: absent
'''

RETURN = r'''
replication:
  description:
    - The replication configuration after the run (in check mode, the one the run would leave), normalized -
      C(role_arn) and C(rules), sorted by priority. Null when the bucket has none.
    - Each rule holds C(id), C(priority), C(enabled), C(prefix), C(destination_bucket), C(destination_bucket_arn),
      C(storage_class), C(delete_marker_replication), C(replica_kms_key_id), C(replicate_kms_encrypted) (S3 also
      replicates SSE-KMS objects), C(replication_time_control), C(metrics) and, when S3 holds settings the options do
      not model, C(other).
  returned: success
  type: dict
  sample:
    role_arn: arn:aws:iam::123456789012:role/dbdr-s3-replication
    rules:
      - id: dbdr-acme-db-backups-offsite
        priority: 1
        enabled: true
        prefix: ""
        destination_bucket: acme-db-backups-offsite
        destination_bucket_arn: arn:aws:s3:::acme-db-backups-offsite
        storage_class: STANDARD_IA
        delete_marker_replication: false
        replica_kms_key_id: null
        replicate_kms_encrypted: false
        replication_time_control: false
        metrics: false
configuration:
  description: The ReplicationConfiguration document written (in check mode, that would be written), in the S3 API's
    shape; null when nothing is written or the configuration is deleted.
  returned: success
  type: dict
  sample:
    Role: arn:aws:iam::123456789012:role/dbdr-s3-replication
    Rules:
      - ID: dbdr-acme-db-backups-offsite
        Priority: 1
        Status: Enabled
        Filter: {Prefix: ""}
        DeleteMarkerReplication: {Status: Disabled}
        Destination: {Bucket: "arn:aws:s3:::acme-db-backups-offsite", StorageClass: STANDARD_IA}
operation:
  description: The request made (in check mode, that would be made) - C(put), C(delete), or null when nothing changes.
  returned: success
  type: str
  sample: put
stage:
  description: The stage that failed (validate, storage).
  returned: failure
  type: str
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.dbdr.backup.plugins.module_utils import _argspec, _aws, _replication
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError


def argument_spec():
    spec = _argspec.aws_argspec()
    spec.update(
        bucket=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        role_arn=dict(type="str"),
        rules=dict(type="list", elements="dict", options=dict(
            id=dict(type="str"),
            prefix=dict(type="str", default=""),
            destination_bucket=dict(type="str", required=True),
            destination_region=dict(type="str"),
            storage_class=dict(type="str", choices=list(_replication.STORAGE_CLASSES)),
            delete_marker_replication=dict(type="bool", default=False),
            replica_kms_key_id=dict(type="str", no_log=False),
            priority=dict(type="int"),
            enabled=dict(type="bool", default=True),
            replication_time_control=dict(type="bool", default=False),
        )),
        purge=dict(type="bool", default=False),
    )
    return spec


def run(params, check_mode, warn):
    """Validate, check the buckets, decide, and (unless check mode) write; the Plan."""
    req = _replication.request_from_params(params)
    client = _aws.client(params)
    if req.state == "present":
        def client_for(region):
            return _aws.client(dict(params, region=region))
        for warning in _replication.check_buckets(client, client_for, req):
            warn(warning)
    decided = _replication.plan(req, _replication.read_configuration(client, req.bucket))
    if decided.changed and not check_mode:
        _replication.write(client, req.bucket, decided)
    return decided


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("state", "present", ("role_arn", "rules"))])
    if not _aws.HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=str(_aws.BOTO3_IMPORT_ERROR))
    try:
        decided = run(module.params, module.check_mode, module.warn)
    except DbdrError as exc:
        module.fail_json(msg=str(exc), stage=exc.stage)
    result = dict(changed=decided.changed, replication=decided.after, configuration=decided.document,
                  operation=decided.action)
    if module._diff:
        result["diff"] = dict(before=decided.before or {}, after=decided.after or {})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
