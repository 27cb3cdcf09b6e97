"""Stand-ins for command-line tools in tests: scripts that record how they were called."""

from __future__ import annotations

import shlex
from pathlib import Path


def script(path, text):
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def logging_wrapper(path, real, logdir):
    """A wrapper that records its argv and environment (NUL-separated), then execs the real tool."""
    q = shlex.quote
    return script(path, "#!/bin/bash\n"
                  'log=%s/"$(basename "$0")".$$\n'
                  'printf "%%s\\0" "$0" "$@" > "$log.argv"\n'
                  'env -0 > "$log.env"\n'
                  'exec %s "$@"\n' % (q(str(logdir)), q(str(real))))


def wrapper_logs(logdir):
    """[(tool, argv list, env dict)] of every wrapper invocation."""
    out = []
    for argv_file in sorted(Path(logdir).glob("*.argv")):
        tool = argv_file.name.rsplit(".", 2)[0]
        argv = [a.decode("utf-8", "replace") for a in argv_file.read_bytes().split(b"\0") if a]
        env_file = argv_file.with_suffix(".env")
        env = dict(e.decode("utf-8", "replace").split("=", 1)
                   for e in env_file.read_bytes().split(b"\0") if b"=" in e)
        out.append((tool, argv, env))
    return out


def wrapped_pg_bin(tmp_path, server, pg_restore_body):
    """A pg_bin_dir whose pg_restore runs `pg_restore_body` (bash; REAL is the real tool); the
    other client tools are the real ones."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in ("psql", "vacuumdb", "pg_dump", "pg_dumpall"):
        (directory / tool).symlink_to(server.bin_dir / tool)
    script(directory / "pg_restore",
           "#!/bin/bash\nREAL=%s\nif [ \"$1\" = \"--version\" ]; then exec \"$REAL\" --version; fi\n%s\n"
           % (shlex.quote(str(server.bin_dir / "pg_restore")), pg_restore_body))
    return directory


def gated_pg_bin(tmp_path, server):
    """(pg_bin_dir, gate, started): its pg_restore touches `started`, then waits until the test
    creates `gate` before it runs the real one."""
    gate, started = tmp_path / "gate", tmp_path / "started"
    body = "touch %s\nfor i in $(seq 600); do [ -e %s ] && break; sleep 0.1; done\nexec \"$REAL\" \"$@\"" % (
        shlex.quote(str(started)), shlex.quote(str(gate)))
    return wrapped_pg_bin(tmp_path, server, body), gate, started
