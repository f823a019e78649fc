"""plan() and render() of the bridge resource (pure; no root, no kernel).

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

from .fixtures.netlink import OWNER, FakeModule, plan, render


def br_current(name, owned=True, netns=None, addresses=(), mtu=1500, mac="02:00:00:00:00:01", stp=False, link_state="up"):
    return {
        "name": name,
        "netns": netns,
        "addresses": list(addresses),
        "mtu": mtu,
        "mac": mac,
        "stp": stp,
        "link_state": link_state,
        "_owned": owned,
    }


def test_bridge_render():
    commands = render(
        BridgeResource,
        [{"name": "docker0", "addresses": ["172.17.0.1/16"], "mtu": 1400, "mac": "02:42:00:00:00:01", "stp": True}],
    )
    assert commands == [
        "ip link add docker0 type bridge",
        f"ip link set docker0 alias '{OWNER}'",
        "ip link set docker0 mtu 1400",
        "ip link set docker0 address 02:42:00:00:00:01",
        "ip link set docker0 type bridge stp_state 1",
        "ip addr add 172.17.0.1/16 dev docker0",
        "ip link set docker0 up",
    ]


def test_bridge_render_minimal_and_in_namespace():
    assert render(BridgeResource, [{"name": "br0"}]) == [
        "ip link add br0 type bridge",
        f"ip link set br0 alias '{OWNER}'",
        "ip link set br0 up",
    ]
    assert render(BridgeResource, [{"name": "br0", "netns": "ns1", "addresses": ["10.0.0.1/24"], "link_state": "down"}]) == [
        "ip -n ns1 link add br0 type bridge",
        f"ip -n ns1 link set br0 alias '{OWNER}'",
        "ip -n ns1 addr add 10.0.0.1/24 dev br0",
    ]


def test_bridge_idempotent():
    config = [{"name": "br0", "addresses": ["10.0.0.1/24", "10.0.1.1/24"], "mtu": 1500, "mac": "02:00:00:00:00:01", "stp": False}]
    current = {"br0": br_current("br0", addresses=["10.0.0.1/24", "10.0.1.1/24"]), "docker0": br_current("docker0", owned=False)}
    for state in ("merged", "replaced", "overridden"):
        commands, after = plan(BridgeResource, config, current, state)
        assert commands == [], state
        assert after == current
    # attributes left out are never touched
    assert plan(BridgeResource, [{"name": "br0"}], current)[0] == []


def test_bridge_in_place_changes():
    current = {"br0": br_current("br0", addresses=["10.0.0.1/24"])}
    commands, after = plan(BridgeResource, [{"name": "br0", "mtu": 9000, "mac": "02:00:00:00:00:02", "stp": True}], current)
    assert commands == [
        "ip link set br0 mtu 9000",
        "ip link set br0 address 02:00:00:00:00:02",
        "ip link set br0 type bridge stp_state 1",
    ]
    assert (after["br0"]["mtu"], after["br0"]["mac"], after["br0"]["stp"]) == (9000, "02:00:00:00:00:02", True)
    assert plan(BridgeResource, [{"name": "br0", "link_state": "down"}], current)[0] == ["ip link set br0 down"]


def test_bridge_addresses_merged_replaced():
    current = {"br0": br_current("br0", addresses=["10.0.0.1/24", "10.0.9.1/24"])}
    config = [{"name": "br0", "addresses": ["10.0.0.1/24", "10.0.1.1/24"]}]
    commands, after = plan(BridgeResource, config, current, "merged")
    assert commands == ["ip addr add 10.0.1.1/24 dev br0"]
    assert after["br0"]["addresses"] == ["10.0.0.1/24", "10.0.9.1/24", "10.0.1.1/24"]
    for state in ("replaced", "overridden"):
        commands, after = plan(BridgeResource, config, current, state)
        assert commands == ["ip addr del 10.0.9.1/24 dev br0", "ip addr add 10.0.1.1/24 dev br0"], state
        assert after["br0"]["addresses"] == ["10.0.0.1/24", "10.0.1.1/24"]
    # replaced with an explicitly empty list removes every address
    assert plan(BridgeResource, [{"name": "br0", "addresses": []}], current, "replaced")[0] == [
        "ip addr del 10.0.0.1/24 dev br0",
        "ip addr del 10.0.9.1/24 dev br0",
    ]


def test_bridge_overridden_removes_only_owned():
    current = {
        "br0": br_current("br0"),
        "br-old": br_current("br-old"),
        "docker0": br_current("docker0", owned=False),
        "virbr0": br_current("virbr0", owned=False),
    }
    commands, after = plan(BridgeResource, [{"name": "br0"}], current, "overridden")
    assert commands == ["ip link del br-old"]
    assert set(after) == {"br0", "docker0", "virbr0"}
    # replaced never removes unlisted items
    assert plan(BridgeResource, [{"name": "br0"}], current, "replaced")[0] == []


def test_bridge_deleted():
    current = {
        "br0": br_current("br0"),
        "ns1/br0": br_current("br0", netns="ns1"),
        "docker0": br_current("docker0", owned=False),
    }
    commands, after = plan(BridgeResource, [], current, "deleted")
    assert commands == ["ip link del br0", "ip -n ns1 link del br0"]
    assert set(after) == {"docker0"}
    commands, after = plan(BridgeResource, [{"name": "br0", "netns": "ns1"}, {"name": "nothere"}], current, "deleted")
    assert commands == ["ip -n ns1 link del br0"]
    assert set(after) == {"br0", "docker0"}


def test_bridge_namespaced_item_is_separate_from_host_item():
    current = {"br0": br_current("br0")}
    commands, after = plan(BridgeResource, [{"name": "br0", "netns": "ns1"}], current)
    assert commands[0] == "ip -n ns1 link add br0 type bridge"
    assert set(after) == {"br0", "ns1/br0"}


def test_bridge_create_expectation():
    _commands, after = plan(BridgeResource, [{"name": "br0", "addresses": ["10.0.0.1/24"]}], {})
    assert after["br0"]["_owned"] is True
    assert after["br0"]["addresses"] == ["10.0.0.1/24"]
    assert after["br0"]["link_state"] == "up"


def test_a_bridge_left_unmarked_by_a_killed_run_is_marked():
    current = {"br0": dict(br_current("br0", addresses=["10.0.0.1/24"]), _unmarked=True)}
    commands, after = plan(BridgeResource, [{"name": "br0", "addresses": ["10.0.0.1/24"]}], current)
    assert commands == [f"ip link set br0 alias '{OWNER}'"]
    assert "_unmarked" not in after["br0"]


class _Reader:
    """A namespace's dumps as the rtnetlink reader gives them, counting what is read."""

    reads: list = []

    def links(self):
        self.reads.append("links")
        return [{"name": "lo", "index": 1, "alias": None, "kind": None},
                {"name": "ens160", "index": 2, "alias": None, "kind": None},
                {"name": "br-own", "index": 3, "alias": None, "kind": "bridge"},  # not ours, configured here
                {"name": "br-old", "index": 4, "alias": OWNER, "kind": "bridge"}]

    def addresses(self):
        self.reads.append("addresses")
        return {2: ["10.55.0.2/16"], 3: ["10.60.0.1/24"], 4: ["10.70.0.1/24"]}

    def routes(self):
        self.reads.append("routes")
        return [{"dst": "0.0.0.0/0", "oif": 2}, {"dst": "10.55.0.0/16", "oif": 2}, {"dst": "10.60.0.0/24", "oif": 3},
                {"dst": "10.70.0.0/24", "oif": 4}, {"dst": "192.0.2.0/24", "oif": None}]

    def close(self):
        pass


