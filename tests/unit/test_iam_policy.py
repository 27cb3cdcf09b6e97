"""The least-privilege IAM documents of plugins/module_utils/_iam.py, statement by statement.

What an S3 endpoint under test (moto) cannot show is checked here: the exact actions of each
persona, resources scoped to the prefix and clusters, conditions (moto ignores them), KMS,
partitions, and bad input. A small evaluator of IAM's rules (explicit Deny wins, then any
Allow, else implicit deny; '*' and '?' wildcards; StringLike, StringEquals and Null conditions)
checks the documents against the keys the storage format really uses (plugins/module_utils/_layout.py).
"""

from __future__ import annotations

import datetime
import json
import re

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.dbdr.backup.plugins.filter.backup_iam import FilterModule
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._iam import PERSONAS, policy_document, policy_documents
from ansible_collections.dbdr.backup.plugins.module_utils._layout import (
    audit_key, lock_key, manifest_key, object_key, verify_key)

BUCKET = "acme-db-backups"
PREFIX = "pg"
BACKUP_ID = "20261120T030000Z"
MOMENT = datetime.datetime(2026, 11, 20, 3, 5, tzinfo=datetime.timezone.utc)
KMS_KEY = "arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

BUCKET_TAMPERING = {
    "s3:DeleteBucket", "s3:DeleteBucketPolicy", "s3:PutBucketAcl", "s3:PutBucketLogging",
    "s3:PutBucketObjectLockConfiguration", "s3:PutBucketOwnershipControls", "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock", "s3:PutBucketVersioning", "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration", "s3:PutReplicationConfiguration",
}
OBJECT_TAMPERING = {
    "s3:BypassGovernanceRetention", "s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:PutObjectLegalHold",
    "s3:PutObjectRetention", "s3:PutObjectVersionAcl",
}
ADMIN_BUCKET = {
    "s3:CreateBucket", "s3:DeleteBucketPolicy", "s3:GetAccelerateConfiguration", "s3:GetBucketAcl",
    "s3:GetBucketLocation", "s3:GetBucketLogging", "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls", "s3:GetBucketPolicy", "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock", "s3:GetBucketRequestPayment", "s3:GetBucketTagging", "s3:GetBucketVersioning",
    "s3:GetEncryptionConfiguration", "s3:GetInventoryConfiguration", "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
    "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:ListBucketVersions", "s3:PutBucketLogging",
    "s3:PutBucketObjectLockConfiguration", "s3:PutBucketOwnershipControls", "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock", "s3:PutBucketTagging", "s3:PutBucketVersioning",
    "s3:PutEncryptionConfiguration", "s3:PutLifecycleConfiguration", "s3:PutReplicationConfiguration",
}

# persona -> (allowed actions, denied actions): exactly these, nothing else.
EXPECTED_ACTIONS = {
    "writer": ({"s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:ListBucket",
                "s3:ListBucketMultipartUploads", "s3:PutObject", "s3:PutObjectTagging"},
               BUCKET_TAMPERING | OBJECT_TAMPERING | {"s3:DeleteObject", "s3:PutObjectTagging"}),
    "pruner": ({"s3:DeleteObject", "s3:GetObject", "s3:GetObjectTagging", "s3:ListBucket", "s3:PutObject",
                "s3:PutObjectTagging"},
               BUCKET_TAMPERING | OBJECT_TAMPERING | {"s3:DeleteObject"}),
    "restorer": ({"s3:GetObject", "s3:GetObjectTagging", "s3:ListBucket", "s3:PutObject", "s3:PutObjectTagging"},
                 BUCKET_TAMPERING | OBJECT_TAMPERING | {"s3:DeleteObject", "s3:PutObjectTagging"}),
    "admin": (ADMIN_BUCKET | {"s3:GetObjectLegalHold", "s3:GetObjectRetention", "s3:ListAllMyBuckets"},
              {"s3:BypassGovernanceRetention", "s3:DeleteBucket"}),
}

