"""backup_retention run the way users run it (ad hoc ansible), on local and S3 (moto)
repositories holding synthetic backups (real manifests over small fake objects), plus real
backups taken by pg_backup; crashes in the middle of a run, then the run that finishes the job."""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import subprocess
import uuid

import pytest

import harness
from module_args import backup_args, files_under, run_backup, run_module

from ansible_collections.dbdr.backup.plugins.module_utils._catalog import read_catalog
from ansible_collections.dbdr.backup.plugins.module_utils._errors import StorageError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import (
    lock_key, manifest_key, object_key, verify_prefix)
from ansible_collections.dbdr.backup.plugins.module_utils._manifest import DatabaseRecord, Manifest, StoredObjectRecord
from ansible_collections.dbdr.backup.plugins.module_utils._retention.run import plan_retention, run_retention
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import open_repository
from ansible_collections.dbdr.backup.plugins.module_utils._storage.local import LocalRepository
from ansible_collections.dbdr.backup.plugins.module_utils._verify.record import Check, VerificationRecord, write_record

CLUSTER = "ret"
POLICY = {"keep_last": 2, "monthly": 2, "yearly": 1, "timezone": "UTC"}

# The synthetic repository; with POLICY (and the default min_age, all are old enough):
#   keep_last 2        -> 20250303, 20250310 (also labelled keep)
#   monthly 2025-03/02 -> 20250301, 20250201 (the first of each month)
#   yearly 2025        -> 20250105
#   newest verified-good (20250302's verification failed) -> 20250120
#   unreadable manifest -> 20250110
DELETED = ["20250215T030000Z", "20250302T030000Z"]
KEPT = {
    "20250105T030000Z": (["yearly 2025"], "yearly"),
    "20250110T030000Z": (["unreadable manifest"], None),
    "20250120T030000Z": (["newest verified-good"], None),
    "20250201T030000Z": (["monthly 2025-02"], "monthly"),
    "20250301T030000Z": (["monthly 2025-03"], "monthly"),
    "20250303T030000Z": (["keep_last"], None),
    "20250310T030000Z": (["labelled keep", "keep_last"], None),
}
LEFTOVER = "20250220T030000Z"          # objects without a manifest: a crashed backup or retention
ORPHAN_RECORDS = "20241201T030000Z"    # verification records of a backup that is gone
RETAGGED = [{"backup_id": "20250105T030000Z", "from": "daily", "to": "yearly"},
            {"backup_id": "20250201T030000Z", "from": "daily", "to": "monthly"},
            {"backup_id": "20250301T030000Z", "from": "daily", "to": "monthly"}]
OBJECTS = ("globals.sql.zst.gpg", "app.pgdump.zst.gpg")


def _iso(backup_id):
    return datetime.datetime.strptime(backup_id, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc).isoformat()


def make_backup(repository, backup_id, labels=None, dump=None, cluster=CLUSTER):
    """A complete backup: small fake objects, then the manifest (with their sizes and SHA-256) last."""
    records = []
    for name in OBJECTS:
        data = ("%s of %s\n" % (name, backup_id)).encode() * 20
        repository.put_bytes(object_key(cluster, backup_id, name), data, "daily")
        kind, database = ("globals", None) if name.startswith("globals") else ("database", "app")
        records.append(StoredObjectRecord(name, kind, len(data), hashlib.sha256(data).hexdigest(), database=database))
    manifest = Manifest(backup_id, cluster, "logical", _iso(backup_id), _iso(backup_id), records,
                        [DatabaseRecord("app", "app.pgdump.zst.gpg")], labels=labels, dump=dump, gfs_class="daily")
    repository.put_bytes(manifest_key(cluster, backup_id), manifest.to_json(), "daily")


def record_verification(repository, backup_id, result="ok", cluster=CLUSTER):
    moment = datetime.datetime.now(datetime.timezone.utc)
    record = VerificationRecord(backup_id, cluster, "checksum", moment.isoformat(), moment.isoformat(),
                                [Check("checksum", "app.pgdump.zst.gpg", result)])
    return write_record(repository, record, moment)


