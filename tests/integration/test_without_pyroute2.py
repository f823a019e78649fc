"""The role on managed hosts whose Python has no pyroute2 at all (the modules speak netlink themselves).

Every other test runs the modules with the controller's venv, which holds pyroute2 (a dev
requirement: unit tests cross-check our netlink encoders with it). Here the lab host's
``ansible_python_interpreter`` is a bare venv (no package beyond pip) of the Python that Debian 11,
12 and 13 ship, under ``.cache/managed-python/<python>/`` (made once, then reused); one more run
has Debian 11's old pyroute2 0.5.14 installed, to show its presence does not matter either.
``playbooks/site.yml`` runs there: build, a re-run that must change nothing, real traffic, then
``linuxnet_state: absent``.

The venv uses that Python when this machine has it (pyenv or PATH), else the controller's.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_without_pyroute2.py -q``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers_role import MANAGED_PYTHONS, base_python, managed_python

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "playbooks" / "site.yml"
HOST = "linuxnet1"
ADDR = "172.16.211.128"
CONVERGE = "linuxnet.bridge.bridge_network : Converge networks and endpoints"  # linuxnet.bridge.deployment

# What the modules must not import: checked on the host, with the interpreter and environment Ansible used.
PROBE = """
- hosts: linuxnet_hosts
  gather_facts: false
  tasks:
    - name: Probe pyroute2
      ansible.builtin.command:
        argv:
          - "{{ ansible_python_interpreter }}"
          - "-c"
          - "import importlib.util, sys; print('%d.%d' % sys.version_info[:2]); print(importlib.util.find_spec('pyroute2') is not None)"
      changed_when: false
