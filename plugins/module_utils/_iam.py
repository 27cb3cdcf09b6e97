# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Least-privilege IAM policy documents for the people and machines that use a repository.

Pure functions over plain values (no AWS calls): the filter plugin dbdr.backup.backup_iam_policy
and the backup_iam role render them, the unit tests check them statement by statement.

Each persona gets what its modules actually call (see plugins/module_utils/_storage/s3.py):

    writer    pg_backup         list, read back, put dumps/manifest/audit/lock (tagged on upload),
                                abort its multipart uploads, delete exactly <cluster>/lock
    pruner    backup_retention  list, read, re-tag, delete backups, verification records and the
                                lock; put the lock and audit records
    restorer  restore, backup_verify, backup_info
                                list, read, read tags; put verification and audit records
    admin     s3_repository, s3_lifecycle, s3_replication
                                bucket configuration (lifecycle, policy, versioning, replication,
                                object lock, encryption, ...); passing the replication role to S3
                                and the object-lock bypass only on request

Explicit Deny statements keep the data-plane personas away from what destroys or exposes backups
without touching them one by one (lifecycle rules, bucket policy, versioning, object lock,
permanent version deletes, ACLs, re-tagging into a shorter-lived class), also if some other
policy attached to the same principal grants it: in IAM an explicit Deny always wins.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import re

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import TAG_CLASS, validate_cluster

VERSION = "2012-10-17"
PERSONAS = ("writer", "pruner", "restorer", "admin")
# Partition -> DNS suffix of its service endpoints (for kms:ViaService).
PARTITIONS = {"aws": "amazonaws.com", "aws-cn": "amazonaws.com.cn", "aws-us-gov": "amazonaws.com"}
ALL_CLUSTERS = "all"
# IAM's limit for a managed policy, in characters without whitespace.
MAX_POLICY_CHARS = 6144

# Bucket settings whose change destroys or exposes backups wholesale: a lifecycle rule that
# expires everything tomorrow, a bucket policy granting someone else access, suspended
# versioning, replication removed, object-lock defaults, encryption switched to a foreign key,
# public access opened, ACLs re-enabled, access logging turned off to hide the traces. Deleting
# a bucket's lifecycle, replication, encryption, public access block or ownership controls is
# authorised by the same Put* actions.
BUCKET_TAMPERING = (
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketAcl",
    "s3:PutBucketLogging",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:PutReplicationConfiguration",
)
# Object-level actions that defeat versioning and object lock (the copies an attacker holding a
# database host's credentials must not be able to reach) or expose objects through ACLs.
OBJECT_TAMPERING = (
    "s3:BypassGovernanceRetention",
    "s3:DeleteObjectVersion",
    "s3:PutObjectAcl",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
    "s3:PutObjectVersionAcl",
)
# What the admin persona configures on the bucket (read and write), for the s3_repository role
# (bucket hardening, amazon.aws.s3_bucket) and the s3_lifecycle module.
ADMIN_BUCKET_ACTIONS = (
    "s3:CreateBucket",
    "s3:DeleteBucketPolicy",
    "s3:GetAccelerateConfiguration",
    "s3:GetBucketAcl",
    "s3:GetBucketLocation",
    "s3:GetBucketLogging",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketRequestPayment",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetEncryptionConfiguration",
    "s3:GetInventoryConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:ListBucketVersions",
    "s3:PutBucketLogging",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketTagging",
    "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:PutReplicationConfiguration",
)
# Break-glass object actions of the admin persona (governance_bypass: true): shorten or lift a
# GOVERNANCE retention and delete object versions, e.g. to remove a backup that must not exist.
ADMIN_BYPASS_ACTIONS = (
    "s3:BypassGovernanceRetention",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:GetObjectVersion",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
)
KMS_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_PREFIX_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
_ROLE_ARN_RE = re.compile(r"^arn:(aws|aws-cn|aws-us-gov):iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$")
_KMS_KEY_RE = re.compile(r"^arn:(aws|aws-cn|aws-us-gov):kms:([a-z]{2}(?:-[a-z]+)+-[0-9]+):([0-9]{12}):key/([A-Za-z0-9-]+)$")


