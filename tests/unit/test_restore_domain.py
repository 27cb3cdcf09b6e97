"""Domain code of restore that needs no server: choosing a backup, names, SQL splitting,
archive listings, the resuming S3 reader."""

import io
import json

import pytest

from ansible_collections.dbdr.backup.plugins.module_utils import _catalog
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError, TransientStorageError
from ansible_collections.dbdr.backup.plugins.module_utils._manifest import DatabaseRecord, Manifest, StoredObjectRecord
from ansible_collections.dbdr.backup.plugins.module_utils._restore import database as _db
from ansible_collections.dbdr.backup.plugins.module_utils._restore import globals as _globals
from ansible_collections.dbdr.backup.plugins.module_utils._restore import tables as _tables
from ansible_collections.dbdr.backup.plugins.module_utils._storage.local import LocalRepository
from ansible_collections.dbdr.backup.plugins.module_utils._storage.s3 import _RangeResumingReader


# --- choosing a backup ---------------------------------------------------------------------

def _manifest(backup_id, databases=("app",), labels=None, kind="logical"):
    started = "%s-%s-%sT%s:%s:%s+00:00" % (backup_id[0:4], backup_id[4:6], backup_id[6:8], backup_id[9:11],
                                           backup_id[11:13], backup_id[13:15])
    objects = [StoredObjectRecord("%s.pgdump" % d, "database", 1, "ab" * 32, database=d) for d in databases]
    return Manifest(backup_id, "main", kind, started, started, objects,
                    [DatabaseRecord(d, "%s.pgdump" % d) for d in databases], labels=labels)


@pytest.fixture
def repository(tmp_path):
    repo = LocalRepository(str(tmp_path / "repo"))
    for manifest in (_manifest("20261118T030000Z"), _manifest("20261119T030000Z", ("other",)),
                     _manifest("20261120T030000Z", labels={"purpose": "pre-restore"})):
        repo.put_bytes("main/backups/%s/manifest.json" % manifest.backup_id, manifest.to_json(), "daily")
    # A backup that never completed: objects without a manifest do not exist.
    repo.put_bytes("main/backups/20261121T030000Z/app.pgdump", b"x", "daily")
    return repo


def wants_app(manifest):
    if (manifest.labels or {}).get("purpose") == "pre-restore":
        return "pre-restore"
    return None if any(d.name == "app" for d in manifest.databases) else "no app"


def test_backup_ids_are_the_ones_with_a_manifest(repository):
    assert _catalog.backup_ids(repository, "main") == ["20261118T030000Z", "20261119T030000Z", "20261120T030000Z"]


def test_latest_skips_unsuitable_backups_and_says_why(repository):
    manifest, skipped = _catalog.choose_backup(repository, "main", "latest", suitable=wants_app)
    assert manifest.backup_id == "20261118T030000Z"
    assert skipped == [("20261120T030000Z", "pre-restore"), ("20261119T030000Z", "no app")]


def test_before_limits_by_snapshot_time(repository):
    manifest, _skipped = _catalog.choose_backup(repository, "main", before="2026-11-19T05:00:00+02:00")
    assert manifest.backup_id == "20261119T030000Z"   # 03:00Z is before 05:00+02:00 (= 03:00Z)
    with pytest.raises(InputError, match="at or before"):
        _catalog.choose_backup(repository, "main", before="2026-11-18T02:59:59Z")


def test_explicit_id_and_its_errors(repository):
    assert _catalog.choose_backup(repository, "main", "20261119T030000Z")[0].backup_id == "20261119T030000Z"
    with pytest.raises(InputError, match="not found"):
        _catalog.choose_backup(repository, "main", "20261121T030000Z")
    with pytest.raises(InputError, match="invalid backup id"):
        _catalog.choose_backup(repository, "main", "../../etc")
    with pytest.raises(InputError, match="either backup_id or before"):
        _catalog.choose_backup(repository, "main", "20261119T030000Z", before="2026-11-19T00:00:00Z")
    with pytest.raises(InputError, match="cannot be used: no app"):
        _catalog.choose_backup(repository, "main", "20261119T030000Z", suitable=wants_app)


