"""A check-mode converge (``--check`` of linuxnet.bridge.deployment) warns exactly as the real run
does: each step's ``check_references`` counts what the steps before it leave (``_engine.Foreseen``:
namespaces, bridges and their addresses), so it warns about no namespace or bridge the same run
creates, no host_ip that the bridge step adds (a gateway), no container_ip that the bridge step's new
subnet holds; a reference nothing creates, a host_ip nothing adds still warn, in check mode and for
real, and the deployment's port warnings name the inventory's port (``linuxnet_endpoints[0].ports[2]``),
not the generated ``config[N]``. The modules run alone (one task) warn as before.

Before, the preparation pass's "namespace web does not exist (an earlier task may create it)",
"bridge br-n1 does not exist ..." and "bridge br-n1 not found; container_ip not checked" were
dropped by matching their text, and the host_ip and container_ip ones came in check mode only.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_deployment_check_warnings.py -q``
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.helpers_process import ok, run_module
from tests.integration.helpers_role import run_deployment

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

HOST, ADDR = "linuxnet1", "172.16.211.128"
NETWORKS = [{"name": "n1", "subnet": "172.30.0.0/24"}, {"name": "n2", "subnet": "172.31.0.0/24"}]
# web publishes on n1's gateway, an address the bridge step adds
ENDPOINTS = [{"name": "web", "network": "n1", "ports": ["127.0.0.1:8080:80", "8081:80", "172.30.0.1:8082:80"]},
             {"name": "peer", "network": "n1"}, {"name": "other", "network": "n2"}]
NOT_LOCAL = "is not an address of this host now"

# Runs inside the lab host (helpers_role.run_deployment).
BODY = """
import socket
if request.get("listen"):  # a service of the host on a port the run publishes (closed when the script ends)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", request["listen"]))
    server.listen()
if request.get("ghost"):  # a plan whose veth and port name a namespace and a bridge no step creates
    plan = _topology.plan_deployment(request["networks"], request["endpoints"])
    plan["veth"].append({"name": "vethghost", "peer": "eth0", "peer_netns": "ghost", "master": "br-ghost",
                         "addresses": ["10.99.0.2/24"]})
    plan["port_mapping"].append({"publish": "9999:99", "bridge": "br-ghost", "container_ip": "10.99.0.2"})
    result = _deployment.converge(module, None, None, plan=plan)
else:
    result = _deployment.converge(module, request["networks"], request["endpoints"])
