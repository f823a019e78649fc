"""Endpoint services after an interrupted persist run, on a booted machine (systemd as PID 1).

A run killed (or whose daemon-reload failed) after it wrote a changed service unit leaves the file
as the next run wants it, but systemd still runs the old command. Here a bookworm lab machine gets
an endpoint service through the persist module; the changed unit file is then written as such a
run leaves it (no daemon-reload: systemd says NeedDaemonReload=yes), and the next run must reload
and restart, so that the new command runs; the run after that changes nothing. Everything runs
inside the lab machine (its own network namespace, its own systemd); the lab is destroyed after.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_persist_machine.py -q``
"""

from __future__ import annotations

import os
import subprocess
from typing import Callable

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _persist

from tests.lab import Lab, machine
from tests.lab.playbook import run_playbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab machines need root")

HOSTS = {"m1": "172.16.211.128"}
UNIT = "linuxnet-endpoint-web.service"
PATH = f"{_persist.UNIT_DIR}/{UNIT}"
PERSIST = """
- hosts: m1
  gather_facts: false
  tasks:
    - name: persist
      linuxnet.bridge.persist:
        networks: []
        endpoints: [{name: web, mode: none, service: {command: "{{ command }}", restart: always}}]
"""


def _ssh(lab: Lab, cmd: str, stdin: str | None = None) -> str:
    argv = machine.ssh_argv(lab.state_dir, lab.address("m1"), ["sh", "-c", cmd], become=True)
    res = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, f"{cmd}: {res.stderr}"
    return res.stdout.strip()


def _persist_run(lab: Lab, command: list[str]) -> dict:
    result = run_playbook(lab.inventory_path, PERSIST, extra_vars={"command": command}).assert_ok()
    return result.task("persist", "m1").result


def _files(result: dict) -> list[str]:
    """The files a run wrote or removed, but the engine's zip: it is built from the checkout, which
    may be edited while the test runs (its determinism is a unit test's)."""
    return [path for path in result["written"] + result["removed"] if path != _persist.BUNDLE]


def _running(lab: Lab) -> tuple[str, str]:
    """(MainPID, its command line) of the endpoint's service."""
    pid = _ssh(lab, f"systemctl show -p MainPID --value {UNIT}")
    return pid, _ssh(lab, f"tr '\\0' ' ' < /proc/{pid}/cmdline").strip()


def test_service_changed_by_an_interrupted_run_is_restarted(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(HOSTS, machines={"m1": "bookworm"})
    # The restore unit runs the engine, whose firewall step reads iptables (the role installs it).
    _ssh(lab, "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iptables >/dev/null")
    first = _persist_run(lab, ["sleep", "1001"])
    assert first["changed"] and first["installed"], first
    assert _ssh(lab, f"systemctl is-active {UNIT}") == "active"
    old_pid, cmdline = _running(lab)
    assert cmdline == "sleep 1001"

    # What a run changing the command to `sleep 1002` leaves when it is killed after writing the file.
    new = _persist.service_unit("web", _persist.endpoint_service(
        {"command": ["sleep", "1002"], "restart": "always"}, "service", "web", "none"))
    _ssh(lab, f"cat > {PATH}.tmp && mv {PATH}.tmp {PATH}", stdin=new)
    assert _ssh(lab, f"systemctl show -p NeedDaemonReload --value {UNIT}") == "yes"
    assert _running(lab) == (old_pid, "sleep 1001")

    second = _persist_run(lab, ["sleep", "1002"])
    assert _files(second) == [], second  # the unit file is as wanted: only NeedDaemonReload tells
    assert second["changed"] and second["commands"] == ["systemctl daemon-reload", f"systemctl restart {UNIT}"], second
    assert _ssh(lab, f"systemctl show -p NeedDaemonReload --value {UNIT}") == "no"
    pid, cmdline = _running(lab)
    assert pid != old_pid and cmdline == "sleep 1002"

    third = _persist_run(lab, ["sleep", "1002"])
    assert _files(third) == [] and third["commands"] == [], third
    assert _running(lab) == (pid, "sleep 1002")
