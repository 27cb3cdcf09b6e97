"""dbdr.backup.s3_replication against moto in server mode, run through Ansible.

What moto keeps of a replication configuration on readback (moto 5.2): the role, and per rule
ID, Priority, Status and the whole Destination. It answers every rule's Filter as
``{"Prefix": ""}`` and DeleteMarkerReplication as Disabled, and drops SourceSelectionCriteria.
Rules for the whole bucket without delete-marker replication and without KMS therefore
round-trip exactly and are used for the idempotence tests; for the rest the tests below assert
that the module reports the difference moto really answers (it must not hide one), and the
normalization of S3's real answers is covered by tests/unit/test_replication.py.
"""

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from module_args import run_module

OFFSITE_REGION = "eu-west-1"


def unique(name):
    return "%s-%s" % (name, uuid.uuid4().hex[:10])


def regional(s3_server, region, service="s3"):
    return boto3.client(service, endpoint_url=s3_server.endpoint_url, aws_access_key_id=s3_server.access_key,
                        aws_secret_access_key=s3_server.secret_key, region_name=region)


def bucket(s3_server, name, region="us-east-1", versioned=True, **create):
    client = regional(s3_server, region)
    if region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    client.create_bucket(Bucket=name, **create)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def pair(s3_server):
    """(source, destination): versioned buckets, the destination in another region."""
    return bucket(s3_server, unique("src")), bucket(s3_server, unique("offsite"), OFFSITE_REGION)


def aws(s3_server):
    return dict(endpoint_url=s3_server.endpoint_url, access_key=s3_server.access_key,
                secret_key=s3_server.secret_key, region=s3_server.region)


def role(name="dbdr-s3-replication"):
    return "arn:aws:iam::123456789012:role/" + name


def replication_args(s3_server, source, *rules, **extra):
    args = dict(aws(s3_server), bucket=source, role_arn=role(), rules=list(rules))
    args.update(extra)
    return args


def offsite(destination, **extra):
    rule = dict(destination_bucket=destination, destination_region=OFFSITE_REGION, storage_class="STANDARD_IA")
    rule.update(extra)
    return rule


