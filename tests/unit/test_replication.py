"""s3_replication's domain code: options -> canonical rules, S3's answer -> canonical rules,
the plan between them, and the validation that runs before anything is read or written.

The S3 answers here are shaped like real GetBucketReplication responses, including the
spellings S3 uses that differ from what was put (``Filter: {}``, blocks answered as
``Disabled``), because moto drops those parts on readback (see test_s3_replication.py)."""

import copy

import pytest

botocore = pytest.importorskip("botocore")
from botocore.exceptions import ClientError  # noqa: E402

from ansible_collections.dbdr.backup.plugins.module_utils import _aws as aws  # noqa: E402
from ansible_collections.dbdr.backup.plugins.module_utils import _replication as repl  # noqa: E402
from ansible_collections.dbdr.backup.plugins.module_utils._errors import (  # noqa: E402
    AccessDeniedError, InputError, NotFoundError, StorageError)

ROLE = "arn:aws:iam::123456789012:role/dbdr-s3-replication"
KEY = "arn:aws:kms:eu-west-1:123456789012:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"


def params(*rules, **extra):
    out = dict(bucket="acme-backups", state="present", role_arn=ROLE, purge=False,
               rules=[option(**r) for r in rules] or [option()])
    out.update(extra)
    return out


def option(**values):
    """One element of `rules` with the defaults Ansible's argspec fills in."""
    out = dict(id=None, prefix="", destination_bucket="acme-offsite", destination_region=None, storage_class=None,
               delete_marker_replication=False, replica_kms_key_id=None, priority=None, enabled=True,
               replication_time_control=False)
    out.update(values)
    return out


def aws_rule(**overrides):
    """A V2 rule as S3 answers it for an offsite rule put by this module."""
    rule = {"ID": "dbdr-acme-offsite", "Priority": 1, "Filter": {"Prefix": ""}, "Status": "Enabled",
            "Destination": {"Bucket": "arn:aws:s3:::acme-offsite", "StorageClass": "STANDARD_IA"},
            "DeleteMarkerReplication": {"Status": "Disabled"}}
    rule.update(overrides)
    return rule


def plan_for(current, *rules, **extra):
    return repl.plan(repl.request_from_params(params(*rules, **extra)), current)


# --------------------------------------------------------------------------- normalization


@pytest.mark.parametrize("flt", [{}, {"Prefix": ""}, {"And": {"Prefix": ""}}, {"And": {}}])
def test_every_spelling_of_the_whole_bucket_is_the_same_filter(flt):
    assert repl.canonical_rule(aws_rule(Filter=flt))["prefix"] == ""
    assert "other" not in repl.canonical_rule(aws_rule(Filter=flt))


def test_prefix_and_tag_filters():
    assert repl.canonical_rule(aws_rule(Filter={"Prefix": "pg/"}))["prefix"] == "pg/"
    tagged = repl.canonical_rule(aws_rule(Filter={"And": {"Prefix": "pg/", "Tags": [
        {"Key": "b", "Value": "2"}, {"Key": "a", "Value": "1"}]}}))
    assert tagged["prefix"] == "pg/"
    # The options cannot express tag filters: they are kept visible, so they count as a difference.
    assert tagged["other"] == {"filter_tags": {"a": "1", "b": "2"}}
    assert repl.canonical_rule(aws_rule(Filter={"Tag": {"Key": "k", "Value": "v"}}))["other"] == {
        "filter_tags": {"k": "v"}}


def test_blocks_answered_as_disabled_equal_absent_ones():
    plain = repl.canonical_rule(aws_rule())
    noisy = repl.canonical_rule(aws_rule(
        SourceSelectionCriteria={"SseKmsEncryptedObjects": {"Status": "Disabled"},
                                 "ReplicaModifications": {"Status": "Disabled"}},
        ExistingObjectReplication={"Status": "Disabled"},
        Destination={"Bucket": "arn:aws:s3:::acme-offsite", "StorageClass": "STANDARD_IA",
                     "Metrics": {"Status": "Disabled"}, "ReplicationTime": {"Status": "Disabled"}}))
    assert noisy == plain


def test_unmodeled_settings_are_kept_visible():
    rule = repl.canonical_rule(aws_rule(
        SourceSelectionCriteria={"ReplicaModifications": {"Status": "Enabled"}},
        ExistingObjectReplication={"Status": "Enabled"},
        Destination={"Bucket": "arn:aws:s3:::acme-offsite", "Account": "210987654321",
                     "AccessControlTranslation": {"Owner": "Destination"}}))
    assert rule["other"] == {"replica_modifications": True, "existing_object_replication": True,
                             "destination_account": "210987654321",
                             "access_control_translation": {"Owner": "Destination"}}


def test_v1_rules_replicate_delete_markers_and_are_marked():
    v1 = repl.canonical_rule({"ID": "old", "Prefix": "pg/", "Status": "Enabled",
                              "Destination": {"Bucket": "arn:aws:s3:::acme-offsite"}})
    assert v1["prefix"] == "pg/" and v1["priority"] is None
    assert v1["delete_marker_replication"] is True
    assert v1["other"] == {"schema": "V1"}


