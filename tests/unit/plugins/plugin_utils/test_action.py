"""The collection's action plugins: Ansible's module action with the garbage collector collecting less
often (issue 17).

Every module has an action of its own name, and each is :class:`ModuleAction`: the payload build and
the module run happen with CPython's cyclic collector at :data:`THRESHOLDS`, and the worker's own
thresholds are back afterwards (also when the action raises). What it saves is measured by
``tests.bench.timeline`` (the payload's build phase), not here.
"""

from __future__ import annotations

import gc
import importlib
from pathlib import Path

import pytest
from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.linuxnet.bridge.plugins.plugin_utils._action import THRESHOLDS, ModuleAction

PLUGINS = Path(__file__).resolve().parents[4] / "plugins"


def test_every_module_has_the_action() -> None:
    modules = sorted(path.stem for path in (PLUGINS / "modules").glob("*.py") if path.stem != "__init__")
    actions = sorted(path.stem for path in (PLUGINS / "action").glob("*.py") if path.stem != "__init__")
    assert modules == actions
    for name in actions:
        action = importlib.import_module(f"ansible_collections.linuxnet.bridge.plugins.action.{name}").ActionModule
        assert issubclass(action, ModuleAction) and issubclass(action, NormalAction), name


def _action() -> ModuleAction:
    return ModuleAction.__new__(ModuleAction)  # (run() is all this test calls; the parent's is replaced)


def test_the_collector_collects_less_often_while_the_module_action_runs(monkeypatch) -> None:
    seen = []

    def parent_run(self, tmp=None, task_vars=None):
        seen.append((gc.get_threshold(), gc.isenabled(), tmp, task_vars))
        return {"changed": False}

    monkeypatch.setattr(NormalAction, "run", parent_run)
    before = gc.get_threshold()
    assert before != THRESHOLDS
    assert _action().run(None, {"x": 1}) == {"changed": False}
    assert seen == [(THRESHOLDS, True, None, {"x": 1})]  # collecting, only less often
    assert gc.get_threshold() == before


def test_the_thresholds_are_back_when_the_action_raises(monkeypatch) -> None:
    def parent_run(self, tmp=None, task_vars=None):
        assert gc.get_threshold() == THRESHOLDS
        raise RuntimeError("the module failed")

    monkeypatch.setattr(NormalAction, "run", parent_run)
    before = gc.get_threshold()
    with pytest.raises(RuntimeError, match="the module failed"):
        _action().run()
    assert gc.get_threshold() == before
