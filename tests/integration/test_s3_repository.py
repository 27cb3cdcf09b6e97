"""The s3_repository role, run with ansible-playbook from localhost against moto in server mode
(S3, IAM and KMS on one endpoint), and everything it set up read back with boto3.

moto and this role, where they part from AWS (moto 5.2):
- Bucket policies: moto ignores conditions, so any Deny statement for Principal "*" denies
  every object GET/PUT/DELETE. The role's statements are all conditional (plain HTTP, old TLS,
  foreign encryption), so objects can only be written after the test removes the policy.
- Object Lock: moto answers the default retention with both Days and Years (one of them 0),
  where S3 returns only the one that was set; amazon.aws.s3_bucket compares the answer verbatim
  and puts the retention again on every run. The lock test allows exactly those two tasks to
  report a change, and only while moto answers that way.
- Replication: moto drops SourceSelectionCriteria on readback, which the KMS rule needs (see
  test_s3_replication.py); the KMS replication scenario allows that one task to change.
"""

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

OFFSITE_REGION = "eu-west-1"
PLAYBOOK = json.dumps([{"name": "s3_repository", "hosts": "localhost", "gather_facts": False,
                        "roles": [{"role": "dbdr.backup.s3_repository"}]}])
BUCKET_TASK = "Bucket %s - versioned, encrypted, private, ACLs off, policy, Object Lock"
REPLICATION_TASK = "Replicate to s3://%s in %s"


def unique(name):
    return "%s-%s" % (name, uuid.uuid4().hex[:10])


def client(s3_server, service="s3", region="us-east-1"):
    return boto3.client(service, endpoint_url=s3_server.endpoint_url, aws_access_key_id=s3_server.access_key,
                        aws_secret_access_key=s3_server.secret_key, region_name=region)


def role_vars(s3_server, bucket, **extra):
    out = dict(s3_repository_bucket=bucket, s3_repository_region="us-east-1", s3_repository_prefix="postgres",
               s3_repository_endpoint_url=s3_server.endpoint_url, s3_repository_iam_endpoint_url=s3_server.endpoint_url,
               s3_repository_access_key=s3_server.access_key, s3_repository_secret_key=s3_server.secret_key)
    out.update(extra)
    return out


def replicated(s3_server, bucket, **extra):
    replication = dict(s3_repository_replication_enabled=True, s3_repository_replica_bucket=bucket + "-offsite",
                       s3_repository_replica_region=OFFSITE_REGION)
    replication.update(extra)
    return role_vars(s3_server, bucket, **replication)


def apply(ansible_runner, variables, check=False, expect_rc=0, verbosity=0):
    return ansible_runner.run_playbook(PLAYBOOK, extra_vars=variables, check=check, expect_rc=expect_rc,
                                       verbosity=verbosity)


def name_of(task):
    """A task's name without the "dbdr.backup.s3_repository : " prefix Ansible adds."""
    return task["name"].split(" : ", 1)[-1]


def changed_tasks(result):
    return [name_of(task) for task, res in result.results() if res.get("changed")]


def results_of(result, name):
    return [res for task, res in result.results() if name_of(task) == name]


def exists(s3_server, bucket):
    try:
        client(s3_server).head_bucket(Bucket=bucket)
        return True
    except ClientError as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        return False


def role_exists(s3_server, name):
    try:
        client(s3_server, "iam").get_role(RoleName=name)
        return True
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchEntity"
        return False


def statements(s3, bucket):
    return dict((s["Sid"], s) for s in json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"])


def assert_hardened(s3_server, bucket, region, encryption="AES256", kms_key=None):
    s3 = client(s3_server, region=region)
    location = s3.get_bucket_location(Bucket=bucket)["LocationConstraint"]
    assert (location or "us-east-1") == region
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == encryption
    if kms_key:
        assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == kms_key
        assert rule["BucketKeyEnabled"] is True
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]

    policy = statements(s3, bucket)
    arn = "arn:aws:s3:::" + bucket
    assert all(s["Effect"] == "Deny" and s["Principal"] == "*" for s in policy.values()), "allow statements"
    assert policy["DenyInsecureTransport"]["Action"] == "s3:*"
    assert policy["DenyInsecureTransport"]["Resource"] == [arn, arn + "/*"]
    assert policy["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert policy["DenyOutdatedTls"]["Condition"] == {"NumericLessThan": {"s3:TlsVersion": "1.2"}}
    assert policy["DenyCustomerProvidedKeys"]["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}}
    assert policy["DenyOtherEncryption"]["Condition"] == {
        "StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": encryption}}
    if kms_key:
        assert policy["DenyOtherKmsKey"]["Condition"] == {
            "StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption-aws-kms-key-id": kms_key}}
    else:
        assert "DenyOtherKmsKey" not in policy
    assert "DenyUploadsWithoutEncryptionHeader" not in policy
    return s3