def test_an_unreadable_newest_manifest_stops_the_choice(repository):
    repository.put_bytes("main/backups/20261122T030000Z/manifest.json", b"{broken", "daily")
    with pytest.raises(InputError, match="unreadable or tampered"):
        _catalog.choose_backup(repository, "main", "latest", suitable=wants_app)


@pytest.mark.parametrize("text", ["2026-11-20T03:00:00", "yesterday", "2026-11-20"])
def test_timestamps_need_an_offset(text):
    with pytest.raises(InputError):
        _catalog.parse_timestamp(text)


def test_manifest_rejects_object_names_that_leave_the_backup():
    manifest = _manifest("20261118T030000Z")
    data = manifest.to_dict()
    data["objects"][0]["name"] = "../../x"
    with pytest.raises(InputError, match="invalid object entry"):
        Manifest.from_json(json.dumps(data))


# --- names -----------------------------------------------------------------------------------

def test_pre_restore_names_fit_in_63_bytes_and_keep_whole_characters():
    name = _db.pre_restore_name("ü" * 40, "20261123T101500Z")
    assert len(name.encode("utf-8")) <= 63 and name.endswith("__pre_restore_20261123t101500z")
    name.encode("utf-8").decode("utf-8")
    assert _db.pre_restore_name("app", "20261123T101500Z") == "app__pre_restore_20261123t101500z"


def test_staging_names_are_safe_and_distinct_per_target():
    a = _db.staging_name('odd "db" name ü', "20261123T101500Z")
    b = _db.staging_name("app", "20261123T101500Z")
    assert a != b and a.startswith("dbdr_staging_") and a.isascii() and len(a) < 63


def test_user_comment_unwraps_markers():
    marker = _db.marker_text({"kind": "pre_restore", "comment": "billing, do not touch"})
    assert _db.user_comment(marker) == "billing, do not touch"
    assert _db.user_comment("plain") == "plain" and _db.user_comment(None) is None


# --- globals -----------------------------------------------------------------------------------

GLOBALS = r"""--
-- PostgreSQL database cluster dump
--

\restrict AbC123

SET default_transaction_read_only = off;

CREATE ROLE alice;
ALTER ROLE alice WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:xx;yy';
CREATE ROLE "odd ""role""; x";
ALTER ROLE "odd ""role""; x" WITH NOLOGIN;
COMMENT ON ROLE alice IS E'it''s a \'test\'; really';
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER;
GRANT alice TO "odd ""role""; x" GRANTED BY postgres;
CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';
CREATE TABLESPACE slow OWNER postgres LOCATION '/srv/slow';
DO $tag$ BEGIN PERFORM 1; END $tag$;

\unrestrict AbC123
"""


def test_split_statements_knows_quotes_comments_and_meta_commands():
    statements = _globals.split_statements(GLOBALS)
    assert statements[0] == "SET default_transaction_read_only = off"
    assert "ALTER ROLE alice WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:xx;yy'" in statements
    assert 'CREATE ROLE "odd ""role""; x"' in statements
    assert "COMMENT ON ROLE alice IS E'it''s a \\'test\\'; really'" in statements
    assert statements[-1] == "DO $tag$ BEGIN PERFORM 1; END $tag$"
    assert not any(s.startswith("\\") or "restrict" in s for s in statements)


def test_plan_globals_skips_existing_roles_and_tablespaces(monkeypatch):
    existing = {"rolname": {"postgres", "alice"}, "spcname": {"slow", "pg_default"}}
    monkeypatch.setattr(_globals, "_existing", lambda conn, query: existing[query.split()[1]])
    in_transaction, tablespaces, report = _globals.plan_globals(None, GLOBALS)
    assert report["roles_created"] == ['odd "role"; x'] and sorted(report["roles_skipped"]) == ["alice", "postgres"]
    assert report["tablespaces_created"] == ["fast"] and report["tablespaces_skipped"] == ["slow"]
    assert not any("alice WITH" in s or "COMMENT ON ROLE alice" in s or "ROLE postgres" in s for s in in_transaction)
    # alice -> the odd role: the member is new, so the membership is granted (GRANTED BY kept,
    # postgres exists); a membership of an existing member would be left as it is.
    assert any(s.startswith("GRANT alice TO") and "GRANTED BY postgres" in s for s in in_transaction)
    assert report["memberships_skipped"] == []
    assert tablespaces == ["CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast'"]


