# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a chain of processes joined by OS pipes and read the last one's output in Python.

The bulk data never passes through Python between stages (the kernel moves it from one
process to the next); Python reads only the final, compressed and encrypted stream, which
it hashes and hands to the repository. Every stage's exit status is checked.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError, StageError

CHUNK_SIZE = 1024 * 1024
# Linux F_SETPIPE_SZ: bigger pipe buffers mean fewer context switches between the stages,
# which matters on small machines where every stage competes for the same cores.
_F_SETPIPE_SZ = 1031
PIPE_SIZE = 1024 * 1024
_STDERR_TAIL = 2000


# What child processes inherit from the module's environment: enough to run, no secrets.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


def clean_env(**extra):
    """A minimal environment for a child process, plus `extra` (for example libpq's PG* variables)."""
    env = dict((k, os.environ[k]) for k in _INHERITED_ENV if k in os.environ)
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["LC_MESSAGES"] = "C"
    env.update(extra)
    return env


class Stage:
    """One process of a pipeline: a name for messages, an argument list and its environment."""

    def __init__(self, name, argv, env=None, cwd=None, pass_fds=()):
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.pass_fds = tuple(pass_fds)

    def __repr__(self):
        return "Stage(%r, %r)" % (self.name, self.argv)


class HashingReader:
    """File-like reader that hashes (SHA-256) and counts every byte read through it."""

    def __init__(self, raw):
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def read(self, size=-1):
        data = self._raw.read(size if size is not None and size >= 0 else -1)
        if data:
            self.sha256.update(data)
            self.bytes += len(data)
        return data

    def readable(self):
        return True

    def hexdigest(self):
        return self.sha256.hexdigest()


def _grow_pipe(pipe):
    try:
        fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, ValueError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default size works too


class Pipeline:
    """Processes started left to right; ``stdout`` is the last stage's output.

    Use as a context manager: leaving the block without ``finish()`` kills every stage.
    """

    def __init__(self, stages, stdin=None, stdout=subprocess.PIPE):
        if not stages:
            raise ValueError("a pipeline needs at least one stage")
        self.stages = list(stages)
        self._stdin = stdin
        self._stdout = stdout
        self._procs = []
        self._stderr = []
        self.stdout = None
        self.started = None
        self.finished = False

    def start(self):
        self.started = time.monotonic()
        upstream = self._stdin if self._stdin is not None else subprocess.DEVNULL
        try:
            for index, stage in enumerate(self.stages):
                err = tempfile.TemporaryFile()
                self._stderr.append(err)
                last = index == len(self.stages) - 1
                try:
                    proc = subprocess.Popen(
                        stage.argv, stdin=upstream, stdout=self._stdout if last else subprocess.PIPE, stderr=err,
                        env=stage.env, cwd=stage.cwd, pass_fds=stage.pass_fds, close_fds=True)
                except OSError as exc:
                    raise StageError("could not start %s (%s): %s" % (stage.name, stage.argv[0], exc), stage=stage.name)
                if proc.stdout is not None:
                    _grow_pipe(proc.stdout)
                if self._procs:
                    # The child holds its own copy now; ours would keep the pipe open.
                    self._procs[-1].stdout.close()
                self._procs.append(proc)
                upstream = proc.stdout
        except Exception:
            self.kill()
            raise
        self.stdout = self._procs[-1].stdout
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if not self.finished:
            self.kill()
        return False

    def kill(self):
        for proc in self._procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        deadline = time.monotonic() + 5
        for proc in self._procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close()
        self.finished = True

    def _close(self):
        if self.stdout is not None and not self.stdout.closed:
            self.stdout.close()
        for err in self._stderr:
            if not err.closed:
                err.close()

    def stderr_of(self, index):
        err = self._stderr[index]
        err.seek(0, os.SEEK_END)
        size = err.tell()
        err.seek(max(0, size - _STDERR_TAIL))
        return err.read().decode("utf-8", "replace").strip()

    def finish(self):
        """Wait for every stage; raise StageError naming the stage that failed first-hand.

        A stage that fails because its output pipe broke is a consequence: the cause is the
        first stage that failed otherwise (an encoder upstream of a failed consumer, a decoder
        whose input was cut short by a failed gpg). Without such a stage, the last one failed.
        """
        codes = [proc.wait() for proc in self._procs]
        try:
            failed = [i for i, code in enumerate(codes) if code != 0]
            if failed:
                causes = [i for i in failed if not _broken_pipe(codes[i], self.stderr_of(i))]
                i = causes[0] if causes else failed[-1]
                stage = self.stages[i]
                detail = redact(self.stderr_of(i))
                raise StageError(
                    "%s exited with status %s%s" % (stage.name, codes[i], (": " + detail) if detail else ""),
                    stage=stage.name)
        finally:
            self._close()
            self.finished = True
        return codes


