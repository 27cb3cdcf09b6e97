"""playbooks/restore.yml, the emergency restore runbook, run the way an operator runs it:
ansible-playbook against localhost, from a real backup of pg_server into pg_server_other."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import subprocess
import termios
import time

import pytest

from harness import REPO_ROOT, RunResult, quote_literal
from module_args import backup_args, reset_target, run_backup

PLAYBOOK = "playbooks/restore.yml"


@pytest.fixture(scope="module")
def app_backup(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path_factory):
    """One backup of pg_server's "app" (and the globals) in a local repository."""
    repo = {"type": "local", "path": str(tmp_path_factory.mktemp("restore-playbook-repo"))}
    result = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=["app"]))
    return {"repository": repo, "backup_id": result["backup_id"], "sums": pg_server.table_checksums("app")}


def _extra(server, backup, gnupg_home, **more):
    extra = {
        "dbdr_hosts": "localhost", "dbdr_cluster": "main",
        "dbdr_login_host": server.host, "dbdr_login_port": server.port, "dbdr_login_user": server.user,
        "dbdr_repository": backup["repository"], "dbdr_encryption": {"gnupghome": str(gnupg_home.home)},
        "dbdr_databases": ["app"], "dbdr_no_owner": True, "dbdr_restore_globals": True,
    }
    extra.update(more)
    return extra


def _live_app(server, backup):
    """A live "app" on the target whose data differs from the backup's; returns its checksums."""
    reset_target(server, "app")
    server.create_db("app")
    server.psql("CREATE TABLE public.orders (id int PRIMARY KEY, note text); "
                "INSERT INTO public.orders SELECT i, 'after the backup' FROM generate_series(1, 100) i", db="app")
    live = server.table_checksums("app")
    assert live != backup["sums"]
    return live


def _hook_files(tmp_path):
    """Pre/post task files that leave a marker file each; the post one records the outcome."""
    markers = tmp_path / "markers"
    markers.mkdir()
    pre = tmp_path / "pre-restore.yml"
    pre.write_text(
        "- name: Mark that the pre-restore tasks ran\n"
        "  ansible.builtin.copy:\n"
        "    dest: %s/pre\n"
        "    content: \"pre\\n\"\n"
        "    mode: \"0600\"\n" % markers, encoding="utf-8")
    post = tmp_path / "post-restore.yml"
    post.write_text(
        "- name: Mark that the post-restore tasks ran\n"
        "  ansible.builtin.copy:\n"
        "    dest: %s/post\n"
        "    content: \"{{ 'failed' if (dbdr_restore_result | default({})) is failed else 'ok' }}\\n\"\n"
        "    mode: \"0600\"\n" % markers, encoding="utf-8")
    return markers, {"dbdr_pre_restore_tasks": str(pre), "dbdr_post_restore_tasks": str(post)}


def test_confirmed_full_restore_then_swap(pg_server, pg_server_other, app_backup, gnupg_home, ansible_runner):
    reset_target(pg_server_other, "app")
    # Extra vars from a command line are strings: -e confirm=true must do.
    run = ansible_runner.run_playbook(PLAYBOOK, extra_vars=_extra(pg_server_other, app_backup, gnupg_home,
                                                                  confirm="true"))
    assert run.task_result("Ask the operator to confirm the plan")["skipped"] is True
    plan = run.task_result("Plan the restore")
    assert plan["backup_id"] == app_backup["backup_id"] and plan["plan"]["databases"][0]["mode"] == "new"
    assert "Steps:" in run.task_result("Show the plan")["msg"]
    assert run.task_result("Restore the globals")["globals"] is not None

    result = run.task_result("Restore the databases")
    assert result["changed"] is True and result["backup_id"] == app_backup["backup_id"]
    detail = result["databases"][0]
    assert (detail["database"], detail["target"], detail["mode"]) == ("app", "app", "new")
    assert all(t["match"] for t in detail["tables"])
    assert result["duration_seconds"] > 0 and result["steps"]
    assert pg_server.table_checksums("app") == pg_server_other.table_checksums("app") == app_backup["sums"]
    report = "\n".join(run.task_result("Report the restore")["msg"])
    assert app_backup["backup_id"] in report and "Duration: " in report

    # Production moves on; the runbook again: the live database is replaced and kept.
    pg_server_other.psql("UPDATE public.customers SET name = 'changed'", db="app")
    changed = pg_server_other.table_checksums("app")
    run = ansible_runner.run_playbook(PLAYBOOK, extra_vars=_extra(pg_server_other, app_backup, gnupg_home,
                                                                  confirm="yes", dbdr_keep_pre_restore=1))
    result = run.task_result("Restore the databases")
    detail = result["databases"][0]
    assert detail["mode"] == "swap" and detail["previous_database"].startswith("app__pre_restore_")
    assert result["safety_backup_id"]
    assert pg_server_other.table_checksums("app") == app_backup["sums"]
    assert pg_server_other.table_checksums(detail["previous_database"]) == changed
    report = "\n".join(run.task_result("Report the restore")["msg"])
    assert detail["previous_database"] in report and result["safety_backup_id"] in report


