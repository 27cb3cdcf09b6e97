import hashlib
import io
import sys

import pytest

from ansible_collections.dbdr.backup.plugins.module_utils._errors import StageError, StorageError
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import (
    HashingReader, Pipeline, Stage, run_checked, run_from_reader)

PY = sys.executable


def py(name, code):
    return Stage(name, [PY, "-c", code])


PRODUCE = "import sys\nfor i in range(2000): sys.stdout.buffer.write(b'%06d\\n' % i)"
UPPER = "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read().replace(b'0', b'o'))"


def test_pipeline_streams_and_hashes():
    with Pipeline([py("produce", PRODUCE), py("upper", UPPER)]) as pipe:
        reader = HashingReader(pipe.stdout)
        data = b"".join(iter(lambda: reader.read(4096), b""))
        pipe.finish()
    expected = b"".join(b"%06d\n" % i for i in range(2000)).replace(b"0", b"o")
    assert data == expected
    assert reader.bytes == len(expected)
    assert reader.hexdigest() == hashlib.sha256(expected).hexdigest()


def test_upstream_failure_is_named_even_though_downstream_succeeds():
    failing = "import sys\nsys.stdout.buffer.write(b'partial'); sys.stderr.write('boom: lost connection'); sys.exit(3)"
    with Pipeline([py("pg_dump", failing), py("zstd", UPPER)]) as pipe:
        pipe.stdout.read()
        with pytest.raises(StageError) as info:
            pipe.finish()
    assert info.value.stage == "pg_dump"
    assert "status 3" in str(info.value) and "boom: lost connection" in str(info.value)


def test_downstream_failure_wins_over_broken_pipe_upstream():
    dying = "import sys\nsys.stdin.buffer.read(10); sys.stderr.write('gpg: no key'); sys.exit(2)"
    endless = "import sys\nwhile True: sys.stdout.buffer.write(b'x' * 65536)"
    with Pipeline([py("pg_dump", endless), py("gpg encrypt", dying)]) as pipe:
        pipe.stdout.read()
        with pytest.raises(StageError) as info:
            pipe.finish()
    assert info.value.stage == "gpg encrypt"


def test_leaving_the_block_kills_every_stage():
    endless = "import sys, time\nwhile True: time.sleep(1)"
    with Pipeline([py("a", endless), py("b", UPPER)]) as pipe:
        procs = list(pipe._procs)
    assert all(p.poll() is not None for p in procs)


def test_missing_binary_names_the_stage():
    with pytest.raises(StageError, match="could not start zstd"):
        Pipeline([py("a", PRODUCE), Stage("zstd", ["/nonexistent/zstd"])]).start()


def test_run_checked():
    assert run_checked(py("echo", "print('hi')")) == b"hi\n"
    with pytest.raises(StageError, match="status 4"):
        run_checked(py("x", "import sys; sys.exit(4)"))


def test_hashing_reader_over_bytes():
    reader = HashingReader(io.BytesIO(b"abc"))
    assert reader.read(2) == b"ab" and reader.read() == b"c" and reader.read() == b""
    assert reader.bytes == 3


def test_upstream_failure_wins_when_it_makes_the_decoder_fail_too():
    # gpg fails (wrong passphrase), zstd then complains about its truncated input: gpg is the cause.
    gpg = "import sys\nsys.stdout.buffer.write(b'garb'); sys.stderr.write('gpg: Bad passphrase'); sys.exit(2)"
    zstd = "import sys\nsys.stdin.buffer.read(); sys.stderr.write('zstd: unexpected end of file'); sys.exit(1)"
    with Pipeline([py("gpg decrypt", gpg), py("zstd -d", zstd)]) as pipe:
        pipe.stdout.read()
        with pytest.raises(StageError) as info:
            pipe.finish()
    assert info.value.stage == "gpg decrypt" and "Bad passphrase" in str(info.value)


def test_run_from_reader_feeds_hashes_and_checks(tmp_path):
    data = b"".join(b"%06d\n" % i for i in range(300000))
    out = tmp_path / "out"
    with open(out, "wb") as handle:
        size, sha = run_from_reader(io.BytesIO(data), [py("upper", UPPER)], stdout=handle)
    assert size == len(data) and sha == hashlib.sha256(data).hexdigest()
    assert out.read_bytes() == data.replace(b"0", b"o")


def test_run_from_reader_reports_a_failing_source_as_itself():
    class Broken:
        def __init__(self):
            self.calls = 0

        def read(self, size):
            self.calls += 1
            if self.calls > 2:
                raise StorageError("connection lost at byte 2 MiB")
            return b"x" * size

    with pytest.raises(StorageError, match="connection lost"):
        run_from_reader(Broken(), [py("cat", "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read())")])


def test_run_from_reader_names_a_failing_consumer():
    dying = "import sys\nsys.stdin.buffer.read(10); sys.stderr.write('pg_restore: error: bad archive'); sys.exit(1)"
    with pytest.raises(StageError) as info:
        run_from_reader(io.BytesIO(b"y" * (8 * 1024 * 1024)), [py("pg_restore", dying)])
    assert info.value.stage == "pg_restore"