def populate(repository):
    for backup_id in ("20250105T030000Z", "20250120T030000Z", "20250201T030000Z", "20250215T030000Z",
                      "20250301T030000Z", "20250302T030000Z", "20250303T030000Z"):
        make_backup(repository, backup_id)
    make_backup(repository, "20250310T030000Z", labels={"keep": "true"})
    # Unreadable: kept for a person to look at.
    make_backup(repository, "20250110T030000Z")
    repository.delete(manifest_key(CLUSTER, "20250110T030000Z"))
    repository.put_bytes(manifest_key(CLUSTER, "20250110T030000Z"), b"{not json", "daily")
    repository.put_bytes(object_key(CLUSTER, LEFTOVER, "app.pgdump.zst.gpg"), b"half a dump", "daily")
    record_verification(repository, "20250120T030000Z", "ok")
    record_verification(repository, "20250302T030000Z", "ok")
    record_verification(repository, "20250302T030000Z", "checksum_mismatch")
    record_verification(repository, ORPHAN_RECORDS, "ok")


def expected_keys():
    keys = set()
    for backup_id in KEPT:
        keys.update(object_key(CLUSTER, backup_id, n) for n in OBJECTS + ("manifest.json",))
    return keys


# --- repositories --------------------------------------------------------------------------------

class LocalRepo:
    kind = "local"

    def __init__(self, root):
        self.root = root
        self.spec = {"type": "local", "path": str(root)}
        self.repository = LocalRepository(str(root))

    def keys(self, under=""):
        return set(k for k in files_under(self.root) if k.startswith(under) and not k.endswith("/lock"))

    def tags(self, key):
        return None


class S3Repo:
    kind = "s3"

    def __init__(self, s3_server, endpoint_url=None):
        self.s3 = s3_server
        self.bucket = s3_server.create_bucket("retention-" + uuid.uuid4().hex[:12])
        self.spec = s3_server.repository(self.bucket, prefix="pg")
        self.repository = open_repository(self.spec)
        self.client = s3_server.client()

    def keys(self, under=""):
        found = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="pg/" + under):
            found.update(o["Key"][3:] for o in page.get("Contents", []))
        return set(k for k in found if not k.endswith("/lock"))

    def tags(self, key):
        tagset = self.client.get_object_tagging(Bucket=self.bucket, Key="pg/" + key)["TagSet"]
        return dict((t["Key"], t["Value"]) for t in tagset)


@pytest.fixture(params=["local", "s3"])
def repo(request, tmp_path):
    if request.param == "local":
        made = LocalRepo(tmp_path / "repo")
    else:
        made = S3Repo(request.getfixturevalue("s3_server"))
    populate(made.repository)
    return made


@pytest.fixture
def local_repo(tmp_path):
    made = LocalRepo(tmp_path / "repo")
    populate(made.repository)
    return made


def retention(ansible_runner, repo, policy=None, expect_rc=0, check=False, **extra):
    args = dict(cluster=CLUSTER, repository=repo.spec, policy=dict(policy or POLICY))
    args.update(extra)
    return run_module(ansible_runner, "backup_retention", args, expect_rc=expect_rc, check=check)


def backup_keys(repo):
    return repo.keys(CLUSTER + "/backups/")


def assert_plan(result, repo):
    assert {k["backup_id"]: (k["reasons"], k["gfs_class"]) for k in result["kept"]} == KEPT
    assert [d["backup_id"] for d in result["deleted"]] == DELETED
    assert all(d["total_bytes"] > 0 and d["started_at"].endswith("+00:00") for d in result["deleted"])
    assert result["leftovers_removed"] == [LEFTOVER]
    assert result["verification_records_removed"] == [ORPHAN_RECORDS]
    assert result["retagged"] == (RETAGGED if repo.kind == "s3" else [])
    assert result["policy"] == {"keep_last": 2, "daily": 0, "weekly": 0, "monthly": 2, "yearly": 1,
                                "timezone": "UTC", "min_age": 86400}
    assert any("20250110T030000Z" in w and "cannot be read" in w for w in result.get("warnings", [])), result


# --- check mode, confirm, the real run -------------------------------------------------------------

def test_check_mode_is_the_dry_run(repo, ansible_runner):
    before = repo.keys()
    tags_before = dict((k, repo.tags(k)) for k in before)
    result = retention(ansible_runner, repo, check=True)
    assert result["changed"] is True
    assert_plan(result, repo)
    assert result["bytes_freed"] > 0 and "audit_record" not in result
    assert repo.keys() == before   # nothing deleted, no audit record written
    assert dict((k, repo.tags(k)) for k in before) == tags_before


