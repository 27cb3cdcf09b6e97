"""pg_backup under faults, and its secrets: the promises users bet their data on.

- A failure at any stage (pg_dump dying mid-stream, the S3 endpoint failing, the module
  being killed mid-upload) leaves no manifest, removes what it wrote (or leaves it clearly
  orphaned, swept by the next run), fails the task naming the stage, and the next backup
  succeeds.
- Two backups of one cluster never run at once.
- Secrets never appear in argv, task results, logs (-vvvv) or the environment of children
  that do not need them.

Everything runs the way users run it (ansible-playbook against localhost); faults come from
wrapper scripts in place of the real tools (``pg_bin_dir``, PATH) and from
``harness.FaultProxy`` in front of moto.  Processes this file starts in the background are
ended by pid in ``finally`` blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest

import harness
from wrappers import logging_wrapper as _logging_wrapper, script as _script, wrapper_logs as _wrapper_logs

BIG_DB = "faults_big"
MiB = 1024 * 1024
NO_LOG_MASK = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"

# --------------------------------------------------------------------------- helpers


def _cluster():
    return "c-" + uuid.uuid4().hex[:10]


def _bucket(s3_server):
    return s3_server.create_bucket("faults-" + uuid.uuid4().hex[:12])


def _encryption(gnupg_home):
    return {"type": "gpg", "recipients": [gnupg_home.fpr], "gnupghome": str(gnupg_home.home)}


def _args(pg_server, cluster, repository, gnupg_home=None, password=False, **extra):
    args = dict(pg_server.conn_params("postgres", password=password), cluster=cluster, repository=repository,
                databases=["app"])
    if gnupg_home is not None:
        args["encryption"] = _encryption(gnupg_home)
    args.update(extra)
    return args


def _playbook(args, environment=None):
    """A one-task playbook; every option (secrets included) comes from the vars file as dbdr_args."""
    task = {"name": "backup", "dbdr.backup.pg_backup": {k: "{{ dbdr_args[%s] }}" % json.dumps(k) for k in sorted(args)}}
    if environment:
        task["environment"] = {k: "{{ dbdr_env[%s] }}" % json.dumps(k) for k in sorted(environment)}
    return json.dumps([{"name": "faults", "hosts": "localhost", "gather_facts": False, "tasks": [task]}], indent=1)


def _vars(args, environment=None):
    extra = {"dbdr_args": args}
    if environment:
        extra["dbdr_env"] = environment
    return extra


def run_backup(runner, args, expect_rc=0, environment=None, **kwargs):
    """Run the module through ansible-playbook; returns (task result, RunResult)."""
    run = runner.run_playbook(_playbook(args, environment), extra_vars=_vars(args, environment),
                              expect_rc=expect_rc, **kwargs)
    return run.task_result("backup"), run


def start_backup(runner, args, environment=None):
    return runner.start_playbook(_playbook(args, environment), extra_vars=_vars(args, environment))


def wait_for(condition, what, timeout=60, background=None):
    """Poll condition() until it returns something truthy; fail with `what` (and the run's output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if background is not None and background.poll() is not None:
            pytest.fail("ansible-playbook ended while waiting for %s\n%s" % (what, background.describe()))
        time.sleep(0.05)
    pytest.fail("timed out after %ss waiting for %s%s"
                % (timeout, what, ("\n" + background.describe()) if background is not None else ""))


def files_under(root):
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def audit_records_local(repo, cluster):
    return [json.loads(p.read_text()) for p in sorted((Path(repo) / cluster / "audit").rglob("*.json"))]


def s3_keys(s3_server, bucket, prefix=""):
    """Keys in the bucket, read from moto directly (never through a proxy)."""
    keys = []
    for page in s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(keys)


def s3_uploads(s3_server, bucket, prefix=""):
    return s3_server.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])


def s3_get(s3_server, bucket, key):
    return s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def backup_ids_of(keys, backups_prefix):
    """{backup_id: [object names]} of keys below <...>/backups/."""
    found = {}
    for key in keys:
        if key.startswith(backups_prefix):
            backup_id, _sep, name = key[len(backups_prefix):].partition("/")
            found.setdefault(backup_id, []).append(name)
    return found


