# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verifying stored objects: present with their recorded size, the right SHA-256, and (level
readable) decryptable, decompressible and parseable by the tool that will restore them.

Every outcome is a Check with a word from the fixed vocabulary; nothing here raises for a
damaged backup, because finding damage is the point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import shutil
import subprocess
import tempfile

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError, IntegrityError, StageError, StorageError
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import CHUNK_SIZE, Stage, clean_env, redact
from ansible_collections.dbdr.backup.plugins.module_utils._restore.globals import split_statements
from ansible_collections.dbdr.backup.plugins.module_utils._verify.record import Check

_DECOMPRESSORS = ("zstd -d", "gzip -d")
_ENTRY_RE = re.compile(r"^\d+; \d+ \d+ ")


def present(source):
    """Missing or of another size than recorded (cheap: no download); None when it looks right."""
    size = source.repository.size_of(source.key)
    if size is None:
        return Check("object", source.name, "missing", "%s does not exist" % source.describe())
    if size != source.record.size:
        return Check("object", source.name, "size_mismatch",
                     "%d bytes stored, the manifest records %d" % (size, source.record.size))
    return None


def failure_check(source, exc):
    """The vocabulary word for what reading an object back raised."""
    if isinstance(exc, IntegrityError):
        return Check("checksum", source.name, "checksum_mismatch", exc.message)
    if isinstance(exc, StageError) and exc.stage == "gpg decrypt":
        return Check("decrypt", source.name, "decrypt_failed", exc.message)
    if isinstance(exc, StageError) and exc.stage in _DECOMPRESSORS:
        return Check("decompress", source.name, "unreadable", exc.message)
    if isinstance(exc, StageError):
        return Check("archive", source.name, "unreadable", exc.message)
    if isinstance(exc, StorageError):
        # An archived object (GLACIER) lands here, with the message saying so.
        return Check("object", source.name, "unreadable", exc.message)
    if isinstance(exc, InputError):
        # Decodes to something no backup of ours holds (globals of hundreds of MiB).
        return Check("archive", source.name, "unreadable", exc.message)
    raise exc


def checksum(source):
    """Level checksum: the stored bytes against the manifest; no key needed."""
    found = present(source)
    if found is not None:
        return [found]
    try:
        size, _digest = source.checksum()
    except (IntegrityError, StorageError) as exc:
        return [failure_check(source, exc)]
    return [Check("checksum", source.name, "ok", "%d bytes, SHA-256 matches" % size)]


def readable(source, pg_restore, database=None):
    """Level readable: checksum, decryption, decompression and the archive's table of contents
    (pg_restore --list; for globals, the SQL splits into statements), in one pass."""
    found = present(source)
    if found is not None:
        return [found]
    inspect = _Inspector(source, pg_restore, database)
    try:
        try:
            size, _digest = inspect.run()
        except (IntegrityError, StageError, StorageError, InputError) as exc:
            return [failure_check(source, exc)]
        checks = [Check("checksum", source.name, "ok", "%d bytes, SHA-256 matches" % size)]
        if source.encrypted:
            checks.append(Check("decrypt", source.name, "ok", "decrypted with the keyring"))
        checks.append(inspect.result())
        return checks
    finally:
        inspect.cleanup()


class _Inspector:
    """Streams an object once and inspects what it decodes to."""

    def __init__(self, source, pg_restore, database):
        self.source = source
        self.pg_restore = pg_restore
        self.database = database
        self.work_dir = None
        self.listing = None
        self.statements = None
        self.error = None

    def run(self):
        kind = self.source.record.kind
        if kind == "globals":
            return self._run_globals()
        if self.source.name.endswith(".pgdir.tar" + self._suffix()):
            return self._run_directory()
        return self.source.run(stdout=subprocess.PIPE, consume=self._list_stream)

    def _suffix(self):
        return self.source.name.split(".pgdir.tar", 1)[1] if ".pgdir.tar" in self.source.name else ""

    def _run_globals(self):
        text = self.source.read_small()
        try:
            self.statements = split_statements(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            self.error = "globals do not parse as SQL: %s" % exc
        return self.source.record.size, self.source.record.sha256

    def _run_directory(self):
        # Only the table of contents is extracted: tar still reads (and so checks) the whole stream.
        self.work_dir = tempfile.mkdtemp(prefix="dbdr-verify-")
        tar = Stage("tar", ["tar", "-x", "-C", self.work_dir, "-f", "-", "dump/toc.dat"], env=clean_env())
        result = self.source.run(consumers=[tar])
        self._list_file(os.path.join(self.work_dir, "dump"))
        return result

    def _list_file(self, path):
        proc = subprocess.run([self.pg_restore, "--list", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=clean_env(), check=False)
        self._listed(proc.returncode, proc.stdout, proc.stderr)

    def _list_stream(self, pipe):
        """pg_restore --list reads the table of contents at the head of a custom archive and
        stops; the rest is still read (and so hashed and decoded) to the end."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([self.pg_restore, "--list"], stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    env=clean_env())
            feeding = True
            try:
                while True:
                    chunk = pipe.read(CHUNK_SIZE)
                    if not chunk:
                        break
                    if feeding:
                        try:
                            proc.stdin.write(chunk)
                        except BrokenPipeError:
                            feeding = False
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
                code = proc.wait()
            out.seek(0)
            err.seek(0)
            self._listed(code, out.read(), err.read())

    def _listed(self, code, stdout, stderr):
        if code != 0:
            self.error = "pg_restore --list failed (status %s): %s" % (
                code, redact(stderr.decode("utf-8", "replace").strip()[-400:]))
            return
        self.listing = stdout.decode("utf-8", "replace")

    def result(self):
        name = self.source.name
        if self.error:
            return Check("archive", name, "unreadable", self.error)
        if self.statements is not None:
            return Check("archive", name, "ok", "globals: %d SQL statements" % len(self.statements))
        entries = [line for line in self.listing.splitlines() if _ENTRY_RE.match(line)]
        # "<id>; <oid> <oid> TABLE DATA <schema> <name> <owner>": names are not quoted, so a
        # table is matched by its prefix rather than by splitting on spaces.
        data = [line.split(" TABLE DATA ", 1)[1] + " " for line in entries if " TABLE DATA " in line]
        missing = []
        if self.database is not None and not (self.source.manifest.dump or {}).get("schema_only"):
            missing = _tables_without_data([(s, n) for s, n, _rows in self.database.tables], data)
        if missing:
            return Check("archive", name, "unreadable", "the archive holds no data for %d table(s) the manifest "
                         "records: %s" % (len(missing), ", ".join(missing[:10])))
        return Check("archive", name, "ok", "pg_restore --list: %d entries, data for %d tables" % (len(entries), len(data)))

    def cleanup(self):
        if self.work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def _tables_without_data(tables, data):
    """Tables no TABLE DATA entry is for. An entry is "<schema> <name> <owner> " with nothing
    quoted, so it is given to the longest table prefix it starts with: the data of
    public."orders x" never passes for public.orders."""
    covered = set()
    for line in data:
        matching = [t for t in tables if line.startswith("%s %s " % t)]
        if matching:
            covered.add(max(matching, key=lambda t: len(t[0]) + len(t[1])))
    return ["%s.%s" % t for t in tables if t not in covered]
