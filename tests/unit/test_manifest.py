import json

import pytest

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._manifest import (
    DatabaseRecord, Manifest, StoredObjectRecord)


def sample():
    return Manifest(
        "20261120T030000Z", "prod", "logical", "2026-11-20T03:00:00+00:00", "2026-11-20T03:01:00+00:00",
        [StoredObjectRecord("app.pgdump.zst.gpg", "database", 10, "ab" * 32, database="app"),
         StoredObjectRecord("globals.sql.zst.gpg", "globals", 5, "cd" * 32)],
        [DatabaseRecord("app", "app.pgdump.zst.gpg", 100, [("public", "t", 3), ("s p", 'q"', 0)])],
        encryption={"type": "gpg", "recipients": [{"fingerprint": "F" * 40}]}, labels={"reason": "test"})


def test_round_trip():
    manifest = sample()
    again = Manifest.from_json(manifest.to_json(), expected_id="20261120T030000Z", expected_cluster="prod")
    assert again.to_dict() == manifest.to_dict()
    assert again.total_bytes == 15
    assert json.loads(manifest.to_json())["format_version"] == 1


def test_summary_has_no_per_table_detail():
    summary = sample().summary()
    assert summary["databases"] == [{"name": "app", "object": "app.pgdump.zst.gpg", "tables": 2, "rows": 3}]
    assert summary["recipients"] == ["F" * 40]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("objects"), "lacks objects"),
    (lambda d: d.update(format_version=2), "format_version"),
    (lambda d: d.update(backup_id="../x"), "invalid backup id"),
    (lambda d: d.update(kind="weird"), "kind"),
])
def test_invalid_manifests(mutate, message):
    data = sample().to_dict()
    mutate(data)
    with pytest.raises(InputError, match=message):
        Manifest.from_json(json.dumps(data))


def test_manifest_stored_under_other_id_is_refused():
    with pytest.raises(InputError, match="stored as"):
        Manifest.from_json(sample().to_json(), expected_id="20261121T030000Z")


def test_not_json():
    with pytest.raises(InputError, match="not valid JSON"):
        Manifest.from_json(b"\x00garbage")
