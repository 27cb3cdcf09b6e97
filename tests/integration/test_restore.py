"""restore run the way users run it (ad hoc ansible and the playbook), from real backups of
a real PostgreSQL, into a second real server."""

from __future__ import annotations

import json
import time

import pytest

from harness import quote_ident
from module_args import ODD_DB, backup_args, encryption, restore_args, run_backup, run_restore


@pytest.fixture(scope="module")
def local_backup(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path_factory):
    """One backup of the sample databases (and globals) in a local repository."""
    repo = {"type": "local", "path": str(tmp_path_factory.mktemp("restore-repo"))}
    pg_server.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_owner') THEN "
                   "CREATE ROLE app_owner NOLOGIN; END IF; END $$; "
                   "ALTER DATABASE app SET work_mem = '8MB'; GRANT CONNECT ON DATABASE app TO app_owner")
    result = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=["app", ODD_DB]))
    return {"repository": repo, "backup_id": result["backup_id"], "sums": {
        "app": pg_server.table_checksums("app"), ODD_DB: pg_server.table_checksums(ODD_DB)}}


def _drop(server, *names):
    for name in names:
        server.drop_db(name)
    leftovers = server.psql("SELECT datname FROM pg_database WHERE datname LIKE 'dbdr_staging_%' "
                            "OR datname LIKE '%__pre_restore_%'")
    for name in filter(None, leftovers.split("\n")):
        server.drop_db(name)


def test_restore_new_database_from_local_repository(pg_server_other, local_backup, gnupg_home, ansible_runner):
    _drop(pg_server_other, "app", ODD_DB)
    args = restore_args(pg_server_other, local_backup["repository"], gnupg_home, no_owner=True)
    result = run_restore(ansible_runner, args)
    assert result["changed"] is True
    assert result["backup_id"] == local_backup["backup_id"]
    assert {d["target"] for d in result["databases"]} == {"app", ODD_DB}
    assert all(d["mode"] == "new" for d in result["databases"])
    for detail in result["databases"]:
        assert detail["tables"] and all(t["match"] for t in detail["tables"])
    for db in ("app", ODD_DB):
        assert pg_server_other.table_checksums(db) == local_backup["sums"][db]
    # Nothing of the restore's own is left on the server.
    assert not [d for d in pg_server_other.databases() if d.startswith("dbdr_staging_")]
    assert result["safety_backup_id"] is None
    assert result["duration_seconds"] > 0 and [s["step"] for s in result["steps"]][0] == "verify"
    assert result["audit_record"].startswith("main/audit/")


def test_restore_parallel_with_rename(pg_server_other, local_backup, gnupg_home, ansible_runner, tmp_path):
    _drop(pg_server_other, "app_copy")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    args = restore_args(pg_server_other, local_backup["repository"], gnupg_home, databases=["app"],
                        target_database="app_copy", jobs=2, tmp_dir=str(scratch), no_owner=True)
    result = run_restore(ansible_runner, args)
    assert result["databases"][0]["target"] == "app_copy"
    assert result["plan"]["databases"][0]["local_copy"] is True
    assert pg_server_other.table_checksums("app_copy") == local_backup["sums"]["app"]
    assert list(scratch.iterdir()) == []  # the local copy is gone


def test_swap_replaces_live_database_and_keeps_previous(pg_server_other, local_backup, gnupg_home, ansible_runner):
    _drop(pg_server_other, "app")
    args = restore_args(pg_server_other, local_backup["repository"], gnupg_home, databases=["app"], no_owner=True)
    run_restore(ansible_runner, args)
    # Production moves on: rows change after the backup.
    pg_server_other.psql("DELETE FROM public.orders WHERE id > 4000; UPDATE public.customers SET name = 'changed'",
                         db="app")
    changed = pg_server_other.table_checksums("app")

    # Without confirm: refused, with a message that says what would happen; nothing changed.
    refused = run_restore(ansible_runner, dict(args, mode="swap"), expect_rc=2)
    assert refused["stage"] == "confirm" and "confirm: true" in refused["msg"] and "rename" in refused["msg"]
    assert pg_server_other.table_checksums("app") == changed

    result = run_restore(ansible_runner, dict(args, mode="swap", confirm=True))
    detail = result["databases"][0]
    assert detail["mode"] == "swap" and detail["previous_database"].startswith("app__pre_restore_")
    assert pg_server_other.table_checksums("app") == local_backup["sums"]["app"]
    assert pg_server_other.table_checksums(detail["previous_database"]) == changed
    assert result["safety_backup_id"]
    assert [c["name"] for c in result["pre_restore_copies"]] == [detail["previous_database"]]
    # The database keeps its properties: settings and grants came along.
    settings = pg_server_other.scalar("SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s "
                                      "JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'app'")
    assert "work_mem=8MB" in settings


def test_check_mode_reports_plan_and_changes_nothing(pg_server_other, local_backup, gnupg_home, ansible_runner):
    before = pg_server_other.databases()
    args = restore_args(pg_server_other, local_backup["repository"], gnupg_home, databases=["app"], mode="swap")
    result = run_restore(ansible_runner, args, check=True)
    assert result["changed"] is True and result["backup_id"] == local_backup["backup_id"]
    plan = result["plan"]
    assert plan["destructive"] is True and any("safety backup" in s for s in plan["steps"])
    assert plan["databases"][0]["object"] == "app.pgdump.zst.gpg"
    assert pg_server_other.databases() == before