class Scope:
    """Validated inputs of a policy: the bucket, the repository prefix, the clusters (None for
    all), the partition, an optional KMS key and the bucket's region."""

    def __init__(self, bucket, prefix="", clusters=ALL_CLUSTERS, partition="aws", kms_key_arn=None, region=None):
        self.partition = _validate_partition(partition)
        self.bucket = _validate_bucket(bucket)
        self.prefix = _validate_prefix(prefix)
        self.clusters = _validate_clusters(clusters)
        self.region = _validate_region(region)
        self.kms_key_arn = _validate_kms_key(kms_key_arn, self.partition)

    # --- ARNs -------------------------------------------------------------------------

    @property
    def bucket_arn(self):
        return "arn:%s:s3:::%s" % (self.partition, self.bucket)

    def object_arn(self, key_pattern):
        return "%s/%s" % (self.bucket_arn, key_pattern)

    @property
    def root(self):
        """The repository root inside the bucket, with a trailing '/' (or '' for the bucket root)."""
        return self.prefix + "/" if self.prefix else ""

    def cluster_roots(self):
        """'<prefix>/<cluster>' for each cluster in scope; '<prefix>/*' for all of them."""
        return [self.root + cluster for cluster in (self.clusters or ["*"])]

    def under_clusters(self, *suffixes):
        """Object ARNs of every suffix ('backups/*', 'lock', ...) below every cluster in scope."""
        if not self.clusters and suffixes == ("*",):
            return [self.object_arn(self.root + "*")]   # everything below the prefix, not '<prefix>/*/*'
        return [self.object_arn("%s/%s" % (root, suffix)) for root in self.cluster_roots() for suffix in suffixes]

    def under_every_cluster(self, *suffixes):
        """Object ARNs of the suffixes below ANY cluster of the repository (for Deny statements,
        which protect the whole repository whatever the allowed scope)."""
        return [self.object_arn("%s*/%s" % (self.root, suffix)) for suffix in suffixes]

    def list_condition(self):
        """ListBucket only for keys below the clusters in scope; None when nothing narrows it
        (all clusters at the bucket root)."""
        if not self.clusters:
            return {"StringLike": {"s3:prefix": [self.root + "*"]}} if self.prefix else None
        return {"StringLike": {"s3:prefix": ["%s/*" % root for root in self.cluster_roots()]}}


def _validate_partition(partition):
    if partition not in PARTITIONS:
        raise InputError("unknown AWS partition %r: use one of %s" % (partition, ", ".join(sorted(PARTITIONS))))
    return partition


def _validate_bucket(bucket):
    if not isinstance(bucket, str) or not bucket:
        raise InputError("bucket is required: the name of the S3 bucket of the repository")
    if not _BUCKET_RE.match(bucket) or ".." in bucket or _IP_RE.match(bucket):
        raise InputError("invalid bucket name %r: S3 bucket names are 3-63 characters from lower-case letters, digits, "
                         "'.' and '-', start and end with a letter or digit, and are no IP address (no wildcards)"
                         % (bucket,))
    return bucket


def _validate_prefix(prefix):
    if prefix is None:
        return ""
    if not isinstance(prefix, str):
        raise InputError("prefix must be a string, got %r" % (prefix,))
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    for segment in stripped.split("/"):
        if segment in (".", ".."):
            raise InputError("invalid prefix %r: '.' and '..' are not allowed as path segments" % (prefix,))
        if not _PREFIX_SEGMENT_RE.match(segment):
            raise InputError("invalid prefix %r: use '/'-separated segments of letters, digits, '.', '_' and '-' "
                             "(no empty segments, no wildcards '*' or '?', no policy variables '${...}')" % (prefix,))
    return stripped


def _validate_clusters(clusters):
    """None for all clusters, else the sorted, de-duplicated list of valid cluster names."""
    if clusters is None or clusters == ALL_CLUSTERS or (isinstance(clusters, (list, tuple)) and list(clusters) == [ALL_CLUSTERS]):
        return None
    if isinstance(clusters, str):
        clusters = [clusters]
    if not isinstance(clusters, (list, tuple)) or not clusters:
        raise InputError("clusters must be 'all' or a non-empty list of cluster names, got %r" % (clusters,))
    names = []
    for cluster in clusters:
        if cluster == ALL_CLUSTERS:
            raise InputError("clusters: 'all' cannot be combined with cluster names")
        if isinstance(cluster, str) and ("*" in cluster or "?" in cluster):
            raise InputError("invalid cluster name %r: wildcards are not allowed (use clusters: all)" % (cluster,))
        names.append(validate_cluster(cluster))
    return sorted(set(names))


def _validate_region(region):
    if region is None or region == "":
        return None
    if not isinstance(region, str) or not _REGION_RE.match(region):
        raise InputError("invalid region %r: expected an AWS region name such as eu-central-1" % (region,))
    return region