"""

NETWORKS = [
    {"name": "bridge", "subnet": "172.17.0.0/16"},
    {"name": "usernet", "subnet": "172.18.0.0/16", "mtu": 1400},
]
ENDPOINTS = [
    {"name": "c1", "network": "bridge"},
    {"name": "c2", "network": "bridge"},
    {"name": "web", "networks": [{"name": "bridge", "address": "172.17.0.5"}], "ports": [f"{ADDR}:81:80"]},
    {"name": "u1", "networks": ["usernet", "bridge"], "dns": {"nameservers": ["192.0.2.53"]}},
    {"name": "u2", "network": "usernet"},
]

# One connection through the published port: a one-shot listener in `web`, a client on the host.
LISTENER = (
    "import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
    " s.bind(('0.0.0.0', 80)); s.listen(1); c, peer = s.accept(); c.sendall(b'hello from web'); c.close()"
)
CLIENT = (
    "import socket, sys, time\n"
    "for _ in range(50):\n"
    "    try:\n"
    f"        c = socket.create_connection(('{ADDR}', 81), timeout=2)\n"
    "    except OSError:\n"
    "        time.sleep(0.1)\n"
    "        continue\n"
    "    sys.stdout.write(c.recv(100).decode()); break\n"
)


def site(run_playbook, lab, **extra):
    extra_vars = {"linuxnet_install_packages": False, "linuxnet_networks": NETWORKS, "linuxnet_endpoints": ENDPOINTS,
                  **extra}
    result = run_playbook(lab.inventory_path, SITE, extra_vars=extra_vars)
    failed = [t for t in result.tasks if t.failed]
    assert not failed, f"task {failed[0].task} failed: {json.dumps(failed[0].result, indent=1)[:3000]}"
    result.assert_ok()
    return result


def sh(lab, script: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return lab.run(HOST, ["sh", "-c", script], check=check, timeout=timeout)


def addrs(lab, netns: str) -> dict[str, list[str]]:
    out = json.loads(lab.run(HOST, ["ip", "-n", netns, "-j", "-4", "addr", "show"]).stdout)
    return {e["ifname"]: [f"{a['local']}/{a['prefixlen']}" for a in e["addr_info"]] for e in out if e["ifname"] != "lo"}


def pings(lab, netns: str, address: str) -> bool:
    return sh(lab, f"ip netns exec {netns} ping -n -c1 -W2 {address}", check=False).returncode == 0


@pytest.mark.parametrize("host", sorted(MANAGED_PYTHONS))
def test_role_without_pyroute2(host, lab_factory, run_playbook):
    python = managed_python(host)
    lab = lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]}, python_interpreter=str(python))
    assert lab.inventory()["all"]["hosts"][HOST]["ansible_python_interpreter"] == str(python)
    # As Ansible runs it on the host: that Python, and pyroute2 absent (or present only where MANAGED_PYTHONS says so)
    probe = run_playbook(lab.inventory_path, PROBE)
    probe.assert_ok()
    version, has_pyroute2 = probe.task("Probe pyroute2", HOST).result["stdout_lines"]
    assert has_pyroute2 == str(MANAGED_PYTHONS[host] is not None), (host, version)
    if base_python(host.split("-")[0]) != sys.executable:
        assert version == host.split("-")[0]

    first = site(run_playbook, lab)
    assert first.task(CONVERGE, HOST).result["changed_steps"] == ["netns", "bridge", "veth", "firewall", "port_mapping"]
    assert addrs(lab, "c1") == {"eth0": ["172.17.0.2/16"]}
    assert addrs(lab, "web") == {"eth0": ["172.17.0.5/16"]}
    assert addrs(lab, "u1") == {"eth0": ["172.18.0.2/16"], "eth1": ["172.17.0.4/16"]}
    mtu = json.loads(lab.run(HOST, ["ip", "-n", "u2", "-j", "link", "show", "eth0"]).stdout)[0]["mtu"]
    assert mtu == 1400

    again = site(run_playbook, lab)
    assert [t.task for t in again.changed_tasks()] == []
    assert again.task(CONVERGE, HOST).result["changed_steps"] == []
    assert again.stats[HOST]["changed"] == 0

    assert pings(lab, "c1", "172.17.0.3")  # same network
    assert pings(lab, "u2", "172.18.0.2")  # same network
    assert not pings(lab, "u2", "172.17.0.2")  # different networks: isolated
    served = sh(lab, f"ip netns exec web timeout 20 {python} -c \"{LISTENER}\" & "
                     f"{python} -c \"{CLIENT}\"; wait", check=False)
    assert served.stdout == "hello from web", served

    gone = site(run_playbook, lab, linuxnet_state="absent")
    assert gone.stats[HOST]["changed"] > 0
    assert json.loads(lab.run(HOST, ["ip", "-j", "netns", "list"]).stdout or "[]") == []
    assert "LINUXNET" not in sh(lab, "iptables-save").stdout


def test_modules_without_root_fail_with_one_message(lab_factory):
    """A connection that is not root (no become) gets told so, not a netlink EPERM traceback."""
    lab = lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]})
    for module in ("netns", "bridge", "veth", "firewall", "port_mapping", "deployment_info", "deployment"):
        params = {} if module.startswith("deployment") else {"state": "gathered"}
        args = json.dumps({"ANSIBLE_MODULE_ARGS": {**params, "_ansible_module_name": f"linuxnet.bridge.{module}"}})
        # the module reads its arguments from stdin, run as nobody with no capabilities
        run = lab.run(HOST, ["env", f"PYTHONPATH={REPO / '.collections'}", "setpriv", "--reuid=65534", "--regid=65534",
                             "--clear-groups", sys.executable, str(REPO / "plugins" / "modules" / f"{module}.py")],
                      check=False, input=args)
        result = json.loads(run.stdout)
        assert result["failed"] and "Traceback" not in run.stdout + run.stderr, run
        assert result["msg"] == (f"linuxnet.bridge.{module} needs root on the managed host: it runs as nobody (uid 65534)"
                                 " without CAP_NET_ADMIN. Set `become: true` on the play, role or task.")
