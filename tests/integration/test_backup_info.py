"""backup_info run the way users run it, on real backups of a real PostgreSQL in a local
directory and in S3 (moto), with a real webhook receiver."""

from __future__ import annotations

import datetime
import json
import socket
import time
from pathlib import Path

import pytest

import harness

from module_args import backup_args, run_backup, run_module

from ansible_collections.dbdr.backup.plugins.module_utils._layout import backup_id_time
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import open_repository
from ansible_collections.dbdr.backup.plugins.module_utils._verify.record import Check, VerificationRecord, write_record

GIB = 1024 ** 3
GROWTH_DB = "info_growth"


def run_info(ansible_runner, args, expect_rc=0, check=False):
    return run_module(ansible_runner, "backup_info", args, expect_rc=expect_rc, check=check)


def verify(repository_spec, cluster, backup_id, ok=True, level="checksum"):
    """Store a verification record the way backup_verify does."""
    now = datetime.datetime.now(datetime.timezone.utc)
    checks = [Check("checksum", "%s.pgdump.zst.gpg" % GROWTH_DB, "ok" if ok else "checksum_mismatch")]
    record = VerificationRecord(backup_id, cluster, level, now.isoformat(), now.isoformat(), checks,
                                restore_seconds=3.5 if level == "restore" else None, rto_target=3600)
    write_record(open_repository(repository_spec), record, now)
    return record


def closed_port_url():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return "http://127.0.0.1:%d/hook" % port


@pytest.fixture(scope="module")
def local_repo(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path_factory):
    """A local repository: one labelled backup of app, three small backups of a growth database,
    then one after many rows were inserted (a size anomaly). The second growth backup is
    verified good, the third failed its verification."""
    repo = {"type": "local", "path": str(tmp_path_factory.mktemp("info-repo") / "repo")}
    pg_server.drop_db(GROWTH_DB)
    pg_server.create_db(GROWTH_DB)
    pg_server.psql("CREATE TABLE events (id serial PRIMARY KEY, payload text); "
                   "INSERT INTO events (payload) SELECT md5(i::text) FROM generate_series(1, 50) i", db=GROWTH_DB)

    def backup(databases, **extra):
        args = backup_args(pg_server, repo, gnupg_home, cluster="info", databases=databases, globals=False, **extra)
        return run_backup(ansible_runner, args)["backup_id"]
    ids = {"app": backup(["app"], labels={"reason": "pre-deploy"})}
    ids["small"] = [backup([GROWTH_DB], labels={"reason": "nightly"}) for _i in range(3)]
    pg_server.psql("INSERT INTO events (payload) SELECT md5(random()::text) || md5(random()::text) "
                   "FROM generate_series(1, 40000)", db=GROWTH_DB)
    ids["big"] = backup([GROWTH_DB], labels={"reason": "nightly"})
    verify(repo, "info", ids["small"][1])
    verify(repo, "info", ids["small"][2], ok=False)
    yield {"repository": repo, "ids": ids, "made": time.monotonic()}
    pg_server.drop_db(GROWTH_DB)


def info_args(local_repo, **extra):
    args = {"cluster": "info", "repository": local_repo["repository"]}
    args.update(extra)
    return args


def test_local_repository_status(local_repo, ansible_runner):
    ids = local_repo["ids"]
    result = run_info(ansible_runner, info_args(local_repo))
    assert result["changed"] is False
    assert result["cluster"] == "info"
    assert result["repository"] == str(Path(local_repo["repository"]["path"]) / "info" / "backups") + "/"
    every = [ids["app"]] + ids["small"] + [ids["big"]]
    assert [b["backup_id"] for b in result["backups"]] == every
    assert result["newest_complete"] == ids["big"]
    assert result["newest_verified_good"] == ids["small"][1]
    assert result["unreadable"] == []
    by_id = dict((b["backup_id"], b) for b in result["backups"])
    assert by_id[ids["app"]]["labels"] == {"reason": "pre-deploy"} and by_id[ids["app"]]["databases"] == ["app"]
    assert all(b["whole"] and b["kind"] == "logical" and b["gfs_class"] == "daily" for b in result["backups"])
    assert by_id[ids["small"][1]]["verification"]["result"] == "ok"
    assert by_id[ids["small"][2]]["verification"]["result"] == "failed"
    assert [v["result"] for v in result["verifications"]] == ["ok", "failed"]

    # Size anomaly: the big backup against the median of the three small ones; the app backup
    # holds other databases and is no baseline for them.
    assert all(by_id[i]["size_anomaly"] is None for i in [ids["app"]] + ids["small"])
    anomaly = by_id[ids["big"]]["size_anomaly"]
    small_sizes = sorted(by_id[i]["total_bytes"] for i in ids["small"])
    assert anomaly["baseline_bytes"] == small_sizes[1] and anomaly["threshold"] == 0.5
    assert anomaly["ratio"] == pytest.approx(by_id[ids["big"]]["total_bytes"] / small_sizes[1], rel=1e-3)
    assert anomaly["ratio"] > 10

    # RPO: the newest backup was just taken.
    rpo = result["rpo"]
    assert rpo["status"] == "ok" and 0 <= rpo["age_seconds"] < 600
    assert rpo["target_seconds"] == 86400 and rpo["critical_seconds"] == 172800

    # A directory: every byte is LOCAL and costs nothing.
    stored = sum(sum(b["storage_classes"].values()) for b in result["backups"])
    assert result["bytes_by_class"] == [{"gfs_class": "daily", "storage_class": "LOCAL", "bytes": stored, "backups": 5}]
    assert result["cost"]["monthly"] == 0.0 and result["cost"]["by_storage_class"] == {"LOCAL": 0.0}
    assert result["notifications"] == [] and result["metrics_file"] is None
    assert not result.get("warnings")