def test_memberships_of_existing_roles_are_left_alone(monkeypatch):
    existing = {"rolname": {"postgres", "alice", "bob"}, "spcname": set()}
    monkeypatch.setattr(_globals, "_existing", lambda conn, query: existing[query.split()[1]])
    text = "GRANT admin TO bob GRANTED BY postgres;\nCREATE ROLE carol;\nGRANT admin TO carol GRANTED BY gone;\n"
    in_transaction, _tablespaces, report = _globals.plan_globals(None, text)
    assert report["memberships_skipped"] == ["admin TO bob"]
    assert in_transaction == ["CREATE ROLE carol", "GRANT admin TO carol"]


def test_error_messages_never_show_a_password_verifier():
    text = _globals._describe("ALTER ROLE alice WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:secret'")
    assert "SCRAM" not in text and text.startswith("ALTER ROLE alice")


# --- tables ------------------------------------------------------------------------------------

LISTING = """;
; Archive created at 2026-11-23 10:00:00 UTC
;
215; 1259 16390 TABLE public orders postgres
3350; 0 16390 TABLE DATA public orders postgres
3351; 0 16384 TABLE DATA public customers postgres
3352; 0 16400 TABLE DATA Sales Data Quarterly "Report" postgres
3353; 0 16401 TABLE DATA Sales Data Quarterly postgres
"""


def test_select_entries_in_load_order():
    text = _tables.select_entries(LISTING, [("public", "customers"), ("public", "orders")])
    assert text.splitlines() == ["3351; 0 16384 TABLE DATA public customers postgres",
                                 "3350; 0 16390 TABLE DATA public orders postgres"]
    assert _tables.select_entries(LISTING, [("Sales Data", 'Quarterly "Report"')]).startswith("3352;")
    with pytest.raises(InputError, match="no data for table public.missing"):
        _tables.select_entries(LISTING, [("public", "missing")])


def test_load_order_puts_referenced_tables_first(monkeypatch):
    # orders -> customers, lines -> orders; an unrelated FK outside the set is ignored.
    fks = [("public", "orders", "public", "customers"), ("public", "lines", "public", "orders"),
           ("public", "x", "public", "customers")]
    monkeypatch.setattr(_tables._pg, "foreign_keys", lambda conn: fks)
    order = _tables.load_order(None, [("public", "lines", 1), ("public", "orders", 2), ("public", "customers", 3)])
    assert order == [("public", "customers"), ("public", "orders"), ("public", "lines")]


# --- S3 reads resume where they broke off ---------------------------------------------------

class _Body:
    def __init__(self, data, fail_after=None):
        self._data = io.BytesIO(data)
        self._fail_after = fail_after

    def read(self, size=None):
        if self._fail_after is None:
            return self._data.read(size)
        if self._data.tell() >= self._fail_after:
            raise ConnectionResetError("connection reset by peer")
        return self._data.read(min(size, self._fail_after - self._data.tell()))

    def close(self):
        pass


class _Repo:
    def __init__(self, data, failures):
        self.data = data
        self.failures = list(failures)
        self.ranges = []

    def describe(self, key):
        return "s3://bucket/" + key

    def _get_range(self, key, offset, etag):
        self.ranges.append((offset, etag))
        fail_after = self.failures.pop(0) if self.failures else None
        return _Body(self.data[offset:], None if fail_after is None else fail_after)


def test_range_reader_resumes_after_a_reset():
    data = bytes(range(256)) * 4096
    repo = _Repo(data, [100000, 50000])
    reader = _RangeResumingReader(repo, "k", len(data), '"etag"', sleep=lambda s: None)
    out = b"".join(iter(lambda: reader.read(65536), b""))
    assert out == data
    assert repo.ranges == [(0, '"etag"'), (100000, '"etag"'), (150000, '"etag"')]


def test_range_reader_gives_up_after_its_attempts():
    repo = _Repo(b"x" * 1000, [0] * 10)
    reader = _RangeResumingReader(repo, "k", 1000, None, attempts=3, sleep=lambda s: None)
    with pytest.raises(TransientStorageError, match="after 3 attempts"):
        reader.read(100)
