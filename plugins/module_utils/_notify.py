# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Webhook notifications (Slack-compatible JSON) about verifications, RPO and size anomalies.

The webhook URL is a secret (Slack and most chat tools put the token in the path), so it
appears in no message and no exception: only scheme://host/... does.  Header values may be
secrets too (Authorization) and are never echoed either.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError, InputError
from ansible_collections.dbdr.backup.plugins.module_utils._report.common import (
    failed_checks_summary, humanize_bytes, humanize_seconds, number)
from ansible_collections.dbdr.backup.plugins.module_utils._retry import retried

EVENTS = ("verify_failed", "verify_ok", "rpo_breach", "rpo_ok", "size_anomaly")
DEFAULT_TIMEOUT = 10
BODY_LIMIT = 200
_ELLIPSIS = "\u2026"
_EMOJI = {"critical": ":red_circle:", "warning": ":warning:", "info": ":large_green_circle:"}
_READ_LIMIT = 64 * 1024


class NotifyError(DbdrError):
    """The webhook refused or failed the notification. status: HTTP status or None; body: at most 200 characters."""

    stage = "notify"

    def __init__(self, message, status=None, body=None, attempts=None):
        super(NotifyError, self).__init__(message)
        self.status = status
        self.body = body
        self.attempts = attempts


class TransientNotifyError(NotifyError):
    """A failure worth retrying: HTTP 429 or 5xx, refused or reset connection, timeout."""


def build_message(event, cluster, details):
    """The Slack-compatible body: a one-line 'text' plus event, cluster, severity and details."""
    _check_event(event)
    details = dict(details or {})
    severity = _severity(event, details)
    summary = _SUMMARIES[event](details)
    text = "%s dbdr.backup %s: %s" % (_EMOJI[severity], _one_line(cluster), summary)
    return {"text": text, "event": event, "cluster": cluster, "severity": severity, "details": details}


def post(spec, message, attempts=4, base_delay=0.5, max_delay=8.0, sleep=time.sleep):
    """POST message as JSON to spec['url'], retrying transient failures; {'event', 'status', 'attempts'}."""
    url, timeout, headers, context = check_spec(spec)
    if not isinstance(message, dict):
        raise InputError("notify: the message must be a dict, got %s" % type(message).__name__)
    body = json.dumps(message, sort_keys=True).encode("utf-8")
    all_headers = {"User-Agent": "dbdr.backup-notify"}
    all_headers.update(headers)
    all_headers["Content-Type"] = "application/json; charset=utf-8"
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect())
    tries = []

    @retried(attempts=attempts, base_delay=base_delay, max_delay=max_delay, retry_on=(TransientNotifyError,), sleep=sleep)
    def send():
        tries.append(1)
        return _send_once(opener, url, body, all_headers, timeout)

    try:
        status = send()
    except NotifyError as exc:
        suffix = " (gave up after %d attempts)" % len(tries) if len(tries) > 1 else ""
        raise NotifyError(exc.message + suffix, status=exc.status, body=exc.body, attempts=len(tries)) from None
    return {"event": message.get("event"), "status": status, "attempts": len(tries)}


