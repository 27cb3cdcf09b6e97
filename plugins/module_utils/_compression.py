# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compression stages for pipelines: the zstd and gzip command-line tools."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import shutil

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._pipeline import Stage, clean_env

ALGORITHMS = ("zstd", "gzip", "none")
DEFAULT_LEVEL = {"zstd": 3, "gzip": 6, "none": None}
LEVEL_RANGE = {"zstd": (1, 19), "gzip": (1, 9)}


def settings(algorithm="zstd", level=None, threads=2):
    """Validate and fill in defaults; returns the dict recorded in the manifest."""
    algorithm = algorithm or "zstd"
    if algorithm not in ALGORITHMS:
        raise InputError("compression.algorithm %r is not one of %s" % (algorithm, ", ".join(ALGORITHMS)))
    if algorithm == "none":
        return {"algorithm": "none", "level": None}
    if level is None:
        level = DEFAULT_LEVEL[algorithm]
    low, high = LEVEL_RANGE[algorithm]
    if not low <= int(level) <= high:
        raise InputError("compression.level %s is out of range for %s (%d-%d)" % (level, algorithm, low, high))
    if shutil.which(algorithm) is None:
        raise InputError("%s not found on PATH; install it or choose another compression.algorithm" % algorithm)
    if threads is None:
        threads = 2
    if not 0 <= int(threads) <= 64:
        raise InputError("compression.threads must be between 0 (one per core) and 64")
    return {"algorithm": algorithm, "level": int(level), "threads": int(threads)}


def compress_stage(config):
    algorithm = config["algorithm"]
    if algorithm == "none":
        return None
    if algorithm == "zstd":
        argv = ["zstd", "-q", "-c", "-%d" % config["level"], "-T%d" % config.get("threads", 1)]
    else:
        argv = ["gzip", "-c", "-%d" % config["level"]]
    return Stage(algorithm, argv, env=clean_env())


def decompress_stage(algorithm):
    if algorithm == "none":
        return None
    if algorithm == "zstd":
        return Stage("zstd -d", ["zstd", "-q", "-d", "-c"], env=clean_env())
    if algorithm == "gzip":
        return Stage("gzip -d", ["gzip", "-d", "-c"], env=clean_env())
    raise InputError("unknown compression algorithm %r" % (algorithm,))
