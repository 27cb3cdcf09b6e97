"""The backup_iam role applied for real, then every persona's keys used for real.

moto runs in server mode with IAM enforcement (INITIAL_NO_AUTH_ACTION_COUNT: the first requests,
which create the bucket and an all-powerful "root" user, are not checked; every later request
must be signed by an IAM user whose policies allow it). ansible-playbook applies the role with
the root user's keys: managed policies, one user per persona, access keys written to 0600 files.
Then the real modules run with those keys against real PostgreSQL and gpg, and boto3 tries what
each persona must not do.

What moto enforces: actions (its own mapping of requests to actions) and Resource ARNs, Allow and
explicit Deny. What it does not: Condition blocks (ignored: a conditional statement applies
unconditionally), s3:PutObjectTagging for tags sent with an upload (authorised as s3:PutObject),
s3:PutObjectRetention and s3:PutObjectLegalHold (authorised as s3:PutObject), bucket encryption,
replication and object-lock configuration (authorised as s3:CreateBucket). Those parts are checked by
tests/unit/test_iam_policy.py only; the role README lists them.
"""

from __future__ import annotations

import configparser
import json
import stat

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import harness
from module_args import backup_args, reset_target, restore_args, run_backup, run_module, run_restore

from ansible_collections.dbdr.backup.plugins.module_utils._iam import policy_document

BUCKET = "dbdr-iam"
PREFIX = "pg"
CLUSTER = "iam"
ROOT_USER = "dbdr-test-root"
# The requests moto lets through unchecked: create the bucket, the root user, its policy, its key.
SETUP_REQUESTS = 4
PERSONA_USERS = {"writer": "dbdr-writer", "pruner": "dbdr-pruner", "restorer": "dbdr-restorer",
                 "admin": "dbdr-bucket-admin"}
