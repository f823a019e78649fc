"""A check-mode converge (``--check`` of linuxnet.bridge.deployment) on an empty lab host warns about
no namespace or bridge that the same run's earlier steps create, as the real run warns about none;
a reference nothing creates still warns.

Before, the preparation pass's "namespace web does not exist (an earlier task may create it)",
"bridge br-n1 does not exist ..." and "bridge br-n1 not found; container_ip not checked" were
replayed in check mode, because nothing is applied there.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_deployment_check_warnings.py -q``
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

REPO = Path(__file__).resolve().parents[2]
HOST, ADDR = "linuxnet1", "172.16.211.128"
NETWORKS = [{"name": "n1", "subnet": "172.30.0.0/24"}, {"name": "n2", "subnet": "172.31.0.0/24"}]
ENDPOINTS = [{"name": "web", "network": "n1", "ports": ["127.0.0.1:8080:80", "8081:80"]},
             {"name": "peer", "network": "n1"}, {"name": "other", "network": "n2"}]

# Runs inside the lab host: argv[1] is a JSON request, stdout the JSON answer (converge's, with the warnings).
SCRIPT = """
import json, subprocess, sys
sys.path.insert(0, %(collections)r)
from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment, _topology

class Shim:  # the converge contract's module
    def __init__(self, check_mode):
        self.params, self.check_mode, self.warnings = {}, check_mode, []
    def run_command(self, argv, check_rc=False, data=None):
        done = subprocess.run(argv, input=data, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    def warn(self, msg):
        self.warnings.append(msg)
    def fail_json(self, **kw):
        raise AssertionError(kw)

request = json.loads(sys.argv[1])
module = Shim(request["check_mode"])
try:
    if request.get("ghost"):  # a plan whose veth and port name a namespace and a bridge no step creates
        plan = _topology.plan_deployment(request["networks"], request["endpoints"])
        plan["veth"].append({"name": "vethghost", "peer": "eth0", "peer_netns": "ghost", "master": "br-ghost",
                             "addresses": ["10.99.0.2/24"]})
        plan["port_mapping"].append({"publish": "9999:99", "bridge": "br-ghost", "container_ip": "10.99.0.2"})
        result = _deployment.converge(module, None, None, plan=plan)
    else:
        result = _deployment.converge(module, request["networks"], request["endpoints"])
except Exception as exc:
    result = {"error": type(exc).__name__, "msg": str(exc)}
result["warnings"] = module.warnings
print(json.dumps(result))
"""


@pytest.fixture
def lab(lab_factory):
    return lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]})


def call(lab, tmp_path: Path, check_mode: bool, ghost: bool = False) -> dict:
    script = tmp_path / "converge.py"
    script.write_text(SCRIPT % {"collections": str(REPO / ".collections")})
    request = {"check_mode": check_mode, "ghost": ghost, "networks": NETWORKS, "endpoints": ENDPOINTS}
    done = lab.run(HOST, [sys.executable, str(script), json.dumps(request)], timeout=120)
    return json.loads(done.stdout)


def test_check_mode_on_an_empty_host_warns_about_nothing_the_run_creates(lab, tmp_path):
    predicted = call(lab, tmp_path, check_mode=True)
    assert "error" not in predicted, predicted
    assert predicted["changed"] is True and predicted["commands"]["netns"] and predicted["commands"]["bridge"]
    assert predicted["warnings"] == [], predicted["warnings"]
    applied = call(lab, tmp_path, check_mode=False)
    assert "error" not in applied, applied
    assert applied["warnings"] == [] and applied["commands"] == predicted["commands"]


def test_check_mode_still_warns_about_a_namespace_and_a_bridge_nothing_creates(lab, tmp_path):
    predicted = call(lab, tmp_path, check_mode=True, ghost=True)
    assert "error" not in predicted, predicted
    warnings = predicted["warnings"]
    assert any("namespace ghost does not exist (an earlier task may create it)" in w for w in warnings), warnings
    assert any("bridge br-ghost does not exist (an earlier task may create it)" in w for w in warnings), warnings
    assert any("bridge br-ghost not found; container_ip not checked" in w for w in warnings), warnings
    # the namespaces and bridges the run creates are still not warned about
    assert not any(name in w for w in warnings for name in ("namespace web ", "namespace peer ", "bridge br-n1 ", "bridge br-n2 ")), warnings
