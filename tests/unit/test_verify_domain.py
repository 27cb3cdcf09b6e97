"""Domain code of backup_verify that needs no server: the record model and its vocabulary, how
read failures map to words, the catalog's view of verifications, the orphan query, assertions."""

import datetime
import json

import pytest

from ansible_collections.dbdr.backup.plugins.module_utils._catalog import read_catalog
from ansible_collections.dbdr.backup.plugins.module_utils._errors import (
    InputError, IntegrityError, StageError, StorageError, TransientStorageError)
from ansible_collections.dbdr.backup.plugins.module_utils._manifest import DatabaseRecord, Manifest, StoredObjectRecord
from ansible_collections.dbdr.backup.plugins.module_utils._storage.local import LocalRepository
from ansible_collections.dbdr.backup.plugins.module_utils._verify import integrity, objects
from ansible_collections.dbdr.backup.plugins.module_utils._verify.record import (
    RESULTS, Check, VerificationRecord, load_records, write_record)
from ansible_collections.dbdr.backup.plugins.module_utils._verify.run import VerifyRequest, _assertions, _validate

T0 = datetime.datetime(2026, 11, 20, 3, 0, tzinfo=datetime.timezone.utc)


def _record(backup_id="20261120T030000Z", results=("ok",), level="checksum"):
    checks = [Check("checksum", "obj%d" % i, word) for i, word in enumerate(results)]
    return VerificationRecord(backup_id, "main", level, "2026-11-20T04:00:00+00:00", "2026-11-20T04:01:00+00:00",
                              checks)


def test_vocabulary_is_fixed():
    assert RESULTS == ("ok", "missing", "checksum_mismatch", "size_mismatch", "decrypt_failed", "unreadable",
                       "row_count_mismatch", "fk_orphans", "assertion_failed", "rto_exceeded")
    with pytest.raises(ValueError):
        Check("checksum", "x", "broken")


def test_result_is_ok_only_when_every_check_is_and_there_is_one():
    assert _record(results=("ok", "ok")).result == "ok"
    assert _record(results=("ok", "missing")).result == "failed"
    assert _record(results=()).result == "failed"
    record = _record(results=("ok", "missing", "missing"))
    assert record.counts() == {"ok": 1, "missing": 2}
    summary = record.summary()
    assert summary["checks_total"] == 3 and [c["result"] for c in summary["checks"]] == ["missing", "missing"]


def test_record_round_trip_and_tamper_detection():
    record = _record(results=("ok", "checksum_mismatch"))
    again = VerificationRecord.from_json(record.to_json())
    assert again.to_dict() == record.to_dict()
    data = json.loads(record.to_json())
    data["result"] = "ok"   # a record that claims success its checks do not show
    with pytest.raises(InputError, match="says 'ok'"):
        VerificationRecord.from_json(json.dumps(data))
    data["result"] = "failed"
    data["checks"][0]["result"] = "fine"
    with pytest.raises(InputError, match="malformed check"):
        VerificationRecord.from_json(json.dumps(data))


def test_records_are_stored_apart_from_the_manifest_and_never_overwritten(tmp_path):
    repository = LocalRepository(str(tmp_path))
    first = write_record(repository, _record(results=("missing",)), T0)
    second = write_record(repository, _record(), T0 + datetime.timedelta(seconds=1))
    assert first == "main/verify/20261120T030000Z/20261120T030000.000000Z.json"
    (tmp_path / "main" / "verify" / "20261120T030000Z" / "junk.json").write_text("{")
    records, problems = load_records(repository, "main")
    assert [r.result for r in records["20261120T030000Z"]] == ["failed", "ok"]
    assert len(problems) == 1 and "junk.json" in problems[0]
    assert second.endswith("20261120T030001.000000Z.json")


