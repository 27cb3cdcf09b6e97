"""backup_verify run the way users run it, on real backups of a real PostgreSQL: every level on
a good backup, then each kind of damage detected with the right word of the vocabulary, and the
scratch database gone in every case."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

import harness
from module_args import ODD_DB, backup_args, run_backup, run_module, task_playbook, wait_for
from wrappers import gated_pg_bin

WORDS = {"ok", "missing", "checksum_mismatch", "size_mismatch", "decrypt_failed", "unreadable",
         "row_count_mismatch", "fk_orphans", "assertion_failed", "rto_exceeded"}


def verify_args(server, repository, gnupg_home, **extra):
    args = dict(server.conn_params("postgres"), cluster="main", repository=repository,
                encryption={"gnupghome": str(gnupg_home.home)})
    args.update(extra)
    return args


def run_verify(ansible_runner, args, expect_rc=0, **kwargs):
    return run_module(ansible_runner, "backup_verify", args, expect_rc=expect_rc, **kwargs)


def scratch_databases(server):
    return [d for d in server.databases() if d.startswith("dbdr_verify_")]


def words(result):
    """{(check, subject): result word} of the failed checks of the single verified backup."""
    (only,) = result["results"]
    return dict(((c["check"], c["subject"]), c["result"]) for c in only["checks"])


def stored_records(repo_path, backup_id):
    directory = repo_path / "main" / "verify" / backup_id
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))] if directory.exists() else []


def _objects(backup_dir):
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    return manifest, dict((o.get("database") or o["kind"], o) for o in manifest["objects"])


# --- a good backup ---------------------------------------------------------------------------

@pytest.mark.parametrize("level", ["checksum", "readable"])
def test_good_backup_passes_and_leaves_a_record(pg_server_other, repo, gnupg_home, ansible_runner, level):
    repository, backup_dir, backup_id = repo
    manifest_bytes = (backup_dir / "manifest.json").read_bytes()
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home, level=level))
    assert result["changed"] is True and result["result"] == "ok"
    (summary,) = result["results"]
    assert summary["backup_id"] == backup_id and summary["level"] == level and summary["checks"] == []
    # One checksum per object (3: two databases and the globals), plus what readable adds.
    assert summary["counts"] == {"ok": 3 if level == "checksum" else 9}
    records = stored_records(backup_dir.parents[2], backup_id)
    assert len(records) == 1 and records[0]["result"] == "ok"
    assert summary["record"].startswith("main/verify/%s/" % backup_id)
    archive = [c for c in records[0]["checks"] if c["check"] == "archive"]
    if level == "readable":
        assert {c["subject"] for c in archive} == {o["name"] for o in _objects(backup_dir)[0]["objects"]}
        assert any("data for 4 tables" in c["detail"] for c in archive)
    # The manifest is never rewritten.
    assert (backup_dir / "manifest.json").read_bytes() == manifest_bytes


def test_restore_level_proves_the_backup_and_drops_the_scratch_database(pg_server_other, repo, gnupg_home,
                                                                        ansible_runner, tmp_path):
    repository, backup_dir, backup_id = repo
    args = verify_args(pg_server_other, repository, gnupg_home, level="restore", amcheck=True, rto_target=3600,
                       assertions=[{"database": "app", "name": "no negative orders",
                                    "sql": "select count(*) = 0 from orders where amount < 0"},
                                   {"database": "app", "sql": "select id from customers where id < 0"},
                                   {"database": ODD_DB, "sql": "select true"}],
                       report=str(tmp_path / "reports"), metrics_file=str(tmp_path / "dbdr.prom"))
    result = run_verify(ansible_runner, args)
    assert result["result"] == "ok", result["results"]
    (summary,) = result["results"]
    record = stored_records(backup_dir.parents[2], backup_id)[0]
    checks = {(c["check"], c["subject"]): c for c in record["checks"]}
    assert checks[("row_count", "app.public.orders")]["result"] == "ok"
    assert checks[("row_count", 'app.Sales Data.Quarterly "Report"')]["detail"] == "10 rows"
    assert [c for c in record["checks"] if c["check"] == "foreign_key"], "the sample's foreign keys were checked"
    assert checks[("assertion", "app: no negative orders")]["result"] == "ok"
    assert checks[("rto", "restore")]["result"] == "ok"
    assert any(c["check"] == "amcheck" for c in record["checks"])
    assert summary["restore_seconds"] > 0 and record["restore_seconds"] == summary["restore_seconds"]
    assert scratch_databases(pg_server_other) == []
    html = (tmp_path / "reports" / "dbdr-report-main.html").read_text()
    assert backup_id in html and "<svg" in html
    report = json.loads((tmp_path / "reports" / "dbdr-report-main.json").read_text())
    assert report["newest_verified_good"] == backup_id
    metrics = (tmp_path / "dbdr.prom").read_text()
    assert 'dbdr_verify_last_result{cluster="main",level="restore"} 1' in metrics
    assert "dbdr_restore_duration_seconds" in metrics


def test_parallel_restore_level_with_a_local_copy(pg_server_other, repo, gnupg_home, ansible_runner, tmp_path):
    repository, _backup_dir, _backup_id = repo
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home, level="restore", jobs=2,
                                                    tmp_dir=str(scratch), databases=["app"]))
    assert result["result"] == "ok"
    assert list(scratch.iterdir()) == []
    assert scratch_databases(pg_server_other) == []


def test_check_mode_writes_nothing(pg_server_other, repo, gnupg_home, ansible_runner, tmp_path):
    repository, backup_dir, backup_id = repo
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home, level="restore",
                                                    report=str(tmp_path / "r")), check=True)
    assert result["changed"] is False and result["plan"]["backups"][0]["backup_id"] == backup_id
    assert stored_records(backup_dir.parents[2], backup_id) == [] and not (tmp_path / "r").exists()
    assert scratch_databases(pg_server_other) == []


# --- damage, each found with its word -------------------------------------------------------

def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("level", ["checksum", "readable", "restore"])
def test_bit_flip(pg_server_other, repo, gnupg_home, ansible_runner, level):
    repository, backup_dir, backup_id = repo
    _manifest, objects = _objects(backup_dir)
    _flip_byte(backup_dir / objects["app"]["name"])
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home, level=level),
                        expect_rc=2)
    assert result["result"] == "failed" and result["stage"] == "verify"
    assert words(result) == {("checksum", objects["app"]["name"]): "checksum_mismatch"}
    assert "checksum_mismatch" in result["msg"]
    assert stored_records(backup_dir.parents[2], backup_id)[0]["result"] == "failed"
    assert scratch_databases(pg_server_other) == []


def test_truncated_and_missing_objects(pg_server_other, repo, gnupg_home, ansible_runner):
    repository, backup_dir, _backup_id = repo
    _manifest, objects = _objects(backup_dir)
    app = backup_dir / objects["app"]["name"]
    app.write_bytes(app.read_bytes()[:-100])
    (backup_dir / objects["globals"]["name"]).unlink()
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home), expect_rc=2)
    assert words(result) == {("object", objects["app"]["name"]): "size_mismatch",
                             ("object", objects["globals"]["name"]): "missing"}


def test_tampered_manifest(pg_server_other, repo, gnupg_home, ansible_runner):
    repository, backup_dir, _backup_id = repo
    path = backup_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    app = next(o for o in manifest["objects"] if o.get("database") == "app")
    app["sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home), expect_rc=2)
    assert words(result) == {("checksum", app["name"]): "checksum_mismatch"}

    path.write_text("{ not json")
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home), expect_rc=2)
    assert words(result) == {("manifest", "manifest.json"): "unreadable"}


def test_wrong_key(pg_server_other, repo, gnupg_home, ansible_runner, tmp_path):
    repository, backup_dir, _backup_id = repo
    other = tmp_path / "other-keyring"
    other.mkdir(mode=0o700)
    subprocess.run(["gpg", "--batch", "--homedir", str(other), "--passphrase", "", "--quick-gen-key",
                    "someone else <x@example.org>", "default", "default", "never"], check=True, capture_output=True)
    args = verify_args(pg_server_other, repository, gnupg_home, level="readable")
    args["encryption"] = {"gnupghome": str(other)}
    result = run_verify(ansible_runner, args, expect_rc=2)
    found = words(result)
    assert set(found.values()) == {"decrypt_failed"} and len(found) == 3
    # A checksum needs no key at all.
    assert run_verify(ansible_runner, dict(args, level="checksum"))["result"] == "ok"


def _recompressed_dump_with_fewer_rows(server, gnupg_home, backup_dir, objects, tmp_path):
    """The app dump rebuilt from a copy with 100 orders fewer, encrypted and compressed like the
    original, with the manifest's size and SHA-256 updated but its row counts left alone: a dump
    whose COPY data was cut short and then re-checksummed."""
    name = "verify_cut_%d" % os.getpid()
    server.drop_db(name)
    server.create_db(name)
    try:
        env = server.env()
        dump = tmp_path / "app.dump"
        harness.run([str(server.bin_dir / "pg_dump"), "-Fc", "-f", str(dump), "app"], env=env)
        harness.run([str(server.bin_dir / "pg_restore"), "--no-owner", "-d", name, str(dump)], env=env)
        server.psql("DELETE FROM public.orders WHERE id IN (SELECT id FROM public.orders ORDER BY id DESC LIMIT 100)",
                    db=name)
        cut = tmp_path / "cut.dump"
        harness.run([str(server.bin_dir / "pg_dump"), "-Fc", "-Z0", "-f", str(cut), name], env=env)
    finally:
        server.drop_db(name)
    target = backup_dir / objects["app"]["name"]
    stored = gnupg_home.encrypt(subprocess.run(["zstd", "-q", "-c", str(cut)], check=True,
                                               capture_output=True).stdout, gnupg_home.fpr)
    target.write_bytes(stored)
    path = backup_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in manifest["objects"]:
        if entry.get("database") == "app":
            entry["bytes"] = len(stored)
            entry["sha256"] = hashlib.sha256(stored).hexdigest()
    path.write_text(json.dumps(manifest))


def test_restore_level_catches_copy_data_cut_short_but_rechecksummed(pg_server, pg_server_other, repo,
                                                                     gnupg_home, ansible_runner, tmp_path):
    repository, backup_dir, _backup_id = repo
    _manifest, objects = _objects(backup_dir)
    _recompressed_dump_with_fewer_rows(pg_server, gnupg_home, backup_dir, objects, tmp_path)
    args = verify_args(pg_server_other, repository, gnupg_home)
    # The bytes match the (re-written) manifest and the archive reads: only a restore can tell.
    assert run_verify(ansible_runner, dict(args, level="readable"))["result"] == "ok"
    result = run_verify(ansible_runner, dict(args, level="restore"), expect_rc=2)
    assert words(result) == {("row_count", "app.public.orders"): "row_count_mismatch"}
    assert scratch_databases(pg_server_other) == []


def test_foreign_key_orphans_assertions_and_rto(pg_server, pg_sample, pg_server_other, gnupg_home, ansible_runner,
                                                tmp_path):
    """Orphans behind a NOT VALID foreign key restore without error; the generic check finds them."""
    pg_server.psql("CREATE TABLE IF NOT EXISTS public.refunds (id int PRIMARY KEY, order_id int); "
                   "TRUNCATE public.refunds; INSERT INTO public.refunds VALUES (1, 1), (2, -5), (3, NULL); "
                   "ALTER TABLE public.refunds DROP CONSTRAINT IF EXISTS refunds_order_fk; "
                   "ALTER TABLE public.refunds ADD CONSTRAINT refunds_order_fk FOREIGN KEY (order_id) "
                   "REFERENCES public.orders (id) NOT VALID", db="app")
    try:
        repository = {"type": "local", "path": str(tmp_path / "repo")}
        run_backup(ansible_runner, backup_args(pg_server, repository, gnupg_home, databases=["app"]))
    finally:
        pg_server.psql("DROP TABLE public.refunds", db="app")
    args = verify_args(pg_server_other, repository, gnupg_home, level="restore", rto_target=0.001,
                       assertions=["select count(*) = 0 from refunds where order_id < 0",
                                   "select not_a_column from refunds"])
    result = run_verify(ansible_runner, args, expect_rc=2)
    found = words(result)
    assert found[("foreign_key", "app.refunds_order_fk (refunds -> orders)")] == "fk_orphans"
    assert found[("assertion", "app: assertion 1")] == "assertion_failed"
    assert found[("assertion", "app: assertion 2")] == "assertion_failed"
    assert found[("rto", "restore")] == "rto_exceeded"
    assert set(found.values()) <= WORDS
    detail = next(c["detail"] for c in result["results"][0]["checks"] if c["check"] == "foreign_key")
    assert detail.startswith("1 row(s) of refunds reference no row of orders")
    assert scratch_databases(pg_server_other) == []


def test_every_backup_with_all(pg_server_other, repo, gnupg_home, ansible_runner, pristine_repo):
    repository, backup_dir, backup_id = repo
    # A second backup id whose manifest cannot be read sits next to the good one.
    broken = backup_dir.parent / "20200101T000000Z"
    broken.mkdir()
    (broken / "manifest.json").write_text("garbage")
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home, backup_id="all"),
                        expect_rc=2)
    assert [r["backup_id"] for r in result["results"]] == ["20200101T000000Z", backup_id]
    assert [r["result"] for r in result["results"]] == ["failed", "ok"]
    # fail_on_failure: false reports the same without failing the task.
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home, backup_id="all",
                                                    fail_on_failure=False))
    assert result["result"] == "failed"


# --- bad input: clear errors, nothing written ---------------------------------------------

@pytest.mark.parametrize("extra, message", [
    ({"backup_id": "../../etc"}, "invalid backup id"),
    ({"backup_id": "20991231T000000Z"}, "not found"),
    ({"level": "checksum", "assertions": ["select true"]}, "needs level: restore"),
    ({"level": "restore", "assertions": ["select true"]}, "give it a database"),
    ({"level": "restore", "databases": ["nope"]}, "in none of the backups"),
    ({"level": "restore", "rto_target": -1}, "positive"),
])
def test_bad_input(pg_server_other, repo, gnupg_home, ansible_runner, extra, message):
    repository, backup_dir, backup_id = repo
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home, **extra), expect_rc=2)
    assert message in result["msg"] and result["stage"] == "validate"
    assert stored_records(backup_dir.parents[2], backup_id) == []


def test_scratch_server_down_is_refused_before_anything(pg_server_other, repo, gnupg_home, ansible_runner):
    repository, backup_dir, backup_id = repo
    args = verify_args(pg_server_other, repository, gnupg_home, level="restore", login_port=harness.free_port())
    result = run_verify(ansible_runner, args, expect_rc=2)
    assert result["stage"] == "connect"
    assert stored_records(backup_dir.parents[2], backup_id) == []


# --- interruption ------------------------------------------------------------------------------

def _run_until_pg_restore(ansible_runner, args, gate, started, interrupt):
    """Start the verification as a playbook, let interrupt(run) act while its (gated) pg_restore
    waits, and wait for the end; returns the run."""
    run = ansible_runner.start_playbook(task_playbook("backup_verify", args), extra_vars={"dbdr_args": args})
    try:
        wait_for(started.exists, "the test restore to start", run)
        interrupt(run)
        run.wait(timeout=120, expect_rc=None)
    finally:
        gate.touch()
        if run.poll() is None:
            run.kill()
    return run


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_interrupted_verification_leaves_no_scratch_database(pg_server_other, repo, gnupg_home, ansible_runner,
                                                             tmp_path, how):
    repository, backup_dir, backup_id = repo
    bin_dir, gate, started = gated_pg_bin(tmp_path, pg_server_other)
    args = verify_args(pg_server_other, repository, gnupg_home, level="restore", databases=["app"],
                       pg_bin_dir=str(bin_dir))

    def interrupt(run):
        assert len(scratch_databases(pg_server_other)) == 1
        module = [pid for pid, argv in harness.process_tree(run.pid).items()
                  if any("AnsiballZ_backup_verify" in a for a in argv)]
        assert module
        if how == "SIGTERM":
            harness.send_signal(module, signal.SIGTERM)
        else:
            harness.send_signal(list(harness.process_tree(run.pid)), signal.SIGKILL)
    run = _run_until_pg_restore(ansible_runner, args, gate, started, interrupt)
    assert stored_records(backup_dir.parents[2], backup_id) == []
    if how == "SIGTERM":
        assert scratch_databases(pg_server_other) == []
        assert "interrupted" in run.output()[0]
        return
    left = scratch_databases(pg_server_other)
    assert len(left) == 1
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home, level="restore",
                                                    databases=["app"]))
    assert result["scratch_removed"] == left and scratch_databases(pg_server_other) == []


def test_killed_parallel_verification_leaves_nothing_after_the_next_run(pg_server_other, repo, gnupg_home,
                                                                        ansible_runner, tmp_path):
    """With jobs > 1 the decoded copy (as big as the database) sits under tmp_dir while
    pg_restore runs; a SIGKILL leaves it, and the next verification removes it."""
    repository, _backup_dir, _backup_id = repo
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    bin_dir, gate, started = gated_pg_bin(tmp_path, pg_server_other)
    args = verify_args(pg_server_other, repository, gnupg_home, level="restore", databases=["app"], jobs=2,
                       tmp_dir=str(scratch), pg_bin_dir=str(bin_dir))
    _run_until_pg_restore(ansible_runner, args, gate, started,
                          lambda run: harness.send_signal(list(harness.process_tree(run.pid)), signal.SIGKILL))
    copies = [str(p) for p in scratch.iterdir()]
    assert len(copies) == 1 and list((scratch / copies[0]).rglob("dump.pgdump")), "the killed run's local copy"
    databases = scratch_databases(pg_server_other)
    assert len(databases) == 1
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home, level="restore",
                                                    databases=["app"], jobs=2, tmp_dir=str(scratch)))
    assert result["result"] == "ok"
    assert sorted(result["scratch_removed"]) == sorted(databases + copies)
    assert list(scratch.iterdir()) == [] and scratch_databases(pg_server_other) == []


# --- S3 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("storage_class", ["STANDARD_IA", "GLACIER"])
def test_s3_repository(pg_server, pg_sample, pg_server_other, gnupg_home, s3_server, ansible_runner, storage_class):
    bucket = s3_server.create_bucket("verify-%s-%d" % (storage_class.lower().replace("_", "-"), time.time_ns()))
    repository = s3_server.repository(bucket, "pg", storage_class=storage_class)
    backup_id = run_backup(ansible_runner, backup_args(pg_server, repository, gnupg_home, databases=["app"]))["backup_id"]
    args = verify_args(pg_server_other, repository, gnupg_home, level="readable")
    if storage_class == "GLACIER":
        result = run_verify(ansible_runner, args, expect_rc=2)
        found = words(result)
        # The dump and the globals sit in the archive tier (the manifest stays readable at once).
        assert list(found.values()) == ["unreadable", "unreadable"]
        for check in result["results"][0]["checks"]:
            assert check["check"] == "object" and "needs a restore from the archive tier" in check["detail"]
    else:
        assert run_verify(ansible_runner, dict(args, level="restore"))["result"] == "ok"
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket, Prefix="pg/main/verify/")["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("pg/main/verify/%s/" % backup_id)
    tags = s3_server.client().get_object_tagging(Bucket=bucket, Key=keys[0])["TagSet"]
    assert tags == [{"Key": "dbdr-class", "Value": "verify"}]


def test_failed_verification_alerts_the_webhook(pg_server_other, repo, gnupg_home, ansible_runner):
    repository, backup_dir, backup_id = repo
    _manifest, objects = _objects(backup_dir)
    _flip_byte(backup_dir / objects["app"]["name"])
    with harness.WebhookServer() as hook:
        args = verify_args(pg_server_other, repository, gnupg_home,
                           notify={"url": hook.url, "events": ["verify_failed", "verify_ok"],
                                   "headers": {"Authorization": "Bearer hook-secret"}})
        result = run_verify(ansible_runner, args, expect_rc=2)
        assert hook.events() == ["verify_failed"]
        message = hook.requests[0]["json"]
        assert message["cluster"] == "main" and message["severity"] == "critical"
        assert backup_id in message["text"] and "checksum_mismatch" in message["text"]
        assert message["details"]["failed_checks"][0]["result"] == "checksum_mismatch"
        assert hook.requests[0]["headers"]["Authorization"] == "Bearer hook-secret"
        assert result["notifications"] == [{"event": "verify_failed", "status": 200, "attempts": 1}]
        # The webhook's URL and header are secrets: never in the result.
        assert "SECRETTOKEN" not in json.dumps(result) and "hook-secret" not in json.dumps(result)

        # A webhook that keeps failing is a warning; the verification result stands.
        hook.plan = [(500, "busy")] * 10
        result = run_verify(ansible_runner, args, expect_rc=2)
        assert "error" in result["notifications"][0]
        assert "SECRETTOKEN" not in json.dumps(result)


# --- the drill runbook --------------------------------------------------------------------------

def _drill_vars(server, repository, gnupg_home, tmp_path, **more):
    extra = {"dbdr_hosts": "localhost", "dbdr_cluster": "main", "dbdr_repository": repository,
             "dbdr_encryption": {"gnupghome": str(gnupg_home.home)}, "dbdr_login_host": server.host,
             "dbdr_login_port": server.port, "dbdr_login_user": server.user,
             "dbdr_report_dir": str(tmp_path / "reports"), "dbdr_rto_target": 600,
             "dbdr_assertions": [{"database": "app", "sql": "select count(*) > 0 from orders"}]}
    extra.update(more)
    return extra


def test_dr_drill_playbook(pg_server_other, repo, gnupg_home, ansible_runner, tmp_path):
    repository, backup_dir, backup_id = repo
    run = ansible_runner.run_playbook("playbooks/dr_drill.yml",
                                      extra_vars=_drill_vars(pg_server_other, repository, gnupg_home, tmp_path,
                                                             dbdr_rpo_target=10 ** 8))
    assert "Drill OK for cluster main" in run.stdout
    assert "newest verified-good backup: %s" % backup_id in run.stdout
    html = (tmp_path / "reports" / "dbdr-report-main.html").read_text()
    assert backup_id in html and "http://" not in html and "https://" not in html
    assert scratch_databases(pg_server_other) == []

    # A damaged backup fails the play, after the report says why.
    _manifest, objects = _objects(backup_dir)
    _flip_byte(backup_dir / objects["app"]["name"])
    run = ansible_runner.run_playbook("playbooks/dr_drill.yml", expect_rc=2,
                                      extra_vars=_drill_vars(pg_server_other, repository, gnupg_home, tmp_path,
                                                             dbdr_rpo_target=10 ** 8))
    assert "The DR drill failed: checksum_mismatch" in run.stdout
    report = json.loads((tmp_path / "reports" / "dbdr-report-main.json").read_text())
    assert report["verifications"][-1]["result"] == "failed"
    assert report["newest_verified_good"] is None   # the newer failed proof withdraws the older one


def test_directory_format_backup(pg_server, pg_sample, pg_server_other, gnupg_home, ansible_runner, tmp_path):
    repository = {"type": "local", "path": str(tmp_path / "repo")}
    run_backup(ansible_runner, backup_args(pg_server, repository, gnupg_home, databases=["app"], format="directory",
                                           jobs=2))
    args = verify_args(pg_server_other, repository, gnupg_home)
    result = run_verify(ansible_runner, dict(args, level="readable"))
    assert result["result"] == "ok" and result["results"][0]["counts"] == {"ok": 6}
    result = run_verify(ansible_runner, dict(args, level="restore"))
    assert result["result"] == "ok" and scratch_databases(pg_server_other) == []


# --- what the review found -----------------------------------------------------------------------

@pytest.fixture
def createdb_role(pg_server_other):
    """A role with CREATEDB but no superuser, as the module's example uses."""
    pg_server_other.psql("DROP ROLE IF EXISTS dbdr_verifier; "
                         "CREATE ROLE dbdr_verifier LOGIN CREATEDB PASSWORD 'verifier-secret'")
    yield {"login_user": "dbdr_verifier", "login_password": "verifier-secret"}
    for name in scratch_databases(pg_server_other):
        pg_server_other.drop_db(name)
    pg_server_other.psql("DROP ROLE IF EXISTS dbdr_verifier")


