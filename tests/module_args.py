"""Helpers for running dbdr.backup modules in integration tests."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

ODD_DB = 'odd "db" name ü'


def encryption(gnupg_home, *recipients):
    return {"type": "gpg", "recipients": list(recipients or [gnupg_home.fpr]), "gnupghome": str(gnupg_home.home)}


def backup_args(pg_server, repository, gnupg_home, cluster="main", **extra):
    args = dict(pg_server.conn_params("postgres"), cluster=cluster, repository=repository,
                encryption=encryption(gnupg_home))
    args.update(extra)
    return args


def run_module(ansible_runner, module, args, expect_rc=0, check=False, **kwargs):
    """Ad hoc run with every option in a vars file (no secrets or odd names on a command line)."""
    keys = sorted(args)
    result = ansible_runner.run_adhoc(
        "dbdr.backup." + module, dict((k, "{{ dbdr_args.%s }}" % k) for k in keys),
        extra_vars={"dbdr_args": args}, expect_rc=expect_rc, check=check, **kwargs)
    return result.last_result


def run_backup(ansible_runner, args, expect_rc=0, check=False):
    return run_module(ansible_runner, "pg_backup", args, expect_rc=expect_rc, check=check)


def restore_args(target_server, repository, gnupg_home, cluster="main", **extra):
    """restore options against target_server; the key's passphrase comes from the keyring owner."""
    args = dict(target_server.conn_params("postgres"), cluster=cluster, repository=repository,
                encryption={"gnupghome": str(gnupg_home.home)})
    args.update(extra)
    return args


def reset_target(server, *names):
    """Drop the named databases and whatever earlier restores left on the server."""
    for name in names:
        server.drop_db(name)
    leftovers = server.psql("SELECT datname FROM pg_database WHERE datname LIKE 'dbdr_staging_%' "
                            "OR datname LIKE '%__pre_restore_%' OR datname LIKE '%__rolled_back_%'")
    for name in filter(None, leftovers.split("\n")):
        server.drop_db(name)


def run_restore(ansible_runner, args, expect_rc=0, check=False, **kwargs):
    return run_module(ansible_runner, "restore", args, expect_rc=expect_rc, check=check, **kwargs)


def files_under(path):
    root = Path(path)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def manifest_of(repo_path, cluster, backup_id):
    return json.loads((Path(repo_path) / cluster / "backups" / backup_id / "manifest.json").read_text())


def decrypt_stream(gnupg_home, path, decompress):
    """gpg -d | zstd -d (or gzip -d) of a stored object, as bytes."""
    gpg = subprocess.Popen(["gpg", "--batch", "--quiet", "--homedir", str(gnupg_home.home), "--decrypt", str(path)],
                           stdout=subprocess.PIPE)
    out = subprocess.run(decompress, stdin=gpg.stdout, capture_output=True, check=True).stdout
    assert gpg.wait() == 0
    return out


def manifest_counts(database_record):
    return dict(("%s.%s" % (t["schema"], t["name"]), t["rows"]) for t in database_record["tables"])


def task_playbook(module, args):
    """A one-task playbook running dbdr.backup.<module> with every option from dbdr_args."""
    options = dict((k, "{{ dbdr_args[%s] }}" % json.dumps(k)) for k in sorted(args))
    return json.dumps([{"name": module, "hosts": "localhost", "gather_facts": False,
                        "tasks": [{"name": module, "dbdr.backup." + module: options}]}])


def wait_for(condition, what, background, timeout=60):
    """Poll until condition() holds; fail if the background run ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if background.poll() is not None:
            pytest.fail("the run ended while waiting for %s\n%s" % (what, background.describe()))
        time.sleep(0.1)
    pytest.fail("timed out waiting for %s" % what)
