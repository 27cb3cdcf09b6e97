# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS clients from our option names, and botocore errors as our typed errors.

Shared by the S3 repository and the bucket-management modules (s3_lifecycle, s3_replication),
so every part of the collection reads credentials, endpoints and retries the same way."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import functools

from ansible_collections.dbdr.backup.plugins.module_utils._errors import (
    AccessDeniedError, NotFoundError, StorageError, TransientStorageError)
from ansible_collections.dbdr.backup.plugins.module_utils._retry import retried

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc

# The option names, shared with repository.* (doc fragments dbdr.backup.aws and .repository).
AWS_OPTIONS = ("region", "endpoint_url", "profile", "access_key", "secret_key", "session_token",
               "validate_certs", "retries")
TRANSIENT_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed",
                   "500", "502", "503", "504", "Throttling", "ThrottlingException", "OperationAborted"}
ACCESS_CODES = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                "AllAccessDisabled", "UnauthorizedOperation"}


def client(spec, service="s3"):
    """A boto3 client for `service` from a dict holding AWS_OPTIONS (missing ones default)."""
    session = boto3.session.Session(
        profile_name=spec.get("profile") or None,
        aws_access_key_id=spec.get("access_key") or None,
        aws_secret_access_key=spec.get("secret_key") or None,
        aws_session_token=spec.get("session_token") or None,
        region_name=spec.get("region") or None)
    custom_endpoint = bool(spec.get("endpoint_url"))
    config = Config(
        retries={"mode": "standard", "max_attempts": int(5 if spec.get("retries") is None else spec["retries"])},
        connect_timeout=10, read_timeout=60,
        s3={"addressing_style": "path" if custom_endpoint else "auto"},
        # Older S3-compatible stores reject the checksums boto3 adds by default.
        request_checksum_calculation="when_required" if custom_endpoint else "when_supported",
        user_agent_extra="dbdr.backup")
    return session.client(service, endpoint_url=spec.get("endpoint_url") or None, config=config,
                          verify=spec.get("validate_certs", True))


def error_code(exc):
    """The service's error code and HTTP status of a botocore ClientError."""
    return (str(exc.response.get("Error", {}).get("Code", "")),
            exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


def typed_error(exc, what):
    """Our typed error for a ClientError raised while doing `what` (a phrase naming the target)."""
    code, status = error_code(exc)
    message = "%s: %s (%s)" % (what, exc.response.get("Error", {}).get("Message") or code, code or status)
    if code == "NoSuchBucket":
        return NotFoundError("%s: the bucket does not exist" % what)
    if code in ACCESS_CODES or status == 403:
        return AccessDeniedError("access denied: " + message)
    if code in TRANSIENT_CODES or (status and status >= 500):
        return TransientStorageError(message)
    if status == 404:
        return NotFoundError("not found: " + message)
    return StorageError(message)


def translate_errors(what):
    """Decorator: botocore exceptions from the wrapped call become typed errors naming `what`."""
    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except ClientError as exc:
                raise typed_error(exc, what)
            except NoCredentialsError:
                raise AccessDeniedError("%s: no AWS credentials found (set profile or access_key/secret_key, "
                                        "or give the host an instance role)" % what)
            except ParamValidationError as exc:
                raise StorageError("%s: the AWS client refused the request (botocore too old for this feature?): %s"
                                   % (what, exc))
            except BotoCoreError as exc:
                raise TransientStorageError("%s: %s" % (what, exc))
        return wrapper
    return decorator


def call(what, operation, missing=(), **kwargs):
    """One AWS call with retries and typed errors; `what` names it in messages. An error whose
    code is in `missing` (S3's way of saying "not configured") returns None."""
    @retried()
    @translate_errors(what)
    def attempt():
        try:
            return operation(**kwargs)
        except ClientError as exc:
            if error_code(exc)[0] in missing:
                return None
            raise
    return attempt()
