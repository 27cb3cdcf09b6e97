import copy
import errno
import html.parser
import json
import os
import re
import stat
import tempfile

import pytest

from ansible_collections.dbdr.backup.plugins.module_utils._errors import AccessDeniedError, InputError
from ansible_collections.dbdr.backup.plugins.module_utils._report import html as report

EVIL = '<script>alert("x")</script>'
EVIL_ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
GIB = 1024 ** 3


def iso(day, hour=3, minute=0, second=0):
    return "2026-11-%02dT%02d:%02d:%02d+00:00" % (day, hour, minute, second)


def make_backup(day, total_bytes=2 * GIB, duration=600.0, verification=None, **extra):
    record = {
        "backup_id": "202611%02dT030000Z" % day, "started_at": iso(day), "finished_at": iso(day, 3, 10),
        "duration_seconds": duration, "total_bytes": total_bytes, "gfs_class": "daily", "labels": {"team": "db"},
        "whole": True, "kind": "logical", "databases": ["app"], "storage_classes": {"STANDARD": total_bytes},
        "size_anomaly": None, "verification": verification,
    }
    record.update(extra)
    return record


def make_verification(day, level, result, restore_seconds=None, rto_target=None, checks=None, verified_day=None):
    verified_day = verified_day or day
    return {
        "backup_id": "202611%02dT030000Z" % day, "level": level, "result": result,
        "started_at": iso(verified_day, 5), "finished_at": iso(verified_day, 5, 30),
        "restore_seconds": restore_seconds, "rto_target": rto_target,
        "checks": checks if checks is not None else [{"check": "sha256", "subject": "app.pgdump.zst", "result": "ok", "detail": ""}],
    }


def sample_status(**overrides):
    failed_restore = make_verification(
        21, "restore", "failed", restore_seconds=45.0, rto_target=30,
        checks=[{"check": "row_count", "subject": "app.public.orders", "result": "row_count_mismatch", "detail": EVIL},
                {"check": "row_count", "subject": EVIL + ".public.t", "result": "ok", "detail": "3 rows"}])
    verifications = [
        make_verification(20, "checksum", "ok"),
        make_verification(20, "restore", "ok", restore_seconds=20.1, rto_target=30),
        failed_restore,
        make_verification(22, "checksum", "ok"),
    ]
    backups = [
        make_backup(20, verification=verifications[1]),
        make_backup(21, total_bytes=4 * GIB, verification=failed_restore,
                    size_anomaly={"ratio": 2.0, "baseline_bytes": 2 * GIB, "threshold": 0.5}),
        make_backup(22, duration=None, databases=["app", EVIL], labels={"note": EVIL, "env": "prod"},
                    verification=verifications[3]),
    ]
    status = {
        "cluster": "prod-main",
        "repository": "s3://bucket/prefix/prod-main/backups/",
        "generated_at": "2026-11-23T10:00:00+00:00",
        "backups": backups,
        "unreadable": [{"backup_id": "20261119T030000Z", "error": "manifest " + EVIL + " is unreadable"}],
        "newest_complete": "20261122T030000Z",
        "newest_verified_good": "20261122T030000Z",
        "rpo": {"target_seconds": 86400, "critical_seconds": 172800, "age_seconds": 3600.0, "status": "ok",
                "newest_backup_at": iso(22, 3, 10)},
        "verifications": verifications,
        "bytes_by_class": [{"gfs_class": "daily", "storage_class": "STANDARD", "bytes": 8 * GIB, "backups": 3}],
        "cost": {"currency": "USD", "monthly": 0.18, "by_storage_class": {"STANDARD": 0.18}},
    }
    status.update(overrides)
    return status


class Page(html.parser.HTMLParser):
    """Every start tag with its attributes, the chart each SVG element belongs to, and the text."""

    def __init__(self, text):
        super(Page, self).__init__(convert_charrefs=True)
        self.tags = []
        self.charts = []  # [{"label": aria-label, "tags": [(tag, attrs)], "text": [..]}]
        self.texts = []
        self._in_svg = False
        self._in_text = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "svg":
            self._in_svg = True
            self.charts.append({"label": attrs.get("aria-label"), "tags": [], "text": []})
        elif self._in_svg:
            self.charts[-1]["tags"].append((tag, attrs))
            self._in_text = tag == "text"

    def handle_endtag(self, tag):
        if tag == "svg":
            self._in_svg = False
        self._in_text = False

    def handle_data(self, data):
        self.texts.append(data)
        if self._in_text:  # the texts drawn in a chart: tick labels, x labels, "no data", target label
            self.charts[-1]["text"].append(data)

    def text(self):
        return "".join(self.texts)

    def chart(self, word):
        found = [chart for chart in self.charts if word in chart["label"]]
        assert len(found) == 1, [chart["label"] for chart in self.charts]
        return found[0]


