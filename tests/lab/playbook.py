"""Run ``ansible-playbook`` against a lab inventory and parse the per-task results.

The venv's ``ansible-playbook`` (next to ``sys.executable``) is used with
``ANSIBLE_CONFIG`` pointing at the repository's ``ansible.cfg`` and the
``ansible.posix.json`` stdout callback, so the outcome can be inspected as data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_CFG = REPO_ROOT / "ansible.cfg"

__all__ = ["PlaybookResult", "TaskResult", "ansible_env", "run_playbook"]


@dataclass
class TaskResult:
    """Result of one task on one host."""

    play: str
    task: str
    host: str
    result: dict[str, Any]

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed") or self.result.get("unreachable"))

    @property
    def skipped(self) -> bool:
        return bool(self.result.get("skipped"))


@dataclass
class PlaybookResult:
    """Outcome of :func:`run_playbook`."""

    rc: int
    stdout: str
    stderr: str
    data: dict[str, Any] | None
    tasks: list[TaskResult] = field(default_factory=list)

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return (self.data or {}).get("stats", {})

    def task(self, name: str, host: str | None = None) -> TaskResult:
        """The (last) result of the task called *name* (on *host*, if given)."""
        found = [t for t in self.tasks if t.task == name and (host is None or t.host == host)]
        if not found:
            raise KeyError(f"no result for task {name!r} host={host!r}; have {sorted({t.task for t in self.tasks})}")
        return found[-1]

    def changed_tasks(self) -> list[TaskResult]:
        return [t for t in self.tasks if t.changed]

    def assert_ok(self) -> PlaybookResult:
        """Raise AssertionError with the output if the run failed."""
        if self.rc != 0:
            raise AssertionError(f"ansible-playbook rc={self.rc}\nSTDOUT:\n{self.stdout}\nSTDERR:\n{self.stderr}")
        return self


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def ansible_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for running Ansible tools of the venv against the repo config."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    env["ANSIBLE_CONFIG"] = str(ANSIBLE_CFG)
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env.update(extra or {})
    return env


def run_playbook(
    inventory: str | os.PathLike[str],
    playbook: str | os.PathLike[str],
    extra_vars: Mapping[str, Any] | None = None,
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
    timeout: float = 300,
    extra_args: list[str] | None = None,
) -> PlaybookResult:
    """Run a playbook against *inventory*.

    *playbook* is a path, or YAML text (anything containing a newline) which is
    written to a temporary file first.
    """
    with tempfile.TemporaryDirectory(prefix="lab-playbook-") as tmp:
        if isinstance(playbook, str) and "\n" in playbook:
            pb_path = Path(tmp) / "playbook.yml"
            pb_path.write_text(playbook, encoding="utf-8")
        else:
            pb_path = Path(playbook)
        argv = [_bin("ansible-playbook"), "-i", str(inventory), str(pb_path)]
        if extra_vars:
            argv += ["--extra-vars", json.dumps(dict(extra_vars))]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if limit:
            argv += ["--limit", limit]
        argv += extra_args or []
        env = ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_LOCAL_TEMP": tmp})
        # stdin from /dev/null: ansible refuses a non-blocking stdin (as a background job may have).
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=timeout, check=False
        )
    data: dict[str, Any] | None
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{") :]) if "{" in proc.stdout else None
    except ValueError:
        data = None
    tasks: list[TaskResult] = []
    for play in (data or {}).get("plays", []):
        pname = play.get("play", {}).get("name", "")
        for task in play.get("tasks", []):
            tname = task.get("task", {}).get("name", "")
            for host, res in task.get("hosts", {}).items():
                tasks.append(TaskResult(pname, tname, host, res))
    return PlaybookResult(rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr, data=data, tasks=tasks)