def assert_lifecycle(s3, bucket):
    """The role's lifecycle settings arrived (how s3_lifecycle splits them into rules is its business)."""
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]

    def filter_of(rule):
        return rule.get("Filter", {}).get("And") or rule.get("Filter", {})

    assert all(filter_of(r).get("Prefix") == "postgres/" for r in rules), "rules outside the repository prefix"
    daily = [r for r in rules if {"Key": "dbdr-class", "Value": "daily"} in filter_of(r).get("Tags", [])]
    assert daily and min(r["Expiration"]["Days"] for r in daily) == 23
    assert any(r.get("AbortIncompleteMultipartUpload") == {"DaysAfterInitiation": 7} for r in rules)
    assert any(r.get("NoncurrentVersionExpiration") == {"NoncurrentDays": 30} for r in rules)
    assert any(t == {"Days": 1, "StorageClass": "DEEP_ARCHIVE"} for r in rules for t in r.get("Transitions", []))


def replication_policy(s3_server, role_name):
    return client(s3_server, "iam").get_role_policy(RoleName=role_name, PolicyName="dbdr-s3-replication")["PolicyDocument"]


def test_hardened_bucket_with_offsite_replica(s3_server, ansible_runner):
    bucket = unique("dbdr")
    offsite = bucket + "-offsite"
    tags = {"backup": "dbdr", "team": "dba"}
    variables = replicated(s3_server, bucket, s3_repository_tags=tags)

    first = apply(ansible_runner, variables)
    assert first.stats["localhost"]["failures"] == 0
    (recorded,) = results_of(first, "Record what the role set up")
    state = recorded["ansible_facts"]["s3_repository_state"]
    role_name = "dbdr-s3-replication-" + bucket
    role_arn = client(s3_server, "iam").get_role(RoleName=role_name)["Role"]["Arn"]
    assert state == {"bucket_arn": "arn:aws:s3:::" + bucket, "replica_bucket_arn": "arn:aws:s3:::" + offsite,
                     "replication_role_arn": role_arn}

    s3 = assert_hardened(s3_server, bucket, "us-east-1")
    assert_lifecycle(s3, bucket)
    replica = assert_hardened(s3_server, offsite, OFFSITE_REGION)
    assert_lifecycle(replica, offsite)

    config = s3.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]
    assert config["Role"] == role_arn
    (rule,) = config["Rules"]
    assert rule["ID"] == "dbdr-offsite" and rule["Status"] == "Enabled"
    assert rule["Destination"] == {"Bucket": "arn:aws:s3:::" + offsite, "StorageClass": "STANDARD_IA"}
    assert rule["DeleteMarkerReplication"] == {"Status": "Disabled"}

    for name, region in ((bucket, "us-east-1"), (offsite, OFFSITE_REGION)):
        tag_set = client(s3_server, region=region).get_bucket_tagging(Bucket=name)["TagSet"]
        assert dict((t["Key"], t["Value"]) for t in tag_set) == tags
    role_tags = client(s3_server, "iam").list_role_tags(RoleName=role_name)["Tags"]
    assert dict((t["Key"], t["Value"]) for t in role_tags) == tags

    trust = client(s3_server, "iam").get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
                                   "Action": "sts:AssumeRole"}]
    permissions = replication_policy(s3_server, role_name)["Statement"]
    resources = [s["Resource"] for s in permissions]
    assert resources == ["arn:aws:s3:::" + bucket, "arn:aws:s3:::%s/*" % bucket, "arn:aws:s3:::%s/*" % offsite]
    assert all(s["Effect"] == "Allow" for s in permissions)
    actions = [a for s in permissions for a in s["Action"]]
    assert "s3:ReplicateObject" in actions and "s3:GetObjectVersionForReplication" in actions
    # Delete markers are not replicated, so the role may not replicate deletes either.
    assert "s3:ReplicateDelete" not in actions
    assert not any(a.endswith("*") for a in actions)

    second = apply(ansible_runner, variables, verbosity=2)
    assert changed_tasks(second) == [], second.describe()
    output = second.stdout + second.stderr
    assert s3_server.secret_key not in output

    checked = apply(ansible_runner, variables, check=True)
    assert changed_tasks(checked) == [], checked.describe()
    skipped = results_of(checked, BUCKET_TASK % bucket)
    assert skipped and skipped[0].get("skipped"), "amazon.aws.s3_bucket has no check mode: Ansible skips it"


