# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A cluster's backup status as one self-contained HTML page (inline CSS and SVG, no script,
no external asset) plus its JSON twin, written atomically next to each other.

The page is for an SRE or an auditor: verdict, RPO, newest good backup, size/duration/restore
time over time, the last result of every check and every backup.  Every text that comes from
users or databases (names, labels, details) is HTML-escaped.  The same status renders to the
same bytes: nothing here reads the clock.

The small helpers (time parsing, humanized sizes and durations, atomic file writes) are shared
with the metrics and notification code.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import html
import json
import math
import os

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import validate_cluster
from ansible_collections.dbdr.backup.plugins.module_utils._report.common import (
    DASH, RESULT_WORDS, SEVERITIES, dicts, failed_checks_summary, format_time, humanize_bytes, humanize_seconds,
    make_directory, newest_backup, newest_per_level, newest_verification, number, parse_time, short_number,
    write_atomically)


# Chart geometry, in SVG user units (the SVG scales to the page width).
_CHART_WIDTH = 760
_CHART_HEIGHT = 250
_PAD_LEFT = 86
_PAD_RIGHT = 24
_PAD_TOP = 16
_PAD_BOTTOM = 44
_POINT_INSET = 12

# Axis units: (factor, name); a unit is used once the largest value reaches min_scaled of it.
_AXIS_UNITS = {
    "bytes": (1, ((1, "B"), (1024, "KiB"), (1024 ** 2, "MiB"), (1024 ** 3, "GiB"), (1024 ** 4, "TiB"), (1024 ** 5, "PiB"))),
    "seconds": (2, ((1, "s"), (60, "min"), (3600, "h"), (86400, "d"))),
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;background:#fff;
margin:0 auto;max-width:1180px;padding:16px 24px;line-height:1.4}
h1{font-size:1.6em;margin:.2em 0 .4em}
h2{font-size:1.2em;margin:1.8em 0 .6em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
h3{font-size:1em;margin:0 0 .4em}
table{border-collapse:collapse;width:100%;font-size:.88em;margin:.4em 0}
th,td{border:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top}
thead th{background:#f6f8fa}
table.meta{width:auto}table.meta th{background:#f6f8fa;white-space:nowrap}
td.num{text-align:right;white-space:nowrap}td.nowrap{white-space:nowrap}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.95em}
.muted{color:#57606a}
.st-ok{color:#1a7f37}.st-warning{color:#9a6700}.st-critical{color:#cf222e}.st-unknown{color:#57606a}
.word{font-weight:600}
.badge{display:inline-block;padding:1px 10px;border-radius:10px;font-weight:700;color:#fff}
.badge.st-ok{background:#1a7f37}.badge.st-warning{background:#9a6700}.badge.st-critical{background:#cf222e}
.badge.st-unknown{background:#57606a}
.box{border:2px solid #d0d7de;border-radius:6px;padding:8px 12px;background:#f6f8fa}
.box.st-ok{border-color:#1a7f37;background:#dafbe1}.box.st-warning{border-color:#bf8700;background:#fff8c5}
.box.st-critical{border-color:#cf222e;background:#ffebe9}
.box p{margin:.2em 0;color:#1f2328}.box ul{margin:.3em 0 .1em;color:#1f2328}
.boxes{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}.boxes .box{flex:1 1 260px}
.label{display:inline-block;background:#ddf4ff;border-radius:4px;padding:0 4px;margin:1px 2px 1px 0}
figure{margin:1em 0}figcaption{font-size:.9em;color:#57606a}
svg.chart{display:block;max-width:100%;height:auto;border:1px solid #d0d7de;border-radius:4px;background:#fff}
svg.chart text{font-size:11px;fill:#57606a}svg.chart text.nodata{font-size:14px}
svg.chart .grid{stroke:#eaeef2;stroke-width:1}svg.chart .axis{stroke:#8c959f;stroke-width:1}
svg.chart .line{fill:none;stroke:#0969da;stroke-width:1.5}
svg.chart circle{stroke:#fff;stroke-width:1}svg.chart circle.pt{fill:#0969da}
svg.chart circle.over{fill:#cf222e}svg.chart circle.anomaly{fill:#bf8700}
svg.chart .target{stroke:#cf222e;stroke-width:1.5;stroke-dasharray:6 4}svg.chart text.target{fill:#cf222e}
footer{margin-top:2em;font-size:.85em;color:#57606a}
@media print{body{max-width:none;padding:0}.box,.badge{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


# ---------------------------------------------------------------------------------------------
# Shared small helpers
# ---------------------------------------------------------------------------------------------

def overall_verdict(status):
    """{'status': ok|warning|critical, 'problems': [one line each]}: ok only when the RPO status is ok
    and the newest verification of the newest complete backup passed."""
    problems = []
    rpo = status.get("rpo") if isinstance(status.get("rpo"), dict) else {}
    rpo_status = rpo.get("status")
    newest = newest_backup(status)
    if newest is None:
        problems.append(("critical", "no complete backup in the repository"))
    if rpo_status in ("warning", "critical"):
        age = number(rpo.get("age_seconds"))
        if age is not None:
            problems.append((rpo_status, "RPO %s: the newest complete backup is %s old (target %s)"
                             % (rpo_status, humanize_seconds(age), humanize_seconds(rpo.get("target_seconds")))))
        elif newest is not None:
            problems.append((rpo_status, "RPO %s" % rpo_status))
    elif rpo_status != "ok":
        problems.append(("warning", "RPO status unknown"))
    if newest is not None:
        backup_id = newest.get("backup_id")
        record = newest_verification(status, backup_id)
        if record is None:
            problems.append(("warning", "the newest backup %s has not been verified" % backup_id))
        elif record.get("result") != "ok":
            summary = failed_checks_summary(record.get("checks"))
            problems.append(("critical", "%s verification of the newest backup %s failed%s"
                             % (record.get("level") or "the", backup_id, ": " + summary if summary else "")))
    severity = max((entry[0] for entry in problems), key=SEVERITIES.index, default="ok")
    return {"status": severity, "problems": [entry[1] for entry in problems]}


def report_json(status):
    """The status as pretty, key-sorted UTF-8 JSON."""
    return (json.dumps(status, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def write_report(directory, status):
    """Write <directory>/dbdr-report-<cluster>.html and .json atomically; returns {'html': path, 'json': path}."""
    if not isinstance(directory, str) or not directory:
        raise InputError("report directory must be a non-empty path, got %r" % (directory,))
    cluster = validate_cluster(status.get("cluster"))
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise InputError("report directory %s exists and is not a directory" % directory)
    page = render_html(status).encode("utf-8")
    document = report_json(status)
    make_directory(directory)
    paths = {
        "html": os.path.join(directory, "dbdr-report-%s.html" % cluster),
        "json": os.path.join(directory, "dbdr-report-%s.json" % cluster),
    }
    write_atomically(paths["html"], page)
    write_atomically(paths["json"], document)
    return paths


def render_html(status):
    """The whole report page as a string."""
    cluster = status.get("cluster")
    verdict = overall_verdict(status)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>dbdr.backup report: %s</title>" % _esc(cluster),
        "<style>%s</style>" % _CSS,
        "</head>",
        "<body>",
    ]
    parts.extend(_header(status, verdict))
    parts.extend(_summary_boxes(status))
    parts.extend(_unreadable_section(status))
    parts.extend(_charts_section(status))
    parts.extend(_checks_section(status))
    parts.extend(_backups_section(status))
    parts.extend(_storage_section(status))
    parts.append("<footer>Generated by dbdr.backup from the repository's manifests and verification records. "
                 "Times are UTC. This page loads no external resource and runs no script.</footer>")
    parts.append("</body>")
    parts.append("</html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# Page sections
# ---------------------------------------------------------------------------------------------

def _header(status, verdict):
    word = verdict["status"]
    lines = [
        "<header>",
        "<h1>dbdr.backup report: %s</h1>" % _esc(status.get("cluster")),
        '<table class="meta">',
        "<tr><th>Cluster</th><td>%s</td></tr>" % _esc(status.get("cluster")),
        "<tr><th>Repository</th><td><code>%s</code></td></tr>" % _esc(status.get("repository")),
        "<tr><th>Generated at</th><td>%s</td></tr>" % _esc(format_time(status.get("generated_at"))),
        '<tr><th>Verdict</th><td><span class="badge st-%s">%s</span></td></tr>' % (word, _esc(word.upper())),
        "</table>",
        '<div class="box verdict st-%s">' % word,
    ]
    if word == "ok":
        lines.append("<p><strong>Verdict: OK</strong> %s the newest complete backup is within the RPO target and "
                     "its newest verification passed.</p>" % DASH)
    else:
        lines.append("<p><strong>Verdict: %s</strong></p>" % _esc(word.upper()))
        lines.append("<ul>")
        lines.extend("<li>%s</li>" % _esc(problem) for problem in verdict["problems"])
        lines.append("</ul>")
    lines.append("</div>")
    lines.append("</header>")
    return lines


def _summary_boxes(status):
    rpo = status.get("rpo") if isinstance(status.get("rpo"), dict) else {}
    rpo_status = rpo.get("status") if rpo.get("status") in SEVERITIES else "unknown"
    age = number(rpo.get("age_seconds"))
    lines = ['<section class="boxes">', '<div class="box rpo st-%s">' % rpo_status,
             "<h3>RPO: %s</h3>" % _esc(rpo_status.upper())]
    if age is None:
        lines.append("<p>No complete backup: the age of the newest backup is unknown.</p>")
    else:
        lines.append("<p>Newest complete backup is <strong>%s</strong> old.</p>" % _esc(humanize_seconds(age)))
    lines.append("<p>Target %s, critical at %s.</p>" % (_esc(humanize_seconds(rpo.get("target_seconds"))),
                                                        _esc(humanize_seconds(rpo.get("critical_seconds")))))
    if rpo.get("newest_backup_at"):
        lines.append("<p>Newest backup at %s.</p>" % _esc(format_time(rpo.get("newest_backup_at"))))
    lines.append("</div>")

    newest = newest_backup(status)
    lines.append('<div class="box newest-complete">')
    lines.append("<h3>Newest complete backup</h3>")
    if newest is None:
        lines.append("<p>None.</p>")
    else:
        record = newest_verification(status, newest.get("backup_id"))
        lines.append("<p><code>%s</code></p>" % _esc(newest.get("backup_id")))
        lines.append("<p>Finished %s; %s in %s.</p>" % (
            _esc(format_time(newest.get("finished_at") or newest.get("started_at"))),
            _esc(humanize_bytes(newest.get("total_bytes"))), _esc(humanize_seconds(newest.get("duration_seconds")))))
        lines.append("<p>Newest verification: %s</p>" % _verification_text(record))
    lines.append("</div>")

    good_id = status.get("newest_verified_good")
    lines.append('<div class="box newest-verified">')
    lines.append("<h3>Newest verified-good backup</h3>")
    if good_id is None:
        lines.append('<p class="st-critical">None: no backup has passed a verification.</p>')
    else:
        good = None
        for record in dicts(status.get("verifications")):
            if record.get("backup_id") == good_id and record.get("result") == "ok":
                good = record
        lines.append("<p><code>%s</code></p>" % _esc(good_id))
        if good is not None:
            lines.append("<p>Passed the %s verification at %s.</p>"
                         % (_esc(good.get("level")), _esc(format_time(good.get("finished_at")))))
    lines.append("</div>")
    lines.append("</section>")
    return lines


def _unreadable_section(status):
    unreadable = dicts(status.get("unreadable"))
    if not unreadable:
        return []
    lines = ['<h2 class="st-warning">Unreadable backups</h2>',
             "<p>These backups have a manifest that could not be read; they are not counted as complete.</p>",
             "<table><thead><tr><th>Backup</th><th>Error</th></tr></thead><tbody>"]
    for entry in unreadable:
        lines.append("<tr><td><code>%s</code></td><td>%s</td></tr>" % (_esc(entry.get("backup_id")), _esc(entry.get("error"))))
    lines.append("</tbody></table>")
    return lines


def _charts_section(status):
    backups = dicts(status.get("backups"))
    size_points = []
    duration_points = []
    for backup in backups:
        when = parse_time(backup.get("finished_at") or backup.get("started_at"))
        backup_id = str(backup.get("backup_id"))
        size = number(backup.get("total_bytes"))
        if size is not None:
            anomaly = backup.get("size_anomaly")
            tip = "%s: %s" % (backup_id, humanize_bytes(size))
            if isinstance(anomaly, dict):
                tip += " (size anomaly: %sx the baseline %s)" % (
                    short_number(number(anomaly.get("ratio")) or 0), humanize_bytes(anomaly.get("baseline_bytes")))
            size_points.append(_point(when, size, backup_id, tip, "anomaly" if anomaly else "pt"))
        duration = number(backup.get("duration_seconds"))
        if duration is not None:
            duration_points.append(_point(when, duration, backup_id, "%s: %s" % (backup_id, humanize_seconds(duration)), "pt"))

    restores = [record for record in dicts(status.get("verifications")) if record.get("level") == "restore"]
    current_target = None
    for record in restores:
        if number(record.get("rto_target")) is not None:
            current_target = number(record.get("rto_target"))
    restore_points = []
    for record in restores:
        seconds = number(record.get("restore_seconds"))
        if seconds is None:
            continue
        target = number(record.get("rto_target"))
        target = current_target if target is None else target
        over = target is not None and seconds > target
        tip = "%s (%s): restore %s%s" % (record.get("backup_id"), record.get("result"), humanize_seconds(seconds),
                                         ", over the RTO target %s" % humanize_seconds(target) if over else "")
        restore_points.append(_point(parse_time(record.get("finished_at")), seconds, str(record.get("backup_id")), tip,
                                     "over" if over else "pt"))

    lines = ["<h2>Over time</h2>"]
    lines.extend(_figure(_svg_chart("Backup size per backup", size_points, "bytes"),
                         "Backup size (total bytes) per backup; amber points are size anomalies."))
    lines.extend(_figure(_svg_chart("Backup duration per backup", duration_points, "seconds"),
                         "Backup duration per backup."))
    rto_caption = "Restore duration per restore-level verification"
    if current_target is not None:
        rto_caption += "; the dashed line is the RTO target (%s), red points exceeded their target" % humanize_seconds(current_target)
    lines.extend(_figure(_svg_chart("Restore duration per restore verification", restore_points, "seconds",
                                    target=current_target,
                                    target_label="RTO %s" % humanize_seconds(current_target) if current_target else None),
                         rto_caption + "."))
    return lines


def _checks_section(status):
    per_level = newest_per_level(status.get("verifications"))
    lines = ["<h2>Last results per check</h2>"]
    if not per_level:
        lines.append("<p>No verification recorded.</p>")
        return lines
    lines.append("<p>The newest verification of each level.</p>")
    lines.append("<table class=\"levels\"><thead><tr><th>Level</th><th>Backup</th><th>Finished</th><th>Result</th>"
                 "<th>Restore time</th><th>RTO target</th></tr></thead><tbody>")
    for level, record in per_level.items():
        lines.append("<tr><td>%s</td><td><code>%s</code></td><td class=\"nowrap\">%s</td><td>%s</td><td class=\"num\">%s</td>"
                     "<td class=\"num\">%s</td></tr>" % (
                         _esc(level), _esc(record.get("backup_id")), _esc(format_time(record.get("finished_at"))),
                         _word(record.get("result")), _esc(humanize_seconds(record.get("restore_seconds"))),
                         _esc(humanize_seconds(record.get("rto_target")))))
    lines.append("</tbody></table>")
    lines.append("<table class=\"checks\"><thead><tr><th>Level</th><th>Backup</th><th>Check</th><th>Subject</th>"
                 "<th>Result</th><th>Detail</th></tr></thead><tbody>")
    for level, record in per_level.items():
        checks = dicts(record.get("checks"))
        if not checks:
            lines.append("<tr><td>%s</td><td><code>%s</code></td><td colspan=\"2\" class=\"muted\">no check recorded</td>"
                         "<td>%s</td><td></td></tr>" % (_esc(level), _esc(record.get("backup_id")), _word(record.get("result"))))
        for check in checks:
            lines.append("<tr><td>%s</td><td><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                _esc(level), _esc(record.get("backup_id")), _esc(check.get("check")), _esc(check.get("subject")),
                _word(check.get("result")), _esc(check.get("detail"), empty="")))
    lines.append("</tbody></table>")
    return lines


def _backups_section(status):
    backups = dicts(status.get("backups"))
    lines = ["<h2>Backups (%d complete)</h2>" % len(backups)]
    if not backups:
        lines.append("<p>No complete backup.</p>")
        return lines
    lines.append("<table class=\"backups\"><thead><tr><th>Backup</th><th>Finished</th><th>Duration</th><th>Size</th>"
                 "<th>Class</th><th>Kind</th><th>Databases</th><th>Labels</th><th>Storage</th><th>Last verification</th>"
                 "</tr></thead><tbody>")
    for backup in reversed(backups):
        backup_id = backup.get("backup_id")
        size = _esc(humanize_bytes(backup.get("total_bytes")))
        anomaly = backup.get("size_anomaly")
        if isinstance(anomaly, dict):
            size += ' <span class="st-warning" title="size anomaly">anomaly %sx</span>' % _esc(
                short_number(number(anomaly.get("ratio")) or 0))
        kind = backup.get("kind") or DASH
        if backup.get("whole") is False:
            kind = "%s, partial" % kind
        databases = ", ".join(_esc(name) for name in backup.get("databases") or ())
        labels = backup.get("labels") if isinstance(backup.get("labels"), dict) else {}
        label_html = " ".join('<span class="label">%s=%s</span>' % (_esc(key), _esc(labels[key], empty=""))
                              for key in sorted(labels, key=str))
        storage = backup.get("storage_classes") if isinstance(backup.get("storage_classes"), dict) else {}
        storage_html = ", ".join("%s %s" % (_esc(name), _esc(humanize_bytes(storage[name]))) for name in sorted(storage, key=str))
        lines.append("<tr><td><code>%s</code></td><td class=\"nowrap\">%s</td><td class=\"num\">%s</td><td class=\"num\">%s</td>"
                     "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>" % (
                         _esc(backup_id), _esc(format_time(backup.get("finished_at") or backup.get("started_at"))),
                         _esc(humanize_seconds(backup.get("duration_seconds"))), size, _esc(backup.get("gfs_class")),
                         _esc(kind), databases, label_html, storage_html,
                         _verification_text(newest_verification(status, backup_id))))
    lines.append("</tbody></table>")
    return lines


def _storage_section(status):
    by_class = dicts(status.get("bytes_by_class"))
    cost = status.get("cost") if isinstance(status.get("cost"), dict) else None
    if not by_class and cost is None:
        return []
    lines = ["<h2>Repository storage</h2>"]
    if by_class:
        lines.append("<table class=\"storage\"><thead><tr><th>GFS class</th><th>Storage class</th><th>Backups</th>"
                     "<th>Size</th></tr></thead><tbody>")
        for row in by_class:
            lines.append("<tr><td>%s</td><td>%s</td><td class=\"num\">%s</td><td class=\"num\">%s</td></tr>" % (
                _esc(row.get("gfs_class")), _esc(row.get("storage_class")), _esc(row.get("backups")),
                _esc(humanize_bytes(row.get("bytes")))))
        lines.append("</tbody></table>")
    if cost is not None and number(cost.get("monthly")) is not None:
        currency = cost.get("currency") or ""
        by_storage = cost.get("by_storage_class") if isinstance(cost.get("by_storage_class"), dict) else {}
        detail = ", ".join("%s %s" % (_esc(name), _esc(_money(by_storage[name], currency))) for name in sorted(by_storage, key=str))
        lines.append("<p>Estimated monthly storage cost: <strong>%s</strong>%s.</p>" % (
            _esc(_money(cost.get("monthly"), currency)), " (%s)" % detail if detail else ""))
    return lines


# ---------------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------------

def _point(when, value, label, tip, css_class):
    return {"when": when, "value": value, "label": label, "tip": tip, "class": css_class}


def _figure(svg, caption):
    return ["<figure>", svg, "<figcaption>%s</figcaption>" % _esc(caption), "</figure>"]


def _svg_chart(title, points, kind, target=None, target_label=None):
    """A points-and-line chart of values over time (or over their order when times are missing)."""
    points = [point for point in points if number(point["value"]) is not None]
    if points and all(point["when"] is not None for point in points):
        points = sorted(points, key=lambda point: point["when"])  # stable: equal times keep their order
    target = number(target)
    plot_width = _CHART_WIDTH - _PAD_LEFT - _PAD_RIGHT
    plot_height = _CHART_HEIGHT - _PAD_TOP - _PAD_BOTTOM
    bottom = _PAD_TOP + plot_height
    right = _PAD_LEFT + plot_width
    highest = max([max(point["value"], 0.0) for point in points] + [target if target is not None and target > 0 else 0.0])
    y_max, ticks = _axis_ticks(highest, kind)

    def y_of(value):
        return bottom - (max(value, 0.0) / y_max) * plot_height

    out = ['<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">'
           % (_CHART_WIDTH, _CHART_HEIGHT, _CHART_WIDTH, _CHART_HEIGHT, _esc(title)),
           "<title>%s</title>" % _esc(title)]
    for value, label in ticks:
        y = y_of(value)
        out.append('<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>' % (_c(_PAD_LEFT), _c(y), _c(right), _c(y)))
        out.append('<text x="%s" y="%s" text-anchor="end">%s</text>' % (_c(_PAD_LEFT - 6), _c(y + 4), _esc(label)))
    out.append('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>' % (_c(_PAD_LEFT), _c(_PAD_TOP), _c(_PAD_LEFT), _c(bottom)))
    out.append('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>' % (_c(_PAD_LEFT), _c(bottom), _c(right), _c(bottom)))
    if target is not None and target > 0:
        y = y_of(target)
        out.append('<line class="target" x1="%s" y1="%s" x2="%s" y2="%s"/>' % (_c(_PAD_LEFT), _c(y), _c(right), _c(y)))
        if target_label:
            out.append('<text class="target" x="%s" y="%s" text-anchor="end">%s</text>' % (_c(right - 4), _c(y - 4), _esc(target_label)))
    if not points:
        out.append('<text class="nodata" x="%s" y="%s" text-anchor="middle">no data</text>'
                   % (_c(_PAD_LEFT + plot_width / 2.0), _c(_PAD_TOP + plot_height / 2.0)))
        out.append("</svg>")
        return "\n".join(out)

    xs = _x_positions(points, _PAD_LEFT + _POINT_INSET, right - _POINT_INSET)
    if len(points) > 1:
        out.append('<polyline class="line" points="%s"/>' % " ".join(
            "%s,%s" % (_c(x), _c(y_of(point["value"]))) for x, point in zip(xs, points)))
    for x, point in zip(xs, points):
        out.append('<circle class="%s" cx="%s" cy="%s" r="4"><title>%s</title></circle>'
                   % (point["class"], _c(x), _c(y_of(point["value"])), _esc(point["tip"])))
    for index in sorted({0, len(points) // 2, len(points) - 1}):
        if len(points) == 1:
            anchor = "middle"
        elif index == 0:
            anchor = "start"
        elif index == len(points) - 1:
            anchor = "end"
        else:
            anchor = "middle"
        point = points[index]
        text = format_time(point["when"], with_seconds=False) if point["when"] is not None else point["label"]
        out.append('<text class="xlabel" x="%s" y="%s" text-anchor="%s">%s</text>'
                   % (_c(xs[index]), _c(bottom + 18), anchor, _esc(text)))
    out.append("</svg>")
    return "\n".join(out)


def _x_positions(points, left, right):
    count = len(points)
    if count == 1:
        return [(left + right) / 2.0]
    times = [point["when"] for point in points]
    if all(moment is not None for moment in times):
        first = min(times)
        span = (max(times) - first).total_seconds()
        if span > 0:
            return [left + (moment - first).total_seconds() / span * (right - left) for moment in times]
    step = (right - left) / float(count - 1)
    return [left + index * step for index in range(count)]


def _axis_ticks(highest, kind):
    """(axis maximum, [(value, label)]) with 'nice' steps in the unit that fits the largest value."""
    min_scaled, units = _AXIS_UNITS[kind]
    factor, unit = units[0]
    for candidate_factor, candidate_unit in units:
        if highest >= candidate_factor * min_scaled:
            factor, unit = candidate_factor, candidate_unit
    scaled = highest / factor
    if scaled <= 0:
        scaled = 1.0
    step = _nice_step(scaled / 4.0)
    count = max(1, int(math.ceil(scaled / step - 1e-9)))
    ticks = [(index * step * factor, "%s %s" % (short_number(index * step), unit)) for index in range(count + 1)]
    return count * step * factor, ticks


def _nice_step(raw):
    exponent = math.floor(math.log10(raw))
    base = 10.0 ** exponent
    for nice in (1.0, 2.0, 5.0):
        if raw / base <= nice + 1e-9:
            return nice * base
    return 10.0 * base


# ---------------------------------------------------------------------------------------------
# Small formatting helpers
# ---------------------------------------------------------------------------------------------

def _esc(value, empty=DASH):
    if value is None or value == "":
        return html.escape(empty, quote=True)
    return html.escape(str(value), quote=True)


def _c(value):
    """An SVG coordinate with one decimal, '-0.0' folded to '0.0'."""
    return "%.1f" % (value + 0.0)


def _money(value, currency):
    amount = number(value)
    if amount is None:
        return DASH
    return ("%.2f %s" % (amount, currency)).strip()


def _word(result):
    """A result word, coloured: ok green, a known failure red, a word outside the vocabulary amber, absent grey."""
    if result is None or result == "":
        return '<span class="word st-unknown">%s</span>' % DASH
    if result == "ok":
        css = "st-ok"
    elif result in RESULT_WORDS or result == "failed":
        css = "st-critical"
    else:
        css = "st-warning"
    return '<span class="word %s">%s</span>' % (css, _esc(result))


def _verification_text(record):
    if not record:
        return '<span class="st-warning">never verified</span>'
    return "%s (%s, %s)" % (_word(record.get("result")), _esc(record.get("level")),
                            _esc(format_time(record.get("finished_at"), with_seconds=False)))