@pytest.mark.parametrize("values", [
    {},
    {"prefix": "postgres/", "storage_class": "DEEP_ARCHIVE", "priority": 7, "id": "offsite"},
    {"replica_kms_key_id": KEY, "replication_time_control": True, "delete_marker_replication": True},
    {"enabled": False, "destination_bucket": "arn:aws:s3:::acme-offsite"},
])
def test_what_we_put_reads_back_as_what_we_asked_for(values):
    wanted = repl.desired_rule(option(**values), 0, "aws")
    assert repl.canonical_rule(repl.s3_rule(wanted)) == wanted


def test_s3_shape_of_a_kms_rule_with_rtc():
    rule = repl.s3_rule(repl.desired_rule(option(replica_kms_key_id=KEY, replication_time_control=True,
                                                 storage_class="GLACIER_IR"), 0, "aws"))
    assert rule == {
        "ID": "dbdr-acme-offsite", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
        "Destination": {"Bucket": "arn:aws:s3:::acme-offsite", "StorageClass": "GLACIER_IR",
                        "EncryptionConfiguration": {"ReplicaKmsKeyID": KEY},
                        "ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": 15}},
                        "Metrics": {"Status": "Enabled", "EventThreshold": {"Minutes": 15}}}}


def test_defaults_ids_priorities_and_partition():
    req = repl.request_from_params(params(
        {"storage_class": "STANDARD_IA"}, {"prefix": "wal/archive/", "destination_bucket": "acme-third"},
        role_arn="arn:aws-cn:iam::123456789012:role/r"))
    first, second = req.rules
    assert (first["id"], first["priority"]) == ("dbdr-acme-offsite", 1)
    assert (second["id"], second["priority"]) == ("dbdr-acme-third", 2)
    # The destination ARN takes the partition of the role: China and GovCloud buckets work too.
    assert first["destination_bucket_arn"] == "arn:aws-cn:s3:::acme-offsite"
    assert req.destination_regions == {"acme-offsite": None, "acme-third": None}


# --------------------------------------------------------------------------- plan


def test_nothing_there_means_put():
    decided = plan_for(None, {"storage_class": "STANDARD_IA"})
    assert decided.action == "put" and decided.before is None
    assert decided.document == {"Role": ROLE, "Rules": [aws_rule()]}


def test_same_configuration_in_other_order_and_spelling_is_unchanged():
    current = {"Role": ROLE, "Rules": [
        aws_rule(ID="b", Priority=2, Filter={"And": {"Prefix": "wal/"}}, ExistingObjectReplication={"Status": "Disabled"}),
        aws_rule(ID="a", Priority=1, Filter={})]}
    decided = plan_for(current, {"id": "a", "storage_class": "STANDARD_IA"},
                       {"id": "b", "prefix": "wal/", "storage_class": "STANDARD_IA", "priority": 2})
    assert not decided.changed and decided.document is None
    assert decided.before == decided.after


@pytest.mark.parametrize("change, field", [
    ({"storage_class": "GLACIER_IR"}, "storage_class"),
    ({"prefix": "pg/"}, "prefix"),
    ({"delete_marker_replication": True}, "delete_marker_replication"),
    ({"enabled": False}, "enabled"),
    ({"priority": 5}, "priority"),
])
def test_each_real_difference_is_a_change(change, field):
    values = dict(dict(storage_class="STANDARD_IA"), **change)
    decided = plan_for({"Role": ROLE, "Rules": [aws_rule()]}, values)
    assert decided.action == "put"
    assert decided.before["rules"][0][field] != decided.after["rules"][0][field]


def test_another_role_is_a_change():
    decided = plan_for({"Role": "arn:aws:iam::123456789012:role/old", "Rules": [aws_rule()]},
                       {"storage_class": "STANDARD_IA"})
    assert decided.action == "put" and decided.document["Role"] == ROLE


def test_unmodeled_settings_are_replaced_not_ignored():
    current = {"Role": ROLE, "Rules": [aws_rule(ExistingObjectReplication={"Status": "Enabled"})]}
    decided = plan_for(current, {"storage_class": "STANDARD_IA"})
    assert decided.action == "put"
    assert decided.before["rules"][0]["other"] == {"existing_object_replication": True}
    assert "other" not in decided.after["rules"][0]


def test_purge_false_keeps_other_rules_as_they_are():
    foreign = aws_rule(ID="third-copy", Priority=9, Destination={"Bucket": "arn:aws:s3:::elsewhere"})
    decided = plan_for({"Role": ROLE, "Rules": [foreign]}, {"storage_class": "STANDARD_IA"})
    assert decided.action == "put"
    assert decided.document["Rules"] == [aws_rule(), foreign]
    assert [r["id"] for r in decided.after["rules"]] == ["dbdr-acme-offsite", "third-copy"]


