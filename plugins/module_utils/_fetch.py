# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read side of the storage format: stream a stored object back through gpg and the
decompressor, checking its size and SHA-256 against the manifest on the way.

Used to verify objects, to materialize them where a tool needs a seekable file, and to feed
them straight into pg_restore or psql.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os
import subprocess

from ansible_collections.dbdr.backup.plugins.module_utils import _compression, _gpg
from ansible_collections.dbdr.backup.plugins.module_utils._errors import ArchivedError, InputError, IntegrityError, StageError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import object_key
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import CHUNK_SIZE, Stage, clean_env, run_from_reader


_DECODERS = ("gpg decrypt", "zstd -d", "gzip -d", "tar", "cat")


def archived_message(where, backup_id, state):
    if state == "restoring":
        return ("object %s of backup %s is being restored from the archive tier; retry when the restore "
                "has finished (aws s3api head-object shows ongoing-request=\"false\")" % (where, backup_id))
    return ("object %s of backup %s is in an archive storage class (GLACIER/DEEP_ARCHIVE, moved there by a "
            "lifecycle rule): restore the backup's objects from the archive tier first (docs/lifecycle.md), "
            "or choose another backup_id" % (where, backup_id))


class ObjectSource:
    """One object of a backup and what it takes to read it back."""

    def __init__(self, repository, manifest, record, gnupghome=None, passphrase=None):
        self.repository = repository
        self.manifest = manifest
        self.record = record
        self.key = object_key(manifest.cluster, manifest.backup_id, record.name)
        self.gnupghome = gnupghome
        self.passphrase = passphrase

    @property
    def name(self):
        return self.record.name

    @property
    def encrypted(self):
        return (self.manifest.encryption or {}).get("type") == "gpg"

    def describe(self):
        return self.repository.describe(self.key)

    def check_present(self):
        """Cheap check before any read: the object exists with the size the manifest records
        (a truncated or replaced object is found here, without downloading it)."""
        size = self.repository.size_of(self.key)
        if size is None:
            raise IntegrityError("object %s of backup %s is missing: the backup is damaged; choose another backup_id"
                                 % (self.describe(), self.manifest.backup_id))
        if size != self.record.size:
            raise IntegrityError("object %s is %d bytes but the manifest records %d: it is truncated or was altered; "
                                 "choose another backup_id" % (self.describe(), size, self.record.size))
        state = self.repository.archive_state(self.key)
        if state is not None:
            raise ArchivedError(archived_message(self.describe(), self.manifest.backup_id, state))

    def decode_stages(self):
        stages = []
        if self.encrypted:
            stages.append(_gpg.decrypt_stage(self.gnupghome, self.passphrase))
        algorithm = (self.manifest.compression or {}).get("algorithm") or "none"
        decompress = _compression.decompress_stage(algorithm)
        if decompress is not None:
            stages.append(decompress)
        return stages

    def run(self, consumers=(), stdout=subprocess.DEVNULL, consume=None):
        """Stream the object through gpg, the decompressor and `consumers`; then check its
        size and SHA-256. A failing stage is diagnosed: a corrupt object is named as such,
        not reported as whatever error gpg or zstd printed about it."""
        reader = self.repository.open_read(self.key)
        stages = []
        try:
            stages = self.decode_stages() + list(consumers)
            if not stages:
                stages = [Stage("cat", ["cat"], env=clean_env())]
            try:
                size, sha = run_from_reader(reader, stages, stdout=stdout, consume=consume)
            finally:
                for stage in stages:
                    _gpg.release_stage_fds(stage)
        except StageError as exc:
            if exc.stage in _DECODERS:
                # Only a decoder's failure can mean a damaged object; a consumer's (pg_restore,
                # a full disk) says nothing about it and is not worth a second download.
                self.checksum()
            if exc.stage == "gpg decrypt":
                # The object is intact (checked just now): the key or its passphrase is the problem.
                raise StageError("could not decrypt %s with the keyring %s: %s. Check that the private key is there "
                                 "and encryption.passphrase / passphrase_file is right for it"
                                 % (self.describe(), self.gnupghome, exc.message), stage=exc.stage)
            raise
        finally:
            reader.close()
        self._compare(size, sha)
        return size, sha

    def _compare(self, size, sha):
        if size != self.record.size or sha != self.record.sha256:
            raise IntegrityError(
                "object %s of backup %s does not match its manifest (%d bytes, SHA-256 %s; manifest: %d bytes, %s): "
                "it is corrupt or was altered; choose another backup_id"
                % (self.describe(), self.manifest.backup_id, size, sha, self.record.size, self.record.sha256))

    def checksum(self):
        """Read the stored bytes only (no key needed): their size and SHA-256 must match the
        manifest, else IntegrityError."""
        reader = self.repository.open_read(self.key)
        digest = hashlib.sha256()
        size = 0
        try:
            while True:
                chunk = reader.read(CHUNK_SIZE)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
        finally:
            reader.close()
        self._compare(size, digest.hexdigest())
        return size, digest.hexdigest()

    def verify(self):
        """Read the whole object back: checksum, decryption and decompression, output discarded."""
        return self.run()

    def materialize(self, path):
        """Decrypt and decompress into a new private file (0600) at path, verified."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                self.run(stdout=out)
        except BaseException:
            try:
                os.unlink(path)
            except OSError:
                pass
            raise

    def local_copy(self, directory):
        """Decrypt and decompress into the private `directory`, verified on the way, for a tool
        that needs a seekable archive (pg_restore -j, pg_restore -L); returns what pg_restore
        reads: the dump file, or the extracted directory of a directory-format dump."""
        if (self.manifest.dump or {}).get("format") == "directory":
            self.run(consumers=[Stage("tar", ["tar", "-x", "-C", directory, "-f", "-"], env=clean_env())])
            return os.path.join(directory, "dump")
        path = os.path.join(directory, "dump.pgdump")
        self.materialize(path)
        return path

    def read_small(self, limit=64 * 1024 * 1024):
        """The decoded content of a small object (globals), verified before it is returned."""
        chunks = []
        total = [0]

        def consume(pipe):
            while True:
                chunk = pipe.read(CHUNK_SIZE)
                if not chunk:
                    return
                total[0] += len(chunk)
                if total[0] > limit:
                    raise InputError("%s decodes to more than %d bytes; refusing to hold it in memory"
                                     % (self.describe(), limit))
                chunks.append(chunk)
        self.run(stdout=subprocess.PIPE, consume=consume)
        return b"".join(chunks)