def test_without_confirm_nothing_is_deleted(local_repo, ansible_runner):
    before = local_repo.keys()
    result = retention(ansible_runner, local_repo, expect_rc=2)
    assert result["stage"] == "confirm" and "confirm: true" in result["msg"]
    for backup_id in DELETED:
        assert backup_id in result["msg"]
    assert [d["backup_id"] for d in result["plan"]["deleted"]] == DELETED
    assert local_repo.keys() == before


def test_retention_keeps_exactly_the_expected_set(repo, ansible_runner):
    if repo.kind == "s3":
        # Tags of others (cost allocation, legal hold) survive re-tagging.
        key = object_key(CLUSTER, "20250201T030000Z", "app.pgdump.zst.gpg")
        repo.client.put_object_tagging(Bucket=repo.bucket, Key="pg/" + key, Tagging={"TagSet": [
            {"Key": "dbdr-class", "Value": "daily"}, {"Key": "cost-center", "Value": "db"}]})
    result = retention(ansible_runner, repo, confirm=True)
    assert result["changed"] is True
    assert_plan(result, repo)
    assert backup_keys(repo) == expected_keys()
    # Verification records: of kept backups only (20250302's and the orphan's are gone).
    assert set(k.split("/")[2] for k in repo.keys(verify_prefix(CLUSTER))) == {"20250120T030000Z"}
    assert result["bytes_freed"] > 0

    audit_keys = sorted(repo.keys(CLUSTER + "/audit/"))
    assert audit_keys == [result["audit_record"]]
    audit = json.loads(repo.repository.get_bytes(result["audit_record"]))
    assert audit["operation"] == "retention" and audit["outcome"] == "ok"
    assert audit["details"]["deleted"] == DELETED and audit["details"]["leftovers_removed"] == [LEFTOVER]
    assert [k["backup_id"] for k in audit["details"]["kept"]] == sorted(KEPT)

    if repo.kind == "s3":
        for backup_id, (_reasons, gfs_class) in KEPT.items():
            for name in OBJECTS + ("manifest.json",):
                assert repo.tags(object_key(CLUSTER, backup_id, name))["dbdr-class"] == (gfs_class or "daily")
        assert repo.tags(object_key(CLUSTER, "20250201T030000Z", "app.pgdump.zst.gpg")) == {
            "dbdr-class": "monthly", "cost-center": "db"}

    # Again: nothing left to do, in check mode or for real (and tags are not demoted).
    again = retention(ansible_runner, repo, check=True)
    assert again["changed"] is False and again["deleted"] == [] and again["retagged"] == []
    again = retention(ansible_runner, repo, confirm=True)
    assert again["changed"] is False and again["leftovers_removed"] == []
    assert backup_keys(repo) == expected_keys()
    # A policy that keeps everything for other reasons never demotes a tag.
    later = retention(ansible_runner, repo, policy={"keep_last": 10}, confirm=True)
    assert later["changed"] is False and later["deleted"] == [] and later["retagged"] == []
    if repo.kind == "s3":
        assert repo.tags(manifest_key(CLUSTER, "20250105T030000Z"))["dbdr-class"] == "yearly"
        assert repo.tags(manifest_key(CLUSTER, "20250301T030000Z"))["dbdr-class"] == "monthly"


@pytest.mark.parametrize("policy, message", [
    ({"daily": 3, "timezone": "Europe/Atlantis"}, "not a known IANA time zone"),
    ({"timezone": "UTC"}, "keeps nothing"),
    ({"daily": -1}, "must not be negative"),
])
def test_bad_policy_is_refused_before_anything(local_repo, ansible_runner, policy, message):
    before = local_repo.keys()
    result = retention(ansible_runner, local_repo, policy=policy, confirm=True, expect_rc=2)
    assert result["stage"] == "validate" and message in result["msg"]
    assert local_repo.keys() == before