_GATE_COPY = r'''
import os, signal, sys, time
fast, gate, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# Outlive SIGTERM/SIGHUP (ansible terminates a lingering worker's process group): the kill tests
# need a child of the killed module that is still alive; the test ends it by pid.
for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(sig, signal.SIG_IGN)
passed = 0
while passed < fast:
    chunk = os.read(0, min(65536, fast - passed))
    if not chunk:
        break
    os.write(1, chunk)
    passed += len(chunk)
open(ready, "w").close()
deadline = time.monotonic() + 120   # never hang forever, whatever happens to the test
while not os.path.exists(gate) and time.monotonic() < deadline:
    time.sleep(0.05)
while True:
    chunk = os.read(0, 1 << 20)
    if not chunk:
        break
    os.write(1, chunk)
'''


class Gate:
    """A pg_bin_dir whose pg_dump lets ``fast_bytes`` through, then holds the stream until released.

    ``passed`` exists once the fast part went downstream (the backup then holds its lock and
    streams); ``release()`` lets the rest through.  pg_dumpall and ``--version`` are the real ones.
    """

    def __init__(self, tmp_path, pg_server, fast_bytes):
        self.dir = tmp_path / "gated-bin"
        self.dir.mkdir()
        self.gate = tmp_path / "gate-open"
        self.passed = tmp_path / "gate-passed"
        copier = tmp_path / "gate_copy.py"
        copier.write_text(_GATE_COPY, encoding="utf-8")
        real = pg_server.bin_dir
        q = shlex.quote
        _script(self.dir / "pg_dump", "#!/bin/bash\n"
                'if [ "$1" = "--version" ]; then exec %s --version; fi\n'
                "set -o pipefail\n"
                '%s "$@" | %s %s %d %s %s\n'
                % (q(str(real / "pg_dump")), q(str(real / "pg_dump")), q(sys.executable), q(str(copier)),
                   fast_bytes, q(str(self.gate)), q(str(self.passed))))
        _script(self.dir / "pg_dumpall", '#!/bin/bash\nexec %s "$@"\n' % q(str(real / "pg_dumpall")))

    def release(self):
        self.gate.touch()


def module_process(background):
    """(pid, argv) of the pg_backup module process started by this background run."""
    found = [(pid, argv) for pid, argv in harness.process_tree(background.pid).items()
             if len(argv) >= 2 and os.path.basename(argv[0]).startswith("python")
             and any(a.endswith("AnsiballZ_pg_backup.py") for a in argv[1:])]
    return found[0] if len(found) == 1 else None


