# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one storage interface every repository driver implements.

Keys are relative to the repository root, '/'-separated, and never overwritten: writers
fail with AlreadyExistsError instead.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import abc

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError

GFS_CLASSES = ("daily", "weekly", "monthly", "yearly")
# S3 storage classes whose objects must be restored from the archive tier before a GET.
ARCHIVE_STORAGE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")


def validate_key(key):
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
        raise InputError("invalid repository key %r" % (key,))
    if "\x00" in key or "\\" in key:
        raise InputError("invalid repository key %r" % (key,))
    return key


class StoredObject:
    def __init__(self, key, size, sha256=None, storage_class=None):
        self.key = key
        self.size = size
        self.sha256 = sha256
        self.storage_class = storage_class   # S3 storage class; "LOCAL" for files


class Repository(abc.ABC):
    """Abstract repository. Drivers: local.LocalRepository, s3.S3Repository."""

    type = None
    # Whether objects carry a GFS class tag (S3) that set_class changes and lifecycle rules read.
    class_tags = False

    @abc.abstractmethod
    def describe(self, key=""):
        """Human-readable location of a key (path or s3:// URL)."""

    @abc.abstractmethod
    def check_access(self, cluster=None):
        """Raise NotFoundError / AccessDeniedError before anything is written. With a cluster,
        the check needs no more permission than working on that cluster's keys does."""

    def check_readable(self, cluster=None):
        """Raise NotFoundError / AccessDeniedError unless backups can be read (restore, verify)."""
        self.check_access(cluster)

    @abc.abstractmethod
    def put_stream(self, key, reader, gfs_class, size_hint=None):
        """Store everything `reader.read()` yields under a new key; remove partial data on failure."""

    @abc.abstractmethod
    def put_bytes(self, key, data, gfs_class, content_type="application/json"):
        """Store a small object atomically, failing if the key exists."""

    @abc.abstractmethod
    def get_bytes(self, key):
        """The whole content of a small object (manifests, records, locks)."""

    @abc.abstractmethod
    def open_read(self, key):
        """A reader (read(n), close(), size) streaming a whole object of any size."""

    @abc.abstractmethod
    def size_of(self, key):
        """The stored size of a key in bytes, or None when it does not exist."""

    @abc.abstractmethod
    def exists(self, key):
        """Whether a key holds an object."""

    @abc.abstractmethod
    def list_objects(self, prefix):
        """Every object below prefix, recursively, sorted by key: StoredObject with size and
        storage class."""

    def list_keys(self, prefix):
        """Every key below prefix, recursively, sorted."""
        return [o.key for o in self.list_objects(prefix)]

    def archive_state(self, key):
        """None when the object can be read at once; else "archived" (in an archive storage
        class, not restored from it) or "restoring" (a restore from the archive tier runs)."""
        return None

    def get_class(self, key):
        """The GFS class an object is tagged with, or None where there are no tags (local)."""
        return None

    def set_class(self, key, gfs_class):
        """Re-tag an object with a GFS class (S3 lifecycle rules act on the tag). Returns
        whether the store keeps such a tag: a local directory has nothing to re-tag."""
        return False

    @abc.abstractmethod
    def delete(self, key):
        """Delete a key; a missing key is not an error."""

    @abc.abstractmethod
    def lock(self, key, holder):
        """Context manager holding an exclusive lock named by key; raises LockedError."""

    @abc.abstractmethod
    def check_lock(self, key):
        """Raise LockedError unless this process still holds the lock named by key."""

    @abc.abstractmethod
    def sweep_incomplete(self, prefix):
        """Remove what interrupted writers left below prefix (partial files, multipart uploads).
        Returns the number of items removed."""


def open_repository(spec):
    """Build the driver for a validated `repository` option dict."""
    kind = spec.get("type") or "local"
    if kind == "local":
        from ansible_collections.dbdr.backup.plugins.module_utils._storage.local import LocalRepository
        return LocalRepository(spec["path"])
    if kind == "s3":
        from ansible_collections.dbdr.backup.plugins.module_utils._storage.s3 import S3Repository
        return S3Repository.from_spec(spec)
    raise InputError("unknown repository type %r (expected local or s3)" % (kind,))