def test_object_lock_on_both_buckets(s3_server, ansible_runner):
    bucket = unique("dbdr-lock")
    offsite = bucket + "-offsite"
    variables = replicated(s3_server, bucket, s3_repository_object_lock_enabled=True, s3_repository_object_lock_days=1)
    apply(ansible_runner, variables)

    s3 = client(s3_server)
    for name in (bucket, offsite):
        lock = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
        assert lock["ObjectLockEnabled"] == "Enabled"
        assert lock["Rule"]["DefaultRetention"]["Mode"] == "GOVERNANCE"
        assert lock["Rule"]["DefaultRetention"]["Days"] == 1
    actions = [a for s in replication_policy(s3_server, "dbdr-s3-replication-" + bucket)["Statement"] for a in s["Action"]]
    assert "s3:GetObjectRetention" in actions and "s3:GetObjectLegalHold" in actions

    second = apply(ansible_runner, variables)
    moto_adds_years = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"][
        "DefaultRetention"].get("Years") == 0
    expected = [BUCKET_TASK % bucket, BUCKET_TASK % offsite] if moto_adds_years else []
    assert changed_tasks(second) == expected, second.describe()

    # moto would refuse every object request because of the (conditional) deny statements.
    s3.delete_bucket_policy(Bucket=bucket)
    version = s3.put_object(Bucket=bucket, Key="postgres/main/backups/x/manifest.json", Body=b"{}")["VersionId"]
    head = s3.head_object(Bucket=bucket, Key="postgres/main/backups/x/manifest.json")
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=bucket, Key="postgres/main/backups/x/manifest.json", VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # A delete without version id only adds a delete marker: the locked version stays readable.
    assert s3.delete_object(Bucket=bucket, Key="postgres/main/backups/x/manifest.json")["DeleteMarker"] is True
    body = s3.get_object(Bucket=bucket, Key="postgres/main/backups/x/manifest.json", VersionId=version)["Body"].read()
    assert body == b"{}"
    # GOVERNANCE yields to principals allowed s3:BypassGovernanceRetention (moto checks no IAM here).
    s3.delete_object(Bucket=bucket, Key="postgres/main/backups/x/manifest.json", VersionId=version,
                     BypassGovernanceRetention=True)


def test_kms_encryption(s3_server, ansible_runner):
    bucket = unique("dbdr-kms")
    key = client(s3_server, "kms").create_key(Description="dbdr backups")["KeyMetadata"]["Arn"]
    variables = role_vars(s3_server, bucket, s3_repository_encryption="aws:kms", s3_repository_kms_key_id=key)
    apply(ansible_runner, variables)
    assert_lifecycle(assert_hardened(s3_server, bucket, "us-east-1", "aws:kms", key), bucket)
    assert changed_tasks(apply(ansible_runner, variables)) == []


