# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What backup_verify and backup_info publish after their work, the same way: the report (JSON +
HTML), the Prometheus textfile and the webhook alerts, all from one status of the repository."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.dbdr.backup.plugins.module_utils._catalog import read_catalog
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError, InputError, StageError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import utc_now
from ansible_collections.dbdr.backup.plugins.module_utils._notify import NotifyError, build_message, check_spec, post
from ansible_collections.dbdr.backup.plugins.module_utils._report.html import write_report
from ansible_collections.dbdr.backup.plugins.module_utils._report.metrics import write_metrics
from ansible_collections.dbdr.backup.plugins.module_utils._status import alerts, build_status, validate_options

# A webhook message stays readable: the first failures, and how many there were.
_MAX_FAILED_CHECKS = 20


def verify_events(records, notify_spec):
    """(event, details) of each verification: verify_failed or verify_ok."""
    if not notify_spec:
        return []
    events = []
    for record in records:
        failures = record.failures()
        details = {"backup_id": record.backup_id, "level": record.level, "result": record.result,
                   "started_at": record.started_at, "finished_at": record.finished_at,
                   "restore_seconds": record.restore_seconds, "rto_target": record.rto_target,
                   "checks_total": len(record.checks), "counts": record.counts(),
                   "failed_checks": [c.to_dict() for c in failures[:_MAX_FAILED_CHECKS]]}
        events.append(("verify_ok" if record.ok else "verify_failed", details))
    return events


def status_of(repository, params, now=None, catalog=None):
    """The status of the cluster's repository, with the options of the module's parameters."""
    if catalog is None:
        catalog = read_catalog(repository, params["cluster"])
    return build_status(catalog, repository, now or utc_now(), rpo_target=params.get("rpo_target", 86400),
                        rpo_critical=params.get("rpo_critical"),
                        anomaly_threshold=params.get("size_anomaly_threshold", 0.5),
                        prices=params.get("prices"), currency=params.get("currency", "USD"))


def check_options(params):
    """Refuse bad status and publishing options before any work: RPO targets, anomaly threshold,
    prices, `since`, the webhook spec, where the report and the metrics go. Returns `since`
    parsed (or None)."""
    rpo_target = params.get("rpo_target")
    since = validate_options(rpo_target=86400 if rpo_target is None else rpo_target,
                             rpo_critical=params.get("rpo_critical"),
                             anomaly_threshold=params.get("size_anomaly_threshold", 0.5), prices=params.get("prices"),
                             currency=params.get("currency", "USD"), since=params.get("since"))
    if params.get("notify"):
        check_spec(params["notify"])
    report = params.get("report")
    if report and os.path.exists(report) and not os.path.isdir(report):
        raise InputError("report %r exists and is not a directory" % (report,))
    metrics = params.get("metrics_file")
    if metrics and (os.path.isdir(metrics) or not os.path.isdir(os.path.dirname(metrics) or ".")):
        raise InputError("metrics_file %r must be a file in an existing directory (node_exporter's textfile "
                         "directory)" % (metrics,))
    return since


def publish(repository, params, events=(), status=None, check_mode=False):
    """Send the alerts, then write the report and the metrics, as the options ask. Returns the
    module's result fields plus `warnings`. A webhook that fails is a warning; a report or
    metrics file that cannot be written fails (StageError), after the alerts went out.
    In check mode nothing is written or sent: the alerts that would go out are listed."""
    out = {"warnings": []}
    wanted = (params.get("notify") or {}).get("events") or []
    if not (params.get("report") or params.get("metrics_file") or params.get("notify")):
        return out
    if status is None:
        status = status_of(repository, params)
    due = [e for e in events if e[0] in wanted] + alerts(status, wanted)
    if check_mode:
        if params.get("notify"):
            out["notifications"] = [{"event": event, "skipped": "check mode"} for event, _details in due]
        return out
    if params.get("notify"):
        out["notifications"] = []
        for event, details in due:
            try:
                out["notifications"].append(post(params["notify"], build_message(event, status["cluster"], details)))
            except NotifyError as exc:
                out["notifications"].append({"event": event, "error": exc.message})
                out["warnings"].append("the %s alert was not delivered: %s" % (event, exc.message))
    failures = []
    for option, write in (("report", write_report), ("metrics_file", write_metrics)):
        if params.get(option):
            try:
                out[option] = write(params[option], status)
            except DbdrError as exc:
                failures.append("%s %s: %s" % (option, params[option], exc.message))
    if failures:
        error = StageError("cannot write %s" % "; ".join(failures), stage="publish")
        error.published = out
        raise error
    return out
