"""Random-kill fault test: a converge killed with SIGKILL at a random moment never strands anything.

The three link modules (netns, bridge, veth) run one after the other, each as its own module
process started straight from ``plugins/modules`` (what Ansible runs on a managed host), inside a
lab host, in a process group of their own. For a few fixed seeds the test kills that group
(only it) at a random moment of a converge, runs the converge again and asserts the lab host is
exactly as after an uninterrupted converge; the same for the teardown (``state: deleted``).

Bounded: 6 seeds, about 40 s. Run (root): ``.venv/bin/python -m pytest tests/integration/test_faults.py -q``
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import ADDR, HOST, REPO, sh
from tests.integration.helpers_process import killed, start

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

SEEDS = range(6)
NETNS = [{"name": f"f{i}", "hosts": [{"ip": f"10.81.0.{j + 2}", "names": [f"f{j}"]} for j in range(4)]} for i in range(4)]
BRIDGES = [{"name": "brf1", "addresses": ["10.81.0.1/24"], "mtu": 1400}, {"name": "brf2", "addresses": ["10.82.0.1/24"]}]
VETHS = [{"name": f"vf{i}", "peer_netns": f"f{i}", "master": "brf1", "addresses": [f"10.81.0.{i + 2}/24"],
          "gateway": "10.81.0.1", "mac": "docker", "mtu": 1400, "hairpin": True} for i in range(4)]
VETHS += [{"name": "vg0", "peer": "eth1", "peer_netns": "f0", "master": "brf2", "addresses": ["10.82.0.2/24"], "mac": "docker"}]
CONVERGE = (("netns", NETNS), ("bridge", BRIDGES), ("veth", VETHS))
TEARDOWN = (("veth", None), ("bridge", None), ("netns", None))


def driver(tmp: Path, name: str, steps: tuple, state: str) -> Path:
    """A shell script that runs the modules in order and stops at the first failure."""
    lines = ["set -e"]
    for module, config in steps:
        args = {"state": state, **({"config": config} if config is not None else {}),
                "_ansible_module_name": f"linuxnet.bridge.{module}"}
        path = tmp / f"{name}-{module}.json"
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        lines.append(f"{sys.executable} {REPO}/plugins/modules/{module}.py < {path}")
    script = tmp / f"{name}.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


def finish(lab, script: Path) -> list[dict]:
    proc = start(lab, script)
    out, err = proc.communicate(timeout=120)
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    failed = [r for r in results if r.get("failed")]
    assert proc.returncode == 0 and not failed, (failed[:1] or err[-2000:])
    return results


def ipj(lab, *args: str) -> list:
    out = lab.run(HOST, ["ip", "-j", *args]).stdout
    return json.loads(out) if out.strip() else []


def snapshot(lab) -> dict[str, Any]:
    """Everything the modules manage, without what the kernel picks anew each time (host-side MACs, indexes)."""
    spaces = sorted(n["name"] for n in ipj(lab, "netns", "list"))
    snap: dict[str, Any] = {"netns": spaces}
    for ns in [None, *spaces]:
        where = ["-n", ns] if ns else []
        snap[f"links@{ns}"] = sorted(json.dumps({
            "name": e["ifname"], "mtu": e.get("mtu"), "master": e.get("master"), "up": "UP" in e.get("flags", []),
            "alias": e.get("ifalias"), "kind": e.get("linkinfo", {}).get("info_kind"),
            "hairpin": e.get("linkinfo", {}).get("info_slave_data", {}).get("hairpin"),
            **({"mac": e.get("address")} if ns else {}),
        }, sort_keys=True) for e in ipj(lab, *where, "-d", "link", "show"))
        snap[f"addrs@{ns}"] = sorted(f"{e['ifname']} {a['local']}/{a['prefixlen']}" for e in ipj(lab, *where, "-4", "addr", "show")
                                     for a in e.get("addr_info", []))
        snap[f"routes@{ns}"] = sorted(json.dumps(r, sort_keys=True) for r in ipj(lab, *where, "-4", "route", "show"))
        if ns:
            snap[f"ipv6@{ns}"] = sh(lab, f"ip netns exec {ns} sh -c 'grep . /proc/sys/net/ipv6/conf/eth*/disable_ipv6 || true'").stdout
    snap["files"] = sh(lab, "cd /etc/netns && find . -type f | sort | xargs -r md5sum; find /run/linuxnet -type f | sort").stdout
    return snap


def diff(want: dict, got: dict) -> str:
    return json.dumps({k: {"want": want.get(k), "got": got.get(k)} for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k)})[:1500]


def test_a_killed_converge_or_teardown_is_finished_by_the_next_run(lab_factory, tmp_path):
    lab = lab_factory({HOST: ADDR})
    tmp_path.chmod(0o755)
    up, down = driver(tmp_path, "up", CONVERGE, "overridden"), driver(tmp_path, "down", TEARDOWN, "deleted")
    empty = snapshot(lab)
    t0 = time.monotonic()
    finish(lab, up)
    duration = time.monotonic() - t0
    converged = snapshot(lab)
    again = finish(lab, up)
    assert [r["changed"] for r in again] == [False] * 3, again
    finish(lab, down)
    assert snapshot(lab) == empty

    problems = []
    for seed in SEEDS:
        rng = random.Random(seed)
        at = rng.uniform(0.05, duration)
        done = killed(lab, up, at)
        finish(lab, up)
        if snapshot(lab) != converged:
            problems.append(f"seed {seed}: converge killed at {at:.2f}s ({done} modules done), then converged: {diff(converged, snapshot(lab))}")
        at = rng.uniform(0.05, duration)
        done = killed(lab, down, at)
        finish(lab, down)
        if snapshot(lab) != empty:
            problems.append(f"seed {seed}: teardown killed at {at:.2f}s ({done} modules done), then torn down: {diff(empty, snapshot(lab))}")
    assert not problems, "\n".join(problems)
