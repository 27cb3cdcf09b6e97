"""restore run the way users run it (ad hoc ansible and the playbook), from real backups of
a real PostgreSQL, into a second real server."""

from __future__ import annotations

import time

import pytest

from module_args import ODD_DB, backup_args, encryption, reset_target, restore_args, run_backup, run_restore


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


def test_restore_new_database_from_local_repository(pg_server_other, local_backup, gnupg_home, ansible_runner):
    reset_target(pg_server_other, "app", ODD_DB)
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
    reset_target(pg_server_other, "app_copy")
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
    reset_target(pg_server_other, "app")
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


def _fresh_copy(server, local_backup, gnupg_home, ansible_runner, name="app"):
    """A live `name` database on the target server, restored from the backup."""
    reset_target(server, name)
    run_restore(ansible_runner, restore_args(server, local_backup["repository"], gnupg_home, databases=["app"],
                                             target_database=name, no_owner=True))


def test_tables_mode_replaces_rows_of_named_tables_only(pg_server_other, local_backup, gnupg_home, ansible_runner):
    _fresh_copy(pg_server_other, local_backup, gnupg_home, ansible_runner)
    pg_server_other.psql(
        'UPDATE "Sales Data"."Quarterly ""Report""" SET revenue = 0; '
        "UPDATE public.customers SET name = 'kept' WHERE id = 1; "
        "CREATE TABLE public.audit_log (n int); "
        "CREATE FUNCTION public.log_it() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO public.audit_log VALUES (1); RETURN NEW; END $$; "
        'CREATE TRIGGER log_it AFTER INSERT ON "Sales Data"."Quarterly ""Report""" '
        "FOR EACH ROW EXECUTE FUNCTION public.log_it()", db="app")
    before = pg_server_other.table_checksums("app")
    args = restore_args(pg_server_other, local_backup["repository"], gnupg_home, databases=["app"], mode="tables",
                        tables=['"Sales Data"."Quarterly ""Report"""'])
    refused = run_restore(ansible_runner, args, expect_rc=2)
    assert refused["stage"] == "confirm"
    assert pg_server_other.table_checksums("app") == before

    result = run_restore(ansible_runner, dict(args, confirm=True))
    after = pg_server_other.table_checksums("app")
    key = 'Sales Data.Quarterly "Report"'
    assert after[key] == local_backup["sums"]["app"][key]
    # Every other table is exactly as it was: the user trigger did not fire, customers kept its change.
    assert {k: v for k, v in after.items() if k != key} == {k: v for k, v in before.items() if k != key}
    assert pg_server_other.count("app", "public", "audit_log") == 0
    assert pg_server_other.scalar("SELECT tgenabled FROM pg_trigger WHERE tgname = 'log_it'", db="app") == "O"
    assert result["databases"][0]["tables"] == [{"schema": "Sales Data", "name": 'Quarterly "Report"',
                                                 "backup_rows": 10, "restored_rows": 10, "match": True}]
    assert result["safety_backup_id"]


def test_tables_mode_refuses_table_referenced_from_outside(pg_server_other, local_backup, gnupg_home, ansible_runner):
    _fresh_copy(pg_server_other, local_backup, gnupg_home, ansible_runner)
    before = pg_server_other.table_checksums("app")
    args = restore_args(pg_server_other, local_backup["repository"], gnupg_home, databases=["app"], mode="tables",
                        tables=["public.customers"], confirm=True)
    result = run_restore(ansible_runner, args, expect_rc=2)
    assert result["stage"] == "validate" and "public.orders references public.customers" in result["msg"]
    # Both tables together are fine, in foreign key order.
    pg_server_other.psql("DELETE FROM public.orders WHERE id % 2 = 0", db="app")
    result = run_restore(ansible_runner, dict(args, tables=["public.orders", "public.customers"]))
    assert [t["name"] for t in result["databases"][0]["tables"]] == ["customers", "orders"]
    assert pg_server_other.table_checksums("app") == before