def kill_leftovers(processes):
    """SIGKILL processes recorded earlier ({pid: argv}) that still run the same command."""
    for pid, argv in processes.items():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                current = [a.decode("utf-8", "replace") for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        if current == argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def open_files(pid):
    """Paths of the open file descriptors of a process (empty if it is gone)."""
    paths = []
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/%d/fd" % pid):
            with contextlib.suppress(OSError):
                paths.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
    return paths


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def app_dump_bytes(pg_server, pg_sample):
    """Size of the uncompressed custom-format dump of the sample database 'app'."""
    proc = harness.run([pg_server.bin_dir / "pg_dump", "--format=custom", "--compress=0"],
                       env=pg_server.env(db="app"), text=False)
    return len(proc.stdout)


@pytest.fixture(scope="module")
def big_db(pg_server):
    """A ~27 MB database: its dump is a multipart upload (> 8 MiB parts) even uncompressed."""
    pg_server.drop_db(BIG_DB)
    pg_server.create_db(BIG_DB)
    pg_server.psql("CREATE TABLE blob (id int PRIMARY KEY, body text NOT NULL);"
                   "INSERT INTO blob SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 100000) AS g;",
                   db=BIG_DB)
    yield BIG_DB
    pg_server.drop_db(BIG_DB)


# --------------------------------------------------------------------------- pg_dump fails mid-stream


def test_pg_dump_failing_mid_stream_leaves_nothing_and_names_the_stage(pg_server, pg_sample, gnupg_home,
                                                                       ansible_runner, tmp_path, app_dump_bytes):
    assert app_dump_bytes > 100000, "the sample dump must be well beyond the 20000 bytes let through"
    bin_dir = tmp_path / "failing-bin"
    bin_dir.mkdir()
    flowed = tmp_path / "pg_dump-flowed"
    real = pg_server.bin_dir
    q = shlex.quote
    _script(bin_dir / "pg_dump", "#!/bin/bash\n"
            'if [ "$1" = "--version" ]; then exec %s --version; fi\n'
            '%s "$@" | head -c 20000 | tee %s\n'
            "exit 1\n" % (q(str(real / "pg_dump")), q(str(real / "pg_dump")), q(str(flowed))))
    _script(bin_dir / "pg_dumpall", '#!/bin/bash\nexec %s "$@"\n' % q(str(real / "pg_dumpall")))
    repo = tmp_path / "repo"
    cluster = _cluster()
    repository = {"type": "local", "path": str(repo)}

    result, _run = run_backup(ansible_runner, _args(pg_server, cluster, repository, gnupg_home, pg_bin_dir=str(bin_dir)),
                              expect_rc=2)
    assert result["failed"] is True
    assert result["stage"] == "pg_dump", result
    assert "pg_dump" in result["msg"] and "status 1" in result["msg"], result["msg"]
    assert "backup_id" not in result
    # Partial data did flow downstream (into zstd, gpg and a repository file) before the failure.
    assert flowed.stat().st_size == 20000

    # No manifest, no object of the failed backup (globals were stored first, then removed):
    # only the lock file and the audit record remain.
    left = files_under(repo)
    assert not [f for f in left if f.endswith("manifest.json")], left
    assert not [f for f in left if "/backups/" in f], left
    assert all(f == cluster + "/lock" or f.startswith(cluster + "/audit/") for f in left), left
    assert not (repo / cluster / "backups").exists() or not any((repo / cluster / "backups").iterdir())
    (audit,) = audit_records_local(repo, cluster)
    assert audit["outcome"] == "failed"
    assert "pg_dump" in audit["details"]["error"]

    # The next backup, with the real tools, succeeds and finds nothing to clean up.
    result, _run = run_backup(ansible_runner, _args(pg_server, cluster, repository, gnupg_home))
    backup_id = result["backup_id"]
    assert result["orphans_removed"] == 0
    assert (repo / cluster / "backups" / backup_id / "manifest.json").is_file()
    assert sorted(p.name for p in (repo / cluster / "backups").iterdir()) == [backup_id]
    outcomes = sorted(a["outcome"] for a in audit_records_local(repo, cluster))
    assert outcomes == ["failed", "ok"]


class HeldLocalBackup:
    """A backup into a local repository started in the background through a Gate, so that it
    can be caught mid-upload: ``wait_mid_upload()`` returns its partial file and module pid."""

    fast_bytes = 64 * 1024

    def __init__(self, ansible_runner, pg_server, gnupg_home, tmp_path, include_globals):
        self.gate = Gate(tmp_path, pg_server, self.fast_bytes)
        self.repo = tmp_path / "repo"
        self.cluster = _cluster()
        self.repository = {"type": "local", "path": str(self.repo)}
        self.backups = self.repo / self.cluster / "backups"
        self.background = start_backup(ansible_runner, _args(pg_server, self.cluster, self.repository, gnupg_home,
                                                             pg_bin_dir=str(self.gate.dir), globals=include_globals))
        self.leftovers = {}

    def wait_mid_upload(self):
        partial = wait_for(lambda: self.gate.passed.exists()
                           and sorted(self.backups.glob("*/.app.pgdump.zst.gpg.partial-*")),
                           "the partial file of app's dump", background=self.background)[0]
        module = wait_for(lambda: module_process(self.background), "the module process", background=self.background)
        self.leftovers = harness.process_tree(module[0])
        return partial, module[0]

    def close(self):
        self.gate.release()
        kill_leftovers(self.leftovers)
        self.background.kill()


# --------------------------------------------------------------------------- killed mid-upload


@pytest.mark.parametrize("include_globals", [
    pytest.param(True, id="with-globals"),
    pytest.param(False, id="database-only"),
])
def test_module_killed_mid_upload_local(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path,
                                        app_dump_bytes, include_globals):
    held = HeldLocalBackup(ansible_runner, pg_server, gnupg_home, tmp_path, include_globals)
    assert app_dump_bytes > 2 * held.fast_bytes
    repo, cluster, repository, backups = held.repo, held.cluster, held.repository, held.backups
    try:
        partial, module_pid = held.wait_mid_upload()
        leftovers = held.leftovers
        killed_dir = partial.parent
        assert any("gate_copy.py" in " ".join(argv) for argv in leftovers.values()), leftovers
        os.kill(module_pid, signal.SIGKILL)
        run = held.background.wait(timeout=60, expect_rc=2)
        assert run.stats["localhost"]["failures"] == 1
        wait_for(lambda: not pid_alive(module_pid), "the killed module to be gone", timeout=10)

        # Killed mid-upload: the partial file is there, no manifest anywhere.
        assert partial.exists()
        left = files_under(repo)
        assert not [f for f in left if f.endswith("manifest.json")], left
        # A grandchild of the killed module (the gate copier under the pg_dump wrapper, which
        # inherited what the module passed on) outlives it, and holds no descriptor of the lock.
        witness = [pid for pid, argv in leftovers.items() if "gate_copy.py" in " ".join(argv)]
        assert witness and all(pid_alive(pid) for pid in witness), leftovers
        lock_path = str(repo / cluster / "lock")
        for pid in leftovers:
            assert lock_path not in open_files(pid), "child %d %s holds the lock file open" % (pid, leftovers[pid])

        result, _run = run_backup(ansible_runner, _args(pg_server, cluster, repository, gnupg_home))
        assert result.get("stage") != "lock"
        backup_id = result["backup_id"]
        assert result["orphans_removed"] >= 1
        assert not [f for f in files_under(repo) if ".partial-" in f], files_under(repo)
        assert not killed_dir.exists(), "the killed backup's directory %s is left over: %s" % (
            killed_dir, files_under(killed_dir))
        assert sorted(p.name for p in backups.iterdir()) == [backup_id]
        assert (backups / backup_id / "manifest.json").is_file()
    finally:
        held.close()


@pytest.mark.parametrize("include_globals", [
    pytest.param(True, id="with-globals"),
    pytest.param(False, id="database-only"),
])
def test_module_terminated_mid_upload_cleans_up_itself(pg_server, pg_sample, gnupg_home, ansible_runner, tmp_path,
                                                       app_dump_bytes, include_globals):
    """SIGTERM (an Ansible async timeout, systemd stopping the unit): the module unwinds and cleans up."""
    held = HeldLocalBackup(ansible_runner, pg_server, gnupg_home, tmp_path, include_globals)
    assert app_dump_bytes > 2 * held.fast_bytes
    repo, cluster, repository, backups = held.repo, held.cluster, held.repository, held.backups
    try:
        partial, module_pid = held.wait_mid_upload()
        os.kill(module_pid, signal.SIGTERM)
        result = held.background.wait(timeout=60, expect_rc=2).task_result("backup")
    finally:
        held.close()
    assert result["stage"] == "interrupted", result
    assert "interrupted" in result["msg"], result["msg"]
    left = files_under(repo)
    assert not [f for f in left if "/backups/" in f], left
    assert not partial.exists()
    assert not partial.parent.exists(), "the interrupted backup's directory %s is left over" % partial.parent
    (audit,) = audit_records_local(repo, cluster)
    assert audit["outcome"] == "failed"

    result, _run = run_backup(ansible_runner, _args(pg_server, cluster, repository, gnupg_home))
    assert result["orphans_removed"] == 0
    assert sorted(p.name for p in backups.iterdir()) == [result["backup_id"]]


def test_module_killed_mid_upload_s3(pg_server, pg_sample, big_db, gnupg_home, s3_server, ansible_runner, tmp_path):
    gate = Gate(tmp_path, pg_server, 12 * MiB)   # more than one 8 MiB part, less than the dump
    bucket = _bucket(s3_server)
    cluster = _cluster()
    repository = s3_server.repository(bucket, prefix="pg")
    base = "pg/%s/" % cluster
    args = _args(pg_server, cluster, repository, databases=[big_db], pg_bin_dir=str(gate.dir),
                 compression={"algorithm": "none"}, encryption={"type": "none", "allow_unencrypted": True})
    background = start_backup(ansible_runner, args)
    leftovers = {}
    try:
        wait_for(lambda: gate.passed.exists() and s3_uploads(s3_server, bucket, base + "backups/"),
                 "a multipart upload of the big dump", background=background)
        module = wait_for(lambda: module_process(background), "the module process", background=background)
        leftovers = harness.process_tree(module[0])
        os.kill(module[0], signal.SIGKILL)
        background.wait(timeout=60, expect_rc=2)
        wait_for(lambda: not pid_alive(module[0]), "the killed module to be gone", timeout=10)

        # The killed run left its lock (holder: this host, the dead module's pid) and an
        # incomplete multipart upload and/or objects without a manifest.
        holder = json.loads(s3_get(s3_server, bucket, base + "lock"))
        assert holder["host"] == socket.gethostname() and holder["pid"] == module[0], holder
        keys = s3_keys(s3_server, bucket, base)
        assert not [k for k in keys if k.endswith("manifest.json")], keys
        uploads = s3_uploads(s3_server, bucket, base)
        orphans = [k for k in keys if k.startswith(base + "backups/")]
        assert uploads or orphans, keys

        result, _run = run_backup(ansible_runner, _args(pg_server, cluster, repository, gnupg_home))
        assert result["orphans_removed"] == len(uploads) + len(orphans), (result["orphans_removed"], uploads, orphans)
        assert s3_uploads(s3_server, bucket, base) == []
        keys = s3_keys(s3_server, bucket, base)
        backups = backup_ids_of(keys, base + "backups/")
        assert list(backups) == [result["backup_id"]], keys
        assert "manifest.json" in backups[result["backup_id"]]
        assert base + "lock" not in keys
    finally:
        gate.release()
        kill_leftovers(leftovers)
        background.kill()


# --------------------------------------------------------------------------- the S3 endpoint fails


@pytest.fixture
def fault_proxy(s3_server):
    with harness.FaultProxy(s3_server.endpoint_url) as proxy:
        yield proxy


def _assert_no_trace_of_backups(s3_server, bucket, base):
    keys = s3_keys(s3_server, bucket, base)
    assert not [k for k in keys if k.startswith(base + "backups/")], keys
    assert s3_uploads(s3_server, bucket, base) == []
    assert base + "lock" not in keys
    audits = [json.loads(s3_get(s3_server, bucket, k)) for k in keys if k.startswith(base + "audit/")]
    assert [a["outcome"] for a in audits] == ["failed"]


@pytest.mark.parametrize("shape", ["single-put", "multipart"])
def test_s3_object_puts_failing(pg_server, pg_sample, big_db, gnupg_home, s3_server, fault_proxy, ansible_runner,
                                shape):
    bucket = _bucket(s3_server)
    cluster = _cluster()
    base = "pg/%s/" % cluster
    if shape == "single-put":
        extra = {"encryption": _encryption(gnupg_home)}
    else:
        extra = {"databases": [big_db], "globals": False, "compression": {"algorithm": "none"},
                 "encryption": {"type": "none", "allow_unencrypted": True}}
    fault_proxy.add(harness.FaultRule("PUT", path=r"/backups/", status=500))
    proxied = s3_server.repository(bucket, prefix="pg", endpoint_url=fault_proxy.endpoint_url, retries=1)

    result, _run = run_backup(ansible_runner, _args(pg_server, cluster, proxied, **extra), expect_rc=2)
    assert result["stage"] == "storage", result
    assert "InternalError" in result["msg"] or "500" in result["msg"], result["msg"]
    faults = fault_proxy.faults()
    assert faults, fault_proxy.log
    if shape == "multipart":
        assert any("partNumber=" in query for _m, _p, query, _s, _f in faults), faults
    _assert_no_trace_of_backups(s3_server, bucket, base)

    direct = s3_server.repository(bucket, prefix="pg")
    result, _run = run_backup(ansible_runner, _args(pg_server, cluster, direct, gnupg_home))
    assert result["orphans_removed"] == 0
    assert s3_keys(s3_server, bucket, base + "backups/%s/manifest.json" % result["backup_id"])


def test_s3_slowdown_is_retried_and_checksums_hold(pg_server, pg_sample, gnupg_home, s3_server, fault_proxy,
                                                   ansible_runner):
    bucket = _bucket(s3_server)
    cluster = _cluster()
    base = "pg/%s/" % cluster
    rule = fault_proxy.add(harness.FaultRule("PUT", path=r"/backups/", status=503, times=2))
    proxied = s3_server.repository(bucket, prefix="pg", endpoint_url=fault_proxy.endpoint_url)

    result, _run = run_backup(ansible_runner, _args(pg_server, cluster, proxied, gnupg_home))
    assert rule.applied == 2, fault_proxy.log
    prefix = base + "backups/%s/" % result["backup_id"]
    manifest = json.loads(s3_get(s3_server, bucket, prefix + "manifest.json"))
    assert sorted(s3_keys(s3_server, bucket, prefix)) == sorted(
        [prefix + o["name"] for o in manifest["objects"]] + [prefix + "manifest.json"])
    for obj in manifest["objects"]:
        body = s3_get(s3_server, bucket, prefix + obj["name"])
        assert len(body) == obj["bytes"]
        assert hashlib.sha256(body).hexdigest() == obj["sha256"]


def test_s3_connection_reset_on_a_part_is_retried(pg_server, big_db, s3_server, fault_proxy, ansible_runner):
    bucket = _bucket(s3_server)
    cluster = _cluster()
    base = "pg/%s/" % cluster
    rule = fault_proxy.add(harness.FaultRule("PUT", path=r"/backups/", query="partNumber=", action="reset", nth=1))
    proxied = s3_server.repository(bucket, prefix="pg", endpoint_url=fault_proxy.endpoint_url)
    args = _args(pg_server, cluster, proxied, databases=[big_db], globals=False, compression={"algorithm": "none"},
                 encryption={"type": "none", "allow_unencrypted": True})

    result, _run = run_backup(ansible_runner, args)
    assert rule.applied == 1, fault_proxy.log
    prefix = base + "backups/%s/" % result["backup_id"]
    manifest = json.loads(s3_get(s3_server, bucket, prefix + "manifest.json"))
    (obj,) = manifest["objects"]
    assert obj["bytes"] > 8 * MiB
    body = s3_get(s3_server, bucket, prefix + obj["name"])
    assert hashlib.sha256(body).hexdigest() == obj["sha256"]
    assert s3_uploads(s3_server, bucket, base) == []


def test_s3_manifest_put_failing_removes_the_dumps(pg_server, pg_sample, gnupg_home, s3_server, fault_proxy,
                                                   ansible_runner):
    bucket = _bucket(s3_server)
    cluster = _cluster()
    base = "pg/%s/" % cluster
    rule = fault_proxy.add(harness.FaultRule("PUT", path=r"/manifest\.json$", status=500))
    proxied = s3_server.repository(bucket, prefix="pg", endpoint_url=fault_proxy.endpoint_url, retries=1)

    result, _run = run_backup(ansible_runner, _args(pg_server, cluster, proxied, gnupg_home), expect_rc=2)
    assert result["stage"] == "storage", result
    assert "manifest.json" in result["msg"], result["msg"]
    assert rule.applied >= 1
    # The dumps reached the bucket before the manifest failed, and were removed.
    stored = [p for m, p, _q, status, fault in fault_proxy.log if m == "PUT" and not fault and status == 200
              and "/backups/" in p]
    assert stored, fault_proxy.log
    _assert_no_trace_of_backups(s3_server, bucket, base)

    direct = s3_server.repository(bucket, prefix="pg")
    result, _run = run_backup(ansible_runner, _args(pg_server, cluster, direct, gnupg_home))
    assert result["orphans_removed"] == 0


# --------------------------------------------------------------------------- one backup per cluster


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_backups_of_one_cluster_never_run_at_once(pg_server, pg_sample, gnupg_home, s3_server, ansible_runner,
                                                      tmp_path, app_dump_bytes, kind):
    fast = 64 * 1024
    assert app_dump_bytes > 2 * fast
    gate = Gate(tmp_path, pg_server, fast)
    cluster = _cluster()
    if kind == "local":
        repository = {"type": "local", "path": str(tmp_path / "repo")}
    else:
        bucket = _bucket(s3_server)
        repository = s3_server.repository(bucket, prefix="pg")
    background = start_backup(ansible_runner, _args(pg_server, cluster, repository, gnupg_home,
                                                    pg_bin_dir=str(gate.dir)))
    try:
        wait_for(gate.passed.exists, "the first backup to stream", background=background)
        second, _run = run_backup(ansible_runner, _args(pg_server, cluster, repository, gnupg_home), expect_rc=2)
        assert second["stage"] == "lock", second
        assert "another operation holds the lock" in second["msg"], second["msg"]
        assert background.poll() is None, "the first backup must still be running"
        gate.release()
        first = background.wait(timeout=120).task_result("backup")
    finally:
        gate.release()
        background.kill()
    backup_id = first["backup_id"]
    if kind == "local":
        backups = tmp_path / "repo" / cluster / "backups"
        assert sorted(p.name for p in backups.iterdir()) == [backup_id]
        assert (backups / backup_id / "manifest.json").is_file()
        audits = [json.loads(p.read_text()) for p in (tmp_path / "repo" / cluster / "audit").rglob("*.json")]
    else:
        keys = s3_keys(s3_server, bucket, "pg/%s/" % cluster)
        assert list(backup_ids_of(keys, "pg/%s/backups/" % cluster)) == [backup_id]
        assert "pg/%s/backups/%s/manifest.json" % (cluster, backup_id) in keys
        assert "pg/%s/lock" % cluster not in keys
        audits = [json.loads(s3_server.client().get_object(Bucket=bucket, Key=k)["Body"].read())
                  for k in keys if "/audit/" in k]
    # The refused run is on record too.
    assert sorted(a["outcome"] for a in audits) == ["ok", "refused"]


# --------------------------------------------------------------------------- secrets


def _wrapped_tools(tmp_path, pg_server):
    """pg_bin_dir with logging pg_dump/pg_dumpall, a PATH dir with logging zstd/gpg, and the log dir."""
    logdir = tmp_path / "wrapper-logs"
    logdir.mkdir()
    pg_bin = tmp_path / "pg-bin"
    pg_bin.mkdir()
    path_dir = tmp_path / "path-bin"
    path_dir.mkdir()
    for tool in ("pg_dump", "pg_dumpall"):
        _logging_wrapper(pg_bin / tool, pg_server.bin_dir / tool, logdir)
    for tool in ("zstd", "gpg"):
        real = shutil.which(tool)
        assert real, tool
        _logging_wrapper(path_dir / tool, real, logdir)
    return pg_bin, path_dir, logdir


def test_secrets_stay_out_of_argv_results_logs_and_child_env(pg_server, pg_sample, gnupg_home, s3_server,
                                                             ansible_runner, tmp_path):
    pg_bin, path_dir, logdir = _wrapped_tools(tmp_path, pg_server)
    password = pg_server.password
    secret_key = "dbdr-secret-" + uuid.uuid4().hex
    bucket = _bucket(s3_server)
    cluster = _cluster()
    repository = s3_server.repository(bucket, prefix="pg", secret_key=secret_key)
    args = _args(pg_server, cluster, repository, gnupg_home, password=True, pg_bin_dir=str(pg_bin))
    controller_env = ansible_runner.env()
    environment = {"PATH": "%s:%s" % (path_dir, controller_env["PATH"])}
    ansible_log = tmp_path / "ansible.log"

    result, run = run_backup(ansible_runner, args, environment=environment, verbosity=4,
                             env={"ANSIBLE_LOG_PATH": str(ansible_log)})
    assert result["changed"] is True and result["backup_id"]
    invocation = result["invocation"]["module_args"]
    assert invocation["login_password"] == NO_LOG_MASK
    assert invocation["repository"]["secret_key"] == NO_LOG_MASK

    # Not in what ansible printed or logged, nor in its own argv.
    assert "-vvvv" in run.argv
    for name, text in (("stdout", run.stdout), ("stderr", run.stderr), ("ANSIBLE_LOG_PATH", ansible_log.read_text()),
                       ("argv", " ".join(run.argv))):
        assert password not in text, "the PostgreSQL password is in ansible's %s" % name
        assert secret_key not in text, "the S3 secret key is in ansible's %s" % name
    assert len(run.stderr) > 1000, "-vvvv should have produced a verbose log"

    calls = _wrapper_logs(logdir)
    tools = {tool for tool, _argv, _env in calls}
    assert tools == {"pg_dump", "pg_dumpall", "zstd", "gpg"}, tools
    for tool, argv, env in calls:
        joined = "\0".join(argv)
        assert password not in joined and secret_key not in joined, (tool, argv)
        for key, value in env.items():
            assert password not in value and secret_key not in value, (tool, key)
        if tool in ("zstd", "gpg"):
            # The streaming stages get an environment built from scratch; any other call may
            # at most inherit what the controller had (test_controller_secrets_... covers that).
            streaming = (tool == "zstd" and "-c" in argv) or (tool == "gpg" and "--encrypt" in argv)
            leaked = sorted(k for k in env if k.startswith(("PG", "AWS"))
                            and (streaming or k not in controller_env))
            assert not leaked, "%s got %s in its environment: %s" % (tool, leaked, argv)
    dumps = [env for tool, argv, env in calls if tool in ("pg_dump", "pg_dumpall") and "--version" not in argv]
    assert len(dumps) == 2, calls
    passfiles = set()
    for env in dumps:
        assert "PGPASSWORD" not in env
        assert env.get("PGPASSFILE"), sorted(env)
        passfiles.add(env["PGPASSFILE"])
    for passfile in passfiles:
        assert not os.path.exists(passfile), "the password file %s outlived the run" % passfile

    # The documents the backup wrote in clear text hold neither secret.
    keys = s3_keys(s3_server, bucket, "pg/%s/" % cluster)
    documents = [k for k in keys if k.endswith(".json")]
    assert any(k.endswith("/manifest.json") for k in documents) and any("/audit/" in k for k in documents), keys
    for key in documents:
        body = s3_get(s3_server, bucket, key).decode("utf-8")
        assert password not in body and secret_key not in body, key


def test_controller_secrets_in_the_task_environment_do_not_reach_children(pg_server, pg_sample, gnupg_home,
                                                                          ansible_runner, tmp_path):
    """PGPASSWORD / AWS_SECRET_ACCESS_KEY set for the task (a common way to hand them to modules)."""
    pg_bin, path_dir, logdir = _wrapped_tools(tmp_path, pg_server)
    pg_secret = "pg-env-secret-" + uuid.uuid4().hex
    aws_secret = "aws-env-secret-" + uuid.uuid4().hex
    environment = {"PATH": "%s:%s" % (path_dir, ansible_runner.env()["PATH"]),
                   "PGPASSWORD": pg_secret, "AWS_SECRET_ACCESS_KEY": aws_secret}
    args = _args(pg_server, _cluster(), {"type": "local", "path": str(tmp_path / "repo")}, gnupg_home,
                 pg_bin_dir=str(pg_bin))

    result, run = run_backup(ansible_runner, args, environment=environment, verbosity=4)
    assert result["backup_id"]
    calls = _wrapper_logs(logdir)
    assert {tool for tool, _argv, _env in calls} == {"pg_dump", "pg_dumpall", "zstd", "gpg"}

    def leaks(calls):
        return ["%s %s: %s" % (tool, " ".join(os.path.basename(a) for a in argv[-2:]),
                               ", ".join(sorted(k for k, v in env.items() if v in (pg_secret, aws_secret))))
                for tool, argv, env in calls if pg_secret in env.values() or aws_secret in env.values()]

    # The data path (the dump, compression, encryption) never sees them.
    streaming = [(tool, argv, env) for tool, argv, env in calls
                 if (tool in ("pg_dump", "pg_dumpall") and "--version" not in argv)
                 or (tool == "zstd" and "-c" in argv) or (tool == "gpg" and "--encrypt" in argv)]
    assert len(streaming) == 6, calls   # globals and app: dump, zstd, gpg each
    assert leaks(streaming) == []
    for tool, argv, _env in calls:
        assert pg_secret not in " ".join(argv) and aws_secret not in " ".join(argv), (tool, argv)
    # Nor does any other child (version probes, key look-ups).
    assert leaks(calls) == []


# --------------------------------------------------------------------------- bad credentials


def test_wrong_password_fails_at_connect_and_writes_nothing(pg_server, gnupg_home, ansible_runner, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    wrong = "wrong-" + uuid.uuid4().hex
    args = _args(pg_server, _cluster(), {"type": "local", "path": str(repo)}, gnupg_home, password=True)
    args["login_password"] = wrong

    result, run = run_backup(ansible_runner, args, expect_rc=2, verbosity=4)
    assert result["stage"] == "connect", result
    assert "authentication failed" in result["msg"], result["msg"]
    assert wrong not in run.stdout and wrong not in run.stderr
    assert files_under(repo) == []
    assert list(repo.iterdir()) == []