def _backup(repository, backup_id, labels=None, dump=None):
    obj = StoredObjectRecord("app.pgdump", "database", 1, "ab" * 32, database="app")
    manifest = Manifest(backup_id, "main", "logical", "x", "x", [obj], [DatabaseRecord("app", "app.pgdump")],
                        labels=labels, dump=dump)
    repository.put_bytes("main/backups/%s/app.pgdump" % backup_id, b"x", "daily")
    repository.put_bytes("main/backups/%s/manifest.json" % backup_id, manifest.to_json(), "daily")


def test_catalog_newest_verified_good_follows_the_newest_record(tmp_path):
    repository = LocalRepository(str(tmp_path))
    for backup_id in ("20261118T030000Z", "20261119T030000Z", "20261120T030000Z"):
        _backup(repository, backup_id)
    _backup(repository, "20261121T030000Z", labels={"purpose": "pre-restore"})
    repository.put_bytes("main/backups/20261122T030000Z/app.pgdump", b"half", "daily")   # no manifest
    write_record(repository, _record("20261118T030000Z"), T0)
    write_record(repository, _record("20261119T030000Z"), T0)
    # A later failed verification withdraws the earlier proof.
    write_record(repository, _record("20261119T030000Z", results=("checksum_mismatch",)),
                 T0 + datetime.timedelta(hours=1))
    catalog = read_catalog(repository, "main")
    assert [e.backup_id for e in catalog.entries] == ["20261118T030000Z", "20261119T030000Z", "20261120T030000Z",
                                                      "20261121T030000Z"]
    assert list(catalog.leftovers) == ["20261122T030000Z"]
    assert catalog.newest_verified_good().backup_id == "20261118T030000Z"
    assert catalog.newest(whole=True).backup_id == "20261120T030000Z"   # not the safety backup
    assert catalog.newest(whole=False).backup_id == "20261121T030000Z"
    assert [o.storage_class for o in catalog.entries[0].objects] == ["LOCAL", "LOCAL"]


class _Source:
    name = "app.pgdump"


@pytest.mark.parametrize("error, check, word", [
    (IntegrityError("sha differs"), "checksum", "checksum_mismatch"),
    (StageError("bad key", stage="gpg decrypt"), "decrypt", "decrypt_failed"),
    (StageError("corrupt frame", stage="zstd -d"), "decompress", "unreadable"),
    (StageError("not an archive", stage="tar"), "archive", "unreadable"),
    (StorageError("in GLACIER: needs a restore from the archive tier"), "object", "unreadable"),
])
def test_read_failures_map_to_words(error, check, word):
    found = objects.failure_check(_Source(), error)
    assert (found.check, found.result, found.subject) == (check, word, "app.pgdump")
    assert found.detail == error.message


def test_unexpected_errors_are_not_swallowed():
    with pytest.raises(ValueError):
        objects.failure_check(_Source(), ValueError("bug"))


def test_orphan_query_follows_the_constraint():
    simple = integrity.orphan_query("orders", "customers", False, ["customer_id"], ["id"], False, False)
    assert simple == ("SELECT count(*) FROM ONLY orders c WHERE (c.customer_id IS NOT NULL AND NOT EXISTS "
                      "(SELECT 1 FROM ONLY customers p WHERE p.id = c.customer_id))")
    full = integrity.orphan_query('"Sales"."Lines"', "parts", True, ["a", "b"], ["x", "y"], True, True)
    assert full.startswith('SELECT count(*) FROM "Sales"."Lines" c WHERE ((c.a IS NOT NULL AND c.b IS NOT NULL '
                           "AND NOT EXISTS (SELECT 1 FROM parts p WHERE p.x = c.a AND p.y = c.b))")
    # MATCH FULL: a key that is partly NULL is a violation of its own.
    assert full.endswith("OR ((c.a IS NOT NULL OR c.b IS NOT NULL) AND NOT (c.a IS NOT NULL AND c.b IS NOT NULL)))")


