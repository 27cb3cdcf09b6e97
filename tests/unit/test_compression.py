import pytest

from ansible_collections.dbdr.backup.plugins.module_utils import _compression
from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError


def test_defaults():
    assert _compression.settings() == {"algorithm": "zstd", "level": 3, "threads": 2}
    assert _compression.settings("gzip")["level"] == 6
    assert _compression.settings("none") == {"algorithm": "none", "level": None}
    assert _compression.compress_stage(_compression.settings("none")) is None
    assert _compression.compress_stage(_compression.settings("zstd", 5)).argv[:4] == ["zstd", "-q", "-c", "-5"]


@pytest.mark.parametrize("algorithm, level", [("zstd", 0), ("zstd", 20), ("gzip", 10), ("lz4", None)])
def test_invalid(algorithm, level):
    with pytest.raises(InputError):
        _compression.settings(algorithm, level)


def test_threads():
    assert _compression.compress_stage(_compression.settings("zstd", 3, 0)).argv[-1] == "-T0"
    with pytest.raises(InputError, match="threads"):
        _compression.settings("zstd", 3, -1)
