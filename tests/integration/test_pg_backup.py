"""pg_backup run the way users run it: ansible-playbook and ad hoc ansible, against a real
PostgreSQL, real gpg/zstd, and moto's S3 server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from module_args import (
    ODD_DB, backup_args, decrypt_stream, encryption, files_under, manifest_counts, manifest_of, run_backup)


# --- happy paths ------------------------------------------------------------------------

def test_backup_playbook_into_local_repository(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path):
    repo = tmp_path / "repo"
    extra = {
        "dbdr_hosts": "localhost", "dbdr_cluster": "prod-main",
        "dbdr_login_host": pg_server.host, "dbdr_login_port": pg_server.port, "dbdr_login_user": pg_server.user,
        "dbdr_repository": {"type": "local", "path": str(repo)},
        "dbdr_encryption": encryption(gnupg_home), "dbdr_labels": {"reason": "pre-deploy"},
    }
    run = ansible_runner.run_playbook("playbooks/backup.yml", extra_vars=extra)
    result = run.task_result("Take the backup")
    assert result["changed"] is True
    backup_id = result["backup_id"]
    assert len(backup_id) == 16 and backup_id.endswith("Z")

    manifest = manifest_of(repo, "prod-main", backup_id)
    assert manifest["format_version"] == 1 and manifest["kind"] == "logical"
    assert manifest["labels"] == {"reason": "pre-deploy"} and manifest["gfs_class"] == "daily"
    assert manifest["encryption"]["recipients"][0]["fingerprint"] == gnupg_home.fpr
    assert manifest["started_at"].endswith("+00:00") and manifest["server"]["version"].startswith("15")
    names = {d["name"] for d in manifest["databases"]}
    assert {"app", ODD_DB, "postgres"} <= names

    # Every object's bytes and SHA-256 match the manifest; nothing else is stored there.
    backup_dir = repo / "prod-main" / "backups" / backup_id
    assert sorted(p.name for p in backup_dir.iterdir()) == sorted([o["name"] for o in manifest["objects"]] + ["manifest.json"])
    for obj in manifest["objects"]:
        data = (backup_dir / obj["name"]).read_bytes()
        assert len(data) == obj["bytes"] and hashlib.sha256(data).hexdigest() == obj["sha256"]
        assert (os.stat(backup_dir / obj["name"]).st_mode & 0o777) == 0o600
    assert result["bytes"] == sum(o["bytes"] for o in manifest["objects"]) == manifest["total_bytes"]

    # Row counts are the real ones, for odd identifiers too.
    by_name = {d["name"]: d for d in manifest["databases"]}
    for db, tables in pg_sample.items():
        assert manifest_counts(by_name[db]) == tables
    assert by_name[ODD_DB]["object"] == "odd%20%22db%22%20name%20%C3%BC.pgdump.zst.gpg"

    # The globals object is a SQL script that creates our password role.
    globals_sql = decrypt_stream(gnupg_home, backup_dir / "globals.sql.zst.gpg", ["zstd", "-dq"]).decode()
    assert "CREATE ROLE dbdr_pw" in globals_sql
    assert manifest["globals"]["role_passwords"] is True

    # Audit record of the run.
    audits = list((repo / "prod-main" / "audit").rglob("*-backup.json"))
    assert len(audits) == 1
    audit = json.loads(audits[0].read_text())
    assert audit["outcome"] == "ok" and audit["details"]["backup_id"] == backup_id

    # Results users read.
    assert result["manifest"]["backup_id"] == backup_id
    assert result["duration_seconds"] > 0 and result["throughput_bytes_per_second"] > 0
    assert result["resources"]["peak_rss_bytes"] > 0
    assert result["manifest_key"] == str(backup_dir / "manifest.json")


def test_second_backup_gets_a_new_id_and_leaves_the_first_untouched(pg_server, pg_sample, gnupg_home,
                                                                    ansible_runner, tmp_path):
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    first = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=["app"], globals=False))
    before = {p: (tmp_path / "repo" / p).read_bytes() for p in files_under(tmp_path / "repo") if "/backups/" in p}
    second = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=["app"], globals=False))
    assert second["backup_id"] > first["backup_id"]
    for path, data in before.items():
        assert (tmp_path / "repo" / path).read_bytes() == data


def test_backup_into_s3(pg_server, pg_sample, gnupg_home, s3_server, ansible_runner):
    bucket = s3_server.create_bucket("dbdr-happy")
    repo = s3_server.repository(bucket, prefix="pg/prod", storage_class="STANDARD_IA", sse="AES256")
    result = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=["app", ODD_DB],
                                                    gfs_class="weekly"))
    backup_id = result["backup_id"]
    client = s3_server.client()
    prefix = "pg/prod/main/backups/%s/" % backup_id
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"])
    manifest = json.loads(client.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read())
    assert keys == sorted(prefix + n for n in [o["name"] for o in manifest["objects"]] + ["manifest.json"])
    for key in keys:
        tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        # Every object carries its GFS class; only backup data may move to colder storage classes
        # (s3_lifecycle's rules match dbdr-data), the manifest stays readable at once.
        expected_tags = [{"Key": "dbdr-class", "Value": "weekly"},
                         {"Key": "dbdr-data", "Value": "false" if key.endswith("/manifest.json") else "true"}]
        assert sorted(tags, key=lambda t: t["Key"]) == expected_tags
        head = client.head_object(Bucket=bucket, Key=key)
        # Dumps go to the chosen class; the manifest stays readable at once (lifecycle tiers it by tag).
        expected_class = None if key.endswith("/manifest.json") else "STANDARD_IA"
        assert head.get("StorageClass") == expected_class and head.get("ServerSideEncryption") == "AES256"
    for obj in manifest["objects"]:
        body = client.get_object(Bucket=bucket, Key=prefix + obj["name"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == obj["sha256"]
    assert manifest_counts([d for d in manifest["databases"] if d["name"] == ODD_DB][0]) == pg_sample[ODD_DB]
    # The lock is gone, an audit record is there.
    all_keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="pg/prod/main/")["Contents"]]
    assert "pg/prod/main/lock" not in all_keys
    assert any(k.startswith("pg/prod/main/audit/") and k.endswith("-backup.json") for k in all_keys)
    assert result["manifest_key"] == "s3://%s/%smanifest.json" % (bucket, prefix)


def test_check_mode_returns_the_plan_and_writes_nothing(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path):
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    result = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=["app", ODD_DB]), check=True)
    assert result["changed"] is True
    plan = result["plan"]
    assert [d["name"] for d in plan["databases"]] == ["app", ODD_DB]
    assert plan["objects"] == ["globals.sql.zst.gpg", "app.pgdump.zst.gpg",
                               "odd%20%22db%22%20name%20%C3%BC.pgdump.zst.gpg", "manifest.json"]
    assert plan["destination"] == str(tmp_path / "repo" / "main" / "backups") + "/"
    assert plan["encryption"]["recipients"] == [gnupg_home.fpr]
    assert "backup_id" not in result
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("compression, fmt, decompress", [
    ({"algorithm": "gzip", "level": 1}, "custom", ["gzip", "-dc"]),
    ({"algorithm": "none"}, "custom", ["cat"]),
    ({"algorithm": "zstd", "level": 9}, "directory", ["zstd", "-dq"]),
])
def test_compression_and_formats(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path, compression, fmt, decompress):
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    result = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=["app"], globals=False,
                                                    compression=compression, format=fmt, jobs=2))
    manifest = manifest_of(tmp_path / "repo", "main", result["backup_id"])
    (obj,) = manifest["objects"]
    suffix = {"gzip": ".gz", "none": "", "zstd": ".zst"}[compression["algorithm"]]
    assert obj["name"] == ("app.pgdump" if fmt == "custom" else "app.pgdir.tar") + suffix + ".gpg"
    plain = decrypt_stream(gnupg_home, tmp_path / "repo" / "main" / "backups" / result["backup_id"] / obj["name"], decompress)
    if fmt == "custom":
        assert plain.startswith(b"PGDMP")
    else:
        listing = subprocess.run(["tar", "-tf", "-"], input=plain, capture_output=True, check=True).stdout.decode()
        assert "dump/toc.dat" in listing
    assert manifest_counts(manifest["databases"][0]) == pg_sample["app"]
    assert manifest["compression"]["algorithm"] == compression["algorithm"]


def test_table_selection_and_key_file_recipient(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path):
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    args = backup_args(pg_server, repo, gnupg_home, databases=["app"], globals=False,
                       tables=["public.*", '"Sales Data".*'], exclude_tables=["public.orders"],
                       encryption={"type": "gpg", "recipients": [str(gnupg_home.public_key_file)]})
    # The key file is used as it is: an empty GNUPGHOME must do.
    empty_home = tmp_path / "gnupg-empty"
    empty_home.mkdir(mode=0o700)
    args["encryption"]["gnupghome"] = str(empty_home)
    result = run_backup(ansible_runner, args)
    manifest = manifest_of(tmp_path / "repo", "main", result["backup_id"])
    expected = dict((k, v) for k, v in pg_sample["app"].items() if k != "public.orders")
    assert manifest_counts(manifest["databases"][0]) == expected
    assert manifest["encryption"]["recipients"][0]["source"] == "file"
    assert manifest["encryption"]["recipients"][0]["fingerprint"] == gnupg_home.fpr
    listing = subprocess.run(
        ["/usr/lib/postgresql/15/bin/pg_restore", "--list"],
        input=decrypt_stream(gnupg_home, tmp_path / "repo/main/backups" / result["backup_id"] / "app.pgdump.zst.gpg",
                             ["zstd", "-dq"]), capture_output=True, check=True).stdout.decode()
    assert "TABLE DATA public customers" in listing and "TABLE DATA public orders" not in listing
    assert 'Quarterly "Report"' in listing


def test_schema_only_records_no_row_counts(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path):
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    result = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=["app"], schema_only=True))
    manifest = manifest_of(tmp_path / "repo", "main", result["backup_id"])
    assert manifest["dump"]["schema_only"] is True and manifest["databases"][0]["tables"] == []


# --- bad input: a clear error, and nothing written ---------------------------------------

BAD_INPUT = [
    ("unknown database", {"databases": ["app", "nosuchdb"]}, "validate", "'nosuchdb' not found"),
    ("server unreachable", {"login_port": 1}, "connect", "server unreachable"),
    ("invalid cluster", {"cluster": "../etc"}, "validate", "invalid cluster name"),
    ("missing recipient", {"encryption": "MISSING"}, "encryption", "not found in keyring"),
    ("expired recipient", {"encryption": "EXPIRED"}, "encryption", "expired"),
    ("no recipients", {"encryption": {"type": "gpg", "recipients": []}}, "validate", "recipients is empty"),
    ("table pattern matches nothing", {"databases": ["app"], "tables": ["public.nope*"]}, "validate",
     "matches no table in database 'app'"),
    ("both schema and data only", {"schema_only": True, "data_only": True}, None, "mutually exclusive"),
    ("relative repository path", {"repository": {"type": "local", "path": "relative/repo"}}, "validate",
     "absolute path"),
]


@pytest.mark.parametrize("case, override, stage, message", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_fails_before_writing(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path,
                                        case, override, stage, message):
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    args = backup_args(pg_server, repo, gnupg_home)
    override = dict(override)
    if override.get("encryption") == "MISSING":
        override["encryption"] = encryption(gnupg_home, "0123456789ABCDEF0123456789ABCDEF01234567")
    elif override.get("encryption") == "EXPIRED":
        override["encryption"] = encryption(gnupg_home, gnupg_home.expired_fpr)
    args.update(override)
    result = run_backup(ansible_runner, args, expect_rc=2)
    assert result.get("failed") is True
    assert message in result["msg"], result["msg"]
    if stage:
        assert result["stage"] == stage
    assert files_under(tmp_path / "repo") == []


def test_missing_bucket_is_never_created(pg_server, pg_sample, gnupg_home, s3_server, ansible_runner):
    repo = s3_server.repository("dbdr-no-such-bucket")
    result = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home), expect_rc=2)
    assert result["stage"] == "storage" and "does not exist" in result["msg"] and "never creates" in result["msg"]
    names = [b["Name"] for b in s3_server.client().list_buckets().get("Buckets", [])]
    assert "dbdr-no-such-bucket" not in names


def test_unencrypted_s3_must_be_asked_for(pg_server, pg_sample, gnupg_home, s3_server, ansible_runner):
    bucket = s3_server.create_bucket("dbdr-plain")
    repo = s3_server.repository(bucket)
    args = backup_args(pg_server, repo, gnupg_home, databases=["app"], encryption={"type": "none"})
    result = run_backup(ansible_runner, args, expect_rc=2)
    assert "allow_unencrypted" in result["msg"]
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    args["encryption"] = {"type": "none", "allow_unencrypted": True}
    result = run_backup(ansible_runner, args)
    manifest = result["manifest"]
    assert manifest["encryption"] == "none" and manifest["objects"][-1]["name"] == "app.pgdump.zst"


def test_partitioned_table_brings_its_partitions(pg_server, gnupg_home, ansible_runner, tmp_path):
    db = "parted"
    if pg_server.scalar("SELECT count(*) FROM pg_database WHERE datname = 'parted'") == "0":
        pg_server.create_db(db)
        pg_server.psql(
            "CREATE TABLE measurements (at date NOT NULL, v int) PARTITION BY RANGE (at);"
            "CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
            "CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');"
            "INSERT INTO measurements SELECT d, 1 FROM generate_series('2025-06-01'::date, '2026-06-30', '1 day') d;"
            "CREATE TABLE other (x int); INSERT INTO other VALUES (1);", db=db)
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    result = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=[db], globals=False,
                                                    tables=["measurements"]))
    manifest = manifest_of(tmp_path / "repo", "main", result["backup_id"])
    assert manifest_counts(manifest["databases"][0]) == {"public.measurements_2025": 214, "public.measurements_2026": 181}
