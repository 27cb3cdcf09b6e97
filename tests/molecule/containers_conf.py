"""Make sure /etc/containers/containers.conf holds the settings podman needs on these hosts.

    containers_conf.py [PATH]

Sets `[containers] default_ulimits = []` and `[engine] runtime = "runc"` (crun fails on the
cgroup v1 hybrid set-up of our CI hosts and on raising RLIMIT_NOFILE/NPROC, see TESTING.md).
Other settings and comments in an existing file are kept: only the two keys are replaced or
added, and the file is not written at all when it already says what we need (decided with
tomllib on the parsed file, so spelling and layout do not matter).
"""

import os
import re
import sys
import tempfile
import tomllib

WANTED = {
    "containers": {"default_ulimits": ("[]", [])},
    "engine": {"runtime": ('"runc"', "runc")},
}
_TABLE_RE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]\s*(#.*)?$")


def _current(text):
    data = tomllib.loads(text)
    return {table: {key: data.get(table, {}).get(key, object()) for key in keys}
            for table, keys in WANTED.items()}


def _satisfied(text):
    current = _current(text)
    return all(current[table][key] == value for table, keys in WANTED.items() for key, (_literal, value) in keys.items())


def _value_end(lines, start):
    """Index after the last line of the value that starts on lines[start] (arrays may span lines)."""
    depth = 0
    index = start
    while index < len(lines):
        # Brackets inside strings are rare in these keys; counting them is good enough here
        # because the result is re-parsed and checked before anything is written.
        code = lines[index].split("#", 1)[0]
        depth += code.count("[") - code.count("]")
        index += 1
        if depth <= 0:
            break
    return index


def edit(text):
    """The text with our keys set in their tables; everything else unchanged."""
    lines = text.splitlines()
    for table, keys in WANTED.items():
        for key, (literal, _value) in keys.items():
            setting = "%s = %s" % (key, literal)
            start = next((i for i, line in enumerate(lines)
                          if (m := _TABLE_RE.match(line)) and m.group(1) == table), None)
            if start is None:
                if lines and lines[-1].strip():
                    lines.append("")
                lines.extend(["[%s]" % table, setting])
                continue
            end = next((i for i in range(start + 1, len(lines)) if _TABLE_RE.match(lines[i])), len(lines))
            key_re = re.compile(r"^\s*%s\s*=" % re.escape(key))
            found = next((i for i in range(start + 1, end) if key_re.match(lines[i])), None)
            if found is None:
                lines.insert(start + 1, setting)
            else:
                lines[found:_value_end(lines, found)] = [setting]
    return "\n".join(lines) + "\n"


def main(path):
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        text = ""
    if _satisfied(text):
        print("containers.conf: %s already has default_ulimits = [] and runtime = \"runc\"" % path)
        return 0
    new_text = edit(text)
    if not _satisfied(new_text):
        print("containers.conf: could not set the keys in %s safely; set [containers] default_ulimits = [] "
              "and [engine] runtime = \"runc\" by hand" % path, file=sys.stderr)
        return 1
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".containers.conf.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new_text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    print("containers.conf: set default_ulimits = [] and runtime = \"runc\" in %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/etc/containers/containers.conf"))
