# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retries as a decorator: exponential backoff with full jitter, for transient errors only."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import functools
import random
import time

from ansible_collections.dbdr.backup.plugins.module_utils._errors import TransientStorageError


def retried(attempts=4, base_delay=0.5, max_delay=8.0, retry_on=(TransientStorageError,), sleep=time.sleep):
    """Call the function up to `attempts` times while it raises one of `retry_on`."""
    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for attempt in range(1, attempts + 1):
                try:
                    return func(*args, **kwargs)
                except retry_on:
                    if attempt == attempts:
                        raise
                    sleep(random.uniform(0, min(max_delay, base_delay * (2 ** (attempt - 1)))))
        return wrapper
    return decorator