def test_check_mode_is_a_dry_run(pg_server_other, app_backup, gnupg_home, ansible_runner):
    reset_target(pg_server_other, "app")
    before = pg_server_other.databases()
    run = ansible_runner.run_playbook(PLAYBOOK, extra_vars=_extra(pg_server_other, app_backup, gnupg_home),
                                      check=True)
    assert run.task_result("Restore the databases")["plan"]["databases"][0]["target"] == "app"
    assert "Dry run" in run.task_result("Report the restore")["msg"][0]
    assert pg_server_other.databases() == before


def test_hooks_run_around_the_restore(pg_server_other, app_backup, gnupg_home, ansible_runner, tmp_path):
    reset_target(pg_server_other, "app")
    markers, hooks = _hook_files(tmp_path)
    run = ansible_runner.run_playbook(PLAYBOOK, extra_vars=_extra(pg_server_other, app_backup, gnupg_home,
                                                                  confirm=True, **hooks))
    assert run.task_result("Restore the databases")["changed"] is True
    assert (markers / "pre").read_text() == "pre\n"
    assert (markers / "post").read_text() == "ok\n"


def test_post_hook_runs_when_the_restore_fails(pg_server_other, app_backup, gnupg_home, ansible_runner, tmp_path):
    live = _live_app(pg_server_other, app_backup)
    markers, hooks = _hook_files(tmp_path)
    # The plan accepts the file; running it in the staging database fails, before the swap.
    failing_sql = tmp_path / "post-restore.sql"
    failing_sql.write_text("SELECT 1 / 0;\n", encoding="utf-8")
    run = ansible_runner.run_playbook(PLAYBOOK, expect_rc=2, extra_vars=_extra(
        pg_server_other, app_backup, gnupg_home, confirm=True, dbdr_post_restore_sql=[str(failing_sql)], **hooks))
    failed = run.task_result("Restore the databases")
    assert failed["failed"] is True and failed["stage"]
    explained = run.task_result("Explain the failure")
    assert explained["failed"] is True and "Production databases are unchanged" in explained["msg"]
    assert (markers / "pre").read_text() == "pre\n"
    assert (markers / "post").read_text() == "failed\n"
    # Production untouched: same data, no staging database, no pre-restore copy made by this run.
    assert pg_server_other.table_checksums("app") == live
    assert not [d for d in pg_server_other.databases() if d.startswith("dbdr_staging_") or "__pre_restore_" in d]
    assert run.task_results("Report the restore") == []


