# -*- coding: utf-8 -*-
# Minimal JSON stdout callback for benchmarks/backup_bench.sh.
# ansible-core has no built-in json callback (it lives in ansible.posix, which is not a
# dependency of this collection), so the benchmark ships this one: it prints one JSON
# document {"plays": [{"tasks": [{"task": {...}, "hosts": {host: result}}]}], "stats": {...}}
# with the same shape as ansible.posix.json.
from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_json
type: stdout
short_description: JSON output for the dbdr.backup benchmark
description: Prints the whole run as one JSON document when the playbook ends.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "bench_json"

    def __init__(self, display=None):
        super().__init__(display)
        self.results = []

    def v2_playbook_on_play_start(self, play):
        self.results.append({"play": {"name": play.get_name()}, "tasks": []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.results[-1]["tasks"].append(
            {"task": {"name": task.get_name(), "action": task.action}, "hosts": {}})

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _record(self, result, **extra):
        res = dict(result._result)
        res.update(extra)
        res.setdefault("action", result._task.action)
        tasks = self.results[-1]["tasks"] if self.results else []
        if tasks:
            tasks[-1]["hosts"][result._host.get_name()] = res

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._record(result, unreachable=True)

    def v2_runner_on_skipped(self, result, **kwargs):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        out = {"plays": self.results,
               "stats": {h: stats.summarize(h) for h in sorted(stats.processed)}}
        self._display.display(json.dumps(out, default=str, sort_keys=True))
