import json
import socket
import ssl
import time

import pytest

import harness

from ansible_collections.dbdr.backup.plugins.module_utils import _notify as notify_mod
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError, InputError
from ansible_collections.dbdr.backup.plugins.module_utils._notify import NotifyError

SECRET_PATH = "/hooks/T000/SECRET"


@pytest.fixture
def hook():
    with harness.WebhookServer(SECRET_PATH + "?token=QUERYSECRET") as server:
        yield server


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def quick(**extra):
    """Retry options that keep the tests fast and record the delays."""
    sleeps = []
    options = {"attempts": 4, "base_delay": 0.01, "max_delay": 0.02, "sleep": sleeps.append}
    options.update(extra)
    return options, sleeps


def assert_no_secret(text):
    for secret in ("SECRET", "/hooks", "T000", "QUERYSECRET", "token="):
        assert secret not in text, text


FAILED_DETAILS = {
    "backup_id": "20261120T030000Z", "level": "restore", "result": "failed",
    "failed_checks": [{"check": "row_count", "subject": "app.public.orders", "result": "row_count_mismatch", "detail": "1499 != 1500"}],
}


def test_build_message_verify_failed():
    message = notify_mod.build_message("verify_failed", "prod-main", FAILED_DETAILS)
    assert message == {
        "text": ":red_circle: dbdr.backup prod-main: verification of backup 20261120T030000Z FAILED "
                "(row_count_mismatch on app.public.orders)",
        "event": "verify_failed", "cluster": "prod-main", "severity": "critical", "details": FAILED_DETAILS,
    }


@pytest.mark.parametrize("event, details, severity, text", [
    ("verify_ok", {"backup_id": "20261120T030000Z", "level": "restore", "restore_seconds": 20.1, "rto_target": 3600}, "info",
     ":large_green_circle: dbdr.backup prod-main: verification of backup 20261120T030000Z ok (restore level, restore took 20.1 s of 1 h RTO)"),
    ("rpo_breach", {"status": "warning", "age_seconds": 100000, "target_seconds": 86400}, "warning",
     ":warning: dbdr.backup prod-main: RPO warning: newest backup is 1 d 3 h old (target 1 d)"),
    ("rpo_breach", {"status": "critical", "age_seconds": None, "target_seconds": 86400}, "critical",
     ":red_circle: dbdr.backup prod-main: RPO critical: no complete backup"),
    ("rpo_ok", {"status": "ok", "age_seconds": 3600, "target_seconds": 86400}, "info",
     ":large_green_circle: dbdr.backup prod-main: RPO ok: newest backup is 1 h old (target 1 d)"),
    ("size_anomaly", {"backup_id": "20261120T030000Z", "total_bytes": 3 * 1024 ** 3, "ratio": 1.8, "baseline_bytes": 1024 ** 3},
     "warning", ":warning: dbdr.backup prod-main: backup 20261120T030000Z size anomaly: 3.0 GiB, 1.8x the baseline 1.0 GiB"),
])
def test_build_message_events(event, details, severity, text):
    message = notify_mod.build_message(event, "prod-main", details)
    assert (message["severity"], message["text"], message["event"], message["details"]) == (severity, text, event, details)


def test_build_message_text_is_one_line_and_slack_escaped():
    details = dict(FAILED_DETAILS, failed_checks=[
        {"subject": "odd <!channel>\nname & co", "result": "missing"}, {"subject": "b", "result": "fk_orphans"},
        {"subject": "c", "result": "unreadable"}, {"subject": "d", "result": "assertion_failed"}])
    message = notify_mod.build_message("verify_failed", "prod-main", details)
    assert "\n" not in message["text"] and "<" not in message["text"]
    assert message["text"].endswith("FAILED (missing on odd &lt;!channel&gt; name &amp; co, fk_orphans on b, unreadable on c (+1 more))")
    assert message["details"]["failed_checks"][0]["subject"] == "odd <!channel>\nname & co"  # machine fields untouched


def test_build_message_rejects_unknown_event():
    with pytest.raises(InputError, match="unknown event"):
        notify_mod.build_message("backup_done", "prod-main", {})


def test_error_type_and_stage():
    error = NotifyError("boom", status=500, body="x")
    assert isinstance(error, DbdrError) and error.stage == "notify" and str(error) == "notify: boom"


def test_redact_url():
    assert notify_mod.redact_url("https://user:pw@hooks.slack.com:8443/services/T0/B0/SECRET?x=1") == "https://hooks.slack.com:8443/\u2026"
    assert notify_mod.redact_url("http://[::1]/a") == "http://[::1]/\u2026"


