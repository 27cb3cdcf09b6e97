# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 (and S3-compatible) repository: boto3's transfer manager for streamed multipart
uploads, conditional puts for small objects, typed errors and retries as decorators."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import functools
import json
import os
import socket
import time
import uuid

from ansible_collections.dbdr.backup.plugins.module_utils._errors import (
    AccessDeniedError, AlreadyExistsError, InputError, LockedError, NotFoundError, StorageError,
    TransientStorageError)
from ansible_collections.dbdr.backup.plugins.module_utils import _aws as aws
from ansible_collections.dbdr.backup.plugins.module_utils._layout import TAG_CLASS, TAG_DATA, cluster_root
from ansible_collections.dbdr.backup.plugins.module_utils._retry import retried
from ansible_collections.dbdr.backup.plugins.module_utils._storage.base import (
    ARCHIVE_STORAGE_CLASSES, GFS_CLASSES, Repository, StoredObject, validate_key)

try:
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ParamValidationError
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc

MiB = 1024 * 1024
MAX_PARTS = 10000
MIN_PART = 8 * MiB
# Parts are held in memory (a few at a time); the cap bounds memory at the price of a maximum
# object size of MAX_PART * 10,000 (1.25 TiB of compressed, encrypted dump).
MAX_PART = 128 * MiB


def translate_errors(what):
    """Turn botocore exceptions into our typed errors; `what` names the operation."""
    def decorator(func):
        @functools.wraps(func)
        def wrapper(self, *args, **kwargs):
            try:
                return func(self, *args, **kwargs)
            except ClientError as exc:
                raise self._client_error(exc, what, args[0] if args else "")
            except NoCredentialsError:
                raise AccessDeniedError("%s: no AWS credentials found (set repository.profile or access_key/secret_key, "
                                        "or give the host an instance role)" % what)
            except ParamValidationError as exc:
                raise StorageError("%s: the S3 client refused the request (botocore too old for this feature?): %s"
                                   % (what, exc))
            except BotoCoreError as exc:
                raise TransientStorageError("%s %s: %s" % (what, self.describe(args[0] if args and isinstance(args[0], str) else ""), exc))
        return wrapper
    return decorator