def test_overlap_check_reads_the_routes_once_for_all_bridges(monkeypatch):
    """Every bridge is checked against one dump of links, addresses and routes of its namespace;
    a clash names the host's route or address; the collection's links (a renamed network's old
    bridge) are not judged; a foreign bridge of a wanted name is refused (never adopted); a write
    drops the dumps."""
    from ansible_collections.linuxnet.bridge.plugins.module_utils import _netlink
    from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

    monkeypatch.setattr(_netlink._rtnl, "Reader", _Reader)
    _Reader.reads = []
    res = BridgeResource(FakeModule(state="merged"))
    fine = [{"name": f"br{i}", "addresses": [f"10.{80 + i}.0.1/24"]} for i in range(5)]
    fine += [{"name": "br-new", "addresses": ["10.70.0.1/24"]}]
    res.check_references(res.normalize(fine, "merged"), "merged")
    foreign = fine + [{"name": "br-own", "addresses": ["10.60.0.1/24"]}]
    with pytest.raises(ValidationError, match=r"^config\[6\] \(name=br-own\).name: a bridge of that name exists that linuxnet.bridge did not create$"):
        res.check_references(res.normalize(foreign, "merged"), "merged")
    assert sorted(_Reader.reads) == ["addresses", "links", "routes"]
    for address, clash in (("10.55.3.1/24", "route 10.55.0.0/16 dev ens160"), ("192.0.2.1/24", "route 192.0.2.0/24 dev ?"),
                           ("10.60.0.9/24", "route 10.60.0.0/24 dev br-own")):
        config = fine + [{"name": "bry", "addresses": [address]}]
        with pytest.raises(ValidationError, match=f"config\\[6\\] \\(name=bry\\).addresses\\[0\\]: {address} overlaps the host's {clash}"):
            res.check_references(res.normalize(config, "merged"), "merged")
    assert sorted(_Reader.reads) == ["addresses", "links", "routes"]  # still the one dump
    allowed = fine + [{"name": "bry", "addresses": ["10.55.3.1/24"], "allow_overlap": True}]
    res.check_references(res.normalize(allowed, "merged"), "merged")
    res.netlink.invalidate(None)  # as a write does
    res.check_references(res.normalize(fine, "merged"), "merged")
    assert sorted(_Reader.reads) == ["addresses", "addresses", "links", "links", "routes", "routes"]


