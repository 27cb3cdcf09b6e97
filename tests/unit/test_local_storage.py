import io
import os
import stat

import pytest

from ansible_collections.dbdr.backup.plugins.module_utils._errors import (
    AlreadyExistsError, InputError, LockedError, NotFoundError)
from ansible_collections.dbdr.backup.plugins.module_utils._storage.local import PARTIAL_MARK, LocalRepository


class Exploding:
    def __init__(self):
        self.calls = 0

    def read(self, size=-1):
        self.calls += 1
        if self.calls > 2:
            raise IOError("stream broke")
        return b"x" * 10


def test_put_get_list_delete(tmp_path):
    repo = LocalRepository(str(tmp_path / "repo"))
    repo.check_access()
    stored = repo.put_stream("c/backups/1/a.bin", io.BytesIO(b"hello"), "daily")
    assert stored.size == 5
    repo.put_bytes("c/backups/1/manifest.json", b"{}", "daily")
    assert repo.get_bytes("c/backups/1/a.bin") == b"hello"
    assert repo.list_keys("c/backups/") == ["c/backups/1/a.bin", "c/backups/1/manifest.json"]
    mode = stat.S_IMODE(os.stat(str(tmp_path / "repo/c/backups/1/a.bin")).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(str(tmp_path / "repo/c")).st_mode) == 0o700
    repo.delete("c/backups/1/a.bin")
    repo.delete("c/backups/1/a.bin")  # missing is fine
    assert repo.list_keys("c/") == ["c/backups/1/manifest.json"]


def test_never_overwrites(tmp_path):
    repo = LocalRepository(str(tmp_path))
    repo.put_bytes("k/x", b"one", "daily")
    with pytest.raises(AlreadyExistsError):
        repo.put_bytes("k/x", b"two", "daily")
    with pytest.raises(AlreadyExistsError):
        repo.put_stream("k/x", io.BytesIO(b"two"), "daily")
    assert repo.get_bytes("k/x") == b"one"


def test_failed_stream_leaves_nothing(tmp_path):
    repo = LocalRepository(str(tmp_path))
    with pytest.raises(IOError):
        repo.put_stream("k/x", Exploding(), "daily")
    assert not repo.exists("k/x")
    assert not (tmp_path / "k").exists()  # not even the directory it created


def test_sweep_removes_partials_of_killed_writers(tmp_path):
    repo = LocalRepository(str(tmp_path))
    repo.put_bytes("c/backups/1/keep", b"1", "daily")
    partial = tmp_path / "c/backups/2" / (".obj" + PARTIAL_MARK + "abc")
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half")
    assert repo.list_keys("c/backups/") == ["c/backups/1/keep"]
    assert repo.sweep_incomplete("c/backups/") == 1
    assert not partial.exists()


@pytest.mark.parametrize("key", ["../x", "/abs", "a/../b", "a//b", ""])
def test_keys_cannot_escape(tmp_path, key):
    repo = LocalRepository(str(tmp_path))
    with pytest.raises(InputError):
        repo.put_bytes(key, b"x", "daily")


def test_lock_is_exclusive(tmp_path):
    repo = LocalRepository(str(tmp_path))
    other = LocalRepository(str(tmp_path))
    with repo.lock("c/lock", {"operation": "backup"}):
        with pytest.raises(LockedError, match="backup"):
            with other.lock("c/lock", {"operation": "backup"}):
                pass
    with other.lock("c/lock", {"operation": "backup"}):
        pass


def test_relative_path_refused():
    with pytest.raises(InputError):
        LocalRepository("relative/path")


def test_missing_parent(tmp_path):
    with pytest.raises(NotFoundError):
        LocalRepository(str(tmp_path / "no" / "such")).check_access()