def circles(chart, css_class=None):
    return [attrs for tag, attrs in chart["tags"] if tag == "circle" and (css_class is None or attrs.get("class") == css_class)]


def test_page_has_no_external_reference_and_no_script():
    page = report.render_html(sample_status())
    parsed = Page(page)
    tag_names = {tag for tag, attrs in parsed.tags}
    assert not tag_names & {"script", "link", "img", "iframe", "object", "embed", "base", "a"}
    for tag, attrs in parsed.tags:
        assert "src" not in attrs and "href" not in attrs and "xlink:href" not in attrs, (tag, attrs)
        for value in attrs.values():
            assert not (value or "").lower().startswith(("http:", "https:", "//")), (tag, attrs)
    assert not re.search(r"(?i)url\(|@import", page)
    assert "<style>" in page and len(parsed.charts) == 3


def test_user_text_is_escaped():
    status = sample_status(cluster="<b>prod</b>")
    page = report.render_html(status)
    assert "<script" not in page.lower()
    assert "<b>prod" not in page
    assert "&lt;b&gt;prod&lt;/b&gt;" in page
    assert page.count(EVIL_ESCAPED) >= 5  # database, label, detail, subject, unreadable error
    text = Page(page).text()
    assert EVIL in text and "note=" + EVIL in text
    assert "&lt;b&gt;prod&lt;/b&gt;" in page.split("<title>", 1)[1].split("</title>", 1)[0]


def test_header_and_boxes():
    page = report.render_html(sample_status())
    text = Page(page).text()
    assert "s3://bucket/prefix/prod-main/backups/" in text
    assert "2026-11-23 10:00:00 UTC" in text
    assert '<div class="box rpo st-ok">' in page
    assert "Newest complete backup is 1 h old." in text
    assert "Target 1 d, critical at 2 d." in text
    assert "Verdict: OK" in text
    assert "Passed the checksum verification at 2026-11-22 05:30:00 UTC." in text


@pytest.mark.parametrize("count", [0, 1, 2, 9])
def test_charts_cope_with_0_1_many_points(count):
    backups = [make_backup(1 + index, total_bytes=(index + 1) * 1024 * 1024) for index in range(count)]
    status = sample_status(backups=backups, verifications=[], newest_complete=backups[-1]["backup_id"] if backups else None)
    parsed = Page(report.render_html(status))
    size_chart = parsed.chart("size")
    assert len(circles(size_chart)) == count
    assert any(tag == "polyline" for tag, attrs in size_chart["tags"]) == (count > 1)
    assert ("no data" in size_chart["text"]) == (count == 0)
    assert "no data" in parsed.chart("Restore duration")["text"]
    for chart in parsed.charts:
        for tag, attrs in chart["tags"]:
            for name in ("x1", "x2", "y1", "y2", "cx", "cy"):
                if name in attrs:
                    assert re.match(r"^-?[0-9]+\.[0-9]$", attrs[name]), (tag, attrs)
    if count:
        assert "MiB" in "".join(size_chart["text"])


def test_one_point_is_centred_and_many_are_in_time_order():
    status = sample_status(backups=[make_backup(5)], verifications=[])
    chart = Page(report.render_html(status)).chart("size")
    (point,) = circles(chart)
    assert point["cx"] == "411.0"  # the middle of the plot area
    backups = [make_backup(1), make_backup(2), make_backup(10)]
    chart = Page(report.render_html(sample_status(backups=list(reversed(backups)), verifications=[]))).chart("size")
    xs = [float(attrs["cx"]) for attrs in circles(chart)]
    assert xs == sorted(xs) and xs[0] == 98.0 and xs[-1] == 724.0
    assert xs[1] - xs[0] < (xs[2] - xs[1]) / 5  # day 1 -> 2 is much closer than day 2 -> 10