def _part_size(size_hint):
    """Parts big enough that a stream of about size_hint bytes (with headroom) fits in 10,000."""
    if not size_hint:
        return 16 * MiB
    needed = int(size_hint * 1.5) // (MAX_PARTS - 500) + 1
    return min(MAX_PART, max(MIN_PART, (needed + MiB - 1) // MiB * MiB))


def _holder_is_stale(holder):
    """A lock is stale when its holder ran on this host and is gone (or the host rebooted)."""
    if holder.get("host") != socket.gethostname():
        return False
    if holder.get("boot_id") and holder.get("boot_id") != boot_id():
        return True
    if holder.get("pid_ns") != pid_namespace():
        # Another container on this host (same name, same kernel): its pids mean nothing here.
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def pid_namespace():
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return None


class _RangeResumingReader:
    """Streams an object; a dropped connection resumes with a Range request where it broke off."""

    def __init__(self, repository, key, size, etag, attempts=5, sleep=time.sleep):
        self._repository = repository
        self._key = key
        self.size = size
        self._etag = etag
        self._offset = 0
        self._body = None
        self._attempts = attempts
        self._sleep = sleep

    def read(self, size=-1):
        if self.size is not None and self._offset >= self.size:
            return b""
        for attempt in range(1, self._attempts + 1):
            try:
                if self._body is None:
                    try:
                        self._body = self._repository._get_range(self._key, self._offset, self._etag)
                    except AlreadyExistsError:
                        # If-Match failed: a different object is there now.
                        raise StorageError("%s changed while it was being read; run again"
                                           % self._repository.describe(self._key))
                data = self._body.read(size if size and size > 0 else None)
                if not data and self.size is not None and self._offset < self.size:
                    raise TransientStorageError("connection closed at byte %d of %d" % (self._offset, self.size))
                self._offset += len(data)
                return data
            except (TransientStorageError, BotoCoreError, OSError) as exc:
                self.close()
                if attempt == self._attempts:
                    raise TransientStorageError("reading %s failed at byte %d after %d attempts: %s"
                                                % (self._repository.describe(self._key), self._offset, attempt, exc))
                self._sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
        return b""

    def close(self):
        if self._body is not None:
            try:
                self._body.close()
            except Exception:  # pylint: disable=broad-except
                pass
            self._body = None


class S3Repository(Repository):
    type = "s3"
    class_tags = True

    def __init__(self, client, bucket, prefix="", storage_class=None, sse=None, sse_kms_key_id=None, part_concurrency=3):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix and prefix.strip("/") else ""
        self.storage_class = storage_class
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        self.part_concurrency = part_concurrency
        self._lock_tokens = {}

    @classmethod
    def from_spec(cls, spec):
        if not spec.get("bucket"):
            raise InputError("repository.bucket is required for type s3")
        if spec.get("prefix") and ".." in spec["prefix"].split("/"):
            raise InputError("repository.prefix must not contain '..'")
        return cls(aws.client(spec), spec["bucket"], spec.get("prefix") or "", spec.get("storage_class"),
                   spec.get("sse"), spec.get("sse_kms_key_id"))

    # --- helpers ----------------------------------------------------------------------

    def describe(self, key=""):
        return "s3://%s/%s%s" % (self.bucket, self.prefix, key)

    def _key(self, key):
        return self.prefix + validate_key(key)

    def _client_error(self, exc, what, key):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        where = self.describe(key if isinstance(key, str) else "")
        message = "%s %s: %s (%s)" % (what, where, error.get("Message") or code, code or status)
        bucket_level = not key  # HEAD on the bucket answers a bare 404/403 without a code
        if code == "NoSuchBucket" or (bucket_level and status == 404):
            return NotFoundError("bucket %s does not exist (dbdr.backup never creates buckets; "
                                 "use the s3_repository role)" % self.bucket)
        if bucket_level and status == 403 and code != "InvalidObjectState":
            return AccessDeniedError("access denied to bucket %s with the given credentials" % self.bucket)
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict") or status == 412:
            return AlreadyExistsError("refusing to overwrite %s" % where)
        if code == "InvalidObjectState":
            return StorageError("%s is in an archive storage class (GLACIER/DEEP_ARCHIVE) and needs a restore "
                                "from the archive tier before it can be read" % where)
        if code in aws.ACCESS_CODES or status == 403:
            return AccessDeniedError("access denied: " + message)
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return NotFoundError("not found: " + message)
        if code in aws.TRANSIENT_CODES or (status and status >= 500):
            return TransientStorageError(message)
        return StorageError(message)

    def _extra_args(self, gfs_class, data=False):
        tags = [(TAG_CLASS, gfs_class)] if gfs_class else []
        if gfs_class in GFS_CLASSES:
            # Lifecycle rules move only backup data to colder classes (manifests and records must
            # stay readable at once) and expire a manifest before its data: see s3_lifecycle.
            tags.append((TAG_DATA, "true" if data else "false"))
        args = {"Tagging": "&".join("%s=%s" % tag for tag in tags)} if tags else {}
        if self.storage_class and data:
            # Only dumps go to the chosen class: manifests, audit records and locks must stay
            # readable at once (and cheap to rewrite); lifecycle rules tier them by tag.
            args["StorageClass"] = self.storage_class
        if self.sse:
            args["ServerSideEncryption"] = self.sse
            if self.sse == "aws:kms" and self.sse_kms_key_id:
                args["SSEKMSKeyId"] = self.sse_kms_key_id
        return args

    # --- interface --------------------------------------------------------------------

    @retried()
    @translate_errors("check bucket")
    def check_access(self, cluster=None):
        if cluster is None:
            self.client.head_bucket(Bucket=self.bucket)
            return
        # S3 authorises HeadBucket as a ListBucket of the whole bucket, which least-privilege
        # policies (backup_iam) allow only below the cluster's prefix: list there instead.
        self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(cluster_root(cluster) + "/"), MaxKeys=1)

    @retried()
    @translate_errors("head")
    def _head(self, key):
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise

    def exists(self, key):
        return self._head(key) is not None

    def size_of(self, key):
        head = self._head(key)
        return None if head is None else head.get("ContentLength")

    def archive_state(self, key):
        head = self._head(key)
        # Intelligent-Tiering's opt-in archive tiers need the same restore as GLACIER.
        if head is None or (head.get("StorageClass") not in ARCHIVE_STORAGE_CLASSES
                            and head.get("ArchiveStatus") not in ("ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS")):
            return None
        # x-amz-restore: absent (never restored), ongoing-request="true" (running), or
        # ongoing-request="false", expiry-date=... (a readable copy exists until then).
        restore = head.get("Restore") or ""
        if 'ongoing-request="false"' in restore:
            return None
        return "restoring" if 'ongoing-request="true"' in restore else "archived"

    def open_read(self, key):
        head = self._head(key)
        if head is None:
            raise NotFoundError("not found: %s" % self.describe(key))
        return _RangeResumingReader(self, key, head.get("ContentLength"), head.get("ETag"))

    @translate_errors("get")
    def _get_range(self, key, offset, etag):
        args = {"Bucket": self.bucket, "Key": self._key(key)}
        if offset:
            args["Range"] = "bytes=%d-" % offset
        if etag:
            # A resumed read must come from the same object version, or it is refused.
            args["IfMatch"] = etag
        return self.client.get_object(**args)["Body"]

    @translate_errors("upload")
    def _upload(self, key, reader, gfs_class, size_hint):
        config = TransferConfig(multipart_threshold=MIN_PART, multipart_chunksize=_part_size(size_hint),
                                max_concurrency=self.part_concurrency, use_threads=True)
        # A streamed (non-seekable) upload buffers whole parts in memory: keep few in flight.
        config.max_in_memory_upload_chunks = self.part_concurrency
        self.client.upload_fileobj(reader, self.bucket, self._key(key), ExtraArgs=self._extra_args(gfs_class, data=True), Config=config)

    def put_stream(self, key, reader, gfs_class, size_hint=None):
        if self.exists(key):
            raise AlreadyExistsError("refusing to overwrite %s" % self.describe(key))
        # No retry here: the stream cannot be replayed; botocore retries each part itself.
        self._upload(key, reader, gfs_class, size_hint)
        head = self._head(key)
        sent = getattr(reader, "bytes", None)
        if head is None or (sent is not None and head.get("ContentLength") != sent):
            error = StorageError("read-back of %s after upload shows %s bytes, %s were sent"
                                 % (self.describe(key), head and head.get("ContentLength"), sent))
            try:
                self.delete(key)
            except AccessDeniedError:
                # A writer without delete permission (backup_iam): the short object stays for
                # backup_retention's leftover sweep; the read-back failure is what to report.
                error.message += "; the object could not be removed (access denied) and is left for backup_retention"
            raise error
        return StoredObject(key, head.get("ContentLength"))

    @retried()
    @translate_errors("put")
    def _put_if_absent(self, key, data, gfs_class, content_type):
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type,
                               IfNoneMatch="*", **self._extra_args(gfs_class))

    def put_bytes(self, key, data, gfs_class, content_type="application/json"):
        try:
            self._put_if_absent(key, data, gfs_class, content_type)
        except AlreadyExistsError:
            # A retry after a lost response finds our own first write: that is success.
            try:
                if self.get_bytes(key) == data:
                    return StoredObject(key, len(data))
            except NotFoundError:
                pass
            raise
        return StoredObject(key, len(data))

    @retried()
    @translate_errors("get")
    def get_bytes(self, key):
        return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    @retried()
    @translate_errors("list")
    def list_objects(self, prefix):
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                found.append(StoredObject(item["Key"][len(self.prefix):], item.get("Size"),
                                          storage_class=item.get("StorageClass") or "STANDARD"))
        return sorted(found, key=lambda o: o.key)

    @retried()
    @translate_errors("get tags")
    def _tags(self, key):
        return self.client.get_object_tagging(Bucket=self.bucket, Key=self._key(key)).get("TagSet", [])

    def get_class(self, key):
        for tag in self._tags(key):
            if tag.get("Key") == TAG_CLASS:
                return tag.get("Value")
        return None

    @retried()
    @translate_errors("tag")
    def _put_tags(self, key, tags):
        self.client.put_object_tagging(Bucket=self.bucket, Key=self._key(key), Tagging={"TagSet": tags})

    def set_class(self, key, gfs_class):
        # Other tags (cost allocation, legal) are kept; only ours changes.
        tags = [t for t in self._tags(key) if t.get("Key") != TAG_CLASS]
        self._put_tags(key, tags + [{"Key": TAG_CLASS, "Value": gfs_class}])
        return True

    @retried()
    @translate_errors("delete")
    def delete(self, key):
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    @contextlib.contextmanager
    def lock(self, key, holder):
        holder = dict(holder, host=socket.gethostname(), pid=os.getpid(), boot_id=boot_id(), pid_ns=pid_namespace(),
                      token=uuid.uuid4().hex)
        body = json.dumps(holder, sort_keys=True).encode("utf-8")
        try:
            self.put_bytes(key, body, None)
        except AlreadyExistsError:
            current = self._lock_holder(key)
            if not (current and _holder_is_stale(current)):
                raise LockedError("another operation holds the lock %s: %s (if nothing is running, delete that object)"
                                  % (self.describe(key), json.dumps(current, sort_keys=True) if current else "unknown holder"))
            self.delete(key)
            try:
                self.put_bytes(key, body, None)
            except AlreadyExistsError:
                raise LockedError("another operation took over the stale lock %s first" % self.describe(key))
        self.check_lock(key, holder["token"])
        self._lock_tokens[key] = holder["token"]
        try:
            yield
        finally:
            self._lock_tokens.pop(key, None)
            current = self._lock_holder(key)
            # Never remove a lock that is no longer ours.
            if current.get("token") == holder["token"]:
                self.delete(key)

    def _lock_holder(self, key):
        try:
            return json.loads(self.get_bytes(key).decode("utf-8"))
        except (NotFoundError, ValueError, UnicodeDecodeError):
            return {}

    def check_lock(self, key, token=None):  # pylint: disable=arguments-differ
        """Raise LockedError unless the lock still holds our token (stores that ignore
        If-None-Match, or a racing takeover, show up here)."""
        token = token or self._lock_tokens.get(key)
        current = self._lock_holder(key)
        if token is None or current.get("token") != token:
            raise LockedError("lost the lock %s to %s" % (self.describe(key), json.dumps(current, sort_keys=True) or "nobody"))

    @translate_errors("abort multipart uploads")
    def sweep_incomplete(self, prefix):
        removed = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for upload in page.get("Uploads", []):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    removed += 1
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403:
                return removed
            raise
        return removed