def redact_url(url):
    """'https://hooks.slack.com/services/T0/B0/SECRET' -> 'https://hooks.slack.com/…' (no user, path or query)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except (TypeError, ValueError, AttributeError):
        return "<unparsable url>"
    if ":" in host:
        host = "[%s]" % host
    if port is not None:
        host = "%s:%d" % (host, port)
    return "%s://%s/%s" % (parts.scheme or "?", host, _ELLIPSIS)


# ---------------------------------------------------------------------------------------------

def _send_once(opener, url, body, headers, timeout):
    target = redact_url(url)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(_READ_LIMIT)
            return response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        snippet = _snippet(_scrub(_read_body(exc), url))
        message = "webhook %s answered HTTP %d" % (target, status)
        if 300 <= status < 400:
            message += " (redirects are not followed)"
        if snippet:
            message += ": %s" % snippet
        error = TransientNotifyError if status == 429 or status >= 500 else NotifyError
        raise error(message, status=status, body=snippet) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLError):
            raise NotifyError("webhook %s: TLS failed: %s" % (target, _snippet(_scrub(str(reason), url)))) from None
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise TransientNotifyError("webhook %s timed out after %s s" % (target, timeout)) from None
        raise TransientNotifyError("webhook %s unreachable: %s" % (target, _snippet(_scrub(str(reason), url)))) from None
    except (socket.timeout, TimeoutError):
        raise TransientNotifyError("webhook %s timed out after %s s" % (target, timeout)) from None
    except ssl.SSLError as exc:
        raise NotifyError("webhook %s: TLS failed: %s" % (target, _snippet(_scrub(str(exc), url)))) from None
    except (http.client.HTTPException, OSError) as exc:
        raise TransientNotifyError("webhook %s: connection failed: %s" % (target, _snippet(_scrub(str(exc) or type(exc).__name__, url)))) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would resend the body (and any Authorization header) elsewhere: report it instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def check_spec(spec):
    """(url, timeout, headers, ssl context) of a valid webhook spec; InputError (never quoting
    the URL) otherwise. Modules call it before any work, post() before sending."""
    if not isinstance(spec, dict):
        raise InputError("notify: the webhook spec must be a dict with at least 'url'")
    url = spec.get("url")
    if not isinstance(url, str) or not url:
        raise InputError("notify: url is required")
    if not _valid_url(url):
        raise InputError("notify: url %s must be an http:// or https:// URL" % redact_url(url))

    timeout = spec.get("timeout")
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    if isinstance(timeout, bool) or number(timeout) is None or number(timeout) <= 0:
        raise InputError("notify: timeout must be a positive number of seconds, got %r" % (timeout,))

    headers = spec.get("headers") or {}
    if not isinstance(headers, dict):
        raise InputError("notify: headers must be a dict of header name to value")
    for name, value in headers.items():
        if not isinstance(name, str) or not name or any(char in name for char in "\r\n: "):
            raise InputError("notify: invalid header name %r" % (name,))
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise InputError("notify: the value of header %s must be a one-line string" % name)

    validate_certs = spec.get("validate_certs")
    if validate_certs is None:
        validate_certs = True
    if not isinstance(validate_certs, bool):
        raise InputError("notify: validate_certs must be true or false")
    return url, number(timeout), dict(headers), _ssl_context(validate_certs)


def _ssl_context(validate_certs):
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _valid_url(url):
    if any(char in url for char in "\r\n\t "):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:  # e.g. a port that is not a number
        return False


def _read_body(exc):
    try:
        raw = exc.read(_READ_LIMIT)
    except (OSError, http.client.HTTPException, AttributeError):
        return ""
    return (raw or b"").decode("utf-8", "replace")


def _snippet(text):
    """One line of at most BODY_LIMIT characters."""
    return " ".join(text.split())[:BODY_LIMIT]


def _scrub(text, url):
    """Remove the URL, its path, its query and any user:password from text (servers like to echo them).

    Runs on the whole text before it is shortened, so no cut-off piece of a secret survives.
    """
    parts = urllib.parse.urlsplit(url)
    for secret in sorted({url, parts.path, parts.query, parts.netloc.rpartition("@")[0]}, key=len, reverse=True):
        if len(secret) > 1:
            text = text.replace(secret, _ELLIPSIS)
    return text


def _check_event(event):
    if event not in EVENTS:
        raise InputError("notify: unknown event %r, expected one of %s" % (event, ", ".join(EVENTS)))


def _severity(event, details):
    if event == "verify_failed":
        return "critical"
    if event == "rpo_breach":
        return "critical" if details.get("status") == "critical" else "warning"
    if event == "size_anomaly":
        return "warning"
    return "info"


def _one_line(value):
    """Slack text: one line, and &, <, > escaped so a database name cannot become a link or an @channel."""
    text = " ".join(str(value).split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _verify_failed_text(details):
    summary = failed_checks_summary(details.get("failed_checks") or details.get("checks"))
    suffix = " (%s)" % _one_line(summary) if summary else ""
    return "verification of backup %s FAILED%s" % (_one_line(details.get("backup_id")), suffix)


def _verify_ok_text(details):
    text = "verification of backup %s ok" % _one_line(details.get("backup_id"))
    extras = []
    if details.get("level"):
        extras.append("%s level" % _one_line(details["level"]))
    if number(details.get("restore_seconds")) is not None:
        restore = "restore took %s" % humanize_seconds(details["restore_seconds"])
        if number(details.get("rto_target")) is not None:
            restore += " of %s RTO" % humanize_seconds(details["rto_target"])
        extras.append(restore)
    return text + (" (%s)" % ", ".join(extras) if extras else "")


def _rpo_breach_text(details):
    level = details.get("status") if details.get("status") in ("warning", "critical") else "breach"
    age = number(details.get("age_seconds"))
    if age is None:
        return "RPO %s: no complete backup" % level
    return "RPO %s: newest backup is %s old (target %s)" % (level, humanize_seconds(age), humanize_seconds(details.get("target_seconds")))


def _rpo_ok_text(details):
    age = number(details.get("age_seconds"))
    if age is None:
        return "RPO ok"
    return "RPO ok: newest backup is %s old (target %s)" % (humanize_seconds(age), humanize_seconds(details.get("target_seconds")))


def _size_anomaly_text(details):
    text = "backup %s size anomaly: %s" % (_one_line(details.get("backup_id")), humanize_bytes(details.get("total_bytes")))
    ratio = number(details.get("ratio"))
    if ratio is not None:
        text += ", %gx the baseline %s" % (round(ratio, 2), humanize_bytes(details.get("baseline_bytes")))
    return text


_SUMMARIES = {
    "verify_failed": _verify_failed_text,
    "verify_ok": _verify_ok_text,
    "rpo_breach": _rpo_breach_text,
    "rpo_ok": _rpo_ok_text,
    "size_anomaly": _size_anomaly_text,
}