def test_none_values_are_skipped_and_zero_or_equal_values_do_not_divide_by_zero():
    backups = [make_backup(1, total_bytes=0, duration=None), make_backup(2, total_bytes=0, duration=None),
               make_backup(3, total_bytes=None, duration=0.0)]
    for backup in backups:
        backup["finished_at"] = None  # no times: evenly spaced by order
        backup["started_at"] = None
    parsed = Page(report.render_html(sample_status(backups=backups, verifications=[])))
    assert len(circles(parsed.chart("size"))) == 2
    assert len(circles(parsed.chart("Backup duration"))) == 1
    assert "0 B" in parsed.chart("size")["text"]
    page = report.render_html(sample_status(backups=[make_backup(1), make_backup(1)], verifications=[]))
    assert "nan" not in page.lower() and "inf" not in page.replace("info", "")


def test_restore_chart_draws_rto_target_and_marks_points_over_it():
    parsed = Page(report.render_html(sample_status()))
    chart = parsed.chart("Restore duration")
    assert len(circles(chart)) == 2
    assert len(circles(chart, "over")) == 1 and len(circles(chart, "pt")) == 1
    targets = [attrs for tag, attrs in chart["tags"] if tag == "line" and attrs.get("class") == "target"]
    assert len(targets) == 1 and targets[0]["y1"] == targets[0]["y2"]
    over = circles(chart, "over")[0]
    below = circles(chart, "pt")[0]
    assert float(over["cy"]) < float(targets[0]["y1"]) < float(below["cy"])  # SVG y grows downwards
    assert "RTO 30 s" in chart["text"]
    assert chart["text"][:4] == ["0 s", "20 s", "40 s", "60 s"]  # nice ticks up to the 45 s restore


def test_axis_units_are_humanized():
    backups = [make_backup(1, total_bytes=3 * GIB, duration=7200.0), make_backup(2, total_bytes=int(3.5 * GIB), duration=9000.0)]
    parsed = Page(report.render_html(sample_status(backups=backups, verifications=[])))
    size_labels = parsed.chart("size")["text"]
    assert size_labels[:5] == ["0 GiB", "1 GiB", "2 GiB", "3 GiB", "4 GiB"]
    duration_labels = parsed.chart("Backup duration")["text"]
    assert duration_labels[:4] == ["0 h", "1 h", "2 h", "3 h"]