def test_globals_mode_creates_missing_roles_and_skips_existing(pg_server_other, local_backup, gnupg_home,
                                                               ansible_runner):
    pg_server_other.psql("DROP ROLE IF EXISTS dbdr_pw; DROP ROLE IF EXISTS app_owner")
    args = restore_args(pg_server_other, local_backup["repository"], gnupg_home, mode="globals")
    result = run_restore(ansible_runner, args)
    assert {"dbdr_pw", "app_owner"} <= set(result["globals"]["roles_created"])
    assert "postgres" in result["globals"]["roles_skipped"]
    assert pg_server_other.scalar("SELECT count(*) FROM pg_roles WHERE rolname IN ('dbdr_pw', 'app_owner')") == "2"
    again = run_restore(ansible_runner, args)
    assert again["globals"]["roles_created"] == [] and "dbdr_pw" in again["globals"]["roles_skipped"]


def test_restore_from_s3_with_passphrase_key(pg_server, pg_sample, pg_server_other, gnupg_home, s3_server,
                                             ansible_runner, tmp_path):
    s3_server.create_bucket("restore-bucket")
    repo = s3_server.repository("restore-bucket", "restore")
    enc = encryption(gnupg_home, gnupg_home.passphrase_fpr)
    backup = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=[ODD_DB], globals=False,
                                                    encryption=enc))
    reset_target(pg_server_other, ODD_DB)
    pass_file = tmp_path / "pass"
    pass_file.write_text(gnupg_home.passphrase + "\n")
    pass_file.chmod(0o600)
    args = restore_args(pg_server_other, repo, gnupg_home, encryption={
        "gnupghome": str(gnupg_home.home), "passphrase_file": str(pass_file)}, jobs=2, no_owner=True)
    result = run_restore(ansible_runner, args)
    assert result["backup_id"] == backup["backup_id"]
    assert pg_server_other.table_checksums(ODD_DB) == pg_server.table_checksums(ODD_DB)
    # The same through a streamed (jobs 1) restore, with the passphrase given directly.
    reset_target(pg_server_other, ODD_DB)
    streamed = {"gnupghome": str(gnupg_home.home), "passphrase": gnupg_home.passphrase}
    run_restore(ansible_runner, dict(args, jobs=1, encryption=streamed))
    assert pg_server_other.table_checksums(ODD_DB) == pg_server.table_checksums(ODD_DB)


def test_before_chooses_newest_backup_at_or_before(pg_server, pg_sample, pg_server_other, gnupg_home,
                                                   ansible_runner, tmp_path):
    repo = {"type": "local", "path": str(tmp_path / "repo")}
    first = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=[ODD_DB], globals=False))
    time.sleep(1.1)
    second = run_backup(ansible_runner, backup_args(pg_server, repo, gnupg_home, databases=[ODD_DB], globals=False))
    # The second backup started after every snapshot of the first one was taken; its own
    # snapshots come after its start, so `before` its start means the first one.
    stamp = second["backup_id"]
    args = restore_args(pg_server_other, repo, gnupg_home, databases=[ODD_DB], target_database="odd_copy",
                        mode="new")
    assert run_restore(ansible_runner, dict(args, before=stamp), check=True)["backup_id"] == first["backup_id"]
    assert run_restore(ansible_runner, args, check=True)["backup_id"] == second["backup_id"]
    assert run_restore(ansible_runner, dict(args, backup_id=first["backup_id"]), check=True)["backup_id"] == \
        first["backup_id"]
    too_early = run_restore(ansible_runner, dict(args, before="2001-01-01T00:00:00+00:00"), check=True, expect_rc=2)
    assert "at or before 2001-01-01T00:00:00+00:00" in too_early["msg"]
    no_offset = run_restore(ansible_runner, dict(args, before="2026-11-20T03:00:00"), check=True, expect_rc=2)
    assert "no UTC offset" in no_offset["msg"]
