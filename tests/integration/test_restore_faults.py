"""restore under bad input and faults. In every case: production data identical to before
(table checksums), no staging database left, a clear message naming the stage.

"Production" is a database `app` on the second server (pg_server_other), restored from the
backup and then changed, so that a restore which touched it would show.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import harness
from harness import quote_ident
from module_args import (
    ODD_DB, backup_args, encryption, restore_args, run_backup, run_restore, task_playbook, wait_for)
from wrappers import gated_pg_bin, logging_wrapper, wrapped_pg_bin, wrapper_logs


@pytest.fixture
def production(pg_server_other, repo, gnupg_home, ansible_runner):
    """A live `app` on the target server whose data differs from the backup; yields a check
    that it is untouched and nothing of a restore was left behind."""
    repository = repo[0]
    _drop_all(pg_server_other)
    run_restore(ansible_runner, restore_args(pg_server_other, repository, gnupg_home, databases=["app"],
                                             no_owner=True))
    pg_server_other.psql("UPDATE public.customers SET name = 'live ' || id; DELETE FROM public.orders WHERE id > 4500",
                         db="app")
    before = pg_server_other.table_checksums("app")
    databases = set(pg_server_other.databases())

    def unchanged(staging_left=False):
        assert pg_server_other.table_checksums("app") == before
        now = set(pg_server_other.databases())
        if staging_left:  # what a killed run leaves until the next one
            now = set(d for d in now if not d.startswith("dbdr_staging_"))
        assert now == databases
        assert pg_server_other.scalar("SELECT datallowconn FROM pg_database WHERE datname = 'app'") == "t"
    return unchanged


def _drop_all(server):
    for name in server.databases():
        if name not in ("postgres",):
            server.drop_db(name)


def _swap_args(server, repository, gnupg_home, **extra):
    args = restore_args(server, repository, gnupg_home, databases=["app"], mode="swap", confirm=True, no_owner=True)
    args.update(extra)
    return args


def _flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _app_object(manifest):
    return next(o for o in manifest["objects"] if o.get("database") == "app")


def _edit_manifest(backup_dir, change):
    path = backup_dir / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# --- damaged backups ------------------------------------------------------------------------

@pytest.mark.parametrize("jobs", [1, 2])
def test_bit_flip_in_object_is_found_before_anything_changes(pg_server_other, repo, production, gnupg_home,
                                                             ansible_runner, tmp_path, jobs):
    repository, backup_dir = repo[0], repo[1]
    _flip_byte(backup_dir / "app.pgdump.zst.gpg")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = run_restore(ansible_runner, _swap_args(pg_server_other, repository, gnupg_home, jobs=jobs,
                                                    tmp_dir=str(scratch)), expect_rc=2)
    assert result["stage"] == "verify"
    assert "app.pgdump.zst.gpg" in result["msg"] and "does not match its manifest" in result["msg"]
    production()
    assert list(scratch.iterdir()) == []


def test_truncated_object(pg_server_other, repo, production, gnupg_home, ansible_runner):
    repository, backup_dir = repo[0], repo[1]
    path = backup_dir / "app.pgdump.zst.gpg"
    path.write_bytes(path.read_bytes()[:-100])
    result = run_restore(ansible_runner, _swap_args(pg_server_other, repository, gnupg_home), expect_rc=2)
    assert result["stage"] == "verify" and "truncated" in result["msg"]
    production()


def test_missing_object(pg_server_other, repo, production, gnupg_home, ansible_runner):
    repository, backup_dir = repo[0], repo[1]
    (backup_dir / "app.pgdump.zst.gpg").unlink()
    result = run_restore(ansible_runner, _swap_args(pg_server_other, repository, gnupg_home), expect_rc=2)
    assert result["stage"] == "verify" and "missing" in result["msg"]
    production()


def test_manifest_with_other_row_counts_fails_the_check_and_drops_staging(pg_server_other, repo, production,
                                                                          gnupg_home, ansible_runner):
    repository, backup_dir = repo[0], repo[1]

    def change(data):
        app = next(d for d in data["databases"] if d["name"] == "app")
        next(t for t in app["tables"] if t["name"] == "orders")["rows"] = 4999
    _edit_manifest(backup_dir, change)
    result = run_restore(ansible_runner, _swap_args(pg_server_other, repository, gnupg_home), expect_rc=2)
    assert result["stage"] == "check" and "public.orders: 5000 restored, 4999 in the backup" in result["msg"]
    production()


@pytest.mark.parametrize("tamper, stage, message", [
    (lambda d: _app_object(d).update(sha256="0" * 64), "verify", "does not match its manifest"),
    (lambda d: _app_object(d).update(name="../../../etc/passwd"), "validate", "invalid object entry"),
    (lambda d: d.update(backup_id="20200101T000000Z"), "validate", "unreadable or tampered"),
    (lambda d: d.pop("objects"), "validate", "unreadable or tampered"),
])
def test_tampered_manifest(pg_server_other, repo, production, gnupg_home, ansible_runner, tamper, stage, message):
    repository, backup_dir = repo[0], repo[1]
    _edit_manifest(backup_dir, tamper)
    result = run_restore(ansible_runner, _swap_args(pg_server_other, repository, gnupg_home), expect_rc=2)
    assert result["stage"] == stage and message in result["msg"]
    production()


def test_manifest_that_is_not_json(pg_server_other, repo, production, gnupg_home, ansible_runner):
    repository, backup_dir = repo[0], repo[1]
    (backup_dir / "manifest.json").write_text("{not json")
    result = run_restore(ansible_runner, _swap_args(pg_server_other, repository, gnupg_home), expect_rc=2)
    assert result["stage"] == "validate" and "unreadable or tampered" in result["msg"]
    production()


@pytest.mark.parametrize("backup_id, message", [
    ("20200101T000000Z", "not found"),
    ("../20200101T000000Z", "invalid backup id"),
    ("/etc/passwd", "invalid backup id"),
    ("20201341T000000Z", "not a real date"),
])
def test_bad_backup_ids(pg_server_other, repo, production, gnupg_home, ansible_runner, backup_id, message):
    result = run_restore(ansible_runner, _swap_args(pg_server_other, repo[0], gnupg_home, backup_id=backup_id),
                         expect_rc=2)
    assert result["stage"] == "validate" and message in result["msg"]
    production()


# --- keys -------------------------------------------------------------------------------------

def test_keyring_without_the_secret_key(pg_server_other, repo, production, gnupg_home, ansible_runner, tmp_path):
    empty = tmp_path / "gnupg"
    empty.mkdir(mode=0o700)
    args = _swap_args(pg_server_other, repo[0], gnupg_home, encryption={"gnupghome": str(empty)})
    result = run_restore(ansible_runner, args, expect_rc=2)
    assert result["stage"] == "encryption" and gnupg_home.fpr in result["msg"] and "secret key" in result["msg"]
    production()


def test_wrong_passphrase(pg_server, pg_sample, pg_server_other, production, gnupg_home, ansible_runner, tmp_path):
    repository = {"type": "local", "path": str(tmp_path / "pass-repo")}
    run_backup(ansible_runner, backup_args(pg_server, repository, gnupg_home, databases=["app"], globals=False,
                                           encryption=encryption(gnupg_home, gnupg_home.passphrase_fpr)))
    wrong = "not-the-passphrase-7f3c2a91"
    args = _swap_args(pg_server_other, repository, gnupg_home,
                      encryption={"gnupghome": str(gnupg_home.home), "passphrase": wrong})
    run = ansible_runner.run_adhoc("dbdr.backup.restore", {k: "{{ dbdr_args.%s }}" % k for k in sorted(args)},
                                   extra_vars={"dbdr_args": args}, expect_rc=2, verbosity=3)
    result = run.last_result
    assert result["stage"] == "gpg decrypt" and "passphrase" in result["msg"].lower()
    assert wrong not in run.stdout and wrong not in run.stderr
    production()


# --- the server -------------------------------------------------------------------------------

def test_target_server_down(pg_server_other, repo, production, gnupg_home, ansible_runner):
    args = _swap_args(pg_server_other, repo[0], gnupg_home, login_port=harness.free_port())
    result = run_restore(ansible_runner, args, expect_rc=2)
    assert result["stage"] == "connect" and "unreachable" in result["msg"]
    production()


def test_pg_restore_failing_half_way(pg_server_other, repo, production, gnupg_home, ansible_runner, tmp_path):
    # The archive is cut after 200 kB: pg_restore has created tables and loaded some rows when it fails.
    bin_dir = wrapped_pg_bin(tmp_path, pg_server_other, 'head -c 200000 | "$REAL" "$@"')
    args = _swap_args(pg_server_other, repo[0], gnupg_home, pg_bin_dir=str(bin_dir))
    result = run_restore(ansible_runner, args, expect_rc=2)
    assert result["stage"] == "pg_restore" and "exited with status" in result["msg"]
    production()


def test_scratch_space_too_small_is_refused_before_anything(pg_server_other, repo, production, gnupg_home,
                                                            ansible_runner, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        args = _swap_args(pg_server_other, repo[0], gnupg_home, jobs=2, tmp_dir=str(small))
        result = run_restore(ansible_runner, args, expect_rc=2)
        assert result["stage"] == "validate" and "MiB free" in result["msg"]
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)
    production()


class _Session:
    """A psql session on the live database that stays open (idle in transaction) until closed."""

    def __init__(self, server, db, sql):
        self.proc = subprocess.Popen([str(server.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=server.env(db=db), text=True)
        self.proc.stdin.write(sql + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + 10
        while server.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'idle in transaction'"
                            % harness.quote_literal(db)) == "0":
            assert time.monotonic() < deadline, "the session did not start"
            time.sleep(0.1)

    def close(self):
        self.proc.kill()
        self.proc.wait()


def test_active_sessions_on_the_live_database_are_ended(pg_server_other, repo, production, gnupg_home,
                                                        ansible_runner):
    # An application session idle in a transaction that changed a row, holding its locks.
    session = _Session(pg_server_other, "app", "BEGIN; UPDATE public.customers SET email = 'x' WHERE id = 7;")
    try:
        result = run_restore(ansible_runner, _swap_args(pg_server_other, repo[0], gnupg_home))
        assert result["sessions_terminated"] >= 1
        previous = result["databases"][0]["previous_database"]
        assert pg_server_other.db_exists(previous) and pg_server_other.db_exists("app")
        assert pg_server_other.scalar("SELECT email FROM public.customers WHERE id = 7", db=previous) != "x"
    finally:
        session.close()


def test_exclusive_lock_on_the_live_database_fails_the_safety_backup_cleanly(pg_server_other, repo, production,
                                                                             gnupg_home, ansible_runner):
    session = _Session(pg_server_other, "app", "BEGIN; LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE;")
    try:
        result = run_restore(ansible_runner, _swap_args(pg_server_other, repo[0], gnupg_home, terminate_timeout=2),
                             expect_rc=2)
        assert result["stage"] == "safety backup" and "lock table" in result["msg"].lower()
    finally:
        session.close()
    production()


def test_swap_of_a_database_with_an_odd_name(pg_server_other, repo, gnupg_home, ansible_runner):
    repository = repo[0]
    pg_server_other.drop_db(ODD_DB)
    args = restore_args(pg_server_other, repository, gnupg_home, databases=[ODD_DB], no_owner=True)
    run_restore(ansible_runner, args)
    pg_server_other.psql("DELETE FROM public.items", db=ODD_DB)
    result = run_restore(ansible_runner, dict(args, mode="swap", confirm=True, keep_pre_restore=0))
    assert pg_server_other.count(ODD_DB, "public", "items") == 3
    # keep_pre_restore: 0 removes the copy this run made, too.
    assert result["pre_restore_dropped"] == [result["databases"][0]["previous_database"]]
    assert result["databases"][0]["previous_database"].startswith(ODD_DB + "__pre_restore_")
    assert not pg_server_other.db_exists(result["databases"][0]["previous_database"])


# --- concurrency and interruption -------------------------------------------------------------

def _module_pids(background):
    return dict(harness.process_tree(background.pid))


def test_two_restores_of_one_database_never_run_at_once(pg_server_other, repo, production, gnupg_home,
                                                        ansible_runner, tmp_path):
    bin_dir, gate, started = gated_pg_bin(tmp_path, pg_server_other)
    args = _swap_args(pg_server_other, repo[0], gnupg_home, pg_bin_dir=str(bin_dir))
    first = ansible_runner.start_playbook(task_playbook("restore", args), extra_vars={"dbdr_args": args})
    try:
        wait_for(started.exists, "the first restore to reach pg_restore", first)
        second = run_restore(ansible_runner, _swap_args(pg_server_other, repo[0], gnupg_home), expect_rc=2)
        assert second["stage"] == "lock" and "another restore" in second["msg"]
        # The second run changed nothing; the first is restoring into its staging database.
        assert [d for d in pg_server_other.databases() if d.startswith("dbdr_staging_")]
        production(staging_left=True)
        gate.touch()
        first.wait(timeout=300)
    finally:
        gate.touch()
        if first.poll() is None:
            first.kill()


def test_killed_restore_leaves_production_and_the_next_run_cleans_up(pg_server_other, repo, production,
                                                                     gnupg_home, ansible_runner, tmp_path):
    bin_dir, gate, started = gated_pg_bin(tmp_path, pg_server_other)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    args = _swap_args(pg_server_other, repo[0], gnupg_home, pg_bin_dir=str(bin_dir), jobs=2, tmp_dir=str(scratch))
    run = ansible_runner.start_playbook(task_playbook("restore", args), extra_vars={"dbdr_args": args})
    try:
        wait_for(started.exists, "the restore to reach pg_restore", run)
        staging = [d for d in pg_server_other.databases() if d.startswith("dbdr_staging_")]
        assert len(staging) == 1
        # Nothing secret on any command line of the running restore.
        for argv in _module_pids(run).values():
            assert not any("passphrase" in a and "fd" not in a for a in argv)
        harness.send_signal(list(_module_pids(run)), signal.SIGKILL)
        run.wait(timeout=60, expect_rc=None)
    finally:
        gate.touch()
        if run.poll() is None:
            run.kill()
    assert pg_server_other.db_exists(staging[0])
    left = [str(p) for p in scratch.iterdir()]
    assert len(left) == 1 and list(Path(left[0]).rglob("dump.pgdump")), "the killed run's local copy"
    production(staging_left=True)
    result = run_restore(ansible_runner, _swap_args(pg_server_other, repo[0], gnupg_home, tmp_dir=str(scratch)))
    assert sorted(result["leftovers_removed"]) == sorted(staging + left)
    assert not pg_server_other.db_exists(staging[0]) and list(scratch.iterdir()) == []


def test_pruning_never_drops_a_copy_put_back_into_service(pg_server_other, repo, production, gnupg_home,
                                                          ansible_runner):
    args = _swap_args(pg_server_other, repo[0], gnupg_home)
    first = run_restore(ansible_runner, args)
    previous = first["databases"][0]["previous_database"]
    # Roll back by hand, as the runbook says, but without touching the comments.
    pg_server_other.psql('BEGIN; ALTER DATABASE app RENAME TO app_rolled_back; '
                         'ALTER DATABASE %s RENAME TO app; COMMIT;' % quote_ident(previous))
    live = pg_server_other.table_checksums("app")
    second = run_restore(ansible_runner, dict(args, keep_pre_restore=0))
    assert pg_server_other.db_exists("app") and pg_server_other.db_exists("app_rolled_back")
    new_previous = second["databases"][0]["previous_database"]
    assert second["pre_restore_dropped"] == [new_previous]
    # The restored database does not inherit the marker of the copy it replaced.
    comment = pg_server_other.scalar("SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
                                     "WHERE datname = 'app'")
    assert not comment.startswith("dbdr.backup:")
    assert live != pg_server_other.table_checksums("app")


def test_secrets_stay_out_of_argv_results_logs_and_child_env(pg_server, pg_sample, pg_server_other, production,
                                                             gnupg_home, ansible_runner, tmp_path):
    repository = {"type": "local", "path": str(tmp_path / "secret-repo")}
    run_backup(ansible_runner, backup_args(pg_server, repository, gnupg_home, databases=["app"], globals=False,
                                           encryption=encryption(gnupg_home, gnupg_home.passphrase_fpr)))
    logdir = tmp_path / "logs"
    logdir.mkdir()
    pg_bin = tmp_path / "pg-bin"
    pg_bin.mkdir()
    for tool in ("pg_restore", "psql", "vacuumdb", "pg_dump"):
        logging_wrapper(pg_bin / tool, pg_server_other.bin_dir / tool, logdir)
    path_bin = tmp_path / "path-bin"
    path_bin.mkdir()
    for tool in ("gpg", "zstd"):
        logging_wrapper(path_bin / tool, shutil.which(tool), logdir)
    password, passphrase = pg_server_other.password, gnupg_home.passphrase
    args = dict(_swap_args(pg_server_other, repository, gnupg_home, pg_bin_dir=str(pg_bin), jobs=2,
                           encryption={"gnupghome": str(gnupg_home.home), "passphrase": passphrase}),
                **pg_server_other.conn_params("postgres", password=True))
    log = tmp_path / "ansible.log"
    task = {"name": "restore", "environment": {"PATH": "%s:{{ lookup('env', 'PATH') }}" % path_bin},
            "dbdr.backup.restore": {k: "{{ dbdr_args[%s] }}" % json.dumps(k) for k in sorted(args)}}
    playbook = json.dumps([{"name": "r", "hosts": "localhost", "gather_facts": False, "tasks": [task]}])
    run = ansible_runner.run_playbook(playbook, extra_vars={"dbdr_args": args}, verbosity=4,
                                      env={"ANSIBLE_LOG_PATH": str(log)})
    result = run.task_result("restore")
    assert result["safety_backup_id"] and result["databases"][0]["previous_database"]
    for name, text in (("stdout", run.stdout), ("stderr", run.stderr), ("log", log.read_text())):
        assert password not in text and passphrase not in text, name
    calls = wrapper_logs(logdir)
    assert {tool for tool, _a, _e in calls} >= {"pg_restore", "vacuumdb", "pg_dump", "gpg", "zstd"}
    for tool, argv, env in calls:
        assert not any(password in a or passphrase in a for a in argv), (tool, argv)
        assert not any(password in v or passphrase in v for v in env.values()), tool
        assert "PGPASSWORD" not in env, tool
        if tool in ("pg_restore", "vacuumdb", "pg_dump") and "--version" not in argv:
            assert env.get("PGPASSFILE") and not os.path.exists(env["PGPASSFILE"]), tool
    decrypts = [argv for tool, argv, _e in calls if tool == "gpg" and "--decrypt" in argv]
    assert decrypts and all("--passphrase-fd" in argv for argv in decrypts)
    for record in (tmp_path / "secret-repo").rglob("*.json"):
        text = record.read_text()
        assert password not in text and passphrase not in text, record


@pytest.fixture
def s3_backup(pg_server, pg_sample, gnupg_home, s3_server, ansible_runner):
    bucket = s3_server.create_bucket("restore-faults-%d" % time.time_ns())
    repository = s3_server.repository(bucket, "pg")
    run_backup(ansible_runner, backup_args(pg_server, repository, gnupg_home, databases=["app"], globals=False))
    return bucket


def test_s3_read_errors_are_retried(pg_server, pg_server_other, production, gnupg_home, s3_server, s3_backup,
                                    ansible_runner):
    with harness.FaultProxy(s3_server.endpoint_url) as proxy:
        slow = proxy.add(harness.FaultRule("GET", path=r"/app\.pgdump", action="error", status=503, times=2))
        reset = proxy.add(harness.FaultRule("GET", path=r"/app\.pgdump", action="reset", nth=1))
        repository = s3_server.repository(s3_backup, "pg", endpoint_url=proxy.endpoint_url)
        result = run_restore(ansible_runner, _swap_args(pg_server_other, repository, gnupg_home))
        assert slow.applied == 2 and reset.applied == 1, proxy.log
    assert pg_server_other.table_checksums("app") == pg_server.table_checksums("app")
    assert result["databases"][0]["previous_database"]


def test_s3_access_denied_on_an_object_changes_nothing(pg_server_other, production, gnupg_home, s3_server,
                                                       s3_backup, ansible_runner):
    with harness.FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.add(harness.FaultRule("GET", path=r"/app\.pgdump", action="error", status=403, code="AccessDenied"))
        repository = s3_server.repository(s3_backup, "pg", endpoint_url=proxy.endpoint_url)
        result = run_restore(ansible_runner, _swap_args(pg_server_other, repository, gnupg_home), expect_rc=2)
    assert result["stage"] == "storage" and "access denied" in result["msg"].lower()
    production()


def test_a_partial_backup_never_replaces_a_whole_database(pg_server, pg_sample, pg_server_other, production,
                                                          gnupg_home, ansible_runner, tmp_path):
    repository = {"type": "local", "path": str(tmp_path / "partial-repo")}
    full = run_backup(ansible_runner, backup_args(pg_server, repository, gnupg_home, databases=["app"],
                                                  globals=False))
    time.sleep(1.1)
    schema = run_backup(ansible_runner, backup_args(pg_server, repository, gnupg_home, databases=["app"],
                                                    globals=False, schema_only=True))
    args = _swap_args(pg_server_other, repository, gnupg_home)
    # latest passes over the newer schema-only backup, and says so.
    plan = run_restore(ansible_runner, args, check=True)
    assert plan["backup_id"] == full["backup_id"]
    assert plan["plan"]["skipped_backups"][0]["backup_id"] == schema["backup_id"]
    assert "schema only" in plan["plan"]["skipped_backups"][0]["reason"]
    refused = run_restore(ansible_runner, dict(args, backup_id=schema["backup_id"]), expect_rc=2)
    assert refused["stage"] == "validate" and "partial backup (schema only)" in refused["msg"]
    production()


def test_a_database_a_killed_restore_closed_is_reopened(pg_server_other, repo, production, gnupg_home,
                                                        ansible_runner):
    marker = 'dbdr.backup:{"comment": null, "kind": "closed_by_restore", "restore_id": "20261123T000000Z"}'
    pg_server_other.psql("ALTER DATABASE app WITH ALLOW_CONNECTIONS false; COMMENT ON DATABASE app IS %s"
                         % harness.quote_literal(marker))
    result = run_restore(ansible_runner, _swap_args(pg_server_other, repo[0], gnupg_home), check=True)
    assert result["plan"]["databases"][0]["mode"] == "swap"
    result = run_restore(ansible_runner, _swap_args(pg_server_other, repo[0], gnupg_home))
    assert pg_server_other.scalar("SELECT datallowconn FROM pg_database WHERE datname = 'app'") == "t"
    assert result["databases"][0]["previous_database"]
    # A database closed by someone else is not touched, and the message says how to reopen it.
    pg_server_other.psql("ALTER DATABASE app WITH ALLOW_CONNECTIONS false")
    try:
        refused = run_restore(ansible_runner, _swap_args(pg_server_other, repo[0], gnupg_home), expect_rc=2)
        assert "ALLOW_CONNECTIONS true" in refused["msg"]
    finally:
        pg_server_other.psql("ALTER DATABASE app WITH ALLOW_CONNECTIONS true")
