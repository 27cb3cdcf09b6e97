import datetime
import errno
import os
import re
import stat

import pytest

from ansible_collections.dbdr.backup.plugins.module_utils._errors import AccessDeniedError, InputError
from ansible_collections.dbdr.backup.plugins.module_utils._report import metrics

NEWEST_FINISHED = "2026-11-22T03:10:00+00:00"
NEWEST_TS = datetime.datetime(2026, 11, 22, 3, 10, tzinfo=datetime.timezone.utc).timestamp()

_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)')


def unescape(value):
    return re.sub(r'\\(\\|"|n)', lambda match: "\n" if match.group(1) == "n" else match.group(1), value)


def parse(text):
    """{name: {"help": str, "type": str, "samples": [(labels dict, value str)]}}, checking the format as it goes."""
    assert text.endswith("\n")
    families = {}
    current = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, help_text = line[len("# HELP "):].split(" ", 1)
            assert name not in families, "metric %s described twice" % name
            families[name] = {"help": help_text, "type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            name, kind = line[len("# TYPE "):].split(" ")
            assert name == current and families[name]["type"] is None
            families[name]["type"] = kind
        else:
            match = _SAMPLE_RE.match(line)
            assert match, "not a sample line: %r" % line
            name, label_text, value = match.groups()
            assert name == current, "sample of %s outside its family" % name
            labels = {}
            position = 0
            while position < len(label_text):
                label = _LABEL_RE.match(label_text, position)
                assert label, "bad labels: %r" % label_text
                assert label.group(1) not in labels
                labels[label.group(1)] = unescape(label.group(2))
                position = label.end()
            float(value)  # a number Prometheus can read
            families[name]["samples"].append((labels, value))
    return families


def iso(day, hour=3, minute=10):
    return "2026-11-%02dT%02d:%02d:00+00:00" % (day, hour, minute)


def sample_status(**overrides):
    status = {
        "cluster": "prod-main",
        "backups": [
            {"backup_id": "20261120T030000Z", "finished_at": iso(20), "duration_seconds": 500.0, "total_bytes": 100},
            {"backup_id": "20261122T030000Z", "finished_at": NEWEST_FINISHED, "duration_seconds": 612.25, "total_bytes": 123456789},
        ],
        "newest_complete": "20261122T030000Z",
        "rpo": {"target_seconds": 86400, "critical_seconds": 172800, "age_seconds": 3600.5, "status": "warning"},
        "verifications": [
            {"backup_id": "20261120T030000Z", "level": "restore", "result": "ok", "finished_at": iso(20, 5),
             "restore_seconds": 20.1, "rto_target": 3600},
            {"backup_id": "20261120T030000Z", "level": "checksum", "result": "ok", "finished_at": iso(20, 6)},
            {"backup_id": "20261122T030000Z", "level": "checksum", "result": "failed", "finished_at": iso(22, 6)},
            {"backup_id": "20261122T030000Z", "level": "restore", "result": "failed", "finished_at": iso(22, 7),
             "restore_seconds": 4000.0, "rto_target": 3600},
        ],
        "bytes_by_class": [
            {"gfs_class": "daily", "storage_class": "STANDARD", "bytes": 1000, "backups": 2},
            {"gfs_class": "monthly", "storage_class": "GLACIER", "bytes": 5000, "backups": 1},
        ],
    }
    status.update(overrides)
    return status


def value_of(families, name, **labels):
    wanted = dict(cluster="prod-main", **labels)
    found = [value for sample_labels, value in families[name]["samples"] if sample_labels == wanted]
    assert len(found) == 1, (name, labels, families[name]["samples"])
    return found[0]


def test_all_metrics_with_concrete_values():
    families = parse(metrics.render_metrics(sample_status()))
    assert all(family["type"] == "gauge" and family["help"] for family in families.values())
    assert value_of(families, "dbdr_backup_last_success_timestamp_seconds") == repr(NEWEST_TS) == "1795317000.0"
    assert value_of(families, "dbdr_backup_size_bytes") == "123456789"
    assert value_of(families, "dbdr_backup_duration_seconds") == "612.25"
    assert value_of(families, "dbdr_backups") == "2"
    assert value_of(families, "dbdr_verify_last_success_timestamp_seconds", level="checksum") == repr(
        datetime.datetime(2026, 11, 20, 6, 10, tzinfo=datetime.timezone.utc).timestamp())
    assert value_of(families, "dbdr_verify_last_success_timestamp_seconds", level="restore") == repr(
        datetime.datetime(2026, 11, 20, 5, 10, tzinfo=datetime.timezone.utc).timestamp())
    assert value_of(families, "dbdr_verify_last_result", level="checksum") == "0"
    assert value_of(families, "dbdr_verify_last_result", level="restore") == "0"
    assert value_of(families, "dbdr_restore_duration_seconds") == "4000.0"
    assert value_of(families, "dbdr_rto_target_seconds") == "3600"
    assert value_of(families, "dbdr_rpo_seconds") == "3600.5"
    assert value_of(families, "dbdr_rpo_target_seconds") == "86400"
    assert value_of(families, "dbdr_rpo_status") == "1"
    assert value_of(families, "dbdr_repository_bytes", gfs_class="daily", storage_class="STANDARD") == "1000"
    assert value_of(families, "dbdr_repository_bytes", gfs_class="monthly", storage_class="GLACIER") == "5000"
    assert list(families) == [name for name, help_text in metrics.METRICS]


@pytest.mark.parametrize("word, value", [("ok", "0"), ("warning", "1"), ("critical", "2")])
def test_rpo_status_values(word, value):
    families = parse(metrics.render_metrics(sample_status(rpo={"status": word})))
    assert value_of(families, "dbdr_rpo_status") == value


def test_label_values_are_escaped():
    odd = 'a\\b "quoted"\nnext'
    status = sample_status(cluster=odd, bytes_by_class=[{"gfs_class": odd, "storage_class": "S", "bytes": 7}])
    text = metrics.render_metrics(status)
    assert 'cluster="a\\\\b \\"quoted\\"\\nnext"' in text
    families = parse(text)
    assert families["dbdr_repository_bytes"]["samples"] == [({"cluster": odd, "gfs_class": odd, "storage_class": "S"}, "7")]
    assert all(line.count("\n") == 0 for line in text.splitlines())


def test_missing_values_drop_samples_and_their_help():
    status = sample_status(rpo={"target_seconds": 86400, "age_seconds": None, "status": "critical"},
                           backups=[], newest_complete=None, verifications=[], bytes_by_class=[])
    families = parse(metrics.render_metrics(status))
    assert sorted(families) == ["dbdr_backups", "dbdr_rpo_status", "dbdr_rpo_target_seconds"]
    assert value_of(families, "dbdr_backups") == "0"
    assert value_of(families, "dbdr_rpo_status") == "2"


def test_newest_restore_without_duration_omits_restore_duration_only():
    status = sample_status()
    status["verifications"][-1]["restore_seconds"] = None
    families = parse(metrics.render_metrics(status))
    assert "dbdr_restore_duration_seconds" not in families
    assert value_of(families, "dbdr_rto_target_seconds") == "3600"


def test_last_success_per_level_and_results():
    status = sample_status()
    status["verifications"].append({"backup_id": "20261122T030000Z", "level": "checksum", "result": "ok", "finished_at": iso(23, 1)})
    status["verifications"].append({"backup_id": "20261122T030000Z", "level": "readable", "result": "failed", "finished_at": iso(23, 2)})
    families = parse(metrics.render_metrics(status))
    assert [labels["level"] for labels, value in families["dbdr_verify_last_result"]["samples"]] == ["checksum", "readable", "restore"]
    assert value_of(families, "dbdr_verify_last_result", level="checksum") == "1"
    assert value_of(families, "dbdr_verify_last_result", level="readable") == "0"
    assert [labels["level"] for labels, value in families["dbdr_verify_last_success_timestamp_seconds"]["samples"]] == [
        "checksum", "restore"]
    assert value_of(families, "dbdr_verify_last_success_timestamp_seconds", level="checksum") == repr(
        datetime.datetime(2026, 11, 23, 1, 10, tzinfo=datetime.timezone.utc).timestamp())


def test_repeated_class_rows_are_summed_into_one_sample():
    rows = [{"gfs_class": "daily", "storage_class": "STANDARD", "bytes": 10},
            {"gfs_class": "daily", "storage_class": "STANDARD", "bytes": 5},
            {"gfs_class": "weekly", "storage_class": "STANDARD", "bytes": None}]
    families = parse(metrics.render_metrics(sample_status(bytes_by_class=rows)))
    assert families["dbdr_repository_bytes"]["samples"] == [
        ({"cluster": "prod-main", "gfs_class": "daily", "storage_class": "STANDARD"}, "15")]


@pytest.mark.parametrize("value, text", [(3, "3"), (2.5, "2.5"), (0.1, "0.1"), (1e21, "1e+21"), (float("nan"), "NaN"),
                                         (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (True, "1")])
def test_format_value(value, text):
    assert metrics.format_value(value) == text


def test_output_is_deterministic():
    assert metrics.render_metrics(sample_status()) == metrics.render_metrics(sample_status())


def test_write_metrics_atomically_with_mode_0644(tmp_path):
    path = tmp_path / "dbdr.prom"
    old_umask = os.umask(0o077)
    try:
        assert metrics.write_metrics(str(path), sample_status()) == str(path)
    finally:
        os.umask(old_umask)
    assert path.read_text(encoding="utf-8") == metrics.render_metrics(sample_status())
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644
    metrics.write_metrics(str(path), sample_status(backups=[]))
    assert "dbdr_backups{cluster=\"prod-main\"} 0\n" in path.read_text(encoding="utf-8")
    assert os.listdir(str(tmp_path)) == ["dbdr.prom"]


def test_write_metrics_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="does not exist"):
        metrics.write_metrics(str(tmp_path / "missing" / "dbdr.prom"), sample_status())
    with pytest.raises(InputError, match="is a directory"):
        metrics.write_metrics(str(tmp_path), sample_status())

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(AccessDeniedError):
        metrics.write_metrics(str(tmp_path / "dbdr.prom"), sample_status())
    assert os.listdir(str(tmp_path)) == []