def test_kernel_order_of_added_addresses():
    """The order a real kernel (6.x) dumps a bridge's addresses in after ``ip addr add`` of each of
    these in turn (seen in a sandbox): IPv4 primaries, IPv4 secondaries, IPv6 newest first."""
    from ansible_collections.linuxnet.bridge.plugins.module_utils._links import kernel_order

    added = ["10.1.0.1/24", "fd00:1::1/64", "10.1.0.77/24", "10.2.0.1/24", "fd00:2::1/64", "fd00:1::5/64", "10.0.0.1/24"]
    assert kernel_order([], added, True) == ["10.1.0.1/24", "10.2.0.1/24", "10.0.0.1/24", "10.1.0.77/24",
                                             "fd00:1::5/64", "fd00:2::1/64", "fd00:1::1/64"]
    have = ["10.1.0.1/24", "10.1.0.77/24", "fd00:1::1/64"]
    assert kernel_order(have, ["10.3.0.1/24"], False) == ["10.1.0.1/24", "10.3.0.1/24", "10.1.0.77/24", "fd00:1::1/64"]
    assert kernel_order(have, ["fd00:1::1/64", "10.3.0.1/24"], True) == ["10.3.0.1/24", "fd00:1::1/64"]


def test_expected_after_lists_addresses_as_the_gather_will():
    """Check mode's ``after`` is the real run's: the addresses in the kernel's order, not the config's."""
    config = [{"name": "br1", "addresses": ["10.1.0.1/24", "fd00:1::1/64", "10.1.0.77/24"]}]
    _commands, after = plan(BridgeResource, config, {})
    assert after["br1"]["addresses"] == ["10.1.0.1/24", "10.1.0.77/24", "fd00:1::1/64"]
    current = {"br1": br_current("br1", addresses=["10.1.0.1/24", "10.1.0.77/24", "fd00:1::1/64"])}
    config = [{"name": "br1", "addresses": ["fd00:1::2/64", "10.1.0.1/24", "10.9.0.1/24", "fd00:1::1/64"]}]
    _commands, after = plan(BridgeResource, config, current, state="replaced")
    assert after["br1"]["addresses"] == ["10.1.0.1/24", "10.9.0.1/24", "fd00:1::2/64", "fd00:1::1/64"]
    _commands, after = plan(BridgeResource, config, current)
    assert after["br1"]["addresses"] == ["10.1.0.1/24", "10.9.0.1/24", "10.1.0.77/24", "fd00:1::2/64", "fd00:1::1/64"]
