# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What backup_verify and backup_info publish after their work, the same way: the report (JSON +
HTML), the Prometheus textfile and the webhook alerts, all from one status of the repository."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.dbdr.backup.plugins.module_utils._catalog import read_catalog
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError, StageError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import utc_now
from ansible_collections.dbdr.backup.plugins.module_utils._notify import NotifyError, build_message, post
from ansible_collections.dbdr.backup.plugins.module_utils._report.html import write_report
from ansible_collections.dbdr.backup.plugins.module_utils._report.metrics import write_metrics
from ansible_collections.dbdr.backup.plugins.module_utils._status import alerts, build_status

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


def status_of(repository, params, now=None, filters=None):
    catalog = read_catalog(repository, params["cluster"])
    return build_status(catalog, repository, now or utc_now(), rpo_target=params.get("rpo_target") or 86400,
                        rpo_critical=params.get("rpo_critical"),
                        anomaly_threshold=params.get("size_anomaly_threshold", 0.5),
                        prices=params.get("prices"), currency=params.get("currency") or "USD", filters=filters)


def publish(repository, params, events=(), status=None, check_mode=False):
    """Write the report and the metrics and send the alerts the options ask for. Returns the
    module's result fields plus `warnings`; a webhook that fails is a warning, not a failure.
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
    if params.get("report"):
        out["report"] = write_report(params["report"], status)
    if params.get("metrics_file"):
        try:
            write_metrics(params["metrics_file"], status)
        except DbdrError as exc:
            raise StageError("cannot write the metrics file %s: %s" % (params["metrics_file"], exc.message),
                             stage="metrics")
        out["metrics_file"] = params["metrics_file"]
    if params.get("notify"):
        out["notifications"] = []
        for event, details in due:
            try:
                out["notifications"].append(post(params["notify"], build_message(event, status["cluster"], details)))
            except NotifyError as exc:
                out["notifications"].append({"event": event, "error": exc.message})
                out["warnings"].append("the %s alert was not delivered: %s" % (event, exc.message))
    return out