def test_filters_narrow_the_list_only(local_repo, ansible_runner):
    ids = local_repo["ids"]
    whole = run_info(ansible_runner, info_args(local_repo))
    labelled = run_info(ansible_runner, info_args(local_repo, labels={"reason": "pre-deploy"}))
    assert [b["backup_id"] for b in labelled["backups"]] == [ids["app"]]
    since = backup_id_time(ids["small"][2]).astimezone(datetime.timezone(datetime.timedelta(hours=2))).isoformat()
    recent = run_info(ansible_runner, info_args(local_repo, since=since, labels={"reason": "nightly"}))
    assert [b["backup_id"] for b in recent["backups"]] == [ids["small"][2], ids["big"]]
    none = run_info(ansible_runner, info_args(local_repo, gfs_class=["monthly", "yearly"]))
    assert none["backups"] == []
    for result in (labelled, recent, none):
        for key in ("newest_complete", "newest_verified_good", "bytes_by_class", "cost", "verifications"):
            assert result[key] == whole[key]
        assert result["rpo"]["status"] == "ok"


def test_rpo_critical_with_tiny_target_and_metrics_file(local_repo, ansible_runner, tmp_path):
    time.sleep(max(0.0, local_repo["made"] + 2.5 - time.monotonic()))
    metrics = tmp_path / "dbdr_info.prom"
    result = run_info(ansible_runner, info_args(local_repo, rpo_target=1, metrics_file=str(metrics)))
    assert result["rpo"]["status"] == "critical" and result["rpo"]["age_seconds"] > 2
    assert result["changed"] is False and result["metrics_file"] == str(metrics)
    text = metrics.read_text()
    assert 'dbdr_rpo_status{cluster="info"} 2' in text
    assert 'dbdr_rpo_target_seconds{cluster="info"} 1' in text
    assert 'dbdr_backups{cluster="info"} 5' in text
    assert 'dbdr_repository_bytes{cluster="info",gfs_class="daily",storage_class="LOCAL"} %d' \
        % result["bytes_by_class"][0]["bytes"] in text
    assert 'dbdr_verify_last_result{cluster="info",level="checksum"} 0' in text
    big = result["backups"][-1]
    assert 'dbdr_backup_size_bytes{cluster="info"} %d' % big["total_bytes"] in text
    # A filtered listing still writes the whole repository's metrics.
    run_info(ansible_runner, info_args(local_repo, rpo_target=1, metrics_file=str(metrics), labels={"reason": "x"}))
    assert 'dbdr_backups{cluster="info"} 5' in metrics.read_text()
    # Warning between target and critical limit.
    warned = run_info(ansible_runner, info_args(local_repo, rpo_target=1, rpo_critical=86400))
    assert warned["rpo"]["status"] == "warning" and warned["rpo"]["critical_seconds"] == 86400