def stored(s3_server, name):
    """The ReplicationConfiguration moto holds, or None."""
    try:
        return s3_server.client().get_bucket_replication(Bucket=name)["ReplicationConfiguration"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ReplicationConfigurationNotFoundError"
        return None


def replicate(ansible_runner, args, expect_rc=0, check=False, diff=False):
    return run_module(ansible_runner, "s3_replication", args, expect_rc=expect_rc, check=check, diff=diff)


def test_round_trip_check_mode_idempotence_diff_and_absent(s3_server, ansible_runner, pair):
    source, destination = pair
    args = replication_args(s3_server, source, offsite(destination))

    predicted = replicate(ansible_runner, args, check=True, diff=True)
    assert predicted["changed"] and predicted["operation"] == "put"
    assert predicted["diff"]["before"] == {}
    assert predicted["diff"]["after"]["rules"][0]["storage_class"] == "STANDARD_IA"
    assert stored(s3_server, source) is None, "check mode wrote the configuration"

    done = replicate(ansible_runner, args, diff=True)
    assert done["changed"] and done["replication"] == predicted["replication"]
    assert done["configuration"] == predicted["configuration"]
    config = stored(s3_server, source)
    assert config["Role"] == role()
    (rule,) = config["Rules"]
    assert rule["ID"] == "dbdr-" + destination and rule["Priority"] == 1 and rule["Status"] == "Enabled"
    assert rule["Destination"] == {"Bucket": "arn:aws:s3:::" + destination, "StorageClass": "STANDARD_IA"}
    assert rule["DeleteMarkerReplication"] == {"Status": "Disabled"}
    assert "SourceSelectionCriteria" not in rule

    again = replicate(ansible_runner, args, diff=True)
    assert not again["changed"] and again["operation"] is None and again["configuration"] is None
    assert again["diff"]["before"] == again["diff"]["after"] == done["replication"]
    assert not again.get("warnings")

    colder = replication_args(s3_server, source, offsite(destination, storage_class="DEEP_ARCHIVE"))
    predicted = replicate(ansible_runner, colder, check=True, diff=True)
    assert predicted["changed"]
    assert predicted["diff"]["before"]["rules"][0]["storage_class"] == "STANDARD_IA"
    assert predicted["diff"]["after"]["rules"][0]["storage_class"] == "DEEP_ARCHIVE"
    assert stored(s3_server, source) == config, "check mode wrote the configuration"
    assert replicate(ansible_runner, colder)["changed"]
    assert stored(s3_server, source)["Rules"][0]["Destination"]["StorageClass"] == "DEEP_ARCHIVE"

    absent = dict(aws(s3_server), bucket=source, state="absent")
    predicted = replicate(ansible_runner, absent, check=True, diff=True)
    assert predicted["changed"] and predicted["operation"] == "delete" and predicted["diff"]["after"] == {}
    assert stored(s3_server, source) is not None, "check mode deleted the configuration"
    assert replicate(ansible_runner, absent)["changed"]
    assert stored(s3_server, source) is None
    assert not replicate(ansible_runner, absent)["changed"]


def test_purge(s3_server, ansible_runner, pair):
    source, destination = pair
    third = bucket(s3_server, unique("third"), "eu-north-1")
    foreign = {"ID": "third-copy", "Priority": 9, "Status": "Enabled", "Filter": {"Prefix": ""},
               "DeleteMarkerReplication": {"Status": "Disabled"}, "Destination": {"Bucket": "arn:aws:s3:::" + third}}
    s3_server.client().put_bucket_replication(Bucket=source, ReplicationConfiguration={"Role": role(), "Rules": [foreign]})

    kept = replicate(ansible_runner, replication_args(s3_server, source, offsite(destination)))
    assert kept["changed"]
    assert sorted(r["ID"] for r in stored(s3_server, source)["Rules"]) == sorted(["dbdr-" + destination, "third-copy"])
    assert not replicate(ansible_runner, replication_args(s3_server, source, offsite(destination)))["changed"]

    purged = replicate(ansible_runner, replication_args(s3_server, source, offsite(destination), purge=True), diff=True)
    assert purged["changed"]
    assert [r["id"] for r in purged["diff"]["before"]["rules"]] == ["dbdr-" + destination, "third-copy"]
    assert [r["ID"] for r in stored(s3_server, source)["Rules"]] == ["dbdr-" + destination]


def test_kms_encrypted_source(s3_server, ansible_runner, pair):
    source, destination = pair
    source_key = regional(s3_server, "us-east-1", "kms").create_key(Description="dbdr primary")["KeyMetadata"]["Arn"]
    replica_key = regional(s3_server, OFFSITE_REGION, "kms").create_key(Description="dbdr offsite")["KeyMetadata"]["Arn"]
    s3_server.client().put_bucket_encryption(Bucket=source, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": source_key}}]})

    # Without the replica's key, S3 would accept the rule and replicate none of the SSE-KMS objects.
    refused = replicate(ansible_runner, replication_args(s3_server, source, offsite(destination)), expect_rc=2)
    assert "encrypts with aws:kms by default" in refused["msg"] and "set replica_kms_key_id" in refused["msg"]
    assert refused["stage"] == "validate"
    assert stored(s3_server, source) is None

    kms_rule = offsite(destination, replica_kms_key_id=replica_key, replication_time_control=True)
    args = replication_args(s3_server, source, kms_rule)
    done = replicate(ansible_runner, args)
    assert done["changed"]
    assert done["configuration"]["Rules"][0]["SourceSelectionCriteria"] == {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
    (rule,) = stored(s3_server, source)["Rules"]
    assert rule["Destination"]["EncryptionConfiguration"] == {"ReplicaKmsKeyID": replica_key}
    assert rule["Destination"]["ReplicationTime"] == {"Status": "Enabled", "Time": {"Minutes": 15}}
    assert rule["Destination"]["Metrics"] == {"Status": "Enabled", "EventThreshold": {"Minutes": 15}}

    # moto drops SourceSelectionCriteria on readback. The module must report that real difference
    # (on AWS the rule reads back whole and a second run is unchanged: see the unit tests).
    again = replicate(ansible_runner, args, diff=True)
    if "SourceSelectionCriteria" not in rule:
        assert again["changed"]
        before, after = again["diff"]["before"]["rules"][0], again["diff"]["after"]["rules"][0]
        assert before["replicate_kms_encrypted"] is False and after["replicate_kms_encrypted"] is True
        assert dict(before, replicate_kms_encrypted=True) == after
    else:
        assert not again["changed"]


def test_moto_filter_loss_is_reported_not_hidden(s3_server, ansible_runner, pair):
    """moto answers every Filter as {"Prefix": ""}: a prefix rule differs on readback, and the
    module says so. A module that compared loosely would pass an idempotence test here and miss
    real drift on AWS."""
    source, destination = pair
    args = replication_args(s3_server, source, offsite(destination, prefix="postgres/"))
    assert replicate(ansible_runner, args)["changed"]
    moto_filter = stored(s3_server, source)["Rules"][0]["Filter"]
    again = replicate(ansible_runner, args, diff=True)
    if moto_filter == {"Prefix": ""}:
        assert again["changed"]
        assert again["diff"]["before"]["rules"][0]["prefix"] == ""
        assert again["diff"]["after"]["rules"][0]["prefix"] == "postgres/"
    else:
        assert moto_filter == {"Prefix": "postgres/"} and not again["changed"]


def test_same_region_destination_warns(s3_server, ansible_runner):
    source, nearby = bucket(s3_server, unique("src")), bucket(s3_server, unique("nearby"))
    result = replicate(ansible_runner, replication_args(s3_server, source, {"destination_bucket": nearby}))
    assert result["changed"]
    assert any("same region (us-east-1)" in w and "not an offsite one" in w for w in result["warnings"]), result


def test_secrets_stay_out_of_output(s3_server, ansible_runner, pair):
    source, destination = pair
    args = replication_args(s3_server, source, offsite(destination), session_token="dbdr-session-token-secret-0001")
    result = ansible_runner.run_adhoc(
        "dbdr.backup.s3_replication", dict((k, "{{ dbdr_args.%s }}" % k) for k in sorted(args)),
        extra_vars={"dbdr_args": args}, verbosity=4)
    output = result.stdout + result.stderr
    invocation = result.last_result["invocation"]["module_args"]
    assert invocation["bucket"] == source
    assert invocation["secret_key"] == invocation["session_token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert s3_server.secret_key not in output
    assert "dbdr-session-token-secret-0001" not in output


def suspended_source(s3_server, destination):
    """A source that had a working configuration, then versioning suspended."""
    source = bucket(s3_server, unique("src"))
    s3_server.client().put_bucket_replication(Bucket=source, ReplicationConfiguration={"Role": role(), "Rules": [
        {"ID": "x", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
         "DeleteMarkerReplication": {"Status": "Disabled"}, "Destination": {"Bucket": "arn:aws:s3:::" + destination}}]})
    s3_server.client().put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Suspended"})
    return source


def locked_source(s3_server):
    return bucket(s3_server, unique("locked"), ObjectLockEnabledForBucket=True)


# Each case: (how to get the source and the rules, expected message part). The source holds a
# replication configuration before the run; after the failed run it must be exactly the same.
INVALID = {
    "destination is the source": (lambda s3, src, dst: (src, [offsite(src)]), "is the source bucket itself"),
    "bad storage class": (lambda s3, src, dst: (src, [offsite(dst, storage_class="GLACIER_DEEP")]),
                          "value of storage_class must be one of"),
    "duplicate priorities": (lambda s3, src, dst: (src, [offsite(dst, id="a", priority=1),
                                                         offsite(dst, id="b", priority=1, prefix="wal/")]),
                             "priority 1 is used by 2 rules (a, b)"),
    "duplicate ids": (lambda s3, src, dst: (src, [offsite(dst), offsite(dst, prefix="wal/")]),
                      "id dbdr-%(dst)s is used by 2 rules"),
    "destination not versioned": (lambda s3, src, dst: (src, [offsite(bucket(s3, "unversioned-" + dst, OFFSITE_REGION,
                                                                             versioned=False))]),
                                  "versioning is not enabled on the destination bucket"),
    "destination missing": (lambda s3, src, dst: (src, [offsite("missing-" + dst)]),
                            "the destination bucket s3://missing-%(dst)s does not exist"),
    "source versioning suspended": (lambda s3, src, dst: (suspended_source(s3, dst), [offsite(dst)]),
                                    "versioning is Suspended on the source bucket"),
    "locked source, unlocked destination": (lambda s3, src, dst: (locked_source(s3), [offsite(dst)]),
                                            "uses Object Lock but the destination s3://%(dst)s does not"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
@pytest.mark.parametrize("check", [False, True], ids=["real", "check"])
def test_invalid_requests_change_nothing(s3_server, ansible_runner, pair, case, check):
    prepare, message = INVALID[case]
    source, destination = pair
    existing = {"Role": role("earlier"), "Rules": [
        {"ID": "earlier", "Priority": 3, "Status": "Enabled", "Filter": {"Prefix": ""},
         "DeleteMarkerReplication": {"Status": "Disabled"}, "Destination": {"Bucket": "arn:aws:s3:::" + destination}}]}
    source, rules = prepare(s3_server, source, destination)
    if stored(s3_server, source) is None:
        s3_server.client().put_bucket_replication(Bucket=source, ReplicationConfiguration=existing)
    before = stored(s3_server, source)
    assert before is not None

    failed = replicate(ansible_runner, replication_args(s3_server, source, *rules), expect_rc=2, check=check)
    assert message % {"dst": destination} in failed["msg"], failed
    assert stored(s3_server, source) == before


def test_every_problem_at_once_and_missing_source(s3_server, ansible_runner, pair):
    source, destination = pair
    failed = replicate(ansible_runner, replication_args(
        s3_server, source, offsite(source), offsite(destination, priority=-1, id="x"), role_arn="dbdr-role"), expect_rc=2)
    assert "role_arn 'dbdr-role' is not an IAM role ARN" in failed["msg"]
    assert "rules[0]: destination_bucket %s is the source bucket itself" % source in failed["msg"]
    assert "rules[1]: priority must be 0 or more" in failed["msg"]
    assert failed["stage"] == "validate"

    missing = replicate(ansible_runner, replication_args(s3_server, "missing-" + source, offsite(destination)),
                        expect_rc=2)
    assert "the source bucket s3://missing-%s does not exist" % source in missing["msg"]
    assert stored(s3_server, source) is None
    assert json.dumps(failed).count(s3_server.secret_key) == 0
