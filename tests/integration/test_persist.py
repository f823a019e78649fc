"""The boot-time restore against a real kernel, inside lab hosts: the role's engine as the zip
application the unit runs (``_persist.bundle``), on the state format the role saves, without Ansible.

Lab hosts have no systemd (private /run), so the role installs nothing there (proven here too); the
unit itself, with a reboot, is molecule/machine. Here the runner is started by hand as the unit
starts it: on a host the role converged it changes nothing; on a host the role tore down it rebuilds
the deployment (proven with packets), a second run changes nothing, and the role then finds nothing
to do. Nothing touches the machine's own network namespace.

One test boots a Debian 13 machine (``tests/lab/machine.py``, systemd 257) and kills the role's run
between the changed unit file of an endpoint service and its daemon-reload (about a minute).

Run (root): ``.venv/bin/python -m pytest tests/integration/test_persist.py -q``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _persist, _zipimport

from tests.integration.helpers import ADDR, HOST, HOSTS, OUTSIDE, Traffic, res, run, sh

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


PYCACHE = """
import json, os, stat, sys
d = sys.argv[1]
out = {"dir": oct(stat.S_IMODE(os.lstat(d).st_mode))} if os.path.isdir(d) else {}
for name in sorted(os.listdir(d)) if out else []:
    st = os.lstat(os.path.join(d, name))
    out[name] = [oct(stat.S_IMODE(st.st_mode)), st.st_ino, st.st_mtime_ns]
print(json.dumps(out))
"""
UTILS = "ansible_collections.linuxnet.bridge.plugins.module_utils."
MODULES = "ansible_collections.linuxnet.bridge.plugins.modules."


def pycache(lab) -> dict:
    """The lab host's bytecode cache (``_zipimport.CACHE_DIR``): name -> [mode, inode, mtime]."""
    return json.loads(lab.run(HOST, [sys.executable, "-c", PYCACHE, _zipimport.CACHE_DIR]).stdout)


def test_module_runs_and_the_restore_share_one_bytecode_cache(lab_factory, run_playbook, tmp_path):
    """The collection's code, and Ansible's module_utils its payload ships, are compiled once per host,
    not once per run (issue 17): the first module run (AnsiballZ) fills the cache, root's alone (a
    check-mode run before it writes nothing); the re-run and check mode read it and write nothing;
    another module adds only its own file, the boot-time restore (a zip application of the same
    sources) only its runner, and their second runs write nothing."""
    lab = lab_factory(HOSTS, groups={"linuxnet_hosts": [HOST], "linuxnet_probes": [OUTSIDE]})
    check = {"linuxnet_install_packages": False, "linuxnet_networks": NETWORKS, "linuxnet_endpoints": ENDPOINTS}
    run_playbook(lab.inventory_path, REPO / "playbooks" / "site.yml", check=True, extra_vars=check).assert_ok()
    assert pycache(lab) == {}  # check mode writes nothing, not even the cache
    site(run_playbook, lab)
    first = pycache(lab)
    assert first.pop("dir") == "0o700" and {entry[0] for entry in first.values()} == {"0o600"}, first
    modules = {name.rpartition("-")[0].rpartition("-")[0] for name in first}
    assert {UTILS + "_deployment", UTILS + "_firewall", UTILS + "_rtnl", UTILS + "_persist", MODULES + "deployment",
            "ansible.module_utils.basic"} <= modules, modules  # (Ansible's: through the payload's prelude)
    assert len(modules) == len(first)  # one entry per module
    site(run_playbook, lab)
    run_playbook(lab.inventory_path, REPO / "playbooks" / "site.yml", check=True, extra_vars=check).assert_ok()
    assert pycache(lab) == {"dir": "0o700", **first}
    bundle = tmp_path / "linuxnet-bridge.pyz"
    bundle.write_bytes(_persist.bundle(_persist.engine_sources()))
    state = tmp_path / "state.json"
    info = run(run_playbook, lab, {"name": "plan", "linuxnet.bridge.deployment_info": {
        "networks": NETWORKS, "endpoints": ENDPOINTS, "return_plan": "always"}, "register": "plan"})
    options = {"chain_prefix": "LINUXNET", "firewall_backend": "iptables", "iptables_variant": "auto"}
    state.write_text(_persist.state_json(_persist.saved_state(res(info, "plan")["plan"], options)))
    assert restore(lab, bundle, state)["changed"] is False
    restored = pycache(lab)
    assert {name: restored[name] for name in first} == first
    added = {name.rpartition("-")[0].rpartition("-")[0] for name in set(restored) - set(first) - {"dir"}}
    assert {name for name in added if not name.startswith("ansible.")} == {UTILS + "_restore", MODULES + "deployment_info"}, added
    assert restore(lab, bundle, state)["changed"] is False
    assert pycache(lab) == restored
    site(run_playbook, lab, linuxnet_state="absent")