def test_post_sends_json_and_headers(hook):
    message = notify_mod.build_message("verify_failed", "prod-main", FAILED_DETAILS)
    options, sleeps = quick()
    result = notify_mod.post({"url": hook.url, "headers": {"X-Test-Token": "abc"}}, message, **options)
    assert result == {"event": "verify_failed", "status": 200, "attempts": 1}
    assert sleeps == [] and len(hook.requests) == 1
    request = hook.requests[0]
    assert request["path"] == SECRET_PATH + "?token=QUERYSECRET"
    assert request["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert request["headers"]["X-Test-Token"] == "abc"
    assert request["headers"]["User-Agent"] == "dbdr.backup-notify"
    assert json.loads(request["body"].decode("utf-8")) == message


def test_retries_5xx_then_succeeds(hook):
    hook.plan = [(500, "oops"), (503, "busy")]
    options, sleeps = quick()
    result = notify_mod.post({"url": hook.url}, {"event": "rpo_ok", "text": "t"}, **options)
    assert result == {"event": "rpo_ok", "status": 200, "attempts": 3}
    assert len(hook.requests) == 3 and len(sleeps) == 2
    assert all(0 <= delay <= 0.02 for delay in sleeps)


def test_retries_429(hook):
    hook.plan = [(429, "slow down")]
    options, sleeps = quick()
    assert notify_mod.post({"url": hook.url}, {"event": "rpo_ok"}, **options)["attempts"] == 2


def test_gives_up_on_persistent_5xx_with_short_body_and_no_secret(hook):
    hook.plan = [(500, "x" * 1000 + SECRET_PATH)] * 4
    options, sleeps = quick()
    with pytest.raises(NotifyError) as caught:
        notify_mod.post({"url": hook.url}, {"event": "verify_failed"}, **options)
    error = caught.value
    assert (error.status, error.attempts, len(hook.requests), len(sleeps)) == (500, 4, 4, 3)
    assert error.body == "x" * 200
    assert str(error).startswith("notify: webhook %s/\u2026 answered HTTP 500: " % hook.base)
    assert str(error).endswith("x" * 200 + " (gave up after 4 attempts)")
    assert_no_secret(str(error))
    assert_no_secret(repr(error.args))


def test_404_is_not_retried_and_echoed_path_is_scrubbed(hook):
    hook.plan = [(404, "no such hook: %s?token=QUERYSECRET" % SECRET_PATH)]
    options, sleeps = quick()
    with pytest.raises(NotifyError) as caught:
        notify_mod.post({"url": hook.url}, {"event": "verify_failed"}, **options)
    assert (caught.value.status, caught.value.attempts, len(hook.requests), sleeps) == (404, 1, 1, [])
    assert "HTTP 404" in str(caught.value) and "no such hook" in str(caught.value)
    assert_no_secret(str(caught.value))
    assert_no_secret(caught.value.body)


def test_redirect_is_not_followed(hook):
    hook.plan = [(302, "moved")]
    with pytest.raises(NotifyError, match="HTTP 302") as caught:
        notify_mod.post({"url": hook.url}, {"event": "rpo_ok"}, **quick()[0])
    assert len(hook.requests) == 1 and caught.value.status == 302


def test_timeout_is_retried_then_reported(hook):
    hook.plan = ["hang", "hang"]
    options, sleeps = quick(attempts=2)
    started = time.monotonic()
    with pytest.raises(NotifyError, match="timed out after 0.5 s") as caught:
        notify_mod.post({"url": hook.url, "timeout": 0.5}, {"event": "rpo_ok"}, **options)
    assert time.monotonic() - started < 5
    assert (caught.value.status, caught.value.attempts, len(hook.requests), len(sleeps)) == (None, 2, 2, 1)
    assert_no_secret(str(caught.value))


def test_connection_refused_is_retried():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options, sleeps = quick(attempts=3)
    with pytest.raises(NotifyError, match="unreachable") as caught:
        notify_mod.post({"url": "http://127.0.0.1:%d%s" % (port, SECRET_PATH)}, {"event": "rpo_ok"}, **options)
    assert caught.value.attempts == 3 and len(sleeps) == 2
    assert_no_secret(str(caught.value))


@pytest.mark.parametrize("spec, match", [
    ({"url": "ftp://example.com" + SECRET_PATH}, "must be an http"),
    ({"url": "http://example.com:notaport" + SECRET_PATH}, "must be an http"),
    ({"url": "http://example.com" + SECRET_PATH, "timeout": 0}, "timeout"),
    ({"url": "http://example.com" + SECRET_PATH, "headers": {"X-A": "one\r\nInjected: yes"}}, "one-line"),
    ({"url": "http://example.com" + SECRET_PATH, "validate_certs": "no"}, "validate_certs"),
    ({}, "url is required"),
])
def test_bad_spec_is_input_error_without_secret(spec, match):
    with pytest.raises(InputError, match=match) as caught:
        notify_mod.post(spec, {"event": "rpo_ok"})
    assert_no_secret(str(caught.value))


def test_ssl_context_follows_validate_certs():
    assert notify_mod._ssl_context(True).verify_mode == ssl.CERT_REQUIRED
    unverified = notify_mod._ssl_context(False)
    assert unverified.verify_mode == ssl.CERT_NONE and not unverified.check_hostname
