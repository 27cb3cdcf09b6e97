# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local directory repository (also NFS/SMB mounts): files 0600, directories 0700.

New objects are written to a hidden partial file and hard-linked into place, so a key is
either complete or absent, and an existing key is never replaced.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import errno
import fcntl
import json
import os
import uuid

from ansible_collections.dbdr.backup.plugins.module_utils._errors import (
    AccessDeniedError, AlreadyExistsError, InputError, LockedError, NotFoundError, StorageError)
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import Repository, StoredObject, validate_key

PARTIAL_MARK = ".partial-"
_CHUNK = 1024 * 1024


class LocalRepository(Repository):
    type = "local"

    def __init__(self, path):
        if not path or not os.path.isabs(path):
            raise InputError("repository.path must be an absolute path, got %r" % (path,))
        self.root = os.path.normpath(path)

    def describe(self, key=""):
        return os.path.join(self.root, key) if key else self.root

    def _path(self, key):
        return os.path.join(self.root, *validate_key(key).split("/"))

    def check_access(self, cluster=None):
        parent = os.path.dirname(self.root)
        if not os.path.isdir(self.root):
            if not os.path.isdir(parent):
                raise NotFoundError("repository directory %s does not exist, nor its parent %s" % (self.root, parent))
            if not os.access(parent, os.W_OK | os.X_OK):
                raise AccessDeniedError("cannot create repository directory %s: %s is not writable" % (self.root, parent))
            return
        if not os.access(self.root, os.W_OK | os.X_OK | os.R_OK):
            raise AccessDeniedError("repository directory %s is not writable" % self.root)

    def check_readable(self, cluster=None):
        if not os.path.isdir(self.root):
            raise NotFoundError("repository directory %s does not exist" % self.root)
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise AccessDeniedError("repository directory %s is not readable" % self.root)

    def _makedirs(self, directory):
        """Create directory and missing parents, each new one with mode 0700 whatever the umask."""
        if os.path.isdir(directory):
            return
        parent = os.path.dirname(directory)
        if parent != directory:
            self._makedirs(parent)
        try:
            os.mkdir(directory, 0o700)
            os.chmod(directory, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise _translate(exc, directory)

    @staticmethod
    def _fsync_dir(directory):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _publish(self, write_body, key):
        """Write into a partial file via write_body(fileobj), then link it into place."""
        final = self._path(key)
        directory = os.path.dirname(final)
        self._makedirs(directory)
        partial = os.path.join(directory, ".%s%s%s" % (os.path.basename(final), PARTIAL_MARK, uuid.uuid4().hex))
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise _translate(exc, partial)
        try:
            with os.fdopen(fd, "wb") as handle:
                size = write_body(handle)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(partial, final)
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    raise AlreadyExistsError("refusing to overwrite %s" % final)
                raise _translate(exc, final)
            self._fsync_dir(directory)
            return size
        except BaseException:
            self._discard(partial)
            self._prune(directory)  # a directory this failed write created stays no longer
            raise
        finally:
            self._discard(partial)

    @staticmethod
    def _discard(path):
        try:
            os.unlink(path)
        except OSError:
            pass

    def put_stream(self, key, reader, gfs_class, size_hint=None):
        def body(handle):
            size = 0
            while True:
                chunk = reader.read(_CHUNK)
                if not chunk:
                    return size
                try:
                    handle.write(chunk)
                except OSError as exc:
                    raise _translate(exc, self._path(key))
                size += len(chunk)
        if self.exists(key):
            raise AlreadyExistsError("refusing to overwrite %s" % self._path(key))
        return StoredObject(key, self._publish(body, key))

    def put_bytes(self, key, data, gfs_class, content_type="application/json"):
        def body(handle):
            handle.write(data)
            return len(data)
        return StoredObject(key, self._publish(body, key))

    def get_bytes(self, key):
        try:
            with open(self._path(key), "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise _translate(exc, self._path(key))

    def open_read(self, key):
        path = self._path(key)
        try:
            handle = open(path, "rb")
        except OSError as exc:
            raise _translate(exc, path)
        return _FileReader(handle, path)

    def size_of(self, key):
        try:
            return os.stat(self._path(key)).st_size
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise _translate(exc, self._path(key))

    def exists(self, key):
        return os.path.isfile(self._path(key))

    def list_objects(self, prefix):
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        found = []
        if not os.path.isdir(base):
            return found
        for directory, dirs, files in os.walk(base):
            dirs.sort()
            for name in files:
                if PARTIAL_MARK in name:
                    continue
                path = os.path.join(directory, name)
                try:
                    size = os.stat(path).st_size
                except OSError as exc:
                    if exc.errno == errno.ENOENT:
                        continue   # deleted while we listed
                    raise _translate(exc, path)
                rel = os.path.relpath(path, self.root).replace(os.sep, "/")
                found.append(StoredObject(rel, size, storage_class="LOCAL"))
        return sorted(found, key=lambda o: o.key)

    def delete(self, key):
        path = self._path(key)
        try:
            os.unlink(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise _translate(exc, path)
        self._prune(os.path.dirname(path))

    def _prune(self, directory):
        """Remove directories left empty, up to the repository root."""
        while directory != self.root and directory.startswith(self.root + os.sep):
            try:
                os.rmdir(directory)
            except OSError:
                break
            directory = os.path.dirname(directory)

    @contextlib.contextmanager
    def lock(self, key, holder):
        path = self._path(key)
        self._makedirs(os.path.dirname(path))
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise _translate(exc, path)
                with open(path, "r") as handle:
                    current = handle.read().strip()
                raise LockedError("another operation holds the lock %s: %s" % (path, current or "unknown holder"))
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(holder, sort_keys=True).encode("utf-8"))
            os.fsync(fd)
            yield
        finally:
            # The lock dies with the descriptor, also when the process is killed.
            os.close(fd)

    def check_lock(self, key):
        """flock(2) cannot be lost while the descriptor is open: nothing to check."""

    def sweep_incomplete(self, prefix):
        base = self._path(prefix.rstrip("/"))
        removed = 0
        for directory, dirs, files in os.walk(base, topdown=False):
            for name in files:
                if PARTIAL_MARK in name:
                    os.unlink(os.path.join(directory, name))
                    removed += 1
            if directory != base and not dirs and not os.listdir(directory):
                # A backup directory a killed writer left empty.
                self._prune(directory)
        return removed


class _FileReader:
    def __init__(self, handle, path):
        self._handle = handle
        self._path = path
        self.size = os.fstat(handle.fileno()).st_size

    def read(self, size=-1):
        try:
            return self._handle.read(size)
        except OSError as exc:
            raise _translate(exc, self._path)

    def close(self):
        self._handle.close()


def _translate(exc, path):
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return AccessDeniedError("permission denied on %s: %s" % (path, exc.strerror))
    if exc.errno == errno.ENOENT:
        return NotFoundError("%s does not exist" % path)
    if exc.errno == errno.ENOSPC:
        return StorageError("no space left on device writing %s" % path)
    return StorageError("%s: %s" % (path, exc))
