# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A cluster's backup status as Prometheus gauges, for node_exporter's textfile collector.

Text exposition format 0.0.4: HELP and TYPE once per metric, then its samples; label values
escape backslash, double quote and newline.  A metric without a value (no backup yet, no
restore verification...) is left out entirely rather than reported as 0, so alerts can tell
"never" from "zero" with absent().
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import math
import os

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._report.common import (
    level_key, newest_backup, number, parse_time, write_atomically)

RPO_STATUS_VALUES = {"ok": 0, "warning": 1, "critical": 2}

# (name, help) in output order; every one is a gauge.
METRICS = (
    ("dbdr_backup_last_success_timestamp_seconds", "Finish time of the newest complete backup, in unix seconds."),
    ("dbdr_backup_size_bytes", "Total size of the newest complete backup, in bytes."),
    ("dbdr_backup_duration_seconds", "Duration of the newest complete backup, in seconds."),
    ("dbdr_backups", "Number of complete backups in the repository."),
    ("dbdr_verify_last_success_timestamp_seconds", "Finish time of the newest passed verification of each level, in unix seconds."),
    ("dbdr_verify_last_result", "Result of the newest verification of each level: 1 ok, 0 failed."),
    ("dbdr_restore_duration_seconds", "Restore time measured by the newest restore-level verification, in seconds."),
    ("dbdr_rto_target_seconds", "RTO target of the newest restore-level verification, in seconds."),
    ("dbdr_rpo_seconds", "Age of the newest complete backup, in seconds."),
    ("dbdr_rpo_target_seconds", "RPO target, in seconds."),
    ("dbdr_rpo_status", "RPO status: 0 ok, 1 warning, 2 critical."),
    ("dbdr_repository_bytes", "Bytes stored in the repository per GFS class and storage class."),
)


def render_metrics(status):
    """The status as Prometheus text exposition format (ends with a newline; empty string if nothing to say)."""
    cluster = "" if status.get("cluster") is None else str(status.get("cluster"))
    samples = dict((entry[0], []) for entry in METRICS)

    def add(name, value, labels=()):
        if value is not None:
            samples[name].append(((("cluster", cluster),) + tuple(labels), value))

    backups = status.get("backups") if isinstance(status.get("backups"), list) else []
    newest = newest_backup(status)
    if newest is not None:
        add("dbdr_backup_last_success_timestamp_seconds", _timestamp(newest.get("finished_at")))
        add("dbdr_backup_size_bytes", _value(newest.get("total_bytes")))
        add("dbdr_backup_duration_seconds", _value(newest.get("duration_seconds")))
    add("dbdr_backups", sum(1 for backup in backups if isinstance(backup, dict)))

    newest_ok = {}
    newest_any = {}
    newest_restore = None
    for record in status.get("verifications") or ():
        if not isinstance(record, dict) or record.get("level") is None:
            continue
        level = str(record.get("level"))
        newest_any[level] = record
        if record.get("result") == "ok":
            newest_ok[level] = record
        if level == "restore":
            newest_restore = record
    for level in sorted(newest_any, key=level_key):
        if level in newest_ok:
            add("dbdr_verify_last_success_timestamp_seconds", _timestamp(newest_ok[level].get("finished_at")), (("level", level),))
    for level in sorted(newest_any, key=level_key):
        add("dbdr_verify_last_result", 1 if newest_any[level].get("result") == "ok" else 0, (("level", level),))
    if newest_restore is not None:
        add("dbdr_restore_duration_seconds", _value(newest_restore.get("restore_seconds")))
        add("dbdr_rto_target_seconds", _value(newest_restore.get("rto_target")))

    rpo = status.get("rpo") if isinstance(status.get("rpo"), dict) else {}
    add("dbdr_rpo_seconds", _value(rpo.get("age_seconds")))
    add("dbdr_rpo_target_seconds", _value(rpo.get("target_seconds")))
    add("dbdr_rpo_status", RPO_STATUS_VALUES.get(rpo.get("status")))

    # One sample per label pair: rows repeating a pair are summed, so the output stays valid.
    repository = {}
    for row in status.get("bytes_by_class") or ():
        if not isinstance(row, dict) or _value(row.get("bytes")) is None:
            continue
        key = (_label_text(row.get("gfs_class")), _label_text(row.get("storage_class")))
        repository[key] = repository.get(key, 0) + _value(row.get("bytes"))
    for (gfs_class, storage_class), value in repository.items():
        add("dbdr_repository_bytes", value, (("gfs_class", gfs_class), ("storage_class", storage_class)))

    lines = []
    for name, help_text in METRICS:
        if not samples[name]:
            continue
        lines.append("# HELP %s %s" % (name, _escape_help(help_text)))
        lines.append("# TYPE %s gauge" % name)
        for labels, value in samples[name]:
            lines.append("%s{%s} %s" % (name, ",".join('%s="%s"' % (key, escape_label_value(text)) for key, text in labels),
                                        format_value(value)))
    return "\n".join(lines) + "\n" if lines else ""


def write_metrics(path, status):
    """Write the metrics to path (e.g. /var/lib/node_exporter/textfile/dbdr.prom) atomically, mode 0644.

    The directory must exist: it is node_exporter's configured textfile directory, and
    creating a misspelt one would hide the metrics silently.
    """
    if not isinstance(path, str) or not path:
        raise InputError("metrics path must be a non-empty path, got %r" % (path,))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError("metrics directory %s does not exist (it should be node_exporter's textfile directory)" % directory)
    if os.path.isdir(path):
        raise InputError("metrics path %s is a directory; give the file to write, e.g. %s" % (path, os.path.join(path, "dbdr.prom")))
    write_atomically(path, render_metrics(status).encode("utf-8"))
    return path


def escape_label_value(value):
    return str(value).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def format_value(value):
    """Integers as integers, floats with repr precision, non-finite values as Prometheus spells them."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value):
    """An int stays an int (exact bytes), anything numeric becomes a float, the rest None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return number(value)


def _timestamp(value):
    moment = parse_time(value)
    return None if moment is None else moment.timestamp()


def _label_text(value):
    return "" if value is None else str(value)
