"""A review of the link modules, against a real kernel inside a lab host (the pure parts:
tests/unit/plugins/module_utils/test_rtnl.py, test_links.py, test_bridge.py).

* A /31 (RFC 3021) gets no broadcast address: its other address is the peer, which answers ping.
* A veth pair or a bridge the collection did not create is refused with an error naming the field,
  before anything changes, whatever the state (``deleted`` leaves it alone); the link a run killed
  right after the kernel made it (its creation note) is still adopted by the next run.
* A bridge made inside a namespace by a run killed right after the kernel's ack is seen by the
  next run's ``gathered`` and removed by its ``deleted``.
* Check mode's ``after`` lists a bridge's (and a veth peer's) addresses in the order the real run
  reports them.

The modules run straight from ``plugins/modules`` inside the lab host with a JSON args file, as
Ansible runs them; a kill is a launcher that ends the process (``os._exit``) right after the
kernel answered the create, before anything the run does next.
Run (root): ``.venv/bin/python -m pytest tests/integration/test_links_review.py -q``
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.integration.helpers import ADDR, HOST, REPO, sh
from tests.integration.helpers_links import FOREIGN_BRIDGE, FOREIGN_VETH, links
from tests.integration.helpers_process import ok, refused, run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

# The process dies right after the kernel acknowledged the create of ACTION (a bridge, a veth pair):
# nothing the run does after the request (its `after`, the alias request) happens.
KILL = r'''
import os
from ansible_collections.linuxnet.bridge.plugins.module_utils import _links
encode = _links.ENCODERS[ACTION]
def killed(nl, op):
    request = encode(nl, op)
    request.after = lambda: os._exit(137)
    return request
_links.ENCODERS[ACTION] = killed
'''


def ipj(lab, *args: str) -> Any:
    out = sh(lab, "ip -j " + " ".join(args)).stdout
    return json.loads(out) if out.strip() else []


@pytest.fixture
def lab(lab_factory, tmp_path):
    tmp_path.chmod(0o755)
    return lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]})  # the group site.yml applies the role to


# --------------------------------------------------------------------------------- 1. /31


def test_a_31_has_no_broadcast_and_its_peer_answers(lab, tmp_path):
    sh(lab, "ip netns add n1")
    bridges = [{"name": "br9", "addresses": ["10.9.0.1/31"]}, {"name": "br8", "addresses": ["10.8.0.1/24"]}]
    ok(run_module(lab, tmp_path, "bridge", {"config": bridges, "state": "merged"}))
    veth = {"name": "v9", "peer_netns": "n1", "master": "br9", "addresses": ["10.9.0.0/31"]}
    ok(run_module(lab, tmp_path, "veth", {"config": [veth], "state": "merged"}))
    assert [a.get("broadcast") for entry in ipj(lab, "-4", "addr", "show", "dev", "br9") for a in entry["addr_info"]] == [None]
    assert [a.get("broadcast") for entry in ipj(lab, "-n", "n1", "-4", "addr", "show", "dev", "eth0")
            for a in entry["addr_info"]] == [None]
    assert [a.get("broadcast") for entry in ipj(lab, "-4", "addr", "show", "dev", "br8")
            for a in entry["addr_info"]] == ["10.8.0.255"]  # up to /30 as before (brd +)
    local = sh(lab, "ip route show table local; ip -n n1 route show table local").stdout
    assert "broadcast 10.9.0." not in local, local
    assert "local 10.9.0.0 dev eth0" in local and "local 10.9.0.1 dev br9" in local, local
    proc = sh(lab, "ip netns exec n1 ping -n -c1 -W2 10.9.0.1", check=False)
    assert proc.returncode == 0 and " 0% packet loss" in proc.stdout, proc.stdout + proc.stderr


# --------------------------------------------------------------------------------- 2. foreign veth


def test_a_hand_made_host_pair_is_refused_and_untouched_a_killed_create_is_adopted(lab, tmp_path):
    sh(lab, "ip link add va type veth peer name vb && ip netns add ns1")
    before = links(lab), links(lab, "ns1")
    for check in (True, False):
        refused(run_module(lab, tmp_path, "veth", {"config": [{"name": "va", "peer_netns": "ns1"}], "state": "merged"}, check=check),
                FOREIGN_VETH)
    for state in ("replaced", "overridden"):
        refused(run_module(lab, tmp_path, "veth", {"config": [{"name": "va", "peer": "vz"}], "state": state}),
                FOREIGN_VETH)
    assert (links(lab), links(lab, "ns1")) == before
    # deleted leaves it alone too
    ok(run_module(lab, tmp_path, "veth", {"config": [{"name": "va"}], "state": "deleted"}))
    assert (links(lab), links(lab, "ns1")) == before

    # a pair made by a run killed before its alias: the next run adopts it, as its own
    wanted = {"config": [{"name": "vk", "peer_netns": "ns1", "addresses": ["10.7.0.2/24"]}], "state": "merged"}
    assert run_module(lab, tmp_path, "veth", wanted, setup="ACTION = 'veth_add'\n" + KILL) is None
    assert ipj(lab, "-d", "link", "show", "vk")[0].get("ifalias") is None
    index = ipj(lab, "link", "show", "vk")[0]["ifindex"]
    result = ok(run_module(lab, tmp_path, "veth", wanted))
    assert result["commands"][0] == "ip link set vk alias 'linuxnet.bridge veth peer=eth0 netns=ns1'", result["commands"]
    assert ipj(lab, "link", "show", "vk")[0]["ifindex"] == index  # adopted, not recreated
    assert ipj(lab, "-n", "ns1", "-4", "addr", "show", "dev", "eth0")[0]["addr_info"][0]["local"] == "10.7.0.2"


# --------------------------------------------------------------------------------- 3. foreign bridge


def test_a_hand_made_bridge_is_refused_and_untouched_a_killed_create_is_adopted(lab, tmp_path):
    sh(lab, "ip link add br-n1 type bridge && ip addr add 10.50.0.1/24 dev br-n1 && ip link set br-n1 up")
    before = links(lab)
    netns = sh(lab, "ip netns list").stdout
    wanted = {"config": [{"name": "br-n1", "addresses": ["10.99.0.1/24"]}], "state": "merged"}
    for state in ("merged", "replaced", "overridden"):
        for check in (True, False):
            refused(run_module(lab, tmp_path, "bridge", {**wanted, "state": state}, check=check), FOREIGN_BRIDGE)
    # the deployment (the role's module): the step's name first, nothing changed by any step
    deployment = {"networks": [{"name": "n1", "subnet": "10.99.0.0/24"}], "endpoints": [{"name": "web", "network": "n1"}],
                  "persist": False}
    refused(run_module(lab, tmp_path, "deployment", deployment), "bridge: " + FOREIGN_BRIDGE)
    assert links(lab) == before and sh(lab, "ip netns list").stdout == netns
    ok(run_module(lab, tmp_path, "deployment", {"state": "absent", "persist": False}))
    result = ok(run_module(lab, tmp_path, "bridge", {"config": [{"name": "br-n1"}], "state": "deleted"}))
    assert result["commands"] == [] and "was not created by linuxnet.bridge" in json.dumps(result.get("warnings")), result
    assert links(lab) == before

    # a bridge made by a run killed before its alias: the next run adopts it
    mine = {"config": [{"name": "br-k", "addresses": ["10.98.0.1/24"]}], "state": "merged"}
    assert run_module(lab, tmp_path, "bridge", mine, setup="ACTION = 'bridge_add'\n" + KILL) is None
    index = ipj(lab, "link", "show", "br-k")[0]["ifindex"]
    result = ok(run_module(lab, tmp_path, "bridge", mine))
    assert result["commands"][0] == "ip link set br-k alias 'linuxnet.bridge'", result["commands"]
    assert ipj(lab, "link", "show", "br-k")[0]["ifindex"] == index


def test_the_role_refuses_a_hand_made_bridge_of_a_network_and_leaves_it(lab, run_playbook):
    sh(lab, "ip link add br-n1 type bridge && ip addr add 10.50.0.1/24 dev br-n1 && ip link set br-n1 up")
    before = links(lab), sh(lab, "ip netns list").stdout
    result = run_playbook(lab.inventory_path, REPO / "playbooks" / "site.yml", extra_vars={
        "linuxnet_install_packages": False, "linuxnet_networks": [{"name": "n1", "subnet": "10.99.0.0/24"}],
        "linuxnet_endpoints": [{"name": "web", "network": "n1"}]})
    converge = result.task("linuxnet.bridge.bridge_network : Converge networks and endpoints", HOST).result
    refused(converge, "bridge: " + FOREIGN_BRIDGE)
    assert (links(lab), sh(lab, "ip netns list").stdout) == before


# --------------------------------------------------------------------------------- 4. killed in a namespace


def test_a_bridge_made_in_a_namespace_by_a_killed_run_is_gathered_and_deleted(lab, tmp_path):
    sh(lab, "ip netns add X")
    wanted = {"config": [{"name": "br0", "netns": "X"}], "state": "merged"}
    assert run_module(lab, tmp_path, "bridge", wanted, setup="ACTION = 'bridge_add'\n" + KILL) is None
    assert ipj(lab, "-n", "X", "link", "show", "br0")[0].get("ifalias") is None  # made, never marked
    gathered = ok(run_module(lab, tmp_path, "bridge", {"state": "gathered"}))["gathered"]
    assert [(b["name"], b.get("netns")) for b in gathered] == [("br0", "X")], gathered
    result = ok(run_module(lab, tmp_path, "bridge", {"state": "deleted"}))
    assert result["commands"] == ["ip -n X link del br0"], result
    assert sh(lab, "ip -n X link show br0", check=False).returncode != 0


# --------------------------------------------------------------------------------- 6. check-mode order


def test_check_mode_lists_addresses_as_the_real_run_does(lab, tmp_path):
    steps = [
        ("merged", ["10.1.0.1/24", "fd00:1::1/64", "10.1.0.77/24"]),
        ("merged", ["fd00:1::2/64", "10.2.0.1/24"]),  # a primary before the secondary, IPv6 newest first
        ("replaced", ["fd00:1::3/64", "10.1.0.1/24", "10.3.0.1/24", "fd00:1::1/64"]),
    ]
    sh(lab, "ip netns add c1")
    for name, item in (("bridge", {"name": "br1"}), ("veth", {"name": "v1", "peer_netns": "c1"})):
        for step, (state, addresses) in enumerate(steps):
            args = {"config": [{**item, "addresses": addresses}], "state": state}
            predicted = ok(run_module(lab, tmp_path, name, args, check=True, diff=True))
            real = ok(run_module(lab, tmp_path, name, args, diff=True))
            assert predicted["commands"] == real["commands"] and predicted["commands"], (predicted, real)
            assert [b["addresses"] for b in predicted["after"]] == [b["addresses"] for b in real["after"]], (predicted, real)
            if step:  # a new link's MAC and MTU are the kernel's choice: known only once it exists
                assert predicted["after"] == real["after"], (predicted["after"], real["after"])
                assert predicted["diff"] == real["diff"], (predicted["diff"], real["diff"])
            assert ok(run_module(lab, tmp_path, name, args))["commands"] == []
