"""s3_lifecycle run the way users run it (ansible, real boto3) against the moto S3 server the
harness starts: round trip, idempotence, check mode, diff, rules it must keep, validation before
any write, and the rules evaluated against the tags of a real backup's objects."""

import json
import uuid

import pytest

from module_args import backup_args, run_backup, run_module

from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import open_repository

TIERS = {
    "daily": {"expire_days": 14},
    "weekly": {"transitions": [{"days": 30, "storage_class": "STANDARD_IA"}], "expire_days": 56},
    "monthly": {"transitions": [{"days": 30, "storage_class": "GLACIER"}], "expire_days": 365},
    "yearly": {"transitions": [{"days": 1, "storage_class": "DEEP_ARCHIVE"}], "expire_days": 2555},
}
FOREIGN_RULE = {"ID": "access-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 90}}


@pytest.fixture
def bucket(s3_server):
    return s3_server.create_bucket("lifecycle-" + uuid.uuid4().hex[:12])


def aws_args(s3_server):
    return dict(endpoint_url=s3_server.endpoint_url, access_key=s3_server.access_key,
                secret_key=s3_server.secret_key, region=s3_server.region)


def lifecycle(ansible_runner, s3_server, bucket, expect_rc=0, check=False, **extra):
    args = dict(aws_args(s3_server), bucket=bucket, prefix="pg")
    args.update(extra)
    return run_module(ansible_runner, "s3_lifecycle", args, expect_rc=expect_rc, check=check)


def stored_rules(s3_server, bucket):
    client = s3_server.client()
    try:
        return client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except client.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        return None


def by_id(rules):
    return dict((rule["ID"], rule) for rule in rules)


def test_round_trip_then_no_change(s3_server, bucket, ansible_runner):
    first = lifecycle(ansible_runner, s3_server, bucket, tiers=TIERS, noncurrent_version_expiration_days=30)
    assert first["changed"] is True
    stored = by_id(stored_rules(s3_server, bucket))
    classes = ("daily", "weekly", "monthly", "yearly")
    assert sorted(stored) == sorted(first["managed_rules"]) == sorted(first["added"]) == sorted(
        ["dbdr:%s%s@pg/" % (c, kind) for c in classes for kind in ("", "-data", "-untagged")]
        + ["dbdr:abort-multipart@pg/", "dbdr:noncurrent@pg/"])
    assert stored["dbdr:monthly-data@pg/"]["Transitions"] == [{"Days": 30, "StorageClass": "GLACIER"}]
    assert sorted((t["Key"], t["Value"]) for t in stored["dbdr:monthly-data@pg/"]["Filter"]["And"]["Tags"]) == [
        ("dbdr-class", "monthly"), ("dbdr-data", "true")]
    assert stored["dbdr:monthly@pg/"]["Expiration"] == {"Days": 365}
    assert stored["dbdr:monthly-data@pg/"]["Expiration"] == {"Days": 366}
    assert stored["dbdr:abort-multipart@pg/"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert stored["dbdr:noncurrent@pg/"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert any("STANDARD_IA after 26 days" in w for w in first["warnings"])

    again = lifecycle(ansible_runner, s3_server, bucket, tiers=TIERS, noncurrent_version_expiration_days=30)
    assert again["changed"] is False and again["added"] == again["updated"] == again["removed"] == []
    checked = lifecycle(ansible_runner, s3_server, bucket, check=True, tiers=TIERS, noncurrent_version_expiration_days=30)
    assert checked["changed"] is False


def test_check_mode_predicts_and_writes_nothing(s3_server, bucket, ansible_runner):
    result = lifecycle(ansible_runner, s3_server, bucket, check=True, tiers=TIERS)
    assert result["changed"] is True and "dbdr:daily@pg/" in result["added"]
    assert stored_rules(s3_server, bucket) is None

    lifecycle(ansible_runner, s3_server, bucket, tiers=TIERS)
    before = stored_rules(s3_server, bucket)
    shorter = dict(TIERS, daily={"expire_days": 10})
    result = lifecycle(ansible_runner, s3_server, bucket, check=True, tiers=shorter)
    assert result["changed"] is True
    assert sorted(result["updated"]) == ["dbdr:daily-data@pg/", "dbdr:daily-untagged@pg/", "dbdr:daily@pg/"]
    assert stored_rules(s3_server, bucket) == before


def test_diff_shows_before_and_after(s3_server, bucket, ansible_runner):
    lifecycle(ansible_runner, s3_server, bucket, tiers={"daily": {"expire_days": 14}})
    playbook = """
- hosts: localhost
  gather_facts: false
  tasks:
    - dbdr.backup.s3_lifecycle: "{{ dbdr_args }}"
"""
    args = dict(aws_args(s3_server), bucket=bucket, prefix="pg", tiers={"daily": {"expire_days": 20}})
    run = ansible_runner.run_playbook(playbook, extra_vars={"dbdr_args": args}, diff=True)
    result = run.last_result
    assert result["changed"] is True
    diff = result["diff"]
    if isinstance(diff, list):
        diff = diff[0]
    before = by_id(diff["before"]["rules"])["dbdr:daily@pg/"]
    after = by_id(diff["after"]["rules"])["dbdr:daily@pg/"]
    assert before["Expiration"] == {"Days": 14} and after["Expiration"] == {"Days": 20}
    assert s3_server.secret_key not in run.stdout + run.stderr


def test_rules_it_does_not_manage_are_kept_unless_purge(s3_server, bucket, ansible_runner):
    client = s3_server.client()
    other_prefix = {"ID": "dbdr:daily@staging/", "Status": "Enabled",
                    "Filter": {"And": {"Prefix": "staging/", "Tags": [{"Key": "dbdr-class", "Value": "daily"}]}},
                    "Expiration": {"Days": 5}}
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [FOREIGN_RULE, other_prefix]})
    result = lifecycle(ansible_runner, s3_server, bucket, tiers=TIERS)
    assert result["changed"] is True and result["removed"] == []
    stored = by_id(stored_rules(s3_server, bucket))
    assert stored["access-logs"]["Expiration"] == {"Days": 90} and "dbdr:daily@staging/" in stored

    # A tier left out of the spec: its rules go, nothing else does.
    fewer = dict(TIERS)
    del fewer["weekly"]
    result = lifecycle(ansible_runner, s3_server, bucket, tiers=fewer)
    assert sorted(result["removed"]) == ["dbdr:weekly-data@pg/", "dbdr:weekly-untagged@pg/", "dbdr:weekly@pg/"]
    assert {"access-logs", "dbdr:daily@staging/"} <= set(by_id(stored_rules(s3_server, bucket)))

    purged = lifecycle(ansible_runner, s3_server, bucket, tiers=fewer, purge=True)
    assert sorted(purged["removed"]) == ["access-logs", "dbdr:daily@staging/"]
    assert sorted(by_id(stored_rules(s3_server, bucket))) == sorted(purged["managed_rules"])


def test_raw_rules_and_state_absent(s3_server, bucket, ansible_runner):
    raw = {"ID": "tmp-exports", "Status": "Enabled", "Filter": {"Prefix": "exports/"}, "Expiration": {"Days": 3}}
    s3_server.client().put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [FOREIGN_RULE]})
    lifecycle(ansible_runner, s3_server, bucket, tiers=TIERS, rules=[raw])
    assert by_id(stored_rules(s3_server, bucket))["tmp-exports"]["Expiration"] == {"Days": 3}
    assert lifecycle(ansible_runner, s3_server, bucket, tiers=TIERS, rules=[raw])["changed"] is False

    removed = lifecycle(ansible_runner, s3_server, bucket, state="absent", rules=[{"ID": "tmp-exports"}])
    assert "tmp-exports" in removed["removed"] and "dbdr:daily@pg/" in removed["removed"]
    assert sorted(by_id(stored_rules(s3_server, bucket))) == ["access-logs"]
    assert lifecycle(ansible_runner, s3_server, bucket, state="absent")["changed"] is False

    # Removing the last rules removes the configuration.
    s3_server.client().delete_bucket_lifecycle(Bucket=bucket)
    lifecycle(ansible_runner, s3_server, bucket, tiers={"daily": {"expire_days": 14}})
    lifecycle(ansible_runner, s3_server, bucket, state="absent")
    assert stored_rules(s3_server, bucket) is None