def test_non_superuser_scratch_role(pg_server_other, repo, gnupg_home, ansible_runner, createdb_role):
    repository, backup_dir, backup_id = repo
    args = verify_args(pg_server_other, repository, gnupg_home, level="restore", databases=["app"], **createdb_role)
    # amcheck needs CREATE EXTENSION, which only a superuser may run: refused up front.
    refused = run_verify(ansible_runner, dict(args, amcheck=True), expect_rc=2)
    assert refused["stage"] == "validate" and "superuser" in refused["msg"]
    assert stored_records(backup_dir.parents[2], backup_id) == []
    result = run_verify(ansible_runner, args)
    assert result["result"] == "ok" and scratch_databases(pg_server_other) == []
    assert "verifier-secret" not in json.dumps(result)


def test_amcheck_that_cannot_run_is_a_finding_not_a_crash(pg_server_other, createdb_role):
    """The domain code maps a failing amcheck to its word instead of aborting the run."""
    from ansible_collections.dbdr.backup.plugins.module_utils._pg import ConnectionParams
    from ansible_collections.dbdr.backup.plugins.module_utils._verify import integrity
    pg_server_other.drop_db("verify_amcheck_probe")
    pg_server_other.create_db("verify_amcheck_probe")
    try:
        params = ConnectionParams(host=pg_server_other.host, port=pg_server_other.port,
                                  user=createdb_role["login_user"], password=createdb_role["login_password"])
        checks = integrity.amcheck_checks(params, "verify_amcheck_probe", "app", 150000, 2)
        assert [(c.check, c.result) for c in checks] == [("amcheck", "assertion_failed")]
        assert "amcheck could not run" in checks[0].detail
    finally:
        pg_server_other.drop_db("verify_amcheck_probe")