B = "arn:aws:s3:::%s" % BUCKET
# persona -> {allowed action: resources}, for clusters [main, other] under prefix pg.
EXPECTED_ALLOWS = {
    "writer": {
        "s3:ListBucket": {B},
        "s3:ListBucketMultipartUploads": {B},
        "s3:GetObject": {B + "/pg/main/*", B + "/pg/other/*"},
        "s3:PutObject": {B + "/pg/%s/%s" % (c, s) for c in ("main", "other") for s in ("backups/*", "audit/*", "lock")},
        "s3:PutObjectTagging": {B + "/pg/%s/%s" % (c, s) for c in ("main", "other") for s in ("backups/*", "audit/*")},
        "s3:AbortMultipartUpload": {B + "/pg/main/backups/*", B + "/pg/other/backups/*"},
        "s3:DeleteObject": {B + "/pg/main/lock", B + "/pg/other/lock"},
    },
    "pruner": {
        "s3:ListBucket": {B},
        "s3:GetObject": {B + "/pg/main/*", B + "/pg/other/*"},
        "s3:GetObjectTagging": {B + "/pg/main/*", B + "/pg/other/*"},
        "s3:PutObjectTagging": {B + "/pg/%s/%s" % (c, s) for c in ("main", "other") for s in ("backups/*", "audit/*")},
        "s3:DeleteObject": {B + "/pg/%s/%s" % (c, s) for c in ("main", "other") for s in ("backups/*", "verify/*", "lock")},
        "s3:PutObject": {B + "/pg/%s/%s" % (c, s) for c in ("main", "other") for s in ("audit/*", "lock")},
    },
    "restorer": {
        "s3:ListBucket": {B},
        "s3:GetObject": {B + "/pg/main/*", B + "/pg/other/*"},
        "s3:GetObjectTagging": {B + "/pg/main/*", B + "/pg/other/*"},
        "s3:PutObject": {B + "/pg/%s/%s" % (c, s) for c in ("main", "other") for s in ("verify/*", "audit/*")},
        "s3:PutObjectTagging": {B + "/pg/%s/%s" % (c, s) for c in ("main", "other") for s in ("verify/*", "audit/*")},
    },
}


