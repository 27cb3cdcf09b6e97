"""Shared pytest fixtures for dbdr.backup: real PostgreSQL, GnuPG, S3 (moto) and Ansible.

All fixtures are session-scoped and lazy: a test that does not ask for one does not start
it, so tests/unit runs without PostgreSQL.  Each is torn down at session end, also when
tests fail.  The implementations live in tests/harness.py.

Fixtures (see harness.py for every method):
  pg_server        harness.PostgresServer: host, port, socket_dir, user, bin_dir, datadir,
                   psql(sql, db="postgres") -> str, create_db(name), drop_db(name),
                   stop(), start(), conn_params(db), env(db), table_counts(db), ...
  pg_server_other  a second, independent cluster (the "other server" for restores)
  pg_sample        {db name: {"schema.table": rowcount}} of the sample databases in
                   pg_server ("app" and 'odd "db" name ü'); treat as read-only, or call
                   harness.load_sample(pg_server) to rebuild
  gnupg_home       harness.GnupgHome: home, fpr, passphrase_fpr, passphrase, expired_fpr,
                   public_key_file, gpg(*args, input=None), encrypt(data, *fprs), decrypt(data)
  s3_server        harness.S3Server: endpoint_url, create_bucket(name), client(), reset(),
                   env(), repository(bucket, prefix), stop()
  pristine_repo    (path, backup_id): a local repository with one backup of the sample databases
                   (app and the odd one), encrypted to gnupg_home's plain key; one per test module
  repo             ({"type": "local", "path": ...}, backup directory, backup_id): the test's own
                   copy of pristine_repo, to damage at will
  ansible_runner   harness.AnsibleRunner: run_playbook(playbook, extra_vars=None, check=False,
                   diff=False, verbosity=0, expect_rc=0, env=None) -> RunResult and
                   run_adhoc(module, args, check=False, verbosity=0, expect_rc=0, env=None,
                   extra_vars=None) -> RunResult
"""

from __future__ import annotations

import shutil
import sys

import pytest

import harness
from module_args import ODD_DB, backup_args, run_backup

# Make `ansible_collections.dbdr.backup...` importable for unit tests.
_COLLECTIONS = str(harness.ensure_collection_link())
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)


def _running(component):
    """Set a harness component up, hand it to the tests, always clean it up."""
    with component:
        yield component


@pytest.fixture(scope="session")
def pg_server():
    yield from _running(harness.PostgresServer())


@pytest.fixture(scope="session")
def pg_server_other():
    yield from _running(harness.PostgresServer())


@pytest.fixture(scope="session")
def pg_sample(pg_server):
    return harness.load_sample(pg_server)


@pytest.fixture(scope="session")
def gnupg_home():
    yield from _running(harness.GnupgHome())


@pytest.fixture(scope="session")
def s3_server():
    yield from _running(harness.S3Server())


@pytest.fixture(scope="session")
def ansible_runner():
    yield from _running(harness.AnsibleRunner())


@pytest.fixture(scope="module")
def pristine_repo(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path_factory):
    path = tmp_path_factory.mktemp("pristine-repo")
    result = run_backup(ansible_runner, backup_args(pg_server, {"type": "local", "path": str(path)}, gnupg_home,
                                                    databases=["app", ODD_DB]))
    return path, result["backup_id"]


@pytest.fixture
def repo(pristine_repo, tmp_path):
    path, backup_id = pristine_repo
    copy = tmp_path / "repo"
    shutil.copytree(path, copy)
    return {"type": "local", "path": str(copy)}, copy / "main" / "backups" / backup_id, backup_id
