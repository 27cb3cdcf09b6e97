import datetime

import pytest

from ansible_collections.dbdr.backup.plugins.module_utils import _layout as layout
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError


@pytest.mark.parametrize("name", ["app", "odd \"db\" name ü", "a.b", "..", "a/b", "%41", "Ünïcode tåble", "x=y z", "日本"])
def test_encode_name_round_trips_and_is_path_safe(name):
    stem = layout.encode_name(name)
    assert layout.decode_name(stem) == name
    assert "/" not in stem and "." not in stem and " " not in stem
    assert stem not in (".", "..")


def test_encode_name_is_injective_for_case_and_escapes():
    assert layout.encode_name("App") != layout.encode_name("app")
    assert layout.encode_name("%41") != layout.encode_name("A")


def test_object_names():
    assert layout.database_object_name("app", "custom", "zstd", "gpg") == "app.pgdump.zst.gpg"
    assert layout.database_object_name("a b", "directory", "gzip", "none") == "a%20b.pgdir.tar.gz"
    assert layout.globals_object_name("none", "gpg") == "globals.sql.gpg"


@pytest.mark.parametrize("bad", ["", "latest", "../20261120T030000Z", "/etc/passwd", "20261120T030000", "20261340T030000Z",
                                 "20261120T030000Z/..", "20261120t030000z"])
def test_backup_id_validation_rejects(bad):
    with pytest.raises(InputError):
        layout.validate_backup_id(bad)


def test_backup_id_is_utc_and_sortable():
    moment = datetime.datetime(2026, 11, 20, 4, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert layout.backup_id_for(moment) == "20261120T030000Z"
    assert layout.backup_id_time("20261120T030000Z") == moment


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "a..b", "x" * 64, "-lead", "sp ace"])
def test_cluster_validation(bad):
    with pytest.raises(InputError):
        layout.validate_cluster(bad)


def test_keys():
    assert layout.manifest_key("prod", "20261120T030000Z") == "prod/backups/20261120T030000Z/manifest.json"
    with pytest.raises(InputError):
        layout.object_key("prod", "20261120T030000Z", "../x")
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)
    assert layout.audit_key("prod", moment, "backup") == "prod/audit/2026/01/02/20260102T030405.000006Z-backup.json"
