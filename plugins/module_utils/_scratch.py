# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private scratch directories for decoded copies of dumps. Each is flock()ed for as long as
the run that made it lives, so that the next run removes what a killed one left (a copy can be
as big as the database), on this host or another one sharing the directory."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import os
import shutil
import tempfile

_LOCK = ".lock"


def make(prefix, tmp_dir=None):
    """(path, lock fd) of a new private directory; give both to release()."""
    path = tempfile.mkdtemp(prefix="%s%d-" % (prefix, os.getpid()), dir=tmp_dir)
    fd = os.open(os.path.join(path, _LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return path, fd


def release(path, fd):
    shutil.rmtree(path, ignore_errors=True)
    os.close(fd)


def remove_stale(prefix, tmp_dir=None):
    """Remove the directories named with `prefix` whose lock no running process holds; returns
    their paths."""
    base = tmp_dir or tempfile.gettempdir()
    try:
        entries = [e for e in os.listdir(base) if e.startswith(prefix)]
    except OSError:
        return []
    removed = []
    for name in entries:
        path = os.path.join(base, name)
        try:
            fd = os.open(os.path.join(path, _LOCK), os.O_RDWR)
        except OSError:
            continue   # not one of ours, or being created right now
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue   # a running process holds it
        finally:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