def test_kms_encrypted_replication(s3_server, ansible_runner):
    bucket = unique("dbdr-kmsr")
    offsite = bucket + "-offsite"
    key = client(s3_server, "kms").create_key(Description="dbdr backups")["KeyMetadata"]["Arn"]
    replica_key = client(s3_server, "kms", OFFSITE_REGION).create_key(Description="dbdr offsite")["KeyMetadata"]["Arn"]
    variables = replicated(s3_server, bucket, s3_repository_encryption="aws:kms", s3_repository_kms_key_id=key,
                           s3_repository_replica_kms_key_id=replica_key, s3_repository_replica_storage_class="GLACIER_IR",
                           s3_repository_lifecycle_enabled=False)
    apply(ansible_runner, variables)
    assert_hardened(s3_server, offsite, OFFSITE_REGION, "aws:kms", replica_key)
    (rule,) = client(s3_server).get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]["Rules"]
    assert rule["Destination"]["EncryptionConfiguration"] == {"ReplicaKmsKeyID": replica_key}
    assert rule["Destination"]["StorageClass"] == "GLACIER_IR"

    kms = dict((s["Sid"], s) for s in replication_policy(s3_server, "dbdr-s3-replication-" + bucket)["Statement"])
    assert kms["DecryptSourceObjects"]["Action"] == "kms:Decrypt" and kms["DecryptSourceObjects"]["Resource"] == key
    assert kms["DecryptSourceObjects"]["Condition"]["StringEquals"] == {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    assert kms["EncryptReplicas"]["Resource"] == replica_key
    assert kms["EncryptReplicas"]["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    assert kms["EncryptReplicas"]["Condition"]["StringLike"] == {
        "kms:EncryptionContext:aws:s3:arn": ["arn:aws:s3:::" + offsite, "arn:aws:s3:::%s/*" % offsite]}

    second = apply(ansible_runner, variables)
    moto_dropped = "SourceSelectionCriteria" not in rule
    assert changed_tasks(second) == ([REPLICATION_TASK % (offsite, OFFSITE_REGION)] if moto_dropped else []), \
        second.describe()


def test_given_replication_role_creates_no_iam(s3_server, ansible_runner):
    bucket = unique("dbdr-byo")
    arn = "arn:aws:iam::123456789012:role/platform-managed-replication"
    apply(ansible_runner, replicated(s3_server, bucket, s3_repository_replication_role_arn=arn,
                                     s3_repository_lifecycle_enabled=False))
    assert client(s3_server).get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]["Role"] == arn
    assert not role_exists(s3_server, "dbdr-s3-replication-" + bucket)
    with pytest.raises(ClientError) as none:
        client(s3_server).get_bucket_lifecycle_configuration(Bucket=bucket)
    assert none.value.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"


def test_check_mode_on_fresh_names_changes_nothing(s3_server, ansible_runner):
    bucket = unique("dbdr-check")
    variables = replicated(s3_server, bucket, s3_repository_object_lock_enabled=True)
    checked = apply(ansible_runner, variables, check=True)
    changed = changed_tasks(checked)
    assert "Check mode - bucket %s" % bucket in changed and "Check mode - bucket %s-offsite" % bucket in changed
    assert "Check mode - replication" in changed
    assert not exists(s3_server, bucket) and not exists(s3_server, bucket + "-offsite")
    assert not role_exists(s3_server, "dbdr-s3-replication-" + bucket)


@pytest.mark.parametrize("extra, message", [
    (dict(s3_repository_object_lock_enabled=True, s3_repository_object_lock_years=1),
     "needs a default retention of either days or years"),
    (dict(s3_repository_replica_region="us-east-1"), "in a region other than us-east-1"),
    (dict(s3_repository_encryption="aws:kms", s3_repository_kms_key_id="alias/backups"),
     "must be given as a key ARN"),
    (dict(s3_repository_encryption="aws:kms", s3_repository_kms_key_id="arn:aws:kms:us-east-1:123456789012:key/k"),
     "S3 replicates its objects only into replicas encrypted with a KMS key"),
    (dict(s3_repository_object_lock_enabled=True, s3_repository_replica_object_lock_enabled=False),
     "S3 cannot replicate locked objects into a bucket without it"),
    (dict(s3_repository_replica_storage_class="GLACIER_DEEP"), "s3_repository_replica_storage_class must be one of"),
])
def test_bad_variables_fail_before_any_change(s3_server, ansible_runner, extra, message):
    bucket = unique("dbdr-bad")
    failed = apply(ansible_runner, replicated(s3_server, bucket, **extra), expect_rc=2)
    assert message in failed.stdout, failed.describe()
    assert not exists(s3_server, bucket) and not exists(s3_server, bucket + "-offsite")
    assert not role_exists(s3_server, "dbdr-s3-replication-" + bucket)