def test_notify_rpo_breach_and_anomaly_to_a_real_webhook(local_repo, ansible_runner):
    time.sleep(max(0.0, local_repo["made"] + 2.5 - time.monotonic()))
    with harness.WebhookServer("/hooks/T000/B000/secret-token") as hook:
        notify = {"url": hook.url, "events": ["rpo_breach", "size_anomaly"], "headers": {"X-Token": "hdr-secret"}}
        result = run_info(ansible_runner, info_args(local_repo, rpo_target=1, notify=notify))
        assert sorted(n["event"] for n in result["notifications"]) == ["rpo_breach", "size_anomaly"]
        assert all(n["status"] == 200 and n["attempts"] == 1 for n in result["notifications"])
        assert len(hook.requests) == 2
        bodies = dict((r["json"]["event"], r["json"]) for r in hook.requests)
        breach = bodies["rpo_breach"]
        assert breach["cluster"] == "info" and isinstance(breach["text"], str) and breach["text"]
        assert "info" in breach["text"]
        assert bodies["size_anomaly"]["cluster"] == "info"
        assert all(r["path"] == "/hooks/T000/B000/secret-token" for r in hook.requests)
        assert all(r["headers"].get("X-Token") == "hdr-secret" for r in hook.requests)
        assert all(r["headers"].get("Content-Type", "").startswith("application/json") for r in hook.requests)
        # The webhook URL (it carries the token) and the headers never show in the result.
        dumped = json.dumps(result)
        assert "secret-token" not in dumped and "hdr-secret" not in dumped

        # Within the RPO and only rpo_breach asked for: nothing to send.
        quiet = run_info(ansible_runner, info_args(local_repo, notify={"url": hook.url, "events": ["rpo_breach"]}))
        assert quiet["notifications"] == [] and len(hook.requests) == 2
        ok = run_info(ansible_runner, info_args(local_repo, notify={"url": hook.url, "events": ["rpo_ok"]}))
        assert [n["event"] for n in ok["notifications"]] == ["rpo_ok"] and len(hook.requests) == 3


def test_unreachable_webhook_is_a_warning_not_a_failure(local_repo, ansible_runner):
    notify = {"url": closed_port_url(), "events": ["rpo_breach"], "timeout": 2}
    result = run_info(ansible_runner, info_args(local_repo, rpo_target=1, notify=notify))
    assert result.get("failed") is not True and result["changed"] is False
    assert [n["event"] for n in result["notifications"]] == ["rpo_breach"]
    assert result["notifications"][0]["error"]
    assert any("rpo_breach" in w and "not delivered" in w for w in result.get("warnings", []))
    assert result["rpo"]["status"] == "critical"


def test_check_mode_reads_but_sends_and_writes_nothing(local_repo, ansible_runner, tmp_path):
    metrics = tmp_path / "dbdr.prom"
    with harness.WebhookServer("/hooks/T000/B000/secret-token") as hook:
        args = info_args(local_repo, rpo_target=1, metrics_file=str(metrics),
                         notify={"url": hook.url, "events": ["rpo_breach"]})
        result = run_info(ansible_runner, args, check=True)
        assert hook.requests == []
    assert not metrics.exists() and list(tmp_path.iterdir()) == []
    assert result["changed"] is False and result["metrics_file"] is None
    assert result["notifications"] == [{"event": "rpo_breach", "skipped": "check mode"}]
    assert result["newest_complete"] == local_repo["ids"]["big"] and len(result["backups"]) == 5