def test_a_running_backup_keeps_leftovers_alone(local_repo, ansible_runner):
    holder = {"operation": "backup", "started_at": "2025-03-11T03:00:00+00:00"}
    with local_repo.repository.lock(lock_key(CLUSTER), holder):
        result = retention(ansible_runner, local_repo, confirm=True)
    assert [d["backup_id"] for d in result["deleted"]] == DELETED
    assert result["leftovers_removed"] == []
    assert any(LEFTOVER in n and "backup is running" in n for n in result["notes"]), result["notes"]
    assert local_repo.keys(CLUSTER + "/backups/" + LEFTOVER)
    # Once it is done, the next run removes them.
    result = retention(ansible_runner, local_repo, confirm=True)
    assert result["leftovers_removed"] == [LEFTOVER] and result["changed"] is True
    assert backup_keys(local_repo) == expected_keys()


# --- crashes in the middle ------------------------------------------------------------------------

def _complete_ids(repository):
    return [e.backup_id for e in read_catalog(repository, CLUSTER).entries]


def _chattr(flag, path):
    return shutil.which("chattr") and subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False).returncode == 0


def test_crash_mid_retention_local_then_rerun(local_repo, ansible_runner):
    """An object that cannot be deleted (immutable) stops the run after its backup's manifest is gone."""
    stuck = local_repo.root / CLUSTER / "backups" / DELETED[0] / "app.pgdump.zst.gpg"
    if not _chattr("+i", stuck):
        pytest.skip("chattr +i is not available here")
    try:
        failed = retention(ansible_runner, local_repo, confirm=True, expect_rc=2)
    finally:
        _chattr("-i", stuck)
    assert failed["stage"] == "storage"
    assert "deleting backup %s failed after its manifest was removed" % DELETED[0] in failed["msg"]
    assert "next backup_retention run" in failed["msg"]
    # Half-deleted: no longer listed as a backup, only as a leftover; the next backup was not touched.
    catalog = read_catalog(local_repo.repository, CLUSTER)
    assert DELETED[0] not in [e.backup_id for e in catalog.entries] and DELETED[0] in catalog.leftovers
    assert DELETED[1] in [e.backup_id for e in catalog.entries]
    audits = [json.loads(local_repo.repository.get_bytes(k)) for k in local_repo.keys(CLUSTER + "/audit/")]
    assert [a["outcome"] for a in audits] == ["failed"] and audits[0]["details"]["deleted"] == []

    result = retention(ansible_runner, local_repo, confirm=True)
    assert [d["backup_id"] for d in result["deleted"]] == [DELETED[1]]
    assert result["leftovers_removed"] == sorted([DELETED[0], LEFTOVER])
    assert backup_keys(local_repo) == expected_keys()
    assert _complete_ids(local_repo.repository) == sorted(KEPT)


def test_crash_mid_retention_s3_then_rerun(s3_server, ansible_runner):
    repo = S3Repo(s3_server)
    populate(repo.repository)
    with harness.FaultProxy(s3_server.endpoint_url) as proxy:
        rule = proxy.add(harness.FaultRule("DELETE", path=r"/backups/%s/app\.pgdump" % DELETED[0], status=403,
                                           code="AccessDenied"))
        proxied = S3Repo.__new__(S3Repo)
        proxied.spec = dict(repo.spec, endpoint_url=proxy.endpoint_url, retries=1)
        failed = retention(ansible_runner, proxied, confirm=True, expect_rc=2)
    assert rule.applied == 1, proxy.log
    assert failed["stage"] == "storage" and "after its manifest was removed" in failed["msg"]
    keys = repo.keys(CLUSTER + "/backups/%s/" % DELETED[0])
    assert manifest_key(CLUSTER, DELETED[0]) not in keys and object_key(CLUSTER, DELETED[0], OBJECTS[1]) in keys
    assert DELETED[0] not in _complete_ids(repo.repository)

    result = retention(ansible_runner, repo, confirm=True)
    assert [d["backup_id"] for d in result["deleted"]] == [DELETED[1]]
    assert result["leftovers_removed"] == sorted([DELETED[0], LEFTOVER])
    assert backup_keys(repo) == expected_keys()


class FailingDeletes:
    """A repository whose delete (10 in a run here: 2 backups, their records, the leftover, the orphan
    records) fails (StorageError) or is killed (a BaseException, like a signal)
    on the Nth call; everything else goes to the real one."""

    def __init__(self, repository, nth, error):
        self._repository = repository
        self._nth = nth
        self._error = error
        self.deletes = []

    def __getattr__(self, name):
        return getattr(self._repository, name)

    def delete(self, key):
        self.deletes.append(key)
        if len(self.deletes) == self._nth:
            raise self._error
        return self._repository.delete(key)


