# Copyright: dbdr.backup maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-harness stdout callback: the whole run as one JSON document.

ansible-core ships no JSON callback (ansible.posix.json is not installed here), so the
test harness brings this small one.  Unlike the usual callbacks it keeps ``invocation``,
``warnings``, ``deprecations``, ``exception`` and ``diff`` in each result, because the
tests assert on them (for instance that no_log values are censored).

Output shape (similar to ansible.posix.json)::

    {"plays": [{"play": {"name": ...},
                "tasks": [{"task": {"name": ..., "action": ...},
                           "hosts": {"localhost": {...result..., "action": ...}}}]}],
     "stats": {"localhost": {"ok": 1, "changed": 0, ...}}}
"""

from __future__ import annotations

DOCUMENTATION = """
name: dbdr_json
type: stdout
short_description: JSON document of a whole run, for the dbdr.backup test harness
description:
  - Prints one JSON document with every task result, for tests to parse.
"""

import dataclasses
import datetime
import json
from collections.abc import Mapping

from ansible.plugins.callback import CallbackBase

try:
    from ansible.vars.clean import module_response_deepcopy, strip_internal_keys
except ImportError:  # pragma: no cover
    module_response_deepcopy = None
    strip_internal_keys = None


def _default(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (datetime.date, datetime.datetime, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return str(obj)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "dbdr_json"

    def __init__(self, display=None):
        super().__init__(display)
        self.results = []

    @staticmethod
    def _raw(result):
        res = getattr(result, "result", None)
        if res is None:
            res = result._result  # pylint: disable=protected-access
        return res

    def _clean(self, res):
        if strip_internal_keys is not None:
            res = strip_internal_keys(module_response_deepcopy(res))
        else:  # pragma: no cover
            res = {k: v for k, v in res.items() if not str(k).startswith("_ansible_")}
        # Round-trip through JSON so the document holds plain types only.
        return json.loads(json.dumps(res, default=_default))

    def v2_playbook_on_play_start(self, play):
        self.results.append({"play": {"name": play.get_name(), "id": str(play._uuid)}, "tasks": []})  # pylint: disable=protected-access

    def _new_task(self, task):
        return {"task": {"name": task.get_name(), "action": task.action, "id": str(task._uuid)}, "hosts": {}}  # pylint: disable=protected-access

    def v2_playbook_on_task_start(self, task, is_conditional):
        if not self.results:
            self.results.append({"play": {"name": "", "id": ""}, "tasks": []})
        self.results[-1]["tasks"].append(self._new_task(task))

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _record(self, result, **extra):
        host = result.host.get_name()
        task = result.task if hasattr(result, "task") else result._task  # pylint: disable=protected-access
        if not self.results or not self.results[-1]["tasks"]:
            self.v2_playbook_on_task_start(task, False)
        entry = self._clean(self._raw(result))
        entry["action"] = task.action
        entry.update(extra)
        self.results[-1]["tasks"][-1]["hosts"][host] = entry

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True, ignore_errors=bool(ignore_errors))

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed.keys())}
        output = {"plays": self.results, "stats": summary}
        self._display.display(json.dumps(output, indent=2, sort_keys=True, default=_default))

    # Ad hoc runs (`ansible host -m ...`) and playbooks end with on_stats too.
    v2_runner_on_async_failed = v2_runner_on_failed
    v2_runner_on_async_ok = v2_runner_on_ok
