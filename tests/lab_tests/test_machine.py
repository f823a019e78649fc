"""Booted lab machines (``tests/lab/machine.py``): a real host over SSH, reboots, clean teardown.

Needs root. The Debian 12 image is built on first use (about a minute) and cached.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.lab import Lab
from tests.lab import machine
from tests.lab.core import _alive, find_lab_processes

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

HOSTS = {"m1": "172.16.211.128", "outside": "172.16.211.1"}


def _ssh(lab: Lab, cmd: str, become: bool = True) -> subprocess.CompletedProcess[str]:
    argv = machine.ssh_argv(lab.state_dir, lab.address("m1"), ["sh", "-c", cmd], become=become)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_machine_is_a_real_host_and_reboots(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(HOSTS, machines={"m1": "bookworm"})
    # A host of its own: systemd as PID 1, its distro python, an unprivileged login with sudo.
    res = _ssh(lab, "id -un; ps -p 1 -o comm=; python3 -c 'import sys; print(sys.version_info[:2])'; hostname", become=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:4] == ["ansible", "systemd", "(3, 11)", "m1"]
    assert _ssh(lab, "id -u").stdout.strip() == "0"
    # Nothing of the controller: no pyroute2, no iptables until something installs them.
    assert _ssh(lab, "python3 -c 'import pyroute2'").returncode != 0
    assert _ssh(lab, "command -v iptables").returncode != 0
    # The lab LAN works both ways; nothing else is reachable.
    assert _ssh(lab, "ping -c1 -W2 172.16.211.1").returncode == 0
    assert lab.run("outside", ["ping", "-c1", "-W2", "172.16.211.128"]).returncode == 0
    assert _ssh(lab, "ip -j route show default").stdout.strip() == "[]"
    # The local repository offers what the role installs, and python3-pyroute2 (which the role must leave out:
    # molecule/matrix and molecule/machine check that it does).
    res = _ssh(lab, "apt-get update -q >/dev/null && apt-cache policy python3-pyroute2 iptables nftables")
    assert res.returncode == 0, res.stderr
    assert "file:/srv/linuxnet-repo" in res.stdout and "(none)" in res.stdout
    # State before the reboot: a link, a sysctl, a file.
    setup = "ip link add lab-br0 type bridge && sysctl -qw net.ipv4.ip_forward=1 && echo kept > /var/tmp/lab-file"
    assert _ssh(lab, setup).returncode == 0, setup
    boot_id = _ssh(lab, "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    init_before = lab.machine_init_pid("m1")
    # Reboot a second from now, so that this SSH session ends cleanly first.
    assert _ssh(lab, "systemd-run --quiet --on-active=1 systemctl reboot").returncode == 0
    deadline = time.monotonic() + 90
    while _ssh(lab, "cat /proc/sys/kernel/random/boot_id").stdout.strip() in (boot_id, ""):
        assert time.monotonic() < deadline, "the machine did not come back with a new boot id"
        assert _supervisor(lab).poll() is None, "the supervisor ended instead of restarting the machine"
        time.sleep(0.5)
    after = _ssh(lab, "cat /proc/sys/kernel/random/boot_id; ip -j link show; cat /proc/sys/net/ipv4/ip_forward; cat /var/tmp/lab-file")
    lines = after.stdout.split("\n")
    assert lines[0] != boot_id, "no new boot"
    assert "lab-br0" not in {link["ifname"] for link in json.loads(lines[1])}
    assert lines[2:4] == ["0", "kept"]
    assert lab.machine_init_pid("m1") != init_before
    # destroy ends every process of the machine and removes its overlay.
    pids = find_lab_processes(lab.marker)
    init = lab.machine_init_pid("m1")
    assert init in pids
    lab.destroy()
    assert not [p for p in pids if _alive(p)]
    assert not (lab.state_dir / machine.MACHINES_DIR).exists()


def _supervisor(lab: Lab) -> "subprocess.Popen[bytes]":
    return next(p for p in lab._popens if p.pid == lab.pid("m1"))


def test_machine_image_has_no_registry(lab_factory: Callable[..., Lab], tmp_path: Path) -> None:
    lab = lab_factory({"m1": "172.16.211.130"}, machines={"m1": "bookworm"})
    res = lab.run("m1", ["sh", "-c", "cat /etc/apt/sources.list.d/*; ls /etc/apt/sources.list 2>/dev/null; true"])
    assert res.stdout.strip() == "deb [trusted=yes] file:/srv/linuxnet-repo ./"
