# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage format v1: where things live in a repository and how names are encoded.

Every key is relative to the repository root and uses '/' as separator:

    <cluster>/backups/<backup_id>/manifest.json
    <cluster>/backups/<backup_id>/<object>
    <cluster>/verify/<backup_id>/<timestamp>.json
    <cluster>/audit/<YYYY>/<MM>/<DD>/<timestamp>-<operation>.json
    <cluster>/lock
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# S3 object tags: the GFS class of every object of a backup (lifecycle rules expire by it), and
# whether it is backup data (dumps, globals, base backups: "true"), which lifecycle rules may
# move to colder storage classes, or a manifest or record ("false"), which stays readable at once.
TAG_CLASS = "dbdr-class"
TAG_DATA = "dbdr-data"
BACKUP_ID_FORMAT = "%Y%m%dT%H%M%SZ"

BACKUP_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
_CLUSTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# Characters that stay readable in object names; everything else (including '.', '%'
# and any non-ASCII byte) is percent-encoded from the name's UTF-8 bytes.
_SAFE_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

COMPRESSION_SUFFIX = {"zstd": ".zst", "gzip": ".gz", "none": ""}
ENCRYPTION_SUFFIX = {"gpg": ".gpg", "none": ""}


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def isoformat(moment):
    """UTC ISO 8601 with an explicit offset, second precision or better."""
    return moment.astimezone(datetime.timezone.utc).isoformat()


def backup_id_for(moment):
    return moment.astimezone(datetime.timezone.utc).strftime(BACKUP_ID_FORMAT)


def backup_id_time(backup_id):
    validate_backup_id(backup_id)
    parsed = datetime.datetime.strptime(backup_id, BACKUP_ID_FORMAT)
    return parsed.replace(tzinfo=datetime.timezone.utc)


def validate_backup_id(backup_id):
    if not isinstance(backup_id, str) or not BACKUP_ID_RE.match(backup_id):
        raise InputError("invalid backup id %r: expected YYYYMMDDTHHMMSSZ (UTC), e.g. 20261120T030000Z" % (backup_id,))
    try:
        datetime.datetime.strptime(backup_id, BACKUP_ID_FORMAT)
    except ValueError:
        raise InputError("invalid backup id %r: not a real date and time" % (backup_id,))
    return backup_id


def validate_cluster(cluster):
    if not isinstance(cluster, str) or not _CLUSTER_RE.match(cluster) or ".." in cluster:
        raise InputError(
            "invalid cluster name %r: use 1-63 characters from letters, digits, '_', '.', '-', "
            "starting with a letter or digit" % (cluster,))
    return cluster


def encode_name(name):
    """Encode a database name (any characters) into a safe object-name stem."""
    if not name:
        raise InputError("empty database name")
    raw = name.encode("utf-8")
    return "".join(chr(b) if b in _SAFE_BYTES else "%%%02X" % b for b in bytearray(raw))


def decode_name(stem):
    out = bytearray()
    i = 0
    while i < len(stem):
        if stem[i] == "%":
            out.append(int(stem[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(ord(stem[i]))
            i += 1
    return out.decode("utf-8")


def object_suffix(compression, encryption):
    return COMPRESSION_SUFFIX[compression] + ENCRYPTION_SUFFIX[encryption]


def database_object_name(dbname, dump_format, compression, encryption):
    kind = ".pgdump" if dump_format == "custom" else ".pgdir.tar"
    return encode_name(dbname) + kind + object_suffix(compression, encryption)


def globals_object_name(compression, encryption):
    return "globals.sql" + object_suffix(compression, encryption)


def cluster_root(cluster):
    return validate_cluster(cluster)


def backups_prefix(cluster):
    return "%s/backups/" % validate_cluster(cluster)


def backup_prefix(cluster, backup_id):
    return "%s%s/" % (backups_prefix(cluster), validate_backup_id(backup_id))


def manifest_key(cluster, backup_id):
    return backup_prefix(cluster, backup_id) + MANIFEST_NAME


def object_key(cluster, backup_id, name):
    if "/" in name or name in (".", "..") or not name:
        raise InputError("invalid object name %r" % (name,))
    return backup_prefix(cluster, backup_id) + name


def verify_prefix(cluster, backup_id=None):
    """Where verification records live: of one backup, or (backup_id None) of all."""
    if backup_id is None:
        return "%s/verify/" % validate_cluster(cluster)
    return "%s/verify/%s/" % (validate_cluster(cluster), validate_backup_id(backup_id))


def verify_key(cluster, backup_id, moment):
    return verify_prefix(cluster, backup_id) + record_timestamp(moment) + ".json"


def record_timestamp(moment):
    """Sortable UTC timestamp with microseconds, for record names that must not collide."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def lock_key(cluster):
    return "%s/lock" % validate_cluster(cluster)


def audit_key(cluster, moment, operation):
    moment = moment.astimezone(datetime.timezone.utc)
    if not re.match(r"^[a-z_]+$", operation):
        raise InputError("invalid audit operation %r" % (operation,))
    return "%s/audit/%s/%s-%s.json" % (
        validate_cluster(cluster), moment.strftime("%Y/%m/%d"), record_timestamp(moment), operation)