class Killed(BaseException):
    pass


@pytest.mark.parametrize("nth", range(1, 11))
@pytest.mark.parametrize("error", [StorageError("injected"), Killed("SIGKILL")], ids=["error", "killed"])
def test_a_crash_at_any_delete_is_finished_by_the_next_run(local_repo, nth, error):
    now = datetime.datetime.now(datetime.timezone.utc)
    faulty = FailingDeletes(local_repo.repository, nth, error)
    plan = plan_retention(faulty, CLUSTER, POLICY, now)
    with pytest.raises(type(error)):
        run_retention(plan)
    # Whatever was interrupted: a backup with a manifest is complete, every kept backup is intact.
    assert faulty.deletes[0] == manifest_key(CLUSTER, DELETED[0])
    catalog = read_catalog(local_repo.repository, CLUSTER)
    for entry in catalog.entries:
        if entry.manifest is not None:
            assert sorted(o.key.rsplit("/", 1)[1] for o in entry.objects) == sorted(OBJECTS + ("manifest.json",))
    assert set(KEPT) <= set(e.backup_id for e in catalog.entries)
    audits = [json.loads(local_repo.repository.get_bytes(k)) for k in local_repo.keys(CLUSTER + "/audit/")]
    assert [a["outcome"] for a in audits] == ["failed"]

    result = run_retention(plan_retention(local_repo.repository, CLUSTER, POLICY, now))
    assert backup_keys(local_repo) == expected_keys()
    assert set(k.split("/")[2] for k in local_repo.keys(verify_prefix(CLUSTER))) == {"20250120T030000Z"}
    assert result.changed   # there was always something left to finish


# --- real backups ----------------------------------------------------------------------------------

def test_real_backups_and_verification_records(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path):
    repo = LocalRepo(tmp_path / "repo")
    cluster = "ret-real"
    ids = []
    for _backup in range(3):
        result = run_backup(ansible_runner, backup_args(pg_server, repo.spec, gnupg_home, cluster=cluster,
                                                        databases=["app"], globals=True))
        ids.append(result["backup_id"])
    assert ids == sorted(set(ids))
    record_verification(repo.repository, ids[0], "ok", cluster=cluster)
    record_verification(repo.repository, ids[1], "missing", cluster=cluster)

    args = dict(cluster=cluster, repository=repo.spec, policy={"keep_last": 1, "min_age": 0})
    plan = run_module(ansible_runner, "backup_retention", args, check=True)
    kept = {k["backup_id"]: k["reasons"] for k in plan["kept"]}
    assert kept == {ids[0]: ["newest verified-good"], ids[2]: ["keep_last"]}
    assert [d["backup_id"] for d in plan["deleted"]] == [ids[1]]
    assert plan["deleted"][0]["total_bytes"] == sum(
        (tmp_path / "repo" / k).stat().st_size for k in repo.keys("%s/backups/%s/" % (cluster, ids[1])))

    result = run_module(ansible_runner, "backup_retention", dict(args, confirm=True))
    assert [d["backup_id"] for d in result["deleted"]] == [ids[1]]
    assert _ids_on_disk(repo, cluster) == [ids[0], ids[2]]
    assert set(k.split("/")[2] for k in repo.keys(verify_prefix(cluster))) == {ids[0]}
    # What is left restores as before: its manifest and objects are untouched and complete.
    for backup_id in (ids[0], ids[2]):
        names = set(k.rsplit("/", 1)[1] for k in repo.keys("%s/backups/%s/" % (cluster, backup_id)))
        manifest = json.loads(repo.repository.get_bytes(manifest_key(cluster, backup_id)))
        assert names == set(o["name"] for o in manifest["objects"]) | {"manifest.json"}

    # A new backup: keep_last moves on, the verified one stays protected.
    newest = run_backup(ansible_runner, backup_args(pg_server, repo.spec, gnupg_home, cluster=cluster,
                                                    databases=["app"], globals=False))["backup_id"]
    result = run_module(ansible_runner, "backup_retention", dict(args, confirm=True))
    assert [d["backup_id"] for d in result["deleted"]] == [ids[2]]
    assert _ids_on_disk(repo, cluster) == [ids[0], newest]


def _ids_on_disk(repo, cluster):
    return sorted(set(k.split("/")[2] for k in repo.keys("%s/backups/" % cluster)))
