"""A firewall, port_mapping or deployment run SIGKILLed right after one of its ruleset writes (each
``*-restore``, each ``nft -f``), the last one included (between the rules and the state file that
records them), leaves nothing the next run cannot handle:

* a teardown right after the kill (port_mapping and firewall ``state: deleted``, the firewall naming
  its network; deployment ``state: absent``) leaves no rule, chain or table of ours in any backend and
  family (the rules in built-in chains are claimed through the state file, which the run wrote, with
  what it was about to write, before its first restore);
* a converge after the kill succeeds and its next run reports changed=false; a teardown then clears.

The modules run straight from ``plugins/modules`` inside a lab host, as Ansible runs them, under a
launcher whose setup counts the ruleset writes and SIGKILLs the module's process group right after
the n-th (n = 1, 2, ... until a run makes fewer). The pure part: tests/unit/plugins/module_utils/test_firewall_intent.py.
Run (root): ``.venv/bin/python -m pytest tests/integration/test_kill_before_persist.py -q``
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import ADDR, HOST, REPO, leftovers, sh
from tests.integration.helpers_process import LAUNCHER, start

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

BACKENDS = {"iptables": {"firewall_backend": "iptables"}, "nftables": {"firewall_backend": "nftables"}}
NET = [{"name": "k1", "bridge": "lnx-k1", "subnet": "172.30.0.0/16", "subnet6": "fd00:30::/64"}]
MAPS = [{"bridge": "lnx-k1", "container_ip": "172.30.0.2", "publish": "8080:80"},
        {"bridge": "lnx-k1", "container_ip": "172.30.0.3", "publish": "5353:53/udp"}]
BRIDGE = "ip link add lnx-k1 type bridge && ip addr add 172.30.0.1/16 dev lnx-k1 && ip link set lnx-k1 up"
NETWORKS = [{"name": "dual", "bridge": "lnx-dual", "subnet": "172.31.1.0/24", "subnet6": "fd00:31:1::/64"},
            {"name": "quiet", "bridge": "lnx-quiet", "subnet": "172.31.2.0/24", "icc": False}]
ENDPOINTS = [{"name": "k1", "network": "dual", "ports": ["8081:80", "8053:53/udp"]},
             {"name": "k2", "networks": ["dual", "quiet"], "ports": ["9000:9000"]}]

# The launcher's setup: SIGKILL the module's own process group right after its n-th ruleset write
# (n in the file kill-at next to it; 0: never). Every write is real; only the kill is the test's.
KILL_AFTER_WRITE = r'''
import os, signal
from ansible.module_utils import basic
KILL_AT = int(open(os.path.join(os.path.dirname(SETUP), "kill-at")).read())
_run_command = basic.AnsibleModule.run_command
_count = [0]

def run_command(self, args, *rest, **kwargs):
    result = _run_command(self, args, *rest, **kwargs)
    tool = os.path.basename(str(args[0])) if isinstance(args, list) else ""
    if tool.endswith("-restore") or (tool == "nft" and "-f" in args):
        _count[0] += 1
        if _count[0] == KILL_AT:
            os.killpg(os.getpgid(0), signal.SIGKILL)
    return result

basic.AnsibleModule.run_command = run_command
'''


def module(lab, tmp: Path, name: str, args: dict, kill_at: int = 0) -> dict | None:
    """Run module ``name`` in the lab host, SIGKILLed right after its ``kill_at``-th ruleset write;
    its JSON result, None when it was killed."""
    tag = f"{name}-{len(list(tmp.glob('*.json')))}"
    path = tmp / f"{tag}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_module_name": f"linuxnet.bridge.{name}"}}))
    (tmp / "setup.py").write_text(KILL_AFTER_WRITE)
    (tmp / "launcher.py").write_text(LAUNCHER)
    (tmp / "kill-at").write_text(str(kill_at))
    script = tmp / f"{tag}.sh"
    script.write_text(f"exec {sys.executable} {tmp}/launcher.py {tmp}/setup.py {REPO}/plugins/modules/{name}.py < {path}\n")
    proc = start(lab, script)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == -signal.SIGKILL:
        return None
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert results, f"{name} printed no result (rc {proc.returncode}): {err[-3000:]}"
    return results[0]


def ok(result: dict | None) -> dict:
    assert result is not None and not result.get("failed"), result
    return result


def state_items(lab) -> dict[str, dict]:
    """The items of our state files (firewall, port_mapping), by file."""
    found = {}
    for path in sh(lab, "ls /run/linuxnet/firewall/*.json /run/linuxnet/port_mapping/*.json 2>/dev/null || true").stdout.split():
        found[path] = json.loads(sh(lab, f"cat {path}").stdout)["items"]
    return found


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_module_run_killed_after_a_rule_write_is_torn_down_or_converged_by_the_next(lab_factory, tmp_path, backend):
    lab = lab_factory({HOST: ADDR})
    tmp_path.chmod(0o755)
    sh(lab, BRIDGE)
    options = BACKENDS[backend]
    up = {"firewall": {"config": NET, "state": "merged", **options}, "port_mapping": {"config": MAPS, "state": "merged", **options}}

    def teardown(where: str) -> None:
        ok(module(lab, tmp_path, "port_mapping", {"state": "deleted", **options}))
        ok(module(lab, tmp_path, "firewall", {"state": "deleted", "config": NET, **options}))
        assert leftovers(lab) == {}, where
        assert all(items == {} for items in state_items(lab).values()), (where, state_items(lab))

    for victim in ("firewall", "port_mapping"):
        for then in ("teardown", "converge"):
            n = 1
            while True:
                where = f"{victim} killed after ruleset write {n}, then {then}"
                if victim == "port_mapping":
                    ok(module(lab, tmp_path, "firewall", up["firewall"]))
                result = module(lab, tmp_path, victim, up[victim], kill_at=n)
                if result is not None:  # it made fewer writes: every point was covered
                    ok(result)
                    teardown(f"{victim} uninterrupted")
                    break
                if then == "converge":
                    for name in ("firewall", "port_mapping"):
                        ok(module(lab, tmp_path, name, up[name]))
                    for name in ("firewall", "port_mapping"):
                        again = ok(module(lab, tmp_path, name, up[name]))
                        assert again["changed"] is False, (where, name, again.get("commands"))
                teardown(where)
                n += 1
            assert n > 1, f"{victim} made no ruleset write"


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_deployment_killed_after_a_rule_write_is_torn_down_or_converged_by_the_next(lab_factory, tmp_path, backend):
    lab = lab_factory({HOST: ADDR})
    tmp_path.chmod(0o755)
    options = BACKENDS[backend]
    up = {"networks": NETWORKS, "endpoints": ENDPOINTS, "state": "present", **options}
    down = {"state": "absent", **options}

    def teardown(where: str) -> None:
        ok(module(lab, tmp_path, "deployment", down))
        assert leftovers(lab) == {}, where
        assert all(items == {} for items in state_items(lab).values()), (where, state_items(lab))
        assert "lnx-" not in sh(lab, "ip -br link").stdout, where

    for then in ("teardown", "converge"):
        n = 1
        while True:
            where = f"deployment killed after ruleset write {n}, then {then}"
            result = module(lab, tmp_path, "deployment", up, kill_at=n)
            if result is not None:
                ok(result)
                teardown("deployment uninterrupted")
                break
            if then == "converge":
                ok(module(lab, tmp_path, "deployment", up))
                again = ok(module(lab, tmp_path, "deployment", up))
                assert again["changed"] is False, (where, again.get("commands"))
            teardown(where)
            n += 1
        assert n > 1, "the deployment made no ruleset write"
