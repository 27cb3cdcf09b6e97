# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed errors of the domain code. Modules turn them into fail_json messages."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class DbdrError(Exception):
    """Base of every error the domain code raises on purpose."""

    stage = None

    def __init__(self, message, stage=None):
        super(DbdrError, self).__init__(message)
        self.message = message
        if stage is not None:
            self.stage = stage

    def __str__(self):
        if self.stage:
            return "%s: %s" % (self.stage, self.message)
        return self.message


class InputError(DbdrError):
    """Bad input found before anything was written."""

    stage = "validate"


class ConnectError(DbdrError):
    """The PostgreSQL server could not be reached or refused us."""

    stage = "connect"


class EncryptionError(DbdrError):
    """GPG keys missing, expired, unusable; or gpg itself failed."""

    stage = "encryption"


class StorageError(DbdrError):
    """The repository refused or failed an operation."""

    stage = "storage"


class NotFoundError(StorageError):
    """An object or bucket does not exist."""


class ArchivedError(StorageError):
    """An object sits in an archive storage class and must be restored from it before a read."""


class AccessDeniedError(StorageError):
    """Credentials are valid but not allowed to do this."""


class AlreadyExistsError(StorageError):
    """Refused to overwrite an existing object."""


class TransientStorageError(StorageError):
    """A failure worth retrying (throttling, 5xx, reset connection)."""


class LockedError(DbdrError):
    """Another operation holds the cluster's lock."""

    stage = "lock"


class StageError(DbdrError):
    """A pipeline stage (pg_dump, zstd, gpg, upload...) failed."""


class IntegrityError(DbdrError):
    """A stored object does not match its manifest (size or SHA-256), or a restored database
    does not match what the backup recorded (row counts)."""

    stage = "verify"
