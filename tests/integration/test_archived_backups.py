"""Backups that a lifecycle rule moved to GLACIER: a routine `backup_verify backup_id: all`
skips them (no alert for every archived monthly), a restore of one fails before it writes
anything with the way out, and once restored from the archive tier both work again.

moto never runs lifecycle rules: the transition is made the way S3 makes it, an in-place copy
to the new storage class that keeps the tags."""

import uuid

import pytest

from module_args import backup_args, reset_target, restore_args, run_backup, run_module, run_restore

DB = "app"


def transition(client, bucket, prefix, storage_class="GLACIER"):
    """Move a backup's data (not its manifest) to `storage_class`, as a lifecycle rule does."""
    moved = []
    for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        if item["Key"].endswith("/manifest.json"):
            continue
        client.copy_object(Bucket=bucket, Key=item["Key"], CopySource={"Bucket": bucket, "Key": item["Key"]},
                           StorageClass=storage_class, MetadataDirective="COPY", TaggingDirective="COPY")
        moved.append(item["Key"])
    return moved


@pytest.fixture
def archived(pg_server, pg_sample, gnupg_home, s3_server, ansible_runner):
    bucket = s3_server.create_bucket("archived-" + uuid.uuid4().hex[:12])
    repo = s3_server.repository(bucket, prefix="pg")
    old = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=[DB], gfs_class="monthly"))
    new = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=[DB]))
    client = s3_server.client()
    moved = transition(client, bucket, "pg/main/backups/%s/" % old["backup_id"])
    assert moved and all(client.head_object(Bucket=bucket, Key=k)["StorageClass"] == "GLACIER" for k in moved)
    return repo, client, bucket, old["backup_id"], new["backup_id"], moved


def stored_keys(client, bucket):
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def verify_all(ansible_runner, repo, gnupg_home, server, expect_rc=0):
    args = dict(server.conn_params("postgres"), cluster="main", repository=repo, backup_id="all", level="checksum",
                encryption={"gnupghome": str(gnupg_home.home)})
    return run_module(ansible_runner, "backup_verify", args, expect_rc=expect_rc)


def test_verify_all_skips_archived_backups_then_verifies_them_once_restored(
        archived, gnupg_home, pg_server, ansible_runner):
    repo, client, bucket, old_id, new_id, moved = archived
    result = verify_all(ansible_runner, repo, gnupg_home, pg_server)
    assert result["result"] == "ok"
    assert [r["backup_id"] for r in result["results"]] == [new_id]
    (skipped,) = result["not_verified"]
    assert skipped["backup_id"] == old_id
    assert "%d object(s) in GLACIER not restored from the archive tier" % len(moved) in skipped["reason"]
    assert any(old_id in w and "was not verified" in w for w in result["warnings"])
    assert client.list_objects_v2(Bucket=bucket, Prefix="pg/main/verify/%s/" % old_id).get("KeyCount") == 0

    # Asked for by id, the archived backup is a finding, not a skip.
    by_id = dict(pg_server.conn_params("postgres"), cluster="main", repository=repo, backup_id=old_id,
                 level="checksum", encryption={"gnupghome": str(gnupg_home.home)})
    failed = run_module(ansible_runner, "backup_verify", by_id, expect_rc=2)
    assert failed["result"] == "failed"

    for key in moved:
        client.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1})
    again = verify_all(ansible_runner, repo, gnupg_home, pg_server)
    assert again["not_verified"] == [] and sorted(r["backup_id"] for r in again["results"]) == sorted([old_id, new_id])
    assert again["result"] == "ok"


def test_restore_of_an_archived_backup_stops_before_writing(archived, gnupg_home, pg_server_other, ansible_runner):
    repo, client, bucket, old_id, _new_id, moved = archived
    reset_target(pg_server_other, DB)
    databases_before = sorted(pg_server_other.databases())
    objects_before = stored_keys(client, bucket)
    result = run_restore(ansible_runner, restore_args(pg_server_other, repo, gnupg_home, backup_id=old_id,
                                                      databases=[DB]), expect_rc=2)
    assert result["stage"] == "storage"
    assert "is in an archive storage class" in result["msg"] and "docs/lifecycle.md" in result["msg"]
    assert sorted(pg_server_other.databases()) == databases_before
    # Nothing written to the repository either: no safety backup, no audit record, no lock left.
    assert stored_keys(client, bucket) == objects_before

    for key in moved:
        client.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1})
    restored = run_restore(ansible_runner, restore_args(pg_server_other, repo, gnupg_home, backup_id=old_id,
                                                        databases=[DB]))
    assert restored["changed"] is True
    reset_target(pg_server_other, DB)