EC2_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
ROLE_PLAY = "- hosts: localhost\n  gather_facts: false\n  roles:\n    - dbdr.backup.backup_iam\n"
# A bucket policy some principal might try to put (any document will do: the call must be refused).
OPEN_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::%s/*" % BUCKET}]}
LIFECYCLE = {"Rules": [{"ID": "expire-everything", "Status": "Enabled", "Filter": {"Prefix": ""},
                        "Expiration": {"Days": 1}}]}


def _client(server, keys, service="s3"):
    return boto3.client(service, endpoint_url=server.endpoint_url, aws_access_key_id=keys[0],
                        aws_secret_access_key=keys[1], region_name=server.region,
                        config=Config(retries={"mode": "standard", "max_attempts": 2}))


def _denied(call, **kwargs):
    """The S3 error code of a call that must be refused with 403."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403, response
    return response["Error"]["Code"]


def _read_key_file(path, profile):
    parser = configparser.ConfigParser()
    parser.read(path)
    return parser[profile]["aws_access_key_id"], parser[profile]["aws_secret_access_key"]


def _role_vars(world, **extra):
    # The data-plane users get their keys from the role; the admin's is made below with boto3
    # (one user fewer to check per run keeps the test quick).
    users = [{"name": name, "personas": [persona], "access_key_file": str(world["key_dir"] / ("%s.ini" % persona))}
             for persona, name in PERSONA_USERS.items() if persona != "admin"]
    users.append({"name": PERSONA_USERS["admin"], "personas": ["admin"]})
    role_vars = {
        "backup_iam_bucket": BUCKET, "backup_iam_prefix": PREFIX, "backup_iam_clusters": [CLUSTER],
        "backup_iam_apply": True, "backup_iam_output_dir": str(world["out_dir"]),
        "backup_iam_region": world["server"].region, "backup_iam_endpoint_url": world["server"].endpoint_url,
        "backup_iam_access_key": world["root"][0], "backup_iam_secret_key": world["root"][1],
        "backup_iam_users": users,
        "backup_iam_roles": [{"name": "dbdr-db-hosts", "personas": ["writer"], "assume_role_policy": EC2_TRUST,
                              "instance_profile": True}],
    }
    role_vars.update(extra)
    return role_vars


@pytest.fixture(scope="module")
def world(ansible_runner, tmp_path_factory):
    """moto with IAM enforcement, the root user, and the role applied: in check mode first, then
    for real (default callback, -vvv, output kept), then again (JSON callback)."""
    base = tmp_path_factory.mktemp("backup-iam")
    with harness.S3Server(env={"INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)}) as server:
        server.create_bucket(BUCKET)
        iam = server.client("iam")
        iam.create_user(UserName=ROOT_USER)
        iam.put_user_policy(UserName=ROOT_USER, PolicyName="everything", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        created = iam.create_access_key(UserName=ROOT_USER)["AccessKey"]
        world = {"server": server, "root": (created["AccessKeyId"], created["SecretAccessKey"]),
                 "key_dir": base / "keys", "out_dir": base / "policies", "runs": {}}
        root_iam = _client(server, world["root"], "iam")
        role_vars = _role_vars(world)

        world["runs"]["check_first"] = ansible_runner.run_playbook(ROLE_PLAY, extra_vars=role_vars, check=True)
        world["after_check"] = {
            "users": sorted(u["UserName"] for u in root_iam.list_users()["Users"]),
            "policies": root_iam.list_policies(Scope="Local")["Policies"],
            "key_dir": world["key_dir"].exists(), "out_dir": world["out_dir"].exists()}
        world["runs"]["apply"] = ansible_runner.run_playbook(
            ROLE_PLAY, extra_vars=role_vars, verbosity=3, env={"ANSIBLE_STDOUT_CALLBACK": "default"})
        world["runs"]["again"] = ansible_runner.run_playbook(ROLE_PLAY, extra_vars=role_vars)

        world["keys"] = dict((persona, _read_key_file(world["key_dir"] / ("%s.ini" % persona), name))
                             for persona, name in PERSONA_USERS.items() if persona != "admin")
        admin_key = root_iam.create_access_key(UserName=PERSONA_USERS["admin"])["AccessKey"]
        world["keys"]["admin"] = (admin_key["AccessKeyId"], admin_key["SecretAccessKey"])
        yield world


@pytest.fixture(scope="module")
def first_backup(world, pg_server, pg_sample, gnupg_home, ansible_runner):
    """A backup of app taken with the writer's keys (the module result)."""
    return writer_backup(world, pg_server, gnupg_home, ansible_runner)


def repository(world, persona, **extra):
    """The modules' repository option with a persona's keys."""
    keys = world["keys"][persona]
    return world["server"].repository(BUCKET, prefix=PREFIX, access_key=keys[0], secret_key=keys[1], **extra)


def root_s3(world):
    return _client(world["server"], world["root"])


def listed(world, below):
    found = root_s3(world).list_objects_v2(Bucket=BUCKET, Prefix="%s/%s/%s" % (PREFIX, CLUSTER, below))
    return [o["Key"] for o in found.get("Contents", [])]


def writer_backup(world, pg_server, gnupg_home, ansible_runner, **extra):
    args = backup_args(pg_server, repository(world, "writer"), gnupg_home, cluster=CLUSTER, databases=["app"],
                       globals=False)
    args.update(extra)
    return run_backup(ansible_runner, args)


def backup_keys(world, backup_id):
    return listed(world, "backups/%s/" % backup_id)


def stored_backups(world):
    """{backup id: [object names]} of the cluster, as the root user sees them."""
    found = {}
    for key in listed(world, "backups/"):
        backup_id, name = key.split("/")[3:5]
        found.setdefault(backup_id, []).append(name)
    return found


# --------------------------------------------------------------------------- the role


def test_role_applies_idempotently_in_check_mode_too(world):
    runs = world["runs"]
    # Check mode on an empty account reports the work and does none of it.
    assert runs["check_first"].stats["localhost"]["changed"] > 0
    assert runs["check_first"].stats["localhost"]["failures"] == 0
    assert world["after_check"] == {"users": [ROOT_USER], "policies": [], "key_dir": False, "out_dir": False}
    assert "failed=0" in runs["apply"].stdout and "changed=0" not in runs["apply"].stdout
    assert runs["again"].stats["localhost"]["changed"] == 0, runs["again"].describe()
    assert runs["again"].stats["localhost"]["failures"] == 0

    root_iam = _client(world["server"], world["root"], "iam")
    for persona, name in PERSONA_USERS.items():
        attached = root_iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
        policy_name = "dbdr-%s-%s" % (BUCKET, persona)
        assert policy_name in [p["PolicyName"] for p in attached]
        # Exactly the rendered document is in IAM, and in the 0644 file.
        expected = policy_document(persona, BUCKET, prefix=PREFIX, clusters=[CLUSTER], region="us-east-1")
        policy_arn = [p["PolicyArn"] for p in attached if p["PolicyName"] == policy_name][0]
        policy = root_iam.get_policy(PolicyArn=policy_arn)["Policy"]
        assert policy["Path"] == "/dbdr/"
        version = root_iam.get_policy_version(PolicyArn=policy_arn, VersionId=policy["DefaultVersionId"])
        document = version["PolicyVersion"]["Document"]
        assert (json.loads(document) if isinstance(document, str) else document) == expected
        rendered = world["out_dir"] / ("%s.json" % policy_name)
        assert json.loads(rendered.read_text()) == expected
        assert stat.S_IMODE(rendered.stat().st_mode) == 0o644
        # One key per user, in its own 0600 file.
        assert len(root_iam.list_access_keys(UserName=name)["AccessKeyMetadata"]) == 1
        if persona != "admin":
            assert stat.S_IMODE((world["key_dir"] / ("%s.ini" % persona)).stat().st_mode) == 0o600
    assert stat.S_IMODE(world["key_dir"].stat().st_mode) == 0o700
    role = root_iam.get_role(RoleName="dbdr-db-hosts")["Role"]
    assert role["Path"] == "/dbdr/"
    assert [p["PolicyName"] for p in root_iam.list_attached_role_policies(RoleName="dbdr-db-hosts")["AttachedPolicies"]] \
        == ["dbdr-%s-writer" % BUCKET]
    profile = root_iam.get_instance_profile(InstanceProfileName="dbdr-db-hosts")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["dbdr-db-hosts"]


def test_secrets_never_appear_in_ansible_output(world):
    secrets = [keys[1] for persona, keys in world["keys"].items() if persona != "admin"] + [world["root"][1]]
    assert all(len(s) >= 20 for s in secrets)
    for name, run in world["runs"].items():
        for secret in secrets:
            assert secret not in run.stdout and secret not in run.stderr, name
    # The -vvv run shows the key tasks, censored.
    assert "Create an access key for dbdr-writer" in world["runs"]["apply"].stdout
    assert "'no_log: true' was specified for this result" in world["runs"]["apply"].stdout


def test_a_deleted_key_is_reported_not_silently_replaced(world, ansible_runner, tmp_path):
    stale = tmp_path / "stale.ini"
    stale.write_text("[dbdr-writer]\naws_access_key_id = AKIAEXAMPLE000000000\naws_secret_access_key = x\n")
    role_vars = _role_vars(world, backup_iam_personas=["writer"], backup_iam_roles=[], backup_iam_users=[
        {"name": "dbdr-writer", "personas": ["writer"], "access_key_file": str(stale)}])
    run = ansible_runner.run_playbook(ROLE_PLAY, extra_vars=role_vars, expect_rc=2)
    failed = [r for _task, r in run.results() if r.get("failed")]
    assert len(failed) == 1 and "holds no access key of IAM user dbdr-writer" in failed[0]["msg"]
    assert "AKIAEXAMPLE000000000" in failed[0]["msg"]
    root_iam = _client(world["server"], world["root"], "iam")
    assert len(root_iam.list_access_keys(UserName="dbdr-writer")["AccessKeyMetadata"]) == 1
    # The user's policies were set to exactly its personas' on the way (backup_iam_purge_policies).
    attached = root_iam.list_attached_user_policies(UserName="dbdr-writer")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["dbdr-%s-writer" % BUCKET]


def test_bad_input_fails_before_anything_is_applied(world, ansible_runner):
    run = ansible_runner.run_playbook(ROLE_PLAY, extra_vars=_role_vars(world, backup_iam_prefix="pg/../other"),
                                      expect_rc=2)
    failed = [r for _task, r in run.results() if r.get("failed")]
    assert len(failed) == 1 and "invalid prefix 'pg/../other'" in failed[0]["msg"], run.describe()
    assert [t["name"] for t, r in run.results() if r.get("failed")] == ["dbdr.backup.backup_iam : Check the repository scope"]
    assert run.stats["localhost"]["changed"] == 0


# --------------------------------------------------------------------------- the personas at work


def test_default_keys_are_refused_once_iam_is_enforced(world):
    default = _client(world["server"], (world["server"].access_key, world["server"].secret_key))
    with pytest.raises(ClientError) as caught:
        default.list_objects_v2(Bucket=BUCKET)
    assert caught.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_writer_backs_up_but_cannot_delete_or_reconfigure(world, first_backup):
    result = first_backup
    assert result["changed"] is True and not result.get("warnings")
    backup_id = result["backup_id"]
    keys = backup_keys(world, backup_id)
    manifest = "%s/%s/backups/%s/manifest.json" % (PREFIX, CLUSTER, backup_id)
    dump = "%s/%s/backups/%s/app.pgdump.zst.gpg" % (PREFIX, CLUSTER, backup_id)
    assert sorted(keys) == [dump, manifest]
    root = root_s3(world)
    assert {"Key": "dbdr-class", "Value": "daily"} in root.get_object_tagging(Bucket=BUCKET, Key=dump)["TagSet"]
    # The lock was created and deleted by the writer; the audit record is there.
    assert listed(world, "lock") == []
    assert result["audit_record"].startswith("%s/audit/" % CLUSTER)

    writer = _client(world["server"], world["keys"]["writer"])
    assert_tampering_refused(writer, dump)
    assert _denied(writer.delete_object, Bucket=BUCKET, Key=manifest) == "AccessDenied"
    assert _denied(writer.put_object_acl, Bucket=BUCKET, Key=dump, ACL="public-read") == "AccessDenied"
    # Re-tagging a stored backup (into a class that expires sooner) is refused.
    assert _denied(writer.put_object_tagging, Bucket=BUCKET, Key=manifest,
                   Tagging={"TagSet": [{"Key": "dbdr-class", "Value": "daily"}]}) == "AccessDenied"
    # Outside its cluster, its prefix, and its kinds of objects.
    for key in ("%s/other-cluster/backups/x" % PREFIX, "elsewhere/x", "%s/%s/verify/x.json" % (PREFIX, CLUSTER)):
        assert _denied(writer.put_object, Bucket=BUCKET, Key=key, Body=b"x") == "AccessDenied", key
    assert _denied(writer.get_object, Bucket=BUCKET, Key="%s/other-cluster/lock" % PREFIX) == "AccessDenied"
    assert sorted(backup_keys(world, backup_id)) == [dump, manifest]


def assert_tampering_refused(writer, dump):
    """Deleting a dump or one of its versions, and reconfiguring or deleting the bucket."""
    assert _denied(writer.delete_object, Bucket=BUCKET, Key=dump) == "AccessDenied"
    assert _denied(writer.delete_object, Bucket=BUCKET, Key=dump, VersionId="null") == "AccessDenied"
    assert _denied(writer.put_bucket_lifecycle_configuration, Bucket=BUCKET,
                   LifecycleConfiguration=LIFECYCLE) == "AccessDenied"
    assert _denied(writer.put_bucket_policy, Bucket=BUCKET, Policy=json.dumps(OPEN_POLICY)) == "AccessDenied"
    assert _denied(writer.put_bucket_versioning, Bucket=BUCKET,
                   VersioningConfiguration={"Status": "Suspended"}) == "AccessDenied"
    assert _denied(writer.delete_bucket, Bucket=BUCKET) == "AccessDenied"


def test_explicit_denials_win_over_a_broad_grant(world, first_backup):
    """Someone attaches s3:* to the writer as well: backups still cannot be deleted, the bucket
    not reconfigured."""
    backup_id = first_backup["backup_id"]
    dump = "%s/%s/backups/%s/app.pgdump.zst.gpg" % (PREFIX, CLUSTER, backup_id)
    root_iam = _client(world["server"], world["root"], "iam")
    broad = root_iam.create_policy(PolicyName="too-broad", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    arn = broad["Policy"]["Arn"]
    root_iam.attach_user_policy(UserName="dbdr-writer", PolicyArn=arn)
    try:
        writer = _client(world["server"], world["keys"]["writer"])
        # The broad grant is in effect...
        writer.put_object(Bucket=BUCKET, Key="elsewhere/broad", Body=b"x")
        # ...but every explicit Deny holds.
        assert_tampering_refused(writer, dump)
        assert _denied(writer.delete_object, Bucket=BUCKET,
                       Key="%s/%s/audit/2026/11/20/x-backup.json" % (PREFIX, CLUSTER)) == "AccessDenied"
    finally:
        root_iam.detach_user_policy(UserName="dbdr-writer", PolicyArn=arn)
        root_iam.delete_policy(PolicyArn=arn)
    assert dump in backup_keys(world, backup_id)


def test_failed_backup_whose_cleanup_is_denied(world, pg_server, pg_sample, gnupg_home, ansible_runner):
    """A backup fails after its dump is stored (the manifest PUT is refused by a proxy): the
    writer may not delete the dump. The task fails naming the real cause, the lock is released,
    the failed audit record tells what was left, the next backup goes on, and the pruner removes
    the leftover."""
    with harness.FaultProxy(world["server"].endpoint_url) as proxy:
        proxy.add(harness.FaultRule(method="PUT", path=r"/manifest\.json$", status=400, code="InvalidRequest"))
        args = backup_args(pg_server, repository(world, "writer", endpoint_url=proxy.endpoint_url), gnupg_home,
                           cluster=CLUSTER, databases=["app"], globals=False)
        failed = run_backup(ansible_runner, args, expect_rc=2)
        assert len(proxy.faults()) == 1, (failed, proxy.log)
    assert failed["failed"] is True
    assert "manifest.json" in failed["msg"] and "InvalidRequest" in failed["msg"], failed["msg"]
    # The message names what was left, and who removes it; the denied delete does not replace the cause.
    assert "could not be removed" in failed["msg"] and "left for backup_retention" in failed["msg"], failed["msg"]
    assert "app.pgdump.zst.gpg" in failed["msg"] and "access denied" not in failed["msg"].lower()
    leftovers = [backup_id for backup_id, names in stored_backups(world).items() if "manifest.json" not in names]
    assert len(leftovers) == 1
    leftover = leftovers[0]
    assert [k.rsplit("/", 1)[1] for k in backup_keys(world, leftover)] == ["app.pgdump.zst.gpg"]
    assert listed(world, "lock") == []
    root = root_s3(world)
    records = [json.loads(root.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in listed(world, "audit/")]
    failure = [r for r in records if r["operation"] == "backup" and r["outcome"] == "failed"
               and r["details"].get("backup_id") == leftover]
    assert len(failure) == 1
    assert any("could not remove" in w and "access denied" in w.lower() for w in failure[0]["details"]["warnings"])

    # The next backup cannot remove the leftover either: it says so and succeeds.
    after = writer_backup(world, pg_server, gnupg_home, ansible_runner)
    assert any(leftover in w and "could not remove" in w and "backup_retention removes such leftovers" in w
               for w in after.get("warnings", [])), after.get("warnings")
    assert backup_keys(world, leftover)

    # The pruner removes it (under the lock), deleting nothing else.
    pruned = run_module(ansible_runner, "backup_retention", {
        "cluster": CLUSTER, "repository": repository(world, "pruner"), "policy": {"keep_last": 100, "min_age": 0}})
    assert pruned["leftovers_removed"] == [leftover] and pruned["deleted"] == []
    assert backup_keys(world, leftover) == [] and listed(world, "lock") == []
    assert backup_keys(world, after["backup_id"])


def test_restorer_verifies_restores_and_cannot_modify(world, first_backup, pg_server, pg_sample, gnupg_home,
                                                      ansible_runner):
    backup_id = first_backup["backup_id"]
    repo = repository(world, "restorer")
    verified = run_module(ansible_runner, "backup_verify", {"cluster": CLUSTER, "repository": repo,
                                                            "backup_id": backup_id, "level": "checksum"})
    assert verified["result"] == "ok" and verified["changed"] is True, verified
    records = listed(world, "verify/%s/" % backup_id)
    assert len(records) == 1
    root = root_s3(world)
    assert {"Key": "dbdr-class", "Value": "verify"} in root.get_object_tagging(Bucket=BUCKET, Key=records[0])["TagSet"]
    info = run_module(ansible_runner, "backup_info", {"cluster": CLUSTER, "repository": repo})
    assert info["newest_verified_good"] == backup_id and not info.get("warnings")

    reset_target(pg_server, "app_iam_restored")
    try:
        restored = run_restore(ansible_runner, restore_args(
            pg_server, repo, gnupg_home, cluster=CLUSTER, backup_id=backup_id, databases=["app"],
            target_database="app_iam_restored", mode="new", no_owner=True))
        assert restored["backup_id"] == backup_id
        assert pg_server.table_counts("app_iam_restored") == pg_sample["app"]
        assert restored["audit_record"].startswith("%s/audit/" % CLUSTER)
    finally:
        reset_target(pg_server, "app_iam_restored")

    restorer = _client(world["server"], world["keys"]["restorer"])
    dump = "%s/%s/backups/%s/app.pgdump.zst.gpg" % (PREFIX, CLUSTER, backup_id)
    manifest = "%s/%s/backups/%s/manifest.json" % (PREFIX, CLUSTER, backup_id)
    assert restorer.get_object(Bucket=BUCKET, Key=manifest)["Body"].read()
    assert _denied(restorer.put_object, Bucket=BUCKET, Key=dump, Body=b"overwritten") == "AccessDenied"
    assert _denied(restorer.put_object, Bucket=BUCKET, Key="%s/%s/backups/%s/extra" % (PREFIX, CLUSTER, backup_id),
                   Body=b"x") == "AccessDenied"
    assert _denied(restorer.delete_object, Bucket=BUCKET, Key=dump) == "AccessDenied"
    assert _denied(restorer.delete_object, Bucket=BUCKET, Key=records[0]) == "AccessDenied"
    assert _denied(restorer.put_object_tagging, Bucket=BUCKET, Key=manifest,
                   Tagging={"TagSet": [{"Key": "dbdr-class", "Value": "daily"}]}) == "AccessDenied"
    assert _denied(restorer.put_bucket_lifecycle_configuration, Bucket=BUCKET,
                   LifecycleConfiguration=LIFECYCLE) == "AccessDenied"
    assert sorted(backup_keys(world, backup_id)) == [dump, manifest]


def test_pruner_deletes_by_policy_and_nothing_else(world, first_backup, pg_server, pg_sample, gnupg_home,
                                                   ansible_runner):
    writer_backup(world, pg_server, gnupg_home, ansible_runner)
    newest = writer_backup(world, pg_server, gnupg_home, ansible_runner)["backup_id"]
    before = sorted(stored_backups(world))
    assert len(before) >= 3 and before[-1] == newest and first_backup["backup_id"] in before
    pruned = run_module(ansible_runner, "backup_retention", {
        "cluster": CLUSTER, "repository": repository(world, "pruner"),
        "policy": {"keep_last": 1, "weekly": 1, "min_age": 0}, "confirm": True})
    kept = sorted(k["backup_id"] for k in pruned["kept"])
    deleted = sorted(d["backup_id"] for d in pruned["deleted"])
    assert deleted and newest in kept and sorted(kept + deleted) == before
    assert sorted(stored_backups(world)) == kept
    # The week's representative was promoted: every object re-tagged (s3:PutObjectTagging on stored objects).
    assert [r["to"] for r in pruned["retagged"]] == ["weekly"]
    promoted = pruned["retagged"][0]["backup_id"]
    root = root_s3(world)
    for key in backup_keys(world, promoted):
        assert {"Key": "dbdr-class", "Value": "weekly"} in root.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    # Verification records of deleted backups went with them; audit records stay.
    assert all(k.split("/")[3] in kept for k in listed(world, "verify/"))
    assert pruned["audit_record"] in [k[len(PREFIX) + 1:] for k in listed(world, "audit/")]
    assert listed(world, "lock") == []

    pruner = _client(world["server"], world["keys"]["pruner"])
    dump = "%s/%s/backups/%s/app.pgdump.zst.gpg" % (PREFIX, CLUSTER, newest)
    audit = listed(world, "audit/")[0]
    assert _denied(pruner.put_object, Bucket=BUCKET, Key=dump, Body=b"overwritten") == "AccessDenied"
    assert _denied(pruner.delete_object, Bucket=BUCKET, Key=audit) == "AccessDenied"
    assert _denied(pruner.delete_object, Bucket=BUCKET, Key=dump, VersionId="null") == "AccessDenied"
    assert _denied(pruner.put_bucket_lifecycle_configuration, Bucket=BUCKET,
                   LifecycleConfiguration=LIFECYCLE) == "AccessDenied"
    assert _denied(pruner.delete_object, Bucket=BUCKET, Key="%s/other-cluster/backups/x" % PREFIX) == "AccessDenied"
    assert backup_keys(world, newest)


def test_admin_configures_the_bucket_but_cannot_delete_it_or_read_backups(world):
    admin = _client(world["server"], world["keys"]["admin"])
    rules = {"Rules": [{"ID": "dbdr-daily", "Status": "Enabled",
                        "Filter": {"And": {"Prefix": "%s/" % PREFIX, "Tags": [{"Key": "dbdr-class", "Value": "daily"}]}},
                        "Expiration": {"Days": 14}}]}
    admin.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=rules)
    assert admin.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"][0]["ID"] == "dbdr-daily"
    admin.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    assert admin.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert _denied(admin.delete_bucket, Bucket=BUCKET) == "AccessDenied"
    probe = "%s/%s/probe" % (PREFIX, CLUSTER)
    root_s3(world).put_object(Bucket=BUCKET, Key=probe, Body=b"x")
    try:
        assert _denied(admin.get_object, Bucket=BUCKET, Key=probe) == "AccessDenied"
        assert _denied(admin.delete_object, Bucket=BUCKET, Key=probe) == "AccessDenied"
    finally:
        root_s3(world).delete_object(Bucket=BUCKET, Key=probe)
    admin.delete_bucket_lifecycle(Bucket=BUCKET)
    with pytest.raises(ClientError, match="NoSuchLifecycleConfiguration"):
        admin.get_bucket_lifecycle_configuration(Bucket=BUCKET)