"""


@pytest.fixture
def lab(lab_factory):
    return lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]})


def call(lab, tmp_path: Path, check_mode: bool, ghost: bool = False, networks=None, endpoints=None, listen: int = 0) -> dict:
    request = {"check_mode": check_mode, "ghost": ghost, "networks": NETWORKS if networks is None else networks,
               "endpoints": ENDPOINTS if endpoints is None else endpoints, "listen": listen}
    result = run_deployment(lab, tmp_path, BODY, request)
    assert "error" not in result, result
    return result


def predicted_then_applied(lab, tmp_path: Path, **request) -> tuple[dict, dict]:
    """A check-mode run, then the real run: both must plan the same commands (and say the same)."""
    predicted = call(lab, tmp_path, check_mode=True, **request)
    applied = call(lab, tmp_path, check_mode=False, **request)
    assert applied["commands"] == predicted["commands"]
    assert applied["warnings"] == predicted["warnings"]
    return predicted, applied


def test_check_mode_on_an_empty_host_warns_about_nothing_the_run_creates(lab, tmp_path):
    predicted, applied = predicted_then_applied(lab, tmp_path)
    assert predicted["changed"] is True and predicted["commands"]["netns"] and predicted["commands"]["bridge"]
    # no namespace, bridge, container_ip or host_ip (172.30.0.1, the gateway the bridge step adds) warning
    assert predicted["warnings"] == [], predicted["warnings"]
    assert applied["warnings"] == []


def test_check_mode_still_warns_about_a_namespace_and_a_bridge_nothing_creates(lab, tmp_path):
    predicted = call(lab, tmp_path, check_mode=True, ghost=True)
    warnings = predicted["warnings"]
    assert any("namespace ghost does not exist (an earlier task may create it)" in w for w in warnings), warnings
    assert any("bridge br-ghost does not exist (an earlier task may create it)" in w for w in warnings), warnings
    # a plan from elsewhere has no inventory fields: the generated config item is named
    assert "config[3].bridge: bridge br-ghost not found; container_ip not checked" in warnings, warnings
    # the namespaces and bridges the run creates are still not warned about
    assert not any(name in w for w in warnings for name in ("namespace web ", "namespace peer ", "bridge br-n1 ", "bridge br-n2 ")), warnings


def test_a_host_ip_nothing_adds_warns_naming_the_inventory_port(lab, tmp_path):
    """A host_ip the host lacks and no step adds warns, in check mode as for real, naming the port of
    linuxnet_endpoints (a publish string: the port; a mapping: its host_ip field)."""
    endpoints = [{**ENDPOINTS[0], "ports": ENDPOINTS[0]["ports"] + [
        "203.0.113.7:8083:80", {"host_ip": "203.0.113.8", "host_port": 8084, "container_port": 80}]}, *ENDPOINTS[1:]]
    predicted, _applied = predicted_then_applied(lab, tmp_path, endpoints=endpoints)
    assert [w.split(":", 1)[0] for w in predicted["warnings"]] == [
        "linuxnet_endpoints[0].ports[3]", "linuxnet_endpoints[0].ports[4].host_ip"], predicted["warnings"]
    assert f"203.0.113.7 {NOT_LOCAL}" in predicted["warnings"][0] and f"203.0.113.8 {NOT_LOCAL}" in predicted["warnings"][1]
    assert not any("config[" in w for w in predicted["warnings"])


def test_a_port_in_use_warns_naming_the_inventory_port(lab, tmp_path):
    """plan's warning about a host service on a published port names the inventory's port too."""
    predicted = call(lab, tmp_path, check_mode=True, listen=8081)
    assert len(predicted["warnings"]) == 1, predicted["warnings"]
    assert predicted["warnings"][0].startswith("linuxnet_endpoints[0].ports[1]: port 8081/tcp is in use on this host")


def test_check_mode_of_a_re_addressed_network_warns_as_the_real_run(lab, tmp_path):
    """n1 moves to another subnet: the bridge step re-addresses br-n1. Check mode judges the container
    addresses and host_ips by its new addresses: no "outside every subnet", no warning about the new
    gateway as host_ip; the old gateway, which the bridge step removes, warns (as the real run does)."""
    assert call(lab, tmp_path, check_mode=False)["warnings"] == []
    networks = [{"name": "n1", "subnet": "172.29.0.0/24"}, NETWORKS[1]]
    endpoints = [{**ENDPOINTS[0], "ports": ["8081:80", "172.29.0.1:8082:80", "172.30.0.1:8083:80"]}, *ENDPOINTS[1:]]
    predicted, applied = predicted_then_applied(lab, tmp_path, networks=networks, endpoints=endpoints)
    assert predicted["commands"]["bridge"] and predicted["commands"]["port_mapping"], predicted["commands"]
    assert len(predicted["warnings"]) == 1, predicted["warnings"]
    assert predicted["warnings"][0].startswith(f"linuxnet_endpoints[0].ports[2]: 172.30.0.1 {NOT_LOCAL}"), predicted["warnings"]
    assert applied["plan"]["endpoints"][0]["networks"] == {"n1": "172.29.0.2"}
    assert call(lab, tmp_path, check_mode=True, networks=networks, endpoints=endpoints)["changed"] is False


def warnings_of(result: dict) -> list[str]:
    """A module result's warnings (ansible-core 2.19 returns each as a WarningSummary)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def test_the_modules_alone_still_warn_about_what_is_missing(lab, tmp_path):
    """One task knows nothing of the play's other tasks: the missing namespace, bridge and host address
    are warned about in check mode, in the words of before."""
    pair = {"name": "vethx", "peer": "eth0", "peer_netns": "ghost", "master": "br-none"}
    veth = ok(run_module(lab, tmp_path, "veth", {"config": [pair]}, check=True))
    assert warnings_of(veth) == [
        "config[0] (name=vethx).peer_netns: namespace ghost does not exist (an earlier task may create it)",
        "config[0] (name=vethx).master: bridge br-none does not exist (an earlier task may create it)"], veth
    bridge = ok(run_module(lab, tmp_path, "bridge", {"config": [{"name": "br-x", "netns": "ghost"}]}, check=True))
    assert warnings_of(bridge) == ["bridge br-x: network namespace ghost does not exist (an earlier task may create it)"]
    ports = ok(run_module(lab, tmp_path, "port_mapping", {"config": [
        {"publish": "8080:80", "bridge": "br-none", "container_ip": "10.99.0.2"},
        {"publish": "203.0.113.7:8081:80", "bridge": "br-none", "container_ip": "10.99.0.2"}]}, check=True))
    assert warnings_of(ports)[:3] == [
        "config[0].bridge: bridge br-none not found; container_ip not checked",
        "config[1].bridge: bridge br-none not found; container_ip not checked",
        f"config[1] (bridge=br-none).host_ip: 203.0.113.7 {NOT_LOCAL}: the published port takes no traffic until it is "
        "(fine for a virtual address that keepalived/VRRP adds later)"], ports


def test_the_deployment_module_in_check_mode_warns_as_its_run(lab, tmp_path):
    """The module as Ansible runs it (``--check``, then for real): the gateway host_ip is no warning,
    the host_ip nothing adds is, naming the inventory's port."""
    endpoints = [{**ENDPOINTS[0], "ports": ENDPOINTS[0]["ports"] + ["203.0.113.7:8083:80"]}, *ENDPOINTS[1:]]
    args = {"networks": NETWORKS, "endpoints": endpoints}
    predicted = ok(run_module(lab, tmp_path, "deployment", args, check=True))
    applied = ok(run_module(lab, tmp_path, "deployment", args))
    assert predicted["changed"] is True and applied["commands"] == predicted["commands"]
    expected = [f"linuxnet_endpoints[0].ports[3]: 203.0.113.7 {NOT_LOCAL}: the published port takes no traffic until it "
                "is (fine for a virtual address that keepalived/VRRP adds later)"]
    assert warnings_of(predicted) == expected and warnings_of(applied) == expected, (predicted, applied)