_ROW_DATA_RE = re.compile(r"^\s*(CONTEXT|DETAIL):.*$", re.M)


def redact(text):
    """A tool's stderr without the CONTEXT/DETAIL lines where PostgreSQL quotes row values:
    messages go to task results and audit records, which are not encrypted."""
    return _ROW_DATA_RE.sub(r"\1: (omitted: may quote row data)", text)


def _broken_pipe(code, stderr):
    return code in (-signal.SIGPIPE, 128 + signal.SIGPIPE) or "broken pipe" in stderr.lower()


class Feeder(threading.Thread):
    """Copies a Python reader (a repository object) into the first stage's stdin, hashing
    and counting every byte on the way: the read side of a pipeline."""

    def __init__(self, reader):
        super(Feeder, self).__init__(name="dbdr-feeder")
        self.daemon = True
        self.reader = HashingReader(reader)
        self.read_fd, self.write_fd = os.pipe()
        try:
            fcntl.fcntl(self.write_fd, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
        self.error = None

    def run(self):
        try:
            with os.fdopen(self.write_fd, "wb", buffering=0) as out:
                while True:
                    chunk = self.reader.read(CHUNK_SIZE)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[out.write(view):]
        except BrokenPipeError:
            pass  # the consumer stopped early; its exit status tells why
        except Exception as exc:  # pylint: disable=broad-except
            self.error = exc

    @property
    def bytes(self):
        return self.reader.bytes

    def hexdigest(self):
        return self.reader.hexdigest()


def run_from_reader(reader, stages, stdout=subprocess.DEVNULL, consume=None):
    """Stream `reader` through the stages into `stdout` (a file, DEVNULL, or PIPE handed to
    `consume(pipe_stdout)`). Every exit status is checked; a failure to read the source is
    reported as itself, not as the truncated input a stage then complains about.
    Returns (bytes read, SHA-256 hex of the bytes read)."""
    feeder = Feeder(reader)
    pipe = Pipeline(stages, stdin=feeder.read_fd, stdout=stdout)
    try:
        pipe.start()
    except BaseException:
        os.close(feeder.write_fd)
        raise
    finally:
        # The first stage holds its own copy now; ours would keep its input open.
        os.close(feeder.read_fd)
    try:
        feeder.start()
        if consume is not None:
            consume(pipe.stdout)
        feeder.join()
        if feeder.error is not None:
            raise feeder.error
        pipe.finish()
    finally:
        if not pipe.finished:
            pipe.kill()
        if feeder.is_alive():
            feeder.join(10)
    return feeder.bytes, feeder.hexdigest()


def run_checked(stage, input_bytes=None, timeout=None):
    """Run one short command to completion and return its stdout; failures name the stage."""
    try:
        proc = subprocess.run(
            stage.argv, input=input_bytes, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=stage.env, cwd=stage.cwd, timeout=timeout, pass_fds=stage.pass_fds, check=False,
            stdin=None if input_bytes is not None else subprocess.DEVNULL)
    except OSError as exc:
        raise StageError("could not start %s (%s): %s" % (stage.name, stage.argv[0], exc), stage=stage.name)
    except subprocess.TimeoutExpired:
        raise StageError("%s did not finish within %s seconds" % (stage.name, timeout), stage=stage.name)
    if proc.returncode != 0:
        detail = redact(proc.stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL:])
        raise StageError("%s exited with status %s%s" % (stage.name, proc.returncode, (": " + detail) if detail else ""),
                         stage=stage.name)
    return proc.stdout


def check_scratch_space(directory, needed_bytes, purpose, hint):
    """Refuse early when a local scratch copy cannot fit, rather than fail with a full disk."""
    directory = directory or tempfile.gettempdir()
    free = shutil.disk_usage(directory).free
    if needed_bytes and free < needed_bytes:
        raise InputError("%s in %s, which has %d MiB free but about %d MiB are needed; %s"
                         % (purpose, directory, free // 2 ** 20, needed_bytes // 2 ** 20, hint))


def version_output(path, name=None):
    """What `<path> --version` prints, run with a clean environment."""
    stage = Stage(name or os.path.basename(path), [path, "--version"], env=clean_env())
    return run_checked(stage, timeout=30).decode("utf-8", "replace").strip()
