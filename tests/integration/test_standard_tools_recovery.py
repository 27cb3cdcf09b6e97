"""The promise of docs/storage-format.md: a backup taken by the module can be recovered with
cp, sha256sum, gpg, zstd, psql and pg_restore alone, following the documented steps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from module_args import ODD_DB, backup_args, run_backup


def table_digests(server, db):
    """{"schema.table": md5 of all rows, ordered} for every user table, computed in SQL."""
    tables = server.psql(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1", db=db).splitlines()
    digests = {}
    for table in tables:
        digests[table] = server.psql(
            "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM %s t" % table, db=db)
    return digests


def sh(argv, cwd, env=None, stdin=None, stdout=None):
    return subprocess.run(argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout or subprocess.PIPE,
                          stderr=subprocess.PIPE, check=True)


def test_recover_with_standard_tools_only(pg_server, pg_server_other, pg_sample, gnupg_home, ansible_runner, tmp_path):
    repo = tmp_path / "repo"
    result = run_backup(ansible_runner, backup_args(pg_server, {"type": "local", "path": str(repo)}, gnupg_home,
                                                    cluster="prod", databases=["app", ODD_DB]))
    backup_id = result["backup_id"]

    # Step 1: pick the newest backup that has a manifest, copy it.
    backups = sorted(d for d in os.listdir(repo / "prod" / "backups")
                     if os.path.exists(repo / "prod" / "backups" / d / "manifest.json"))
    assert backups[-1] == backup_id
    work = tmp_path / "work" / backup_id
    shutil.copytree(repo / "prod" / "backups" / backup_id, work)

    # Step 2: check every object with sha256sum (the manifest gives the expected sums).
    script = 'import json; [print(o["sha256"] + "  " + o["name"]) for o in json.load(open("manifest.json"))["objects"]]'
    with open(work / "SHA256SUMS", "wb") as sums:
        sh(["python3", "-c", script], cwd=work, stdout=sums)
    check = sh(["sha256sum", "-c", "SHA256SUMS"], cwd=work).stdout.decode()
    assert check.count(": OK") == 3 and "FAILED" not in check

    manifest = json.loads((work / "manifest.json").read_text())
    env = dict(os.environ, GNUPGHOME=str(gnupg_home.home))
    pg_env = pg_server_other.env()

    # Step 6 first: roles and tablespaces, so that owners and grants restore.
    decrypt = subprocess.Popen(["gpg", "--batch", "--decrypt", "globals.sql.zst.gpg"], cwd=work, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    with open(work / "globals.sql", "wb") as out:
        sh(["zstd", "-d"], cwd=work, stdin=decrypt.stdout, stdout=out)
    assert decrypt.wait() == 0
    subprocess.run(["psql", "--no-psqlrc", "--dbname=postgres", "--file=globals.sql"], cwd=work, env=pg_env,
                   capture_output=True, check=True)

    for database in manifest["databases"]:
        name, obj = database["name"], database["object"]
        # Step 4: decrypt and decompress into a plain archive.
        decrypt = subprocess.Popen(["gpg", "--batch", "--decrypt", obj], cwd=work, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        sh(["zstd", "-d", "-o", "restore.pgdump", "-f"], cwd=work, stdin=decrypt.stdout)
        assert decrypt.wait() == 0
        # Step 5: restore into a new database from template0 (on another server).
        target = name + " restored"
        sh([str(pg_server_other.bin_dir / "createdb"), "--template=template0", target], cwd=work, env=pg_env)
        sh([str(pg_server_other.bin_dir / "pg_restore"), "--dbname=" + target, "--jobs=2", "--exit-on-error",
            "restore.pgdump"], cwd=work, env=dict(pg_env, PGDATABASE=target))
        # Step 7: the restored tables hold exactly the original rows.
        assert table_digests(pg_server_other, target) == table_digests(pg_server, name)
        counts = dict(("%s.%s" % (t["schema"], t["name"]), t["rows"]) for t in database["tables"])
        assert counts == pg_sample[name]
        os.unlink(work / "restore.pgdump")
    # The role from the globals came along, with its owner relations intact.
    assert pg_server_other.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'dbdr_pw'") == "1"