def test_table_level_restore_and_copy_next_to_production(pg_server_other, app_backup, gnupg_home, ansible_runner):
    """The two other sections of the runbook: mode tables, and target_database."""
    reset_target(pg_server_other, "app", "app_copy")
    ansible_runner.run_playbook(PLAYBOOK, extra_vars=_extra(pg_server_other, app_backup, gnupg_home, confirm=True))
    pg_server_other.psql("DELETE FROM public.orders WHERE id > 4000; UPDATE public.customers SET name = 'changed'",
                         db="app")
    customers = pg_server_other.table_checksums("app")["public.customers"]

    run = ansible_runner.run_playbook(PLAYBOOK, extra_vars=_extra(
        pg_server_other, app_backup, gnupg_home, confirm=True, dbdr_mode="tables", dbdr_tables=["public.orders"],
        dbdr_restore_globals=False, dbdr_stop_services=[]))
    assert "the rows of public.orders" in " ".join(run.task_result("Show the plan")["msg"])
    assert run.task_result("Restore the globals")["skipped"] is True
    result = run.task_result("Restore the databases")
    assert result["databases"][0]["mode"] == "tables" and result["safety_backup_id"]
    sums = pg_server_other.table_checksums("app")
    assert sums["public.orders"] == app_backup["sums"]["public.orders"] and sums["public.customers"] == customers

    before = pg_server_other.table_checksums("app")
    run = ansible_runner.run_playbook(PLAYBOOK, extra_vars=_extra(
        pg_server_other, app_backup, gnupg_home, confirm=True, dbdr_target_database="app_copy",
        dbdr_backup_id=app_backup["backup_id"]))
    detail = run.task_result("Restore the databases")["databases"][0]
    assert (detail["target"], detail["mode"]) == ("app_copy", "new")
    assert pg_server_other.table_checksums("app_copy") == app_backup["sums"]
    assert pg_server_other.table_checksums("app") == before
    pg_server_other.drop_db("app_copy")


def test_unknown_backup_id_fails_before_any_hook(pg_server_other, app_backup, gnupg_home, ansible_runner, tmp_path):
    live = _live_app(pg_server_other, app_backup)
    markers, hooks = _hook_files(tmp_path)
    run = ansible_runner.run_playbook(PLAYBOOK, expect_rc=2, extra_vars=_extra(
        pg_server_other, app_backup, gnupg_home, confirm=True, dbdr_backup_id="20000101T000000Z", **hooks))
    planned = run.task_result("Plan the restore")
    assert planned["failed"] is True and "20000101T000000Z" in planned["msg"]
    # Planning failed: no service was stopped, no hook ran, nothing changed.
    assert run.task_results("Run the pre-restore tasks") == [] and run.task_results("Restore the databases") == []
    assert list(markers.iterdir()) == []
    assert pg_server_other.table_checksums("app") == live


def test_without_confirm_and_without_terminal_nothing_is_restored(pg_server_other, app_backup, gnupg_home,
                                                                  ansible_runner, tmp_path):
    live = _live_app(pg_server_other, app_backup)
    before = pg_server_other.databases()
    markers, hooks = _hook_files(tmp_path)
    # start_playbook gives ansible-playbook /dev/null as stdin in a session of its own: no terminal.
    background = ansible_runner.start_playbook(PLAYBOOK, extra_vars=_extra(pg_server_other, app_backup, gnupg_home,
                                                                           **hooks))
    try:
        run = background.wait(timeout=300, expect_rc=2)
    finally:
        background.kill()
    assert "stdin is not interactive" in run.stdout + run.stderr
    refused = run.task_result("Stop unless the operator confirmed the plan")
    assert refused["failed"] is True and "Not confirmed" in refused["msg"] and '"app"' in refused["msg"]
    assert run.task_results("Restore the databases") == [] and run.task_results("Restore the globals") == []
    assert list(markers.iterdir()) == []
    assert pg_server_other.table_checksums("app") == live
    assert pg_server_other.databases() == before


def _runbook_rollback_sql():
    """The SQL of step 6 of the runbook, as an operator pastes it."""
    text = (REPO_ROOT / "docs" / "runbooks" / "emergency-restore.md").read_text(encoding="utf-8")
    step = text[text.index("## 6. Roll back"):text.index("## 7.")]
    block = step[step.index("and paste:"):].split("\n")[2:]
    lines = []
    for line in block:
        if not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines) + "\n"