@pytest.mark.parametrize("value, expected", [
    (None, "\u2014"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (5 * 1024 ** 2, "5.0 MiB"), (int(2.25 * GIB), "2.2 GiB"), (1024 ** 4, "1.0 TiB"), (1024 ** 2 - 1, "1.0 MiB"),
])
def test_humanize_bytes(value, expected):
    assert report.humanize_bytes(value) == expected


@pytest.mark.parametrize("value, expected", [
    (None, "\u2014"), (0, "0 s"), (12.5, "12.5 s"), (59.99, "1 min"), (200, "3 min 20 s"), (3600, "1 h"),
    (7500, "2 h 5 min"), (93600, "1 d 2 h"), (172800, "2 d"),
])
def test_humanize_seconds(value, expected):
    assert report.humanize_seconds(value) == expected


def test_verdict_ok_and_what_is_wrong():
    assert report.overall_verdict(sample_status()) == {"status": "ok", "problems": []}

    late = sample_status(rpo={"target_seconds": 86400, "critical_seconds": 172800, "age_seconds": 100000.0, "status": "warning"})
    assert report.overall_verdict(late) == {
        "status": "warning", "problems": ["RPO warning: the newest complete backup is 1 d 3 h old (target 1 d)"]}

    failed = sample_status(newest_complete="20261121T030000Z")
    verdict = report.overall_verdict(failed)
    assert verdict == {"status": "critical", "problems": [
        "restore verification of the newest backup 20261121T030000Z failed: row_count_mismatch on app.public.orders"]}
    page = report.render_html(failed)
    assert '<span class="badge st-critical">CRITICAL</span>' in page
    assert "row_count_mismatch on app.public.orders" in Page(page).text()

    unverified = sample_status()
    unverified["backups"][-1]["verification"] = None
    unverified["verifications"] = unverified["verifications"][:3]
    assert report.overall_verdict(unverified)["problems"] == ["the newest backup 20261122T030000Z has not been verified"]

    empty = report.overall_verdict({"cluster": "c", "rpo": {"status": "critical", "age_seconds": None}})
    assert empty == {"status": "critical", "problems": ["no complete backup in the repository"]}


def test_last_results_per_check_table():
    page = report.render_html(sample_status())
    checks_table = page.split('<table class="checks">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", checks_table)[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    assert [re.sub(r"<[^>]+>", "", row[0]) for row in cells] == ["checksum", "restore", "restore"]
    checksum, mismatch, fine = cells
    assert "20261122T030000Z" in checksum[1]
    assert mismatch[2:] == ["row_count", "app.public.orders", '<span class="word st-critical">row_count_mismatch</span>', EVIL_ESCAPED]
    assert fine[2:] == ["row_count", EVIL_ESCAPED + ".public.t", '<span class="word st-ok">ok</span>', "3 rows"]


def test_backups_table_newest_first_with_last_verification():
    page = report.render_html(sample_status())
    table = page.split('<table class="backups">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
    assert [re.search(r"<code>(.*?)</code>", row).group(1) for row in rows] == [
        "20261122T030000Z", "20261121T030000Z", "20261120T030000Z"]
    assert '<span class="label">env=prod</span> <span class="label">note=%s</span>' % EVIL_ESCAPED in rows[0]
    assert "anomaly 2x" in rows[1] and "4.0 GiB" in rows[1]
    assert '<span class="word st-critical">failed</span> (restore, 2026-11-21 05:30 UTC)' in rows[1]
    assert "app, " + EVIL_ESCAPED in rows[0]


def test_output_is_deterministic_and_input_untouched():
    status = sample_status()
    before = copy.deepcopy(status)
    assert report.render_html(status) == report.render_html(copy.deepcopy(status))
    assert status == before


def test_minimal_status_renders():
    page = report.render_html({"cluster": "c"})
    text = Page(page).text()
    assert "No complete backup." in text and "No verification recorded." in text
    assert "RPO: UNKNOWN" in text and "Verdict: CRITICAL" in text


def test_report_json_is_sorted_and_indented():
    status = sample_status()
    document = report.report_json(status)
    assert isinstance(document, bytes)
    assert document.startswith(b'{\n  "backups": [\n')
    assert json.loads(document.decode("utf-8")) == status


def test_write_report_creates_directory_and_files(tmp_path):
    target = tmp_path / "reports" / "nested"
    old_umask = os.umask(0o077)
    try:
        paths = report.write_report(str(target), sample_status())
    finally:
        os.umask(old_umask)
    assert paths == {"html": str(target / "dbdr-report-prod-main.html"), "json": str(target / "dbdr-report-prod-main.json")}
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(str(tmp_path / "reports")).st_mode) == 0o755
    for path in paths.values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    with open(paths["html"], encoding="utf-8") as handle:
        assert handle.read() == report.render_html(sample_status())
    with open(paths["json"], "rb") as handle:
        assert handle.read() == report.report_json(sample_status())
    report.write_report(str(target), sample_status(generated_at="2026-11-24T10:00:00+00:00"))
    assert sorted(os.listdir(str(target))) == ["dbdr-report-prod-main.html", "dbdr-report-prod-main.json"]
    with open(paths["html"], encoding="utf-8") as handle:
        assert "2026-11-24 10:00:00 UTC" in handle.read()


def test_write_report_rejects_a_file_as_directory_and_a_bad_cluster(tmp_path):
    in_the_way = tmp_path / "file"
    in_the_way.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        report.write_report(str(in_the_way), sample_status())
    with pytest.raises(InputError):
        report.write_report(str(tmp_path / "r"), sample_status(cluster="../etc"))
    assert not (tmp_path / "r").exists()


def test_write_report_permission_problems_are_access_denied(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(report.os, "replace", refuse)
    with pytest.raises(AccessDeniedError, match="permission denied"):
        report.write_report(str(tmp_path), sample_status())
    assert os.listdir(str(tmp_path)) == []  # the temporary file is gone
    monkeypatch.undo()

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(AccessDeniedError):
        report.write_report(str(tmp_path), sample_status())