@pytest.mark.parametrize("extra, message", [
    (dict(tiers={"weekly": {"transitions": [{"days": 7, "storage_class": "STANDARD_IA"}]}}),
     "S3 moves objects to STANDARD_IA only once they are 30 days old"),
    (dict(tiers={"monthly": {"transitions": [{"days": 90, "storage_class": "GLACIER"},
                                             {"days": 120, "storage_class": "GLACIER_IR"}]}}),
     "S3 cannot move objects from GLACIER to GLACIER_IR"),
    (dict(tiers={"monthly": {"transitions": [{"days": 90, "storage_class": "GLACIER"}], "expire_days": 60}}),
     "expire_days (60) must come after the last transition"),
    (dict(tiers={"monthly": {"transitions": [{"days": 90, "storage_class": "COLD"}]}}),
     "value of storage_class must be one of"),
    (dict(tiers=TIERS, wal={"clusters": ["main"], "expire_days": 30}),
     "wal.expire_days (30) must be longer than the longest-kept backups (2555 days)"),
    (dict(tiers=TIERS, retention_policy={"daily": 14, "weekly": 4}), "tiers.daily.expire_days=14 deletes daily backups"),
    (dict(rules=[{"ID": "dbdr:sneaky", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}]), "reserved"),
])
def test_bad_input_is_refused_before_any_write(s3_server, bucket, ansible_runner, extra, message):
    s3_server.client().put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [FOREIGN_RULE]})
    result = lifecycle(ansible_runner, s3_server, bucket, expect_rc=2, **extra)
    assert message in result["msg"], result["msg"]
    assert stored_rules(s3_server, bucket) == [FOREIGN_RULE]


