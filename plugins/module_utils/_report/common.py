# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the report, the metrics and the alerts share: reading a status (times, numbers, the
newest backup and verifications), humanized units, and atomic file writes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import errno
import math
import os
import tempfile

from ansible_collections.dbdr.backup.plugins.module_utils._errors import AccessDeniedError, InputError, StorageError
from ansible_collections.dbdr.backup.plugins.module_utils._verify.record import LEVELS, RESULTS

RESULT_WORDS = RESULTS
SEVERITIES = ("ok", "warning", "critical")

_UTC = datetime.timezone.utc
DASH = "\u2014"
_FILE_MODE = 0o644
_DIR_MODE = 0o755


def parse_time(value):
    """An aware UTC datetime from an ISO 8601 string (or datetime); None when absent or unparsable."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text[-1] in "Zz":
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_UTC)
    return moment.astimezone(_UTC)


def format_time(value, with_seconds=True):
    """'2026-11-20 03:00:00 UTC'; an unparsable string is returned as it is, None as a dash."""
    moment = parse_time(value)
    if moment is None:
        return DASH if value is None or value == "" else str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if with_seconds else "%Y-%m-%d %H:%M UTC")


def number(value):
    """A finite float from an int/float (or numeric string); None otherwise. Booleans are not numbers."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def humanize_bytes(value):
    """1536 -> '1.5 KiB'; binary units up to PiB."""
    amount = number(value)
    if amount is None:
        return DASH
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount < 1024:
        return "%s%d B" % (sign, int(round(amount)))
    units = ("KiB", "MiB", "GiB", "TiB", "PiB")
    for index, unit in enumerate(units):
        amount /= 1024.0
        if round(amount, 1) < 1024 or index == len(units) - 1:
            return "%s%.1f %s" % (sign, amount, unit)
    return DASH  # not reached


def humanize_seconds(value):
    """12.5 -> '12.5 s', 200 -> '3 min 20 s', 7500 -> '2 h 5 min', 93600 -> '1 d 2 h'."""
    amount = number(value)
    if amount is None:
        return DASH
    if amount < 0:
        return "-" + humanize_seconds(-amount)
    if round(amount, 1) < 60:
        return "%s s" % short_number(round(amount, 1))
    whole = int(round(amount))
    for size, unit, minor_size, minor_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "min"), (60, "min", 1, "s")):
        if whole >= size:
            major, rest = divmod(whole, size)
            minor = rest // minor_size
            if minor:
                return "%d %s %d %s" % (major, unit, minor, minor_unit)
            return "%d %s" % (major, unit)
    return "%d s" % whole  # not reached


def failed_checks_summary(checks, limit=3):
    """'row_count_mismatch on app.public.orders, missing on app.pgdump.zst (+2 more)'; '' if none failed."""
    failed = [check for check in dicts(checks) if check.get("result") != "ok"]
    parts = []
    for check in failed[:limit]:
        word = str(check.get("result") or "unknown")
        subject = check.get("subject")
        parts.append("%s on %s" % (word, subject) if subject not in (None, "") else word)
    summary = ", ".join(parts)
    if len(failed) > limit:
        summary += " (+%d more)" % (len(failed) - limit)
    return summary


def newest_backup(status):
    """The record of the newest complete backup (status['newest_complete'], else the last backup), or None."""
    backups = dicts(status.get("backups"))
    wanted = status.get("newest_complete")
    if wanted is None:
        return backups[-1] if backups else None
    for backup in reversed(backups):
        if backup.get("backup_id") == wanted:
            return backup
    return {"backup_id": wanted}


def newest_verification(status, backup_id):
    """The newest verification record of one backup, with its checks when the status lists them."""
    listed = None
    for record in dicts(status.get("verifications")):
        if record.get("backup_id") == backup_id:
            listed = record
    embedded = None
    for backup in dicts(status.get("backups")):
        if backup.get("backup_id") == backup_id and isinstance(backup.get("verification"), dict):
            embedded = dict(backup["verification"], backup_id=backup_id)
    if listed is None or embedded is None:
        return listed if listed is not None else embedded
    listed_at, embedded_at = parse_time(listed.get("finished_at")), parse_time(embedded.get("finished_at"))
    if listed_at is not None and embedded_at is not None and embedded_at > listed_at:
        return embedded
    return listed


def newest_per_level(verifications):
    """{level: newest record of that level}, levels in checksum, readable, restore, others-by-name order."""
    newest = {}
    for record in dicts(verifications):
        level = record.get("level")
        if level is not None:
            newest[str(level)] = record
    return dict((level, newest[level]) for level in sorted(newest, key=level_key))


def write_atomically(path, data, mode=_FILE_MODE):
    """Write bytes to path through a temporary file in the same directory (fsync, chmod, os.replace)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _file_error(exc, directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        _discard(temporary)
        raise _file_error(exc, path)
    except BaseException:
        _discard(temporary)
        raise
    _fsync_directory(directory)
    return path


def make_directory(directory, mode=_DIR_MODE):
    """Create directory and missing parents with mode (whatever the umask); InputError if a file is in the way."""
    if os.path.isdir(directory):
        return
    if os.path.lexists(directory):
        raise InputError("%s exists and is not a directory" % directory)
    parent = os.path.dirname(os.path.normpath(directory))
    if parent and parent != directory:
        make_directory(parent, mode)
    try:
        os.mkdir(directory, mode)
        os.chmod(directory, mode)
    except OSError as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(directory):
            raise _file_error(exc, directory)


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def level_key(level):
    return (LEVELS.index(level) if level in LEVELS else len(LEVELS), level)


def _discard(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename itself is still atomic
    finally:
        os.close(fd)


def _file_error(exc, path):
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return AccessDeniedError("permission denied writing %s: %s" % (path, exc.strerror))
    if exc.errno in (errno.ENOTDIR, errno.EISDIR):
        return InputError("cannot write %s: %s" % (path, exc.strerror))
    if exc.errno == errno.ENOENT:
        return InputError("cannot write %s: the directory does not exist" % path)
    if exc.errno == errno.ENOSPC:
        return StorageError("no space left on device writing %s" % path)
    return StorageError("cannot write %s: %s" % (path, exc.strerror or exc))


def dicts(value):
    if not isinstance(value, (list, tuple)):
        return []
    return [item for item in value if isinstance(item, dict)]


def short_number(value):
    return "%g" % round(value, 6)
