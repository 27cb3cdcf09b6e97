import pytest

from ansible_collections.dbdr.backup.plugins.module_utils._errors import AccessDeniedError, TransientStorageError
from ansible_collections.dbdr.backup.plugins.module_utils._retry import retried


def test_retries_transient_errors_then_succeeds():
    calls, sleeps = [], []

    @retried(attempts=4, sleep=sleeps.append)
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientStorageError("503")
        return "ok"

    assert flaky() == "ok"
    assert len(calls) == 3 and len(sleeps) == 2
    assert all(0 <= s <= 8 for s in sleeps)


def test_gives_up_after_attempts():
    calls = []

    @retried(attempts=3, sleep=lambda s: None)
    def down():
        calls.append(1)
        raise TransientStorageError("503")

    with pytest.raises(TransientStorageError):
        down()
    assert len(calls) == 3


def test_does_not_retry_permanent_errors():
    calls = []

    @retried(attempts=5, sleep=lambda s: None)
    def denied():
        calls.append(1)
        raise AccessDeniedError("403")

    with pytest.raises(AccessDeniedError):
        denied()
    assert len(calls) == 1
