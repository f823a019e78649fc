"""A converge of 1100 endpoints under the descriptor limit a managed host usually gives a module.

sshd and systemd start a session with a soft RLIMIT_NOFILE of 1024, and the module process
inherits it. A run touches one namespace per endpoint: were a socket (or a namespace fd) kept
open per namespace until the end of the run, 1100 endpoints would fail with EMFILE ("Too many
open files"). Here ``_deployment.converge()`` (the module's work, as test_deployment.py calls it)
runs in a lab host under ``prlimit --nofile=1024:1024`` (hard limit too: nothing can raise it):
the first converge, the no-change re-run and the teardown must all succeed, and packets cross.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_fd_limit.py -q -s``
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

REPO = Path(__file__).resolve().parents[2]
HOST, ADDR = "linuxnet1", "172.16.211.128"
COUNT = 1100
LIMIT = 1024
# a bridge takes at most 1024 ports (BR_MAX_PORTS): two networks
NETWORKS = [{"name": "fda", "subnet": "10.70.0.0/16"}, {"name": "fdb", "subnet": "10.71.0.0/16"}]
ENDPOINTS = [{"name": f"fd{i:04d}", "network": NETWORKS[i % 2]["name"]} for i in range(COUNT)]

# Runs inside the lab host: argv[1] is a JSON request file; stdout the JSON answer.
SCRIPT = """
import json, re, resource, subprocess, sys
sys.path.insert(0, %(collections)r)
from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment

class Shim:  # the contract's module: params, check_mode, run_command, warn, fail_json
    params, check_mode, _diff = {}, False, False
    def run_command(self, argv, check_rc=False, data=None):
        done = subprocess.run(argv, input=data, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    def warn(self, msg):
        pass
    def fail_json(self, **kw):
        raise AssertionError(kw)

request = json.loads(open(sys.argv[1]).read())
try:
    if request["what"] == "remove":
        result = _deployment.remove(Shim())
    else:
        result = _deployment.converge(Shim(), request["networks"], request["endpoints"])
    result.pop("plan", None)
    result["commands"] = {step: len(commands) for step, commands in result["commands"].items()}
except Exception as exc:
    result = {"error": type(exc).__name__, "msg": re.sub(r"'[^']{200,}'", "'...'", str(exc))}
result["nofile"] = resource.getrlimit(resource.RLIMIT_NOFILE)
print(json.dumps(result))
"""


def call(lab, tmp_path: Path, what: str) -> dict:
    script, request = tmp_path / "converge.py", tmp_path / "request.json"
    script.write_text(SCRIPT % {"collections": str(REPO / ".collections")})
    request.write_text(json.dumps({"what": what, "networks": NETWORKS, "endpoints": ENDPOINTS}))
    started = time.monotonic()
    done = lab.run(HOST, ["prlimit", f"--nofile={LIMIT}:{LIMIT}", sys.executable, str(script), str(request)], timeout=900)
    answer = json.loads(done.stdout)
    print(f"{what}: {time.monotonic() - started:.1f} s, {answer.get('commands')}")
    if "error" in answer:
        print(answer["msg"])
    assert answer["nofile"] == [LIMIT, LIMIT], answer["nofile"]  # the run had the limit of a managed host
    return answer


def ping(lab, netns: str, address: str) -> bool:
    return lab.run(HOST, ["ip", "netns", "exec", netns, "ping", "-c1", "-W2", address], check=False).returncode == 0


def test_1100_endpoints_converge_rerun_and_remove_under_1024_descriptors(lab_factory, tmp_path):
    lab = lab_factory({HOST: ADDR})
    # each endpoint's hosts file lists its network's endpoints: more than the lab's 4 MB (a remount
    # inside the lab host's own mount namespace, as tests/bench/peers.py does)
    lab.run(HOST, ["mount", "-n", "-o", "remount,size=128m", "/etc/netns"], timeout=30)
    applied = call(lab, tmp_path, "converge")
    assert "error" not in applied, applied
    assert applied["changed"] is True
    assert len(lab.run(HOST, ["ip", "netns", "list"]).stdout.splitlines()) == COUNT
    # the first and the last endpoint reach their gateway (and so have their veth, address and route)
    assert ping(lab, ENDPOINTS[0]["name"], "10.70.0.1")
    assert ping(lab, ENDPOINTS[-1]["name"], "10.71.0.1")

    again = call(lab, tmp_path, "converge")
    assert "error" not in again, again
    assert again["changed"] is False and not any(again["commands"].values()), again["commands"]

    removed = call(lab, tmp_path, "remove")
    assert "error" not in removed, removed
    assert removed["changed"] is True
    left = lab.run(HOST, ["sh", "-c", "ip netns list; ip -o link show type veth | wc -l"]).stdout.split()
    assert left == ["1"], left  # no namespace; the one veth is the lab host's own LAN port
