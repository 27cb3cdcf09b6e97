import pytest

from ansible_collections.dbdr.backup.plugins.module_utils._backup.plan import BackupRequest, _validate_request
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._pg import ConnectionParams


def request(**overrides):
    values = dict(cluster="prod", repository={"type": "local", "path": "/srv/repo"}, connection=ConnectionParams())
    values.update(overrides)
    return BackupRequest(**values)


def test_labels_are_strings():
    req = request(labels={"ticket": 4711, "urgent": True, "reason": "pre-deploy"})
    _validate_request(req)
    assert req.labels == {"ticket": "4711", "urgent": "true", "reason": "pre-deploy"}


@pytest.mark.parametrize("overrides, message", [
    ({"kind": "physical"}, "logical only"),
    ({"dump_format": "tar"}, "custom or directory"),
    ({"schema_only": True, "data_only": True}, "mutually exclusive"),
    ({"jobs": 0}, "jobs"),
    ({"gfs_class": "hourly"}, "gfs_class"),
    ({"labels": {"bad key": "x"}}, "label key"),
    ({"labels": {"k": ["list"]}}, "must be a string"),
    ({"labels": {"k": "x" * 300}}, "at most 256"),
    ({"databases": ["all", "app"]}, "cannot be combined"),
    ({"tables": ["public.t"]}, "exactly one named database"),
    ({"databases": ["a", "b"], "exclude_tables": ["t"]}, "exactly one named database"),
    ({"cluster": "a/b"}, "invalid cluster name"),
    ({"tmp_dir": "/nonexistent/dir"}, "not a directory"),
])
def test_invalid_requests(overrides, message):
    with pytest.raises(InputError, match=message):
        _validate_request(request(**overrides))