def test_keyring_from_the_environment(pg_server_other, repo, gnupg_home, ansible_runner):
    repository, _backup_dir, _backup_id = repo
    args = verify_args(pg_server_other, repository, gnupg_home, level="readable")
    args["encryption"] = {"type": "gpg"}   # no gnupghome: $GNUPGHOME, as gpg itself would
    result = run_verify(ansible_runner, args, env={"GNUPGHOME": str(gnupg_home.home)})
    assert result["result"] == "ok"


def test_restore_level_of_some_databases_still_reads_the_others(pg_server_other, repo, gnupg_home, ansible_runner):
    repository, backup_dir, _backup_id = repo
    _manifest, objects = _objects(backup_dir)
    _flip_byte(backup_dir / objects[ODD_DB]["name"])
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home, level="restore",
                                                    databases=["app"]), expect_rc=2)
    assert words(result) == {("checksum", objects[ODD_DB]["name"]): "checksum_mismatch"}


@pytest.mark.parametrize("extra, message", [
    ({"notify": {"url": "htps://hooks.example.org/T0/SECRET"}}, "must be an http"),
    ({"metrics_file": "/nonexistent-dir/dbdr.prom"}, "existing directory"),
    ({"rpo_target": 0}, "rpo_target must be a positive"),
])
def test_bad_publishing_options_are_refused_before_anything(pg_server_other, repo, gnupg_home, ansible_runner,
                                                            tmp_path, extra, message):
    repository, backup_dir, backup_id = repo
    result = run_verify(ansible_runner, verify_args(pg_server_other, repository, gnupg_home, **extra), expect_rc=2)
    assert message in result["msg"] and result["stage"] == "validate"
    assert "SECRET" not in json.dumps(result)
    assert stored_records(backup_dir.parents[2], backup_id) == []
