"""Shared pytest fixtures: sandboxed lab factory, playbook runner, real-netns guard.

* ``lab_factory(hosts, groups=None, python_interpreter=None, machines=None)`` creates a
  :class:`tests.lab.Lab` under the test's tmp dir (``python_interpreter``: the hosts'
  ``ansible_python_interpreter``, default the controller's; ``machines``: hosts booted as
  Debian machines, name -> suite); every lab (even half-created ones) is destroyed at teardown,
  also when the test failed.
* ``run_playbook`` is :func:`tests.lab.playbook.run_playbook`.
* ``real_netns_guard`` (session) snapshots the machine's real network namespace
  before the first lab is made and fails the session if it changed at the end.
* With ``LINUXNET_STRICT_SKIPS=1`` (``make test`` sets it) a skipped test fails the session unless
  its reason is one of :data:`EXPECTED_SKIPS`: a skip is never counted as a pass by accident
  (running the integration tests without root, a tool bootstrap did not install).

It also puts ``.collections`` (where ``make`` links the checkout as ``linuxnet.bridge``) first on
``sys.path``, so that every test imports the collection as ``ansible_collections.linuxnet.bridge``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import pytest

from tests import guard
from tests.lab.core import Lab, destroy_state_dir
from tests.lab.playbook import run_playbook as _run_playbook

_COLLECTIONS = str(Path(__file__).resolve().parents[1] / ".collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)


#: the only skips ``make test`` accepts (a text their reason contains): tests run by another target
EXPECTED_SKIPS = (
    "run it with `make test-vm`",  # the QEMU VM test (minutes under TCG)
    "shared/reference/anchors-rulesets.md is not on this machine",  # beside the repository, not in a clone
)
_unexpected_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and os.environ.get("LINUXNET_STRICT_SKIPS") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(expected in reason for expected in EXPECTED_SKIPS):
            _unexpected_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected_skips:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _unexpected_skips:
        terminalreporter.write_line("LINUXNET_STRICT_SKIPS: these tests were skipped, make test must run them:", red=True)
        for line in _unexpected_skips:
            terminalreporter.write_line(f"  {line}", red=True)


@pytest.fixture(scope="session")
def real_netns_guard() -> Iterator[dict[str, Any]]:
    """Snapshot of the real network namespace; asserts it is unchanged at session end."""
    before = guard.snapshot()
    yield before
    changes = guard.diff(before, guard.snapshot())
    assert not changes, "tests changed the REAL network namespace:\n" + "\n".join(changes)


@pytest.fixture
def lab_factory(
    tmp_path_factory: pytest.TempPathFactory, real_netns_guard: dict[str, Any]
) -> Iterator[Callable[..., Lab]]:
    """Factory ``make(hosts, groups=None, python_interpreter=None) -> Lab``; all labs are destroyed at teardown."""
    state_dirs: list[Path] = []
    labs: list[Lab] = []

    def make(hosts: Mapping[str, str], groups: Mapping[str, Iterable[str]] | None = None,
             python_interpreter: str | None = None, machines: Mapping[str, str] | None = None) -> Lab:
        state_dir = tmp_path_factory.mktemp("lab") / "state"
        state_dirs.append(state_dir)
        lab = Lab.create(state_dir, hosts, groups, python_interpreter=python_interpreter, machines=machines)
        labs.append(lab)
        return lab

    yield make
    errors: list[BaseException] = []
    for lab in reversed(labs):
        try:
            lab.destroy()
        except Exception as exc:  # keep tearing down the others
            errors.append(exc)
    for state_dir in state_dirs:  # also covers labs whose create() raised
        try:
            destroy_state_dir(state_dir)
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def run_playbook() -> Callable[..., Any]:
    """``run_playbook(inventory, playbook_path_or_yaml, extra_vars=None, check=False, diff=False)``."""
    return _run_playbook