def _validate_kms_key(kms_key_arn, partition):
    if kms_key_arn is None or kms_key_arn == "":
        return None
    match = _KMS_KEY_RE.match(kms_key_arn) if isinstance(kms_key_arn, str) else None
    if not match:
        raise InputError("invalid kms_key_arn %r: expected a key ARN, arn:<partition>:kms:<region>:<account>:key/<key id> "
                         "(IAM authorises kms:Decrypt against the key, never an alias)" % (kms_key_arn,))
    if match.group(1) != partition:
        raise InputError("kms_key_arn %r is in partition %s, the bucket in %s" % (kms_key_arn, match.group(1), partition))
    return kms_key_arn


# --- statements --------------------------------------------------------------------------


def _statement(sid, effect, actions, resources, condition=None):
    statement = {"Sid": sid, "Effect": effect, "Action": sorted(actions), "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _list_keys(scope):
    # The modules' access check lists one key below the cluster (HeadBucket would need an unconditioned ListBucket).
    return _statement("ListRepositoryKeys", "Allow", ["s3:ListBucket"], scope.bucket_arn, scope.list_condition())


def _kms(scope):
    if not scope.kms_key_arn:
        return []
    condition = None
    if scope.region:
        condition = {"StringEquals": {"kms:ViaService": "s3.%s.%s" % (scope.region, PARTITIONS[scope.partition])}}
    return [_statement("UseRepositoryKmsKey", "Allow", KMS_ACTIONS, scope.kms_key_arn, condition)]


def _deny_tampering(scope):
    return [
        _statement("DenyBucketTampering", "Deny", BUCKET_TAMPERING, scope.bucket_arn),
        _statement("DenyVersionAndLockTampering", "Deny", OBJECT_TAMPERING, scope.object_arn("*")),
    ]


def _deny_deleting(scope, *suffixes):
    return _statement("DenyDeletingRepositoryData", "Deny", ["s3:DeleteObject"], scope.under_every_cluster(*suffixes))


def _deny_retagging(scope):
    # Re-tagging an existing backup (say yearly -> daily) lets lifecycle rules expire it early. A
    # new upload has no existing tag yet, so tagging on upload stays possible.
    return _statement("DenyRetaggingStoredObjects", "Deny", ["s3:PutObjectTagging"], scope.object_arn(scope.root + "*"),
                      {"Null": {"s3:ExistingObjectTag/%s" % TAG_CLASS: "false"}})


def _writer(scope, **_options):
    return [
        _list_keys(scope),
        # Leftover multipart uploads are aborted by the next backup; S3 offers no prefix condition here.
        _statement("ListUnfinishedUploads", "Allow", ["s3:ListBucketMultipartUploads"], scope.bucket_arn),
        # Read-back after upload, existence checks (nothing is overwritten) and the lock holder.
        _statement("ReadOwnObjects", "Allow", ["s3:GetObject"], scope.under_clusters("*")),
        _statement("WriteBackupsAuditRecordsAndLock", "Allow", ["s3:PutObject"],
                   scope.under_clusters("backups/*", "audit/*", "lock")),
        # Every dump, manifest and audit record is tagged dbdr-class=<class> on upload.
        _statement("TagOnUpload", "Allow", ["s3:PutObjectTagging"], scope.under_clusters("backups/*", "audit/*")),
        _statement("AbortOwnMultipartUploads", "Allow", ["s3:AbortMultipartUpload"], scope.under_clusters("backups/*")),
        # The lock object is created and deleted by every run; nothing else may be deleted.
        _statement("ReleaseLock", "Allow", ["s3:DeleteObject"], scope.under_clusters("lock")),
        _deny_deleting(scope, "backups/*", "verify/*", "audit/*", "wal/*"),
        _deny_retagging(scope),
    ] + _deny_tampering(scope) + _kms(scope)


def _pruner(scope, **_options):
    return [
        _list_keys(scope),
        _statement("ReadObjectsAndTags", "Allow", ["s3:GetObject", "s3:GetObjectTagging"], scope.under_clusters("*")),
        # Promotion re-tags a kept backup (daily -> weekly ...); audit records are tagged on upload.
        _statement("RetagBackups", "Allow", ["s3:PutObjectTagging"], scope.under_clusters("backups/*", "audit/*")),
        _statement("DeleteExpiredBackups", "Allow", ["s3:DeleteObject"],
                   scope.under_clusters("backups/*", "verify/*", "lock")),
        # The lock is held while leftovers of crashed runs are removed; every run leaves an audit record.
        _statement("WriteLockAndAuditRecords", "Allow", ["s3:PutObject"], scope.under_clusters("audit/*", "lock")),
        _deny_deleting(scope, "audit/*"),
    ] + _deny_tampering(scope) + _kms(scope)


def _restorer(scope, **_options):
    return [
        _list_keys(scope),
        _statement("ReadObjectsAndTags", "Allow", ["s3:GetObject", "s3:GetObjectTagging"], scope.under_clusters("*")),
        # backup_verify stores a record per run, restore an audit record; both new, tagged objects.
        _statement("WriteVerificationAndAuditRecords", "Allow", ["s3:PutObject", "s3:PutObjectTagging"],
                   scope.under_clusters("verify/*", "audit/*")),
        _deny_deleting(scope, "backups/*", "verify/*", "audit/*", "wal/*"),
        _deny_retagging(scope),
    ] + _deny_tampering(scope) + _kms(scope)


def _admin(scope, governance_bypass=False, replication_role_arn=None):
    statements = [
        _statement("AdministerBucket", "Allow", ADMIN_BUCKET_ACTIONS, scope.bucket_arn),
        # amazon.aws.s3_bucket_info, which the s3_repository role uses in check mode, lists buckets;
        # the action exists for the account only.
        _statement("ListBuckets", "Allow", ["s3:ListAllMyBuckets"], "*"),
        _statement("InspectObjectLocks", "Allow", ["s3:GetObjectLegalHold", "s3:GetObjectRetention"],
                   scope.under_clusters("*")),
        # Nobody in the backup loop deletes the bucket; decommissioning is a deliberate act elsewhere.
        _statement("DenyBucketDeletion", "Deny", ["s3:DeleteBucket"], scope.bucket_arn),
    ]
    if governance_bypass:
        statements.append(_statement("BreakGlassGovernanceBypass", "Allow", ADMIN_BYPASS_ACTIONS, scope.under_clusters("*")))
    else:
        statements.append(_statement("DenyGovernanceBypass", "Deny", ["s3:BypassGovernanceRetention"], scope.object_arn("*")))
    if replication_role_arn:
        # S3 checks that whoever sets a replication configuration may pass its role to S3.
        statements.append(_statement("PassReplicationRole", "Allow", ["iam:PassRole"], replication_role_arn,
                                     {"StringEquals": {"iam:PassedToService": "s3.amazonaws.com"}}))
    return statements


_BUILDERS = {"writer": _writer, "pruner": _pruner, "restorer": _restorer, "admin": _admin}


def _validate_role_arn(role_arn, partition):
    if role_arn is None or role_arn == "":
        return None
    if not isinstance(role_arn, str) or not _ROLE_ARN_RE.match(role_arn):
        raise InputError("invalid replication_role_arn %r: expected arn:<partition>:iam::<account>:role/<name>" % (role_arn,))
    if not role_arn.startswith("arn:%s:" % partition):
        raise InputError("replication_role_arn %r is not in partition %s" % (role_arn, partition))
    return role_arn


def policy_document(persona, bucket, prefix="", clusters=ALL_CLUSTERS, partition="aws", kms_key_arn=None, region=None,
                    governance_bypass=False, replication_role_arn=None):
    """The IAM identity policy (a dict, JSON-serialisable) of one persona. Raises InputError."""
    if persona not in _BUILDERS:
        raise InputError("unknown persona %r: use one of %s" % (persona, ", ".join(PERSONAS)))
    if not isinstance(governance_bypass, bool):
        raise InputError("governance_bypass must be a boolean, got %r" % (governance_bypass,))
    if governance_bypass and persona != "admin":
        raise InputError("governance_bypass applies to the admin persona only, not to %s" % persona)
    if replication_role_arn and persona != "admin":
        raise InputError("replication_role_arn applies to the admin persona only, not to %s" % persona)
    scope = Scope(bucket, prefix, clusters, partition, kms_key_arn, region)
    options = {"governance_bypass": governance_bypass}
    if persona == "admin":
        options["replication_role_arn"] = _validate_role_arn(replication_role_arn, scope.partition)
    document = {"Version": VERSION, "Statement": _BUILDERS[persona](scope, **options)}
    size = len(json.dumps(document, separators=(",", ":")))
    if size > MAX_POLICY_CHARS:
        raise InputError("the %s policy for %d clusters has %d characters, more than the %d IAM allows in a managed "
                         "policy: use clusters: all, or split the clusters over several policies (one "
                         "policy name prefix each)" % (persona, len(scope.clusters or []), size, MAX_POLICY_CHARS))
    return document


def policy_documents(personas=PERSONAS, **scope):
    """{persona: document} for several personas over one scope."""
    return dict((persona, policy_document(persona, **scope)) for persona in personas)
