"""Scale: 200 namespaces in one netns task and 200 veths into them on one bridge in one veth task.

Runs inside a lab host (see tests/lab). Timings are printed (``-s`` shows them; they are also in
the test report's captured output), never asserted.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_scale.py -q -s``
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime

import pytest
import yaml

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

HOST = "linuxnet1"
ADDR = "172.16.211.128"
COUNT = 200

NAMESPACES = [{"name": f"ns{i:03d}"} for i in range(1, COUNT + 1)]
BRIDGE = [{"name": "brscale", "addresses": ["10.99.0.1/16"]}]
VETHS = [
    {
        "name": f"vs{i:03d}",
        "peer_netns": f"ns{i:03d}",
        "master": "brscale",
        "addresses": [f"10.99.{i // 250}.{i % 250 + 2}/16"],
        "gateway": "10.99.0.1",
    }
    for i in range(1, COUNT + 1)
]

PLAYBOOK = yaml.safe_dump(
    [
        {
            "name": "scale",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {"name": "netns", "linuxnet.bridge.netns": {"config": NAMESPACES}},
                {"name": "bridge", "linuxnet.bridge.bridge": {"config": BRIDGE}},
                {"name": "veth", "linuxnet.bridge.veth": {"config": VETHS}},
            ],
        }
    ],
    sort_keys=False,
)


def _task_seconds(result, name: str) -> float:
    for play in (result.data or {}).get("plays", []):
        for task in play.get("tasks", []):
            if task["task"]["name"] == name:
                duration = task["task"]["duration"]
                start = datetime.fromisoformat(duration["start"])
                end = datetime.fromisoformat(duration["end"])
                return (end - start).total_seconds()
    return float("nan")


def _run(run_playbook, lab, label: str, timings: dict):
    started = time.monotonic()
    result = run_playbook(lab.inventory_path, PLAYBOOK, timeout=600)
    wall = time.monotonic() - started
    result.assert_ok()
    timings[label] = {"playbook": wall, **{t: _task_seconds(result, t) for t in ("netns", "bridge", "veth")}}
    return result


def test_200_namespaces_and_veths(lab_factory, run_playbook):
    lab = lab_factory({HOST: ADDR})
    timings: dict[str, dict[str, float]] = {}
    try:
        first = _run(run_playbook, lab, "first run (create)", timings)
        for name in ("netns", "bridge", "veth"):
            assert first.task(name, HOST).changed, name
        assert len(first.task("veth", HOST).result["commands"]) >= COUNT

        namespaces = lab.run(HOST, ["ip", "netns", "list"]).stdout.splitlines()
        assert len(namespaces) == COUNT
        assert sorted(line.split()[0] for line in namespaces) == [n["name"] for n in NAMESPACES]

        veth_lines = lab.run(HOST, ["ip", "-o", "link", "show", "type", "veth"]).stdout.splitlines()
        ours = [line for line in veth_lines if line.split(": ", 2)[1].startswith("vs")]
        assert len(ours) == COUNT, f"{len(ours)} of {COUNT} veths; all veths: {len(veth_lines)}"
        assert len(veth_lines) == COUNT + 1  # + the lab host's own LAN port ens160
        assert all(" master brscale " in line and ",UP" in line for line in ours)
        assert sorted(line.split(": ", 2)[1].split("@")[0] for line in ours) == [v["name"] for v in VETHS]

        # spot checks of the far ends
        for i in (1, 117, COUNT):
            eth0 = json.loads(lab.run(HOST, ["ip", "-n", f"ns{i:03d}", "-j", "-4", "addr", "show", "dev", "eth0"]).stdout)
            assert [f"{a['local']}/{a['prefixlen']}" for a in eth0[0]["addr_info"]] == VETHS[i - 1]["addresses"]
        ping = lab.run(HOST, ["ip", "netns", "exec", f"ns{COUNT:03d}", "ping", "-n", "-c1", "-W3", "10.99.0.1"], check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr

        second = _run(run_playbook, lab, "second run (unchanged)", timings)
        for name in ("netns", "bridge", "veth"):
            task = second.task(name, HOST)
            assert not task.changed and task.result["commands"] == [], (name, task.result["commands"][:5])
    finally:
        print(f"\n{COUNT} namespaces + {COUNT} veths on one bridge, seconds:")
        for label, values in timings.items():
            print(f"  {label:24s} " + "  ".join(f"{k}={v:.1f}" for k, v in values.items()))