# --------------------------------------------------------------------------- a small IAM evaluator


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _wildcard(pattern, value):
    """IAM's ARN and string matching: '*' any run of characters (also '/'), '?' one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def _condition_holds(condition, context):
    for operator, tests in condition.items():
        for key, expected in tests.items():
            present = key in context
            if operator == "Null":
                # "true": the key must be absent; "false": it must be present.
                if (expected == "true") == present:
                    return False
            elif operator == "StringLike":
                if not present or not any(_wildcard(p, context[key]) for p in _as_list(expected)):
                    return False
            elif operator == "StringEquals":
                if not present or context[key] not in _as_list(expected):
                    return False
            else:
                raise AssertionError("the evaluator does not know condition operator %s" % operator)
    return True


def _matching(document, action, resource, context):
    for statement in document["Statement"]:
        if (any(_wildcard(a, action) for a in _as_list(statement["Action"]))
                and any(_wildcard(r, resource) for r in _as_list(statement["Resource"]))
                and _condition_holds(statement.get("Condition", {}), context)):
            yield statement


def decide(document, action, resource, context=None):
    """'deny' (explicit), 'allow', or 'implicit' (no statement allows it) as IAM decides."""
    effects = [s["Effect"] for s in _matching(document, action, resource, context or {})]
    if "Deny" in effects:
        return "deny"
    return "allow" if "Allow" in effects else "implicit"


def obj(key, prefix=PREFIX, bucket=BUCKET, partition="aws"):
    return "arn:%s:s3:::%s/%s%s" % (partition, bucket, prefix + "/" if prefix else "", key)


def actions(document, effect):
    return set(a for s in document["Statement"] if s["Effect"] == effect for a in _as_list(s["Action"]))


def allows(document):
    found = {}
    for statement in document["Statement"]:
        if statement["Effect"] == "Allow":
            for action in statement["Action"]:
                found.setdefault(action, set()).update(_as_list(statement["Resource"]))
    return found


KEYS = {
    "manifest": manifest_key("main", BACKUP_ID),
    "dump": object_key("main", BACKUP_ID, "app.pgdump.zst.gpg"),
    "globals": object_key("main", BACKUP_ID, "globals.sql.zst.gpg"),
    "verify": verify_key("main", BACKUP_ID, MOMENT),
    "audit": audit_key("main", MOMENT, "backup"),
    "lock": lock_key("main"),
    "wal": "main/wal/00000001/000000010000000000000001.zst.gpg",
}


# --------------------------------------------------------------------------- exact actions and resources


@pytest.mark.parametrize("persona", PERSONAS)
def test_exact_allowed_and_denied_actions(persona):
    document = policy_document(persona, BUCKET, prefix=PREFIX)
    allowed, denied = EXPECTED_ACTIONS[persona]
    assert actions(document, "Allow") == allowed
    assert actions(document, "Deny") == denied


@pytest.mark.parametrize("persona", ["writer", "pruner", "restorer"])
def test_exact_resources_per_action_for_two_clusters(persona):
    document = policy_document(persona, BUCKET, prefix="/pg/", clusters=["other", "main", "main"])
    assert allows(document) == EXPECTED_ALLOWS[persona]
    listing = [s for s in document["Statement"] if s["Action"] == ["s3:ListBucket"]]
    assert len(listing) == 1
    assert listing[0]["Condition"] == {"StringLike": {"s3:prefix": ["pg/main/*", "pg/other/*"]}}


def test_admin_is_bucket_configuration_and_lock_inspection_only():
    document = policy_document("admin", BUCKET, prefix=PREFIX)
    found = allows(document)
    assert found.pop("s3:ListAllMyBuckets") == {"*"}   # an account-level action: no narrower resource exists
    for action, resources in found.items():
        if action not in ("s3:GetObjectLegalHold", "s3:GetObjectRetention"):
            assert resources == {B}, action
    assert found["s3:GetObjectRetention"] == {B + "/pg/*"}
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteBucket"):
        assert action not in found
    assert decide(document, "s3:BypassGovernanceRetention", obj(KEYS["dump"])) == "deny"
    assert decide(document, "s3:DeleteBucket", B) == "deny"
    assert decide(document, "s3:PutLifecycleConfiguration", B) == "allow"
    # The admin sees the whole bucket: it configures it.
    assert decide(document, "s3:ListBucket", B) == "allow"


def test_admin_may_pass_the_replication_role_to_s3_only():
    role = "arn:aws:iam::111122223333:role/dbdr/dbdr-replication"
    document = policy_document("admin", BUCKET, replication_role_arn=role)
    passing = [s for s in document["Statement"] if s["Sid"] == "PassReplicationRole"]
    assert passing == [{"Sid": "PassReplicationRole", "Effect": "Allow", "Action": ["iam:PassRole"], "Resource": role,
                        "Condition": {"StringEquals": {"iam:PassedToService": "s3.amazonaws.com"}}}]
    assert decide(document, "iam:PassRole", role, {"iam:PassedToService": "s3.amazonaws.com"}) == "allow"
    assert decide(document, "iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"}) == "implicit"
    assert decide(document, "iam:PassRole", "arn:aws:iam::111122223333:role/admin",
                  {"iam:PassedToService": "s3.amazonaws.com"}) == "implicit"
    assert not [s for s in policy_document("admin", BUCKET)["Statement"] if s["Sid"] == "PassReplicationRole"]
    with pytest.raises(InputError, match="replication_role_arn applies to the admin persona only, not to writer"):
        policy_document("writer", BUCKET, replication_role_arn=role)
    with pytest.raises(InputError, match="invalid replication_role_arn 'dbdr-replication'"):
        policy_document("admin", BUCKET, replication_role_arn="dbdr-replication")
    with pytest.raises(InputError, match="is not in partition aws-cn"):
        policy_document("admin", BUCKET, partition="aws-cn", replication_role_arn=role)


def test_admin_governance_bypass_is_explicit():
    document = policy_document("admin", BUCKET, prefix=PREFIX, clusters=["main"], governance_bypass=True)
    assert actions(document, "Deny") == {"s3:DeleteBucket"}
    bypass = [s for s in document["Statement"] if s["Sid"] == "BreakGlassGovernanceBypass"]
    assert len(bypass) == 1 and bypass[0]["Effect"] == "Allow"
    assert set(bypass[0]["Action"]) == {"s3:BypassGovernanceRetention", "s3:DeleteObject", "s3:DeleteObjectVersion",
                                        "s3:GetObjectVersion", "s3:PutObjectLegalHold", "s3:PutObjectRetention"}
    assert bypass[0]["Resource"] == [B + "/pg/main/*"]
    assert decide(document, "s3:BypassGovernanceRetention", obj(KEYS["dump"])) == "allow"
    assert decide(document, "s3:DeleteObjectVersion", obj("other/backups/x")) == "implicit"


# --------------------------------------------------------------------------- against the real layout


def test_writer_against_the_storage_format():
    document = policy_document("writer", BUCKET, prefix=PREFIX, clusters=["main"])
    for name in ("manifest", "dump", "globals", "audit", "lock"):
        assert decide(document, "s3:PutObject", obj(KEYS[name])) == "allow", name
        assert decide(document, "s3:GetObject", obj(KEYS[name])) == "allow", name
    for name in ("manifest", "dump", "audit"):
        # Tagged on upload: a new object has no tag yet.
        assert decide(document, "s3:PutObjectTagging", obj(KEYS[name])) == "allow", name
        # Re-tagging a stored one (yearly -> daily would let lifecycle expire it early) is denied.
        existing = {"s3:ExistingObjectTag/dbdr-class": "yearly"}
        assert decide(document, "s3:PutObjectTagging", obj(KEYS[name]), existing) == "deny", name
    assert decide(document, "s3:PutObject", obj(KEYS["verify"])) == "implicit"
    assert decide(document, "s3:AbortMultipartUpload", obj(KEYS["dump"])) == "allow"
    # Deleting: exactly the lock, nothing else, and backup data explicitly never.
    assert decide(document, "s3:DeleteObject", obj(KEYS["lock"])) == "allow"
    for name in ("manifest", "dump", "globals", "verify", "audit", "wal"):
        assert decide(document, "s3:DeleteObject", obj(KEYS[name])) == "deny", name
    # Other clusters and other prefixes of the bucket are out of reach.
    assert decide(document, "s3:PutObject", obj("other/backups/%s/manifest.json" % BACKUP_ID)) == "implicit"
    assert decide(document, "s3:GetObject", obj("main/lock", prefix="elsewhere")) == "implicit"
    assert decide(document, "s3:DeleteObject", obj("other/lock")) == "implicit"
    assert decide(document, "s3:DeleteObject", obj("other/backups/x")) == "deny"


def test_pruner_against_the_storage_format():
    document = policy_document("pruner", BUCKET, prefix=PREFIX, clusters=["main"])
    for name in ("manifest", "dump", "globals", "verify", "lock"):
        assert decide(document, "s3:DeleteObject", obj(KEYS[name])) == "allow", name
    assert decide(document, "s3:DeleteObject", obj(KEYS["audit"])) == "deny"
    assert decide(document, "s3:DeleteObject", obj(KEYS["wal"])) == "implicit"
    existing = {"s3:ExistingObjectTag/dbdr-class": "daily"}
    for name in ("manifest", "dump"):
        assert decide(document, "s3:PutObjectTagging", obj(KEYS[name]), existing) == "allow", name
        assert decide(document, "s3:GetObjectTagging", obj(KEYS[name])) == "allow", name
        assert decide(document, "s3:PutObject", obj(KEYS[name])) == "implicit", name
    for name in ("audit", "lock"):
        assert decide(document, "s3:PutObject", obj(KEYS[name])) == "allow", name
    assert decide(document, "s3:DeleteObjectVersion", obj(KEYS["dump"])) == "deny"


def test_restorer_against_the_storage_format():
    document = policy_document("restorer", BUCKET, prefix=PREFIX, clusters=["main"])
    for name in ("manifest", "dump", "globals", "verify", "audit", "lock"):
        assert decide(document, "s3:GetObject", obj(KEYS[name])) == "allow", name
    assert decide(document, "s3:GetObjectTagging", obj(KEYS["manifest"])) == "allow"
    for name in ("verify", "audit"):
        assert decide(document, "s3:PutObject", obj(KEYS[name])) == "allow", name
        assert decide(document, "s3:PutObjectTagging", obj(KEYS[name])) == "allow", name
    for name in ("manifest", "dump", "lock"):
        assert decide(document, "s3:PutObject", obj(KEYS[name])) == "implicit", name
    for name in ("manifest", "dump", "verify", "audit", "wal"):
        assert decide(document, "s3:DeleteObject", obj(KEYS[name])) == "deny", name
    existing = {"s3:ExistingObjectTag/dbdr-class": "monthly"}
    assert decide(document, "s3:PutObjectTagging", obj(KEYS["manifest"]), existing) == "deny"


@pytest.mark.parametrize("persona", ["writer", "pruner", "restorer"])
def test_denials_hold_whatever_else_is_attached(persona):
    """An explicit Deny wins over an Allow in any other policy of the principal (say AmazonS3FullAccess)."""
    document = policy_document(persona, BUCKET, prefix=PREFIX, clusters=["main"])
    combined = {"Version": "2012-10-17", "Statement": document["Statement"] + [
        {"Sid": "Broad", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    for action in sorted(BUCKET_TAMPERING):
        assert decide(combined, action, B) == "deny", action
    for action in sorted(OBJECT_TAMPERING):
        assert decide(combined, action, obj(KEYS["dump"])) == "deny", action
        # Anywhere in the bucket, not only below the prefix.
        assert decide(combined, action, "%s/unrelated/key" % B) == "deny", action
    assert decide(combined, "s3:DeleteObject", obj(KEYS["audit"])) == "deny"
    assert decide(combined, "s3:GetBucketPolicy", B) == "allow"   # reading is not denied


def test_listing_is_limited_to_the_clusters_keys():
    document = policy_document("writer", BUCKET, prefix=PREFIX, clusters=["main"])
    assert decide(document, "s3:ListBucket", B, {"s3:prefix": "pg/main/backups/"}) == "allow"
    assert decide(document, "s3:ListBucket", B, {"s3:prefix": "pg/main/"}) == "allow"
    assert decide(document, "s3:ListBucket", B, {"s3:prefix": "pg/other/"}) == "implicit"
    assert decide(document, "s3:ListBucket", B, {"s3:prefix": "pg/"}) == "implicit"
    # A request without a prefix (a full listing, or HeadBucket, which AWS authorises as
    # s3:ListBucket) does not satisfy the condition: see the role README on HeadBucket.
    assert decide(document, "s3:ListBucket", B) == "implicit"
    every = policy_document("restorer", BUCKET, prefix=PREFIX)
    assert [s for s in every["Statement"] if s["Action"] == ["s3:ListBucket"]][0]["Condition"] == {
        "StringLike": {"s3:prefix": ["pg/*"]}}
    assert decide(every, "s3:ListBucket", B, {"s3:prefix": "pg/any-cluster/backups/"}) == "allow"
    assert decide(every, "s3:ListBucket", B, {"s3:prefix": "other/"}) == "implicit"


def test_bucket_root_repository_for_all_clusters_lists_without_condition():
    document = policy_document("restorer", BUCKET)
    listing = [s for s in document["Statement"] if s["Action"] == ["s3:ListBucket"]][0]
    assert "Condition" not in listing
    assert allows(document)["s3:GetObject"] == {B + "/*"}
    assert decide(document, "s3:DeleteObject", "%s/%s" % (B, KEYS["dump"])) == "deny"
    scoped = policy_document("restorer", BUCKET, clusters=["main"])
    assert [s for s in scoped["Statement"] if s["Action"] == ["s3:ListBucket"]][0]["Condition"] == {
        "StringLike": {"s3:prefix": ["main/*"]}}


# --------------------------------------------------------------------------- KMS and partitions


@pytest.mark.parametrize("persona", ["writer", "pruner", "restorer"])
def test_kms_key_for_the_data_plane(persona):
    document = policy_document(persona, BUCKET, prefix=PREFIX, kms_key_arn=KMS_KEY, region="eu-central-1")
    kms = [s for s in document["Statement"] if any(a.startswith("kms:") for a in s["Action"])]
    assert kms == [{"Sid": "UseRepositoryKmsKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Resource": KMS_KEY,
                    "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-central-1.amazonaws.com"}}}]
    unbound = policy_document(persona, BUCKET, prefix=PREFIX, kms_key_arn=KMS_KEY)
    assert [s for s in unbound["Statement"] if s["Sid"] == "UseRepositoryKmsKey"][0].get("Condition") is None
    plain = policy_document(persona, BUCKET, prefix=PREFIX)
    assert not [a for a in actions(plain, "Allow") if a.startswith("kms:")]


def test_admin_gets_no_kms_rights():
    document = policy_document("admin", BUCKET, kms_key_arn=KMS_KEY, region="eu-central-1")
    assert not [a for a in actions(document, "Allow") if a.startswith("kms:")]


@pytest.mark.parametrize("partition, suffix, region", [
    ("aws", "amazonaws.com", "eu-central-1"),
    ("aws-cn", "amazonaws.com.cn", "cn-north-1"),
    ("aws-us-gov", "amazonaws.com", "us-gov-west-1"),
])
def test_partitions(partition, suffix, region):
    key = "arn:%s:kms:%s:111122223333:key/abcd-1234" % (partition, region)
    for persona in PERSONAS:
        document = policy_document(persona, BUCKET, prefix=PREFIX, partition=partition,
                                   kms_key_arn=None if persona == "admin" else key, region=region)
        for statement in document["Statement"]:
            for resource in _as_list(statement["Resource"]):
                assert resource == "*" or resource.startswith("arn:%s:" % partition), resource
        if persona != "admin":
            assert [s for s in document["Statement"] if s["Sid"] == "UseRepositoryKmsKey"][0]["Condition"] == {
                "StringEquals": {"kms:ViaService": "s3.%s.%s" % (region, suffix)}}


# --------------------------------------------------------------------------- grammar


VALID_OPERATORS = {"StringLike", "StringEquals", "Null"}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("scope", [
    {},
    {"prefix": "pg/eu", "clusters": ["main", "reports.2"]},
    {"prefix": "pg", "kms_key_arn": KMS_KEY, "region": "eu-central-1"},
])
def test_valid_iam_grammar_and_json(persona, scope):
    if persona == "admin":
        scope = dict(scope, replication_role_arn="arn:aws:iam::111122223333:role/dbdr/replication")
    document = policy_document(persona, BUCKET, **scope)
    assert json.loads(json.dumps(document)) == document
    assert set(document) == {"Version", "Statement"} and document["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in document["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in document["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        assert {"Sid", "Effect", "Action", "Resource"} <= set(statement)
        assert re.fullmatch(r"[A-Za-z0-9]+", statement["Sid"])
        assert statement["Effect"] in ("Allow", "Deny")
        assert statement["Action"] == sorted(set(statement["Action"])) and statement["Action"]
        for action in statement["Action"]:
            assert re.fullmatch(r"(s3|kms|iam):[A-Z][A-Za-z]+", action), action
        resources = _as_list(statement["Resource"])
        assert resources and len(resources) == len(set(resources))
        if resources == ["*"]:
            assert statement["Action"] == ["s3:ListAllMyBuckets"]
            continue
        for resource in resources:
            assert re.fullmatch(r"arn:aws:(s3:::%s(/[A-Za-z0-9._*/-]*)?|kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+"
                                r"|iam::[0-9]{12}:role/[A-Za-z0-9/_-]+)" % re.escape(BUCKET), resource), resource
        for operator, tests in statement.get("Condition", {}).items():
            assert operator in VALID_OPERATORS
            assert tests and all(isinstance(v, (str, list)) for v in tests.values())


def test_every_allowed_object_resource_is_inside_the_prefix():
    for persona in ("writer", "pruner", "restorer"):
        document = policy_document(persona, BUCKET, prefix="pg/eu")
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            for resource in _as_list(statement["Resource"]):
                assert resource == B or resource.startswith(B + "/pg/eu/"), (persona, resource)


def test_documents_fit_a_managed_policy():
    """IAM limits a managed policy to 6,144 characters (whitespace not counted)."""
    clusters = ["cluster-%02d" % i for i in range(5)]
    documents = policy_documents(bucket=BUCKET, prefix="postgres/production", clusters=clusters, kms_key_arn=KMS_KEY,
                                 region="eu-central-1")
    for persona, document in documents.items():
        assert len(json.dumps(document, separators=(",", ":"))) <= 6144, persona
    too_many = ["cluster-%02d" % i for i in range(8)]
    with pytest.raises(InputError, match=r"the writer policy for 8 clusters has [0-9]+ characters, more than the 6144"):
        policy_document("writer", BUCKET, prefix="postgres/production", clusters=too_many)
    assert policy_document("restorer", BUCKET, prefix="postgres/production", clusters=too_many)


def test_output_is_deterministic():
    first = json.dumps(policy_documents(bucket=BUCKET, prefix=PREFIX, clusters=["b", "a"]), sort_keys=True)
    second = json.dumps(policy_documents(bucket=BUCKET, prefix=PREFIX, clusters=["a", "b"]), sort_keys=True)
    assert first == second


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, message", [
    ({"bucket": ""}, "bucket is required"),
    ({"bucket": None}, "bucket is required"),
    ({"bucket": "acme-*"}, "invalid bucket name 'acme-\\*'"),
    ({"bucket": "Acme"}, "invalid bucket name"),
    ({"bucket": "a..b"}, "invalid bucket name"),
    ({"bucket": "192.168.1.1"}, "invalid bucket name"),
    ({"bucket": "ab"}, "invalid bucket name"),
    ({"prefix": ".."}, "'.' and '..' are not allowed"),
    ({"prefix": "pg/../other"}, "'.' and '..' are not allowed"),
    ({"prefix": "pg/*"}, "no wildcards"),
    ({"prefix": "pg?"}, "no wildcards"),
    ({"prefix": "${aws:username}"}, "no policy variables"),
    ({"prefix": "pg//eu"}, "no empty segments"),
    ({"prefix": 7}, "prefix must be a string"),
    ({"clusters": []}, "non-empty list"),
    ({"clusters": ["main", "all"]}, "'all' cannot be combined"),
    ({"clusters": ["ma*"]}, "wildcards are not allowed"),
    ({"clusters": ["a/b"]}, "invalid cluster name"),
    ({"clusters": [".."]}, "invalid cluster name"),
    ({"partition": "aws-iso"}, "unknown AWS partition 'aws-iso'"),
    ({"kms_key_arn": "arn:aws:kms:eu-central-1:111122223333:alias/backups"}, "never an alias"),
    ({"kms_key_arn": "1234abcd-12ab-34cd-56ef-1234567890ab"}, "invalid kms_key_arn"),
    ({"kms_key_arn": "arn:aws-cn:kms:cn-north-1:111122223333:key/abcd"}, "is in partition aws-cn, the bucket in aws"),
    ({"region": "Europe"}, "invalid region 'Europe'"),
])
def test_bad_input_is_a_clear_error(kwargs, message):
    args = {"bucket": BUCKET, "prefix": PREFIX}
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        policy_document("writer", **args)


def test_unknown_persona_and_misplaced_bypass():
    with pytest.raises(InputError, match="unknown persona 'superuser': use one of writer, pruner, restorer, admin"):
        policy_document("superuser", BUCKET)
    with pytest.raises(InputError, match="governance_bypass applies to the admin persona only, not to pruner"):
        policy_document("pruner", BUCKET, governance_bypass=True)
    with pytest.raises(InputError, match="governance_bypass must be a boolean"):
        policy_document("admin", BUCKET, governance_bypass="yes")


def test_the_filter_plugin():
    backup_iam_policy = FilterModule().filters()["backup_iam_policy"]
    assert backup_iam_policy(BUCKET, "restorer", prefix=PREFIX) == policy_document("restorer", BUCKET, prefix=PREFIX)
    assert backup_iam_policy(BUCKET, "writer", clusters="all") == policy_document("writer", BUCKET)
    assert backup_iam_policy(BUCKET, "writer", clusters=["all"]) == policy_document("writer", BUCKET)
    with pytest.raises(AnsibleFilterError, match=r"dbdr.backup.backup_iam_policy: invalid prefix 'a/\.\./b'"):
        backup_iam_policy(BUCKET, "writer", prefix="a/../b")
    with pytest.raises(AnsibleFilterError, match="unknown persona 'reader'"):
        backup_iam_policy(BUCKET, "reader")