def test_s3_storage_classes_tags_and_cost(pg_server, pg_sample, gnupg_home, s3_server, ansible_runner):
    bucket = s3_server.create_bucket("dbdr-info")
    repo = s3_server.repository(bucket, prefix="pg", storage_class="STANDARD_IA")
    first = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, cluster="info-s3", databases=["app"],
                                                   gfs_class="weekly"))["backup_id"]
    second = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, cluster="info-s3",
                                                    databases=["app"]))["backup_id"]
    verify(repo, "info-s3", second, level="restore")
    # Retention promotes by re-tagging: the tag wins over the class the manifest recorded.
    client = s3_server.client()
    client.put_object_tagging(Bucket=bucket, Key="pg/info-s3/backups/%s/manifest.json" % first,
                              Tagging={"TagSet": [{"Key": "dbdr-class", "Value": "monthly"}]})

    result = run_info(ansible_runner, {"cluster": "info-s3", "repository": repo})
    assert result["repository"] == "s3://dbdr-info/pg/info-s3/backups/" and not result.get("warnings")
    assert [b["gfs_class"] for b in result["backups"]] == ["monthly", "daily"]
    assert result["newest_verified_good"] == second == result["newest_complete"]
    assert result["backups"][1]["verification"]["restore_seconds"] == 3.5
    listed = {}
    for obj in client.list_objects_v2(Bucket=bucket, Prefix="pg/info-s3/backups/")["Contents"]:
        backup_id = obj["Key"].split("/")[3]
        storage_class = obj.get("StorageClass", "STANDARD")
        listed.setdefault(backup_id, {}).setdefault(storage_class, 0)
        listed[backup_id][storage_class] += obj["Size"]
    for backup in result["backups"]:
        assert backup["storage_classes"] == listed[backup["backup_id"]]
        assert set(backup["storage_classes"]) == {"STANDARD", "STANDARD_IA"}   # manifest STANDARD, dumps IA
        # total_bytes is the objects the manifest records (the manifest itself excluded).
        assert backup["total_bytes"] == backup["storage_classes"]["STANDARD_IA"]
    rows = dict(((r["gfs_class"], r["storage_class"]), r) for r in result["bytes_by_class"])
    assert set(rows) == {("daily", "STANDARD"), ("daily", "STANDARD_IA"), ("monthly", "STANDARD"),
                         ("monthly", "STANDARD_IA")}
    assert rows[("monthly", "STANDARD_IA")]["bytes"] == listed[first]["STANDARD_IA"]
    assert rows[("daily", "STANDARD")]["backups"] == 1
    standard = listed[first]["STANDARD"] + listed[second]["STANDARD"]
    infrequent = listed[first]["STANDARD_IA"] + listed[second]["STANDARD_IA"]
    cost = result["cost"]
    assert cost["currency"] == "USD" and cost["prices"]["STANDARD_IA"] == 0.0125
    assert cost["by_storage_class"]["STANDARD"] == pytest.approx(standard / GIB * 0.023, abs=1e-6)
    assert cost["by_storage_class"]["STANDARD_IA"] == pytest.approx(infrequent / GIB * 0.0125, abs=1e-6)
    assert cost["monthly"] == pytest.approx(standard / GIB * 0.023 + infrequent / GIB * 0.0125, abs=2e-6)

    # Own prices in another currency; a price table big enough to see the numbers.
    own = run_info(ansible_runner, {"cluster": "info-s3", "repository": repo, "currency": "EUR",
                                    "prices": {"STANDARD_IA": 1000.0, "STANDARD": 0}})
    assert own["cost"]["currency"] == "EUR" and own["cost"]["prices"]["STANDARD_IA"] == 1000.0
    assert own["cost"]["by_storage_class"] == {"STANDARD": 0.0,
                                               "STANDARD_IA": pytest.approx(infrequent / GIB * 1000, abs=1e-6)}
    classes = run_info(ansible_runner, {"cluster": "info-s3", "repository": repo, "gfs_class": ["monthly"]})
    assert [b["backup_id"] for b in classes["backups"]] == [first]


def test_missing_bucket_is_a_clear_error(s3_server, ansible_runner):
    repo = s3_server.repository("dbdr-no-such-bucket", prefix="pg")
    result = run_info(ansible_runner, {"cluster": "main", "repository": repo}, expect_rc=2)
    assert result["failed"] is True and result["stage"] == "storage"
    assert "dbdr-no-such-bucket does not exist" in result["msg"]


def test_missing_repository_directory_is_a_clear_error(ansible_runner, tmp_path):
    missing = tmp_path / "nowhere" / "repo"
    result = run_info(ansible_runner, {"cluster": "main", "repository": {"type": "local", "path": str(missing)}},
                      expect_rc=2)
    assert result["stage"] == "storage" and "%s does not exist" % missing in result["msg"]
    assert not missing.exists() and not missing.parent.exists()


@pytest.mark.parametrize("extra, message", [
    ({"since": "2026-11-20T03:00:00"}, "since '2026-11-20T03:00:00' has no UTC offset"),
    ({"since": "2026-11-20T03:00:00+25:00"}, "offset of a day or more"),
    ({"since": "last tuesday"}, "not an ISO 8601 timestamp"),
    ({"rpo_target": -60}, "rpo_target must be a positive"),
    ({"rpo_target": 3600, "rpo_critical": 600}, "rpo_critical"),
    ({"size_anomaly_threshold": -1.0}, "size_anomaly_threshold"),
    ({"prices": {"STANDARD": "free"}}, "prices.STANDARD must be a number"),
    ({"notify": {"url": "ftp://hooks.example.invalid/T0/secret"}}, "must be an http:// or https:// URL"),
])
def test_bad_input_fails_before_reading(extra, message, ansible_runner, tmp_path):
    # The repository does not exist either: the options are checked first.
    args = {"cluster": "main", "repository": {"type": "local", "path": str(tmp_path / "absent")}}
    args.update(extra)
    result = run_info(ansible_runner, args, expect_rc=2)
    assert result["stage"] == "validate" and message in result["msg"]
