import pytest

botocore = pytest.importorskip("botocore")
from botocore.exceptions import ClientError  # noqa: E402

from ansible_collections.dbdr.backup.plugins.module_utils._errors import (  # noqa: E402
    AccessDeniedError, AlreadyExistsError, NotFoundError, StorageError, TransientStorageError)
from ansible_collections.dbdr.backup.plugins.module_utils._storage import s3  # noqa: E402


def error(code, status):
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize("code, status, kind", [
    ("AccessDenied", 403, AccessDeniedError),
    ("NoSuchBucket", 404, NotFoundError),
    ("NoSuchKey", 404, NotFoundError),
    ("PreconditionFailed", 412, AlreadyExistsError),
    ("SlowDown", 503, TransientStorageError),
    ("InternalError", 500, TransientStorageError),
    ("InvalidObjectState", 403, StorageError),
    ("MalformedXML", 400, StorageError),
])
def test_error_translation(code, status, kind):
    repo = s3.S3Repository(client=None, bucket="b", prefix="p")
    translated = repo._client_error(error(code, status), "get", "c/x")
    assert translated.__class__ is kind
    if code == "InvalidObjectState":
        assert "archive" in str(translated)


def test_part_size_keeps_under_10000_parts():
    assert s3._part_size(None) == 16 * s3.MiB
    assert s3._part_size(1024) == s3.MIN_PART
    big = 500 * 1024 ** 3
    part = s3._part_size(big)
    assert big * 1.5 / part < s3.MAX_PARTS and part % s3.MiB == 0
    # Memory is bounded: parts never exceed the cap, whatever the database size.
    assert s3._part_size(50 * 1024 ** 4) == s3.MAX_PART


def test_tags_and_encryption_args():
    repo = s3.S3Repository(client=None, bucket="b", storage_class="STANDARD_IA", sse="aws:kms", sse_kms_key_id="k")
    assert repo._extra_args("weekly", data=True) == {"Tagging": "dbdr-class=weekly&dbdr-data=true",
                                                     "StorageClass": "STANDARD_IA",
                                                     "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k"}
    # Manifests, audit records and locks stay in STANDARD and never carry the data tag that
    # lifecycle transition rules match.
    assert repo._extra_args("weekly") == {"Tagging": "dbdr-class=weekly&dbdr-data=false",
                                          "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k"}
    # Verification and audit records carry their own class and no data tag.
    assert repo._extra_args("verify")["Tagging"] == "dbdr-class=verify"
    assert repo._extra_args(None) == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k"}
    assert repo.describe("c/x") == "s3://b/c/x"


def test_stale_lock_detection(monkeypatch):
    monkeypatch.setattr(s3.socket, "gethostname", lambda: "db1")
    assert not s3._holder_is_stale({"host": "db2", "pid": 1})
    here = {"host": "db1", "boot_id": s3.boot_id(), "pid_ns": s3.pid_namespace()}
    assert s3._holder_is_stale(dict(here, pid=2 ** 22 + 12345))
    assert not s3._holder_is_stale(dict(here, pid=s3.os.getpid()))
    # Same host name and kernel, another pid namespace (a container): its pid cannot be checked.
    assert not s3._holder_is_stale(dict(here, pid=2 ** 22 + 12345, pid_ns="pid:[1]"))
    assert s3._holder_is_stale({"host": "db1", "pid": 1, "boot_id": "another-boot"})


def test_bucket_level_errors_name_the_bucket():
    repo = s3.S3Repository(client=None, bucket="b")
    missing = repo._client_error(error("404", 404), "check bucket", "")
    assert missing.__class__ is NotFoundError and "never creates buckets" in str(missing)
    denied = repo._client_error(error("403", 403), "check bucket", "")
    assert denied.__class__ is AccessDeniedError and "bucket b" in str(denied)


class _HeadOnly:
    """Answers HEAD with fixed headers, as S3 does for an archived object in each restore state."""

    def __init__(self, head):
        self.head = head

    def head_object(self, Bucket, Key):  # noqa: N803 - boto3's argument names
        return dict(self.head)


@pytest.mark.parametrize("head, state", [
    ({"ContentLength": 5}, None),
    ({"ContentLength": 5, "StorageClass": "STANDARD_IA"}, None),
    ({"ContentLength": 5, "StorageClass": "GLACIER_IR"}, None),
    ({"ContentLength": 5, "StorageClass": "GLACIER"}, "archived"),
    ({"ContentLength": 5, "StorageClass": "DEEP_ARCHIVE", "Restore": 'ongoing-request="true"'}, "restoring"),
    ({"ContentLength": 5, "StorageClass": "DEEP_ARCHIVE",
      "Restore": 'ongoing-request="false", expiry-date="Fri, 21 Dec 2026 00:00:00 GMT"'}, None),
])
def test_archive_state_from_the_head_of_an_object(head, state):
    repo = s3.S3Repository(client=_HeadOnly(head), bucket="b")
    assert repo.archive_state("c/x") == state


@pytest.mark.parametrize("head, state", [
    ({"StorageClass": "INTELLIGENT_TIERING"}, None),
    ({"StorageClass": "INTELLIGENT_TIERING", "ArchiveStatus": "ARCHIVE_ACCESS"}, "archived"),
    ({"StorageClass": "INTELLIGENT_TIERING", "ArchiveStatus": "DEEP_ARCHIVE_ACCESS",
      "Restore": 'ongoing-request="true"'}, "restoring"),
])
def test_intelligent_tiering_archive_tiers_count_as_archived(head, state):
    repo = s3.S3Repository(client=_HeadOnly(dict(head, ContentLength=5)), bucket="b")
    assert repo.archive_state("c/x") == state