def test_runbook_rollback_brings_the_previous_database_back(pg_server_other, app_backup, gnupg_home, ansible_runner):
    """Step 6 of docs/runbooks/emergency-restore.md, literally, with a client still connected."""
    live = _live_app(pg_server_other, app_backup)
    pg_server_other.psql("COMMENT ON DATABASE app IS 'the app''s database'")
    run = ansible_runner.run_playbook(PLAYBOOK, extra_vars=_extra(pg_server_other, app_backup, gnupg_home,
                                                                  confirm=True))
    previous = run.task_result("Restore the databases")["databases"][0]["previous_database"]
    restored = previous.replace("__pre_restore_", "__rolled_back_")
    client = subprocess.Popen(  # noqa: S603
        [str(pg_server_other.bin_dir / "psql"), "-X", "-c", "select pg_sleep(120)"], env=pg_server_other.env("app"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        subprocess.run(  # noqa: S603
            [str(pg_server_other.bin_dir / "psql"), "-X", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-v", "db=app",
             "-v", "prev=" + previous, "-v", "restored=" + restored],
            input=_runbook_rollback_sql(), text=True, capture_output=True, env=pg_server_other.env("postgres"),
            check=True, timeout=120)
    finally:
        client.kill()
        client.wait()
    assert pg_server_other.table_checksums("app") == live
    assert pg_server_other.table_checksums(restored) == app_backup["sums"]
    assert pg_server_other.scalar("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                  "WHERE datname = 'app'") == "the app's database"
    assert pg_server_other.scalar("SELECT count(*) FROM pg_database WHERE datname IN ('app', %s) AND datallowconn"
                                  % quote_literal(restored)) == "2"
    # A later restore that keeps one pre-restore copy leaves the live database alone.
    run = ansible_runner.run_playbook(PLAYBOOK, extra_vars=_extra(pg_server_other, app_backup, gnupg_home,
                                                                  confirm=True, dbdr_keep_pre_restore=1))
    assert "app" not in run.task_result("Restore the databases")["pre_restore_dropped"]
    assert pg_server_other.db_exists("app") and pg_server_other.table_checksums("app") == app_backup["sums"]


@pytest.mark.parametrize("answer, restored", [("app", True), ("yes", False)], ids=["names-typed", "wrong-answer"])
def test_prompt_answered_at_a_terminal(pg_server_other, app_backup, gnupg_home, ansible_runner, tmp_path,
                                       answer, restored):
    """The operator at a terminal: typing the names shown restores, anything else aborts."""
    live = _live_app(pg_server_other, app_backup)
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(_extra(pg_server_other, app_backup, gnupg_home)), encoding="utf-8")
    vars_file.chmod(0o600)
    argv = [str(ansible_runner.bin_dir / "ansible-playbook"), "-i", str(ansible_runner.inventory),
            "-e", "@%s" % vars_file, str(REPO_ROOT / PLAYBOOK)]
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    master, terminal = pty.openpty()

    def take_terminal():  # runs in the child after setsid: the pty becomes its controlling terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(  # noqa: S603  pylint: disable=subprocess-popen-preexec-fn
            argv, stdin=terminal, stdout=out, stderr=err, env=ansible_runner.env(), cwd=str(tmp_path),
            start_new_session=True, preexec_fn=take_terminal)
    os.close(terminal)
    try:
        deadline = time.monotonic() + 300
        while "type the following exactly" not in out_path.read_text(errors="replace"):
            assert proc.poll() is None, "ansible-playbook ended before prompting:\n%s\n%s" % (
                out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))
            assert time.monotonic() < deadline, "no prompt within 300 s"
            time.sleep(0.2)
        prompt = out_path.read_text(errors="replace")
        assert "REPLACES the live database" in prompt and "Steps:" in prompt
        time.sleep(1)  # the prompt flushes pending input after showing itself
        os.write(master, answer.encode() + b"\r")
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
    # The prompt leaves cursor-control sequences in front of the callback's JSON document.
    stdout = re.sub(r"\x1b\[[0-9;]*[A-Za-z]?|\r", "", out_path.read_text(errors="replace"))
    run = RunResult(argv, rc, stdout, err_path.read_text(errors="replace"))
    assert run.rc == (0 if restored else 2), run.describe()
    if restored:
        assert run.task_result("Restore the databases")["databases"][0]["mode"] == "swap"
        assert pg_server_other.table_checksums("app") == app_backup["sums"]
    else:
        assert "Not confirmed" in run.task_result("Stop unless the operator confirmed the plan")["msg"]
        assert run.task_results("Restore the databases") == []
        assert pg_server_other.table_checksums("app") == live
