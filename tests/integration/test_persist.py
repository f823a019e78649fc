"""The boot-time restore against a real kernel, inside lab hosts: the role's engine as the zip
application the unit runs (``_persist.bundle``), on the state format the role saves, without Ansible.

Lab hosts have no systemd (private /run), so the role installs nothing there (proven here too); the
unit itself, with a reboot, is molecule/machine. Here the runner is started by hand as the unit
starts it: on a host the role converged it changes nothing; on a host the role tore down it rebuilds
the deployment (proven with packets), a second run changes nothing, and the role then finds nothing
to do. Nothing touches the machine's own network namespace.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_persist.py -q``
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _persist

from tests.integration.helpers import ADDR, HOST, HOSTS, OUTSIDE, Traffic, res, run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

REPO = Path(__file__).resolve().parents[2]
NETWORKS = [
    {"name": "bridge", "subnet": "172.17.0.0/16"},
    {"name": "usernet", "subnet": "172.18.0.0/16"},
]
ENDPOINTS = [
    {"name": "c1", "network": "bridge"},
    {"name": "web", "networks": [{"name": "bridge", "address": "172.17.0.5"}], "ports": [f"{ADDR}:81:80"]},
    {"name": "c3", "network": "usernet"},
]
# The role installs the boot-time restore in its one module run (linuxnet.bridge.deployment persist=true).
CONVERGE = "linuxnet.bridge.bridge_network : Converge networks and endpoints"


def site(run_playbook, lab, **extra):
    extra_vars = {"linuxnet_install_packages": False, "linuxnet_networks": NETWORKS, "linuxnet_endpoints": ENDPOINTS, **extra}
    result = run_playbook(lab.inventory_path, REPO / "playbooks" / "site.yml", extra_vars=extra_vars)
    result.assert_ok()
    return result


def restore(lab, bundle: Path, state: Path, *args: str) -> dict:
    """The runner as linuxnet-bridge.service runs it (with the lab's python, as the unit runs the host's python3)."""
    proc = lab.run(HOST, [sys.executable, str(bundle), "--state", str(state), *args], check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_restore_rebuilds_what_the_role_converged_and_is_idempotent(lab_factory, run_playbook, tmp_path):
    lab = lab_factory(HOSTS, groups={"linuxnet_hosts": [HOST], "linuxnet_probes": [OUTSIDE]})
    converged = site(run_playbook, lab)
    task = converged.task(CONVERGE, HOST).result
    persist = task["persist"]
    # No systemd in a lab host: nothing installed, said so, and nothing written on the shared filesystem.
    assert persist["installed"] is False and persist["changed"] is False, persist
    assert persist["written"] == persist["removed"] == persist["commands"] == [], persist
    assert any("does not run systemd" in w for w in task.get("warnings", [])), task
    assert not os.path.exists(_persist.LIB_DIR)

    # The state the role saves and the engine the unit runs.
    info = run(run_playbook, lab, {"name": "plan", "linuxnet.bridge.deployment_info": {
        "networks": NETWORKS, "endpoints": ENDPOINTS, "return_plan": "always"}, "register": "plan"})
    state = tmp_path / "state.json"
    options = {"chain_prefix": "LINUXNET", "firewall_backend": "iptables", "iptables_variant": "auto"}
    state.write_text(_persist.state_json(_persist.saved_state(res(info, "plan")["plan"], options)))
    bundle = tmp_path / "linuxnet-bridge.pyz"
    bundle.write_bytes(_persist.bundle(_persist.engine_sources()))

    # On the host the role converged: nothing to do.
    assert restore(lab, bundle, state) == {"changed": False, "check_mode": False, "commands": {}, "warnings": []}

    # "Reboot": the role removes everything; the restore alone rebuilds it.
    site(run_playbook, lab, linuxnet_state="absent")
    assert lab.run(HOST, ["ip", "netns", "list"]).stdout.strip() == ""
    predicted = restore(lab, bundle, state, "--check")
    assert predicted["changed"] and predicted["check_mode"]
    assert lab.run(HOST, ["ip", "netns", "list"]).stdout.strip() == ""  # check mode changed nothing
    rebuilt = restore(lab, bundle, state)
    assert rebuilt["changed"] and set(rebuilt["commands"]) == {"netns", "bridge", "veth", "firewall", "port_mapping"}
    assert rebuilt["commands"] == predicted["commands"]

    traffic = Traffic(lab, tmp_path)
    try:
        traffic.start(HOST, "web", tcp=(80,), udp=())
        traffic.expect(OUTSIDE, {(None, "tcp", ADDR, 81): True})  # the published port, from outside
        traffic.expect(HOST, {("c1", "tcp", "172.17.0.5", 80): True,  # same network
                              ("c3", "tcp", "172.17.0.5", 80): False})  # other network: isolated
    finally:
        traffic.stop()

    # Idempotent: a second run changes nothing, and the role finds the host as it describes it.
    assert restore(lab, bundle, state) == {"changed": False, "check_mode": False, "commands": {}, "warnings": []}
    again = run(run_playbook, lab, {"name": "again", "linuxnet.bridge.deployment_info": {
        "networks": NETWORKS, "endpoints": ENDPOINTS}, "register": "again"})
    assert res(again, "again")["pending"] == []
    site(run_playbook, lab, linuxnet_state="absent")


def test_broken_state_fails_with_the_reason(lab_factory, tmp_path):
    lab = lab_factory({HOST: ADDR})
    bundle = tmp_path / "linuxnet-bridge.pyz"
    bundle.write_bytes(_persist.bundle(_persist.engine_sources()))
    state = tmp_path / "state.json"
    state.write_text('{"format": 1, "plan": {}}')
    proc = lab.run(HOST, [sys.executable, str(bundle), "--state", str(state)], check=False, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"{state}: incomplete state (missing netns" in proc.stderr