PLANT = """
import hashlib, marshal, os, sys
from importlib.util import MAGIC_NUMBER
cache, source_file, marker = sys.argv[1:]
source = open(source_file, "rb").read()
digest = hashlib.sha256(source).digest()
entries = [name for name in os.listdir(cache) if name.startswith("ansible.module_utils.basic-")]
assert entries == [f"ansible.module_utils.basic-{digest.hex()[:32]}.{sys.implementation.cache_tag}.pyc"], entries
code = compile(source + f"\\nopen({marker!r}, 'w').close()\\n".encode(), source_file, "exec")
with open(os.path.join(cache, entries[0]), "wb") as out:
    out.write(MAGIC_NUMBER + digest + marshal.dumps(code))
"""


def test_ansible_module_utils_run_from_the_hosts_bytecode_cache(lab_factory, run_playbook):
    """What a module process takes from the cache is what runs, Ansible's ``basic`` included, which
    the payload's wrapper imports before the module's code: an entry for ``basic`` whose code also
    creates a file (the same source, so the same key) is run by the next module run, in check mode
    too (which reads the cache and writes nothing)."""
    # the controller's basic: what the payload ships
    import ansible.module_utils.basic  # pylint: disable=import-outside-toplevel

    lab = lab_factory({HOST: ADDR})
    task = {"name": "ns", "linuxnet.bridge.netns": {"config": [{"name": "pc1"}]}}
    run(run_playbook, lab, task)
    marker = "/run/linuxnet-test-basic-from-cache"
    lab.run(HOST, [sys.executable, "-c", PLANT, _zipimport.CACHE_DIR, ansible.module_utils.basic.__file__, marker])
    assert sh(lab, f"test -e {marker}", check=False).returncode == 1
    before = pycache(lab)
    assert res(run(run_playbook, lab, task, check=True), "ns")["changed"] is False
    assert sh(lab, f"test -e {marker}", check=False).returncode == 0
    assert pycache(lab) == before


