"""The link vocabulary (``_links``): Docker's MAC addresses, and every operation a plan emits has its
request (pure; no root, no kernel).

``current`` is handmade in the shape ``gather()`` returns, so these tests pin the semantics of
the states (merged / replaced / overridden / deleted), ownership, idempotence and the exact
command lines, without a kernel. Behaviour against a kernel is in tests/integration.

Run: ``.venv/bin/python -m pytest tests/unit -q``
"""

from __future__ import annotations

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import (
    BridgeResource,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._links import docker_mac
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import (
    NetnsResource,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import (
    VethResource,
)

from .fixtures.netlink import FULL_VETH, FakeModule, ns_current, plan, veth_current


@pytest.mark.parametrize(
    "address, mac",
    [("172.17.0.2/16", "02:42:ac:11:00:02"), ("10.0.0.1/8", "02:42:0a:00:00:01"), ("192.168.255.254/24", "02:42:c0:a8:ff:fe")],
)
def test_docker_mac(address, mac):
    assert docker_mac(address) == mac


def test_docker_mac_in_plan():
    commands, after = plan(VethResource, [{"name": "v1", "peer_netns": "c1", "addresses": ["172.17.0.2/16"], "mac": "docker"}], {})
    assert "ip -n c1 link set eth0 address 02:42:ac:11:00:02" in commands
    assert after["v1"]["mac"] == "02:42:ac:11:00:02"
    # idempotent against a pair that already carries Docker's MAC
    current = {"v1": veth_current("v1", peer_netns="c1", addresses=["172.17.0.2/16"], mac="02:42:ac:11:00:02")}
    config = [{"name": "v1", "peer_netns": "c1", "addresses": ["172.17.0.2/16"], "mac": "docker"}]
    assert plan(VethResource, config, current)[0] == []


def test_every_planned_operation_is_in_the_vocabulary():
    """apply() dispatches on the action: every operation a plan emits must have its request."""
    planned = [
        (NetnsResource, [{"name": "web", "resolv_conf": "nameserver 9.9.9.9\n"}, {"name": "db"}], {"gone": ns_current("gone"),
         "web": ns_current("web", hosts=[{"ip": "10.0.0.1", "names": ["a"]}])}, "overridden"),
        (BridgeResource, [{"name": "br0", "netns": "ns1", "mtu": 1400, "mac": "02:00:00:00:00:01", "stp": True,
                           "addresses": ["10.0.0.1/24"]}], {}, "merged"),
        (VethResource, [{**FULL_VETH, "hairpin": True}], {}, "merged"),
        (VethResource, [{**FULL_VETH, "peer": "eth1"}], {"v1": veth_current("v1", master="br1", addresses=["10.9.0.2/24"])},
         "replaced"),
    ]
    actions = set()
    for resource_cls, config, current, state in planned:
        res = resource_cls(FakeModule(state=state, config=config))
        ops, _after = res.plan(res.normalize(config, state), current, state)
        assert ops, resource_cls
        missing = [op.command for op in ops if op.action not in res.operations]
        assert missing == [], resource_cls
        actions |= {op.action for op in ops}
    assert {"request", "bridge_add", "veth_add", "master", "netns_add", "netns_delete", "write", "unlink", "rmtree"} <= actions