def test_row_count_checks():
    database = DatabaseRecord("app", "app.pgdump", tables=[("public", "orders", 10), ("public", "empty", 0),
                                                           ("public", "unknown", None)])
    checks = integrity.row_count_checks(database, {("public", "orders"): 9, ("public", "empty"): 0,
                                                   ("public", "unknown"): 3})
    assert [(c.subject, c.result) for c in checks] == [("app.public.orders", "row_count_mismatch"),
                                                       ("app.public.empty", "ok"), ("app.public.unknown", "ok")]
    assert checks[0].detail == "9 rows restored, the manifest records 10"


class _Entry:
    def __init__(self, *names):
        self.manifest = Manifest("20261120T030000Z", "main", "logical", "x", "x", [],
                                 [DatabaseRecord(n, n + ".pgdump") for n in names])


def test_assertions_need_a_database_when_several_are_verified():
    one = VerifyRequest("main", {}, assertions=["select true", {"sql": "select 1", "name": "one"}])
    assert _assertions(one, [_Entry("app")]) == {"app": [{"name": "assertion 1", "sql": "select true"},
                                                         {"name": "one", "sql": "select 1"}]}
    with pytest.raises(InputError, match="give it a database"):
        _assertions(one, [_Entry("app", "crm")])
    named = VerifyRequest("main", {}, assertions=[{"database": "crm", "sql": "select true"}])
    assert list(_assertions(named, [_Entry("app", "crm")])) == ["crm"]
    with pytest.raises(InputError, match="do not hold"):
        _assertions(VerifyRequest("main", {}, assertions=[{"database": "x", "sql": "select 1"}]), [_Entry("app")])
    with pytest.raises(InputError, match="must be SQL text"):
        _assertions(VerifyRequest("main", {}, assertions=[{"sql": "  "}]), [_Entry("app")])


@pytest.mark.parametrize("options, message", [
    ({"level": "deep"}, "level must be one of"),
    ({"backup_id": "../x"}, "invalid backup id"),
    ({"jobs": 0}, "jobs must be"),
    ({"level": "readable", "amcheck": True}, "amcheck needs level: restore"),
    ({"level": "restore", "rto_target": 0.5}, None),
    ({"level": "restore", "rto_target": 0}, "positive"),
    ({"level": "restore", "rto_target": -5}, "positive"),
])
def test_request_validation(options, message):
    request = VerifyRequest("main", {}, **options)
    if message is None:
        _validate(request)
        return
    with pytest.raises(InputError, match=message):
        _validate(request)


class _ArchivedManifests(LocalRepository):
    """A store where one manifest went to GLACIER (a lifecycle rule) and reads can flake."""

    def __init__(self, path, archived, flaky=False):
        super(_ArchivedManifests, self).__init__(path)
        self.archived = archived
        self.flaky = flaky

    def get_bytes(self, key):
        if self.flaky:
            raise TransientStorageError("503 after 5 attempts")
        if self.archived in key and key.endswith("manifest.json"):
            raise StorageError("%s needs a restore from the archive tier" % key)
        return super(_ArchivedManifests, self).get_bytes(key)


def test_one_unreadable_manifest_does_not_hide_the_others(tmp_path):
    writer = LocalRepository(str(tmp_path))
    _backup(writer, "20261118T030000Z")
    _backup(writer, "20261119T030000Z")
    catalog = read_catalog(_ArchivedManifests(str(tmp_path), "20261118T030000Z"), "main")
    found = [(e.backup_id, e.manifest is None) for e in catalog.entries]
    assert found == [("20261118T030000Z", True), ("20261119T030000Z", False)]
    assert "archive tier" in catalog.entries[0].error
    # A store that keeps failing is an error of the run, not a verdict on the backups.
    with pytest.raises(TransientStorageError):
        read_catalog(_ArchivedManifests(str(tmp_path), "x", flaky=True), "main")


def test_table_data_entries_match_the_most_specific_table():
    data = ["public orders x app ", "Sales Data Quarterly \"Report\" app owner "]
    tables = [("public", "orders"), ("public", "orders x"), ("Sales Data", "Quarterly \"Report\"")]
    assert objects._tables_without_data(tables, data) == ["public.orders"]