def test_broken_state_fails_with_the_reason(lab_factory, tmp_path):
    lab = lab_factory({HOST: ADDR})
    bundle = tmp_path / "linuxnet-bridge.pyz"
    bundle.write_bytes(_persist.bundle(_persist.engine_sources()))
    state = tmp_path / "state.json"
    state.write_text('{"format": 1, "plan": {}}')
    proc = lab.run(HOST, [sys.executable, str(bundle), "--state", str(state)], check=False, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"{state}: incomplete state (missing netns" in proc.stderr


# -- a run killed between its unit files and its systemctl steps, on a booted machine ------------------
MACHINE = "m1"
MACHINE_ADDR = "172.16.211.128"
SERVICE_UNIT = "linuxnet-endpoint-web.service"
# The run's own code writes the record and the changed unit file; this systemctl (first in sudo's
# secure_path) then SIGKILLs the module where its daemon-reload would start, and removes itself.
KILLING_SYSTEMCTL = """#!/bin/sh
if [ "$1" = daemon-reload ]; then rm -f "$0"; kill -9 "$PPID"; exit 1; fi
exec /usr/bin/systemctl "$@"
"""


def _machine_sh(lab, cmd: str) -> str:
    from tests.lab import machine

    argv = machine.ssh_argv(lab.state_dir, lab.address(MACHINE), ["sh", "-c", cmd])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc.stdout


def _running(lab) -> dict:
    """The endpoint service as systemd has it and the process it runs (argv, network namespace)."""
    out = _machine_sh(lab, f"""
        pid=$(systemctl show -p MainPID --value {SERVICE_UNIT})
        echo "pid=$pid"
        echo "argv=$(tr '\\0' ' ' < /proc/$pid/cmdline)"
        echo "netns=$(readlink /proc/$pid/ns/net)"
        echo "web=net:[$(stat -L -c %i /run/netns/web)]"
        echo "exec=$(systemctl show -p ExecStart --value {SERVICE_UNIT})"
        echo "file=$(grep ^ExecStart= /etc/systemd/system/{SERVICE_UNIT})"
        echo "pending=$(cat {_persist.PENDING_FILE} 2>/dev/null)"
    """)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_killed_run_leaves_a_debt_the_next_run_pays_on_a_booted_machine(lab_factory, run_playbook):
    """The role's run SIGKILLed after writing the changed unit of web's service (and its record of what
    it owes) but before daemon-reload: the old command keeps running and the files are as wanted. The
    next run (check mode first) reloads and restarts, so the new command runs in the endpoint; the one
    after changes nothing. Debian 13: systemd 257, whose NeedDaemonReload would restart on every run."""
    lab = lab_factory({MACHINE: MACHINE_ADDR}, groups={"linuxnet_hosts": [MACHINE]}, machines={MACHINE: "trixie"})
    networks = [{"name": "bridge", "subnet": "172.17.0.0/16"}]

    def site_run(seconds: str, check: bool = False, **extra):
        endpoints = [{"name": "web", "network": "bridge", "service": {"command": ["/bin/sleep", seconds]}}]
        extra_vars = {"linuxnet_install_packages": False, "linuxnet_persist": True, "linuxnet_networks": networks,
                      "linuxnet_endpoints": endpoints, **extra}
        return run_playbook(lab.inventory_path, REPO / "playbooks" / "site.yml", extra_vars=extra_vars, check=check)

    site_run("1001", linuxnet_install_packages=True).assert_ok()
    old = _running(lab)
    assert old["argv"] == "/bin/sleep 1001 " and old["netns"] == old["web"] and old["pending"] == "", old

    _machine_sh(lab, f"cat > /usr/local/sbin/systemctl <<'EOF'\n{KILLING_SYSTEMCTL}EOF\nchmod 755 /usr/local/sbin/systemctl")
    killed = site_run("1002")
    assert killed.rc != 0 and killed.task(CONVERGE, MACHINE).failed, killed.stdout[-3000:]
    left = _running(lab)
    # What a killed run leaves: the new file, the record, the old command still running.
    assert left["file"] == 'ExecStart="/bin/sleep" "1002"' and left["pid"] == old["pid"], left
    assert left["argv"] == "/bin/sleep 1001 " and "1001" in left["exec"], left
    assert json.loads(left["pending"]) == {"format": 1, "daemon_reload": True, "restart": [SERVICE_UNIT],
                                           "try_restart": [], "stop": []}
    paid = ["systemctl daemon-reload", f"systemctl restart {SERVICE_UNIT}"]

    predicted = site_run("1002", check=True).assert_ok().task(CONVERGE, MACHINE).result
    assert predicted["changed"] and predicted["persist"]["commands"] == paid, predicted
    assert predicted["persist"]["written"] == [] and predicted["changed_steps"] == [], predicted
    assert _running(lab) == left  # check mode wrote nothing and restarted nothing

    converged = site_run("1002").assert_ok().task(CONVERGE, MACHINE).result
    assert converged["changed"] and converged["persist"]["commands"] == paid, converged
    assert converged["persist"]["changed"] and converged["changed_steps"] == [], converged
    new = _running(lab)
    assert new["argv"] == "/bin/sleep 1002 " and new["pid"] != old["pid"] and new["netns"] == new["web"], new
    assert "/bin/sleep 1002" in new["exec"] and new["pending"] == "", new

    again = site_run("1002").assert_ok().task(CONVERGE, MACHINE).result
    assert not again["changed"] and again["persist"]["commands"] == [], again
    assert _running(lab) == new
