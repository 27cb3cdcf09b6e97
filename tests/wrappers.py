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
