"""The test harness itself: every fixture starts a real component that answers."""

from __future__ import annotations

import subprocess

import pytest

import harness


def test_pg_server_answers(pg_server):
    assert pg_server.host == "127.0.0.1"
    assert pg_server.user == "postgres"
    assert pg_server.psql("SELECT 1") == "1"
    assert pg_server.psql("SHOW server_version_num").startswith("15")
    assert pg_server.psql("SHOW wal_level") == "replica"
    assert (pg_server.datadir / "PG_VERSION").read_text().strip() == "15"


def test_pg_password_auth(pg_server):
    user = harness.PG_PASSWORD_ROLE
    assert pg_server.psql("SELECT current_user", user=user, password=harness.PG_PASSWORD) == user
    with pytest.raises(harness.HarnessError, match="password authentication failed"):
        pg_server.psql("SELECT 1", user=user, password="wrong")
    with pytest.raises(harness.HarnessError):
        pg_server.psql("SELECT 1", user=user)  # no password at all


def test_pg_odd_database_names(pg_server):
    name = "it's a \"test\" db – ü"
    pg_server.create_db(name)
    try:
        assert pg_server.db_exists(name)
        assert pg_server.psql("SELECT current_database()", db=name) == name
    finally:
        pg_server.drop_db(name)
    assert not pg_server.db_exists(name)


def test_pg_sample(pg_server, pg_sample):
    assert set(pg_sample) == {"app", 'odd "db" name ü'}
    assert pg_sample["app"]["public.customers"] == 2000
    assert pg_sample["app"]['Sales Data.Quarterly "Report"'] == 10
    for db, tables in pg_sample.items():
        assert pg_server.table_counts(db) == tables


def test_pg_stop_start(pg_server):
    pg_server.stop()
    try:
        assert not pg_server.running
        assert not pg_server.is_ready()
        with pytest.raises(harness.HarnessError):
            pg_server.psql("SELECT 1")
    finally:
        pg_server.start()
    assert pg_server.psql("SELECT 2") == "2"


def test_gpg_encrypt_decrypt(gnupg_home):
    ciphertext = gnupg_home.encrypt(b"secret backup bytes", gnupg_home.fpr)
    assert b"secret backup bytes" not in ciphertext
    assert gnupg_home.decrypt(ciphertext) == b"secret backup bytes"


def test_gpg_passphrase_key(gnupg_home):
    ciphertext = gnupg_home.encrypt(b"protected", gnupg_home.passphrase_fpr)
    assert gnupg_home.decrypt(ciphertext, passphrase=gnupg_home.passphrase) == b"protected"
    with pytest.raises(harness.HarnessError):
        gnupg_home.decrypt(ciphertext, passphrase="not the passphrase")


def test_gpg_expired_key_rejected(gnupg_home):
    with pytest.raises(harness.HarnessError, match="(?i)expired|unusable"):
        gnupg_home.encrypt(b"x", gnupg_home.expired_fpr)


def test_gpg_public_key_file(gnupg_home, tmp_path):
    other = tmp_path / "gnupg"
    other.mkdir(mode=0o700)
    env = {"GNUPGHOME": str(other), "PATH": "/usr/bin:/bin"}
    try:
        subprocess.run(["gpg", "--batch", "--import", str(gnupg_home.public_key_file)],
                       env=env, check=True, capture_output=True)
        out = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys"], env=env, check=True,
                             capture_output=True, text=True).stdout
        assert "fpr:::::::::%s:" % gnupg_home.fpr in out
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)


def test_s3_put_get(s3_server):
    bucket = s3_server.create_bucket("dbdr-harness")
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello", StorageClass="STANDARD_IA")
    assert client.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello"
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")


def test_ansible_adhoc_ping(ansible_runner):
    result = ansible_runner.run_adhoc("ansible.builtin.ping", {})
    assert result.last_result["ping"] == "pong"
    assert result.task_results("ping")[0]["ping"] == "pong"


def test_ansible_playbook_extra_vars(ansible_runner):
    playbook = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: echo a variable
      ansible.builtin.debug:
        msg: "{{ greeting }}"
    - name: fail on purpose
      ansible.builtin.fail:
        msg: boom
      when: do_fail | bool
"""
    result = ansible_runner.run_playbook(playbook, extra_vars={"greeting": "hi ü", "do_fail": False})
    assert result.task_result("echo a variable")["msg"] == "hi ü"
    assert result.task_result("fail on purpose")["skipped"] is True
    assert "hi ü" not in " ".join(result.argv)
    failed = ansible_runner.run_playbook(playbook, extra_vars={"greeting": "x", "do_fail": True}, expect_rc=2)
    assert failed.last_result["msg"] == "boom"
    assert failed.stats["localhost"]["failures"] == 1
