# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Audit records: one immutable JSON document per operation, in the repository."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import getpass
import json
import socket

from ansible_collections.dbdr.backup.plugins.module_utils._layout import audit_key, isoformat, utc_now


def write_audit(repository, cluster, operation, started, outcome, details):
    """Store the record; returns its key. `details` must hold no secrets."""
    now = utc_now()
    try:
        user = getpass.getuser()
    except Exception:  # pylint: disable=broad-except
        user = None
    record = {
        "operation": operation, "cluster": cluster, "outcome": outcome,
        "started_at": isoformat(started), "finished_at": isoformat(now),
        "duration_seconds": round((now - started).total_seconds(), 3),
        "host": socket.gethostname(), "user": user, "details": details,
    }
    key = audit_key(cluster, now, operation)
    body = (json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    # Tagged apart from the GFS classes so that lifecycle rules for backups never expire it.
    repository.put_bytes(key, body, "audit")
    return key