def test_missing_bucket_and_wrong_keys(s3_server, ansible_runner):
    result = lifecycle(ansible_runner, s3_server, "no-such-bucket-here", expect_rc=2, tiers=TIERS)
    assert "bucket no-such-bucket-here" in result["msg"] and "does not exist" in result["msg"]
    assert result["stage"] == "storage"


def test_cost_projection(s3_server, bucket, ansible_runner):
    result = lifecycle(ansible_runner, s3_server, bucket, check=True, tiers=TIERS, daily_backup_bytes=10 * 1024 ** 3,
                       prices={"STANDARD": 0.02}, currency="EUR")
    cost = result["cost"]
    assert cost["currency"] == "EUR" and cost["prices"]["STANDARD"] == 0.02
    # 14 daily backups of 10 GiB in STANDARD at 0.02 per GiB-month.
    assert cost["tiers"]["daily"] == {"bytes_by_storage_class": {"STANDARD": 140 * 1024 ** 3}, "monthly_cost": 2.8,
                                      "expire_days": 14}
    assert set(cost["tiers"]["yearly"]["bytes_by_storage_class"]) == {"STANDARD", "DEEP_ARCHIVE"}
    # The total is rounded once, the tiers each: they agree to within the rounding.
    assert abs(cost["monthly_cost"] - sum(t["monthly_cost"] for t in cost["tiers"].values())) < 0.02


def matches(rule, key, tags):
    """Whether S3 would apply `rule` to an object (prefix and every tag of the filter)."""
    filter_ = rule.get("Filter", {})
    spec = filter_.get("And", filter_)
    wanted = spec.get("Tags") or ([spec["Tag"]] if "Tag" in spec else [])
    return key.startswith(spec.get("Prefix", "")) and all(tags.get(t["Key"]) == t["Value"] for t in wanted)


def test_rules_tier_a_real_backups_data_and_never_its_manifest(
        pg_server, pg_sample, gnupg_home, s3_server, bucket, ansible_runner):
    """moto stores lifecycle rules but never runs them: evaluate the stored rules against the
    tags of a real backup's objects, after a retention promotion re-tagged them."""
    repo = s3_server.repository(bucket, prefix="pg")
    backup = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=["app"]))
    lifecycle(ansible_runner, s3_server, bucket, tiers=TIERS)
    rules = stored_rules(s3_server, bucket)
    client = s3_server.client()
    prefix = "pg/main/backups/%s/" % backup["backup_id"]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    assert len(keys) >= 3
    # Promotion as backup_retention does it (the daily backup now stands for its month).
    repository = open_repository(repo)
    for key in keys:
        repository.set_class(key[len("pg/"):], "monthly")
    for key in keys:
        tags = dict((t["Key"], t["Value"]) for t in client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"])
        applied = sorted(r["ID"] for r in rules if matches(r, key, tags))
        # The manifest expires first (365 days) and never moves; the data moves and expires a day later.
        if key.endswith("/manifest.json"):
            assert applied == ["dbdr:abort-multipart@pg/", "dbdr:monthly-untagged@pg/", "dbdr:monthly@pg/"], key
        else:
            assert applied == ["dbdr:abort-multipart@pg/", "dbdr:monthly-data@pg/", "dbdr:monthly-untagged@pg/"], key
    manifest = json.loads(client.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read())
    assert manifest["gfs_class"] == "daily"   # the manifest is immutable; the tag is the current class