def test_purge_true_drops_them():
    foreign = aws_rule(ID="third-copy", Priority=9, Destination={"Bucket": "arn:aws:s3:::elsewhere"})
    decided = plan_for({"Role": ROLE, "Rules": [foreign, aws_rule()]}, {"storage_class": "STANDARD_IA"}, purge=True)
    assert decided.document["Rules"] == [aws_rule()]


def test_kept_rules_must_not_collide_or_use_the_old_schema():
    foreign = aws_rule(ID="third-copy", Priority=1, Destination={"Bucket": "arn:aws:s3:::elsewhere"})
    with pytest.raises(InputError, match="priority 1 is used by 2 rules"):
        plan_for({"Role": ROLE, "Rules": [foreign]}, {})
    v1 = {"ID": "legacy", "Prefix": "", "Status": "Enabled", "Destination": {"Bucket": "arn:aws:s3:::x"}}
    with pytest.raises(InputError, match="old schema without Filter"):
        plan_for({"Role": ROLE, "Rules": [v1]}, {})
    # With purge they are simply replaced.
    assert plan_for({"Role": ROLE, "Rules": [v1]}, {}, purge=True).action == "put"


def test_absent():
    req = repl.request_from_params(dict(bucket="acme-backups", state="absent", rules=None))
    gone = repl.plan(req, {"Role": ROLE, "Rules": [aws_rule()]})
    assert gone.action == "delete" and gone.after is None and gone.before["rules"][0]["id"] == "dbdr-acme-offsite"
    assert not repl.plan(req, None).changed


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("values, message", [
    ({"destination_bucket": "acme-backups"}, "is the source bucket itself"),
    ({"destination_bucket": "arn:aws:s3:::acme-backups"}, "is the source bucket itself"),
    ({"destination_bucket": "arn:aws:s3:::b/key"}, "neither a bucket name nor an S3 bucket ARN"),
    ({"destination_bucket": "no spaces please"}, "not a valid bucket name"),
    ({"storage_class": "GLACIER_DEEP"}, "storage_class 'GLACIER_DEEP' is not one of STANDARD"),
    ({"priority": -1}, "priority must be 0 or more"),
    ({"id": "x" * 256}, "longer than 255"),
    ({"prefix": "p" * 1025}, "prefix is longer than 1024"),
])
def test_bad_rule_options(values, message):
    with pytest.raises(InputError, match=message) as info:
        repl.request_from_params(params(values))
    assert info.value.stage == "validate"


def test_default_ids_of_two_rules_to_one_destination_collide_clearly():
    with pytest.raises(InputError, match="id dbdr-acme-offsite is used by 2 rules"):
        repl.request_from_params(params({"prefix": "a/"}, {"prefix": "b/"}))


def test_duplicates_are_named():
    with pytest.raises(InputError) as info:
        repl.request_from_params(params({"id": "x", "priority": 1}, {"id": "x", "destination_bucket": "other", "priority": 1}))
    assert "id x is used by 2 rules" in str(info.value)
    assert "priority 1 is used by 2 rules (x, x)" in str(info.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(InputError) as info:
        repl.request_from_params(params({"destination_bucket": "acme-backups"}, {"storage_class": "FOO"},
                                        role_arn="my-role"))
    text = str(info.value)
    assert "role_arn 'my-role' is not an IAM role ARN" in text
    assert "rules[0]: destination_bucket acme-backups is the source bucket itself" in text
    assert "rules[1]: storage_class 'FOO'" in text


def test_request_level_problems():
    with pytest.raises(InputError, match="rules is empty"):
        repl.request_from_params(dict(bucket="acme-backups", state="present", role_arn=ROLE, rules=[]))
    with pytest.raises(InputError, match="takes no rules"):
        repl.request_from_params(dict(bucket="acme-backups", state="absent", rules=[option()]))
    with pytest.raises(InputError, match="destination_region of acme-offsite differs"):
        repl.request_from_params(params({"destination_region": "eu-west-1"},
                                        {"destination_region": "eu-north-1", "prefix": "x/"}))


# --------------------------------------------------------------------------- S3 calls


def client_error(code, status):
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


def raising(exc):
    def operation(**kwargs):
        raise copy.copy(exc)
    return operation


def test_aws_call_translates_errors_and_names_the_target():
    with pytest.raises(NotFoundError, match="read the versioning of s3://x: the bucket does not exist"):
        aws.call("read the versioning of s3://x", raising(client_error("NoSuchBucket", 404)))
    with pytest.raises(AccessDeniedError, match="access denied"):
        aws.call("write", raising(client_error("AccessDenied", 403)))
    with pytest.raises(StorageError, match="MalformedXML"):
        aws.call("write", raising(client_error("MalformedXML", 400)))
    # "Not configured" answers are None, not errors.
    assert aws.call("read", raising(client_error("ReplicationConfigurationNotFoundError", 404)),
                    missing=("ReplicationConfigurationNotFoundError",)) is None
    assert aws.call("read", lambda **kw: kw, Bucket="b") == {"Bucket": "b"}
