"""plan() and render() of the netns, bridge and veth resources (pure; no root, no kernel).

``current`` is handmade in the shape ``gather()`` returns, so these tests pin the semantics of
the states (merged / replaced / overridden / deleted), ownership, idempotence and the exact
command lines, without a kernel. Behaviour against a kernel is in tests/integration.

Run: ``.venv/bin/python -m pytest tests/unit -q``
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_COLLECTIONS = str(Path(__file__).resolve().parents[2] / ".collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import (
    BridgeResource,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._links import docker_mac
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import (
    NetnsResource,
    parse_hosts,
    render_hosts,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import (
    VethResource,
    owner_alias,
    parse_alias,
)

OWNER = "linuxnet.bridge"


class FakeModule:
    """The little of AnsibleModule that a Resource reads in its pure parts."""

    def __init__(self, check_mode: bool = False, **params) -> None:
        self.params = {"state": "merged", "config": None, **params}
        self.check_mode = check_mode
        self._diff = False


def plan(resource_cls, config, current, state="merged"):
    res = resource_cls(FakeModule(state=state, config=config))
    desired = res.normalize(config, state)
    ops, after = res.plan(desired, current, state)
    return [op.command for op in ops], after


def render(resource_cls, config):
    res = resource_cls(FakeModule(state="rendered", config=config))
    return res.render(res.normalize(config, "rendered"))


def no_recreate(commands):
    return not [c for c in commands if " link del " in f" {c} " or c.startswith("ip link del")]


# ============================================================================== netns


def ns_current(name, owned=True, resolv_conf=None, hosts=None):
    return {"name": name, "resolv_conf": resolv_conf, "hosts": hosts, "_owned": owned}


def test_netns_render():
    commands = render(
        NetnsResource,
        [
            {"name": "web", "resolv_conf": "nameserver 9.9.9.9\n", "hosts": [{"ip": "172.18.0.3", "names": ["db"]}]},
            {"name": "db"},
        ],
    )
    assert commands[:2] == ["ip netns add web", "ip -n web link set lo up"]
    assert commands[2] == "printf '%s' 'nameserver 9.9.9.9\n' > /etc/netns/web/resolv.conf"
    assert commands[3].startswith("printf '%s' '# managed by linuxnet.bridge\n") and commands[3].endswith(
        "172.18.0.3\tdb\n' > /etc/netns/web/hosts"
    )
    assert commands[4:] == ["ip netns add db", "ip -n db link set lo up"]


def test_netns_idempotent():
    hosts = [{"ip": "172.18.0.3", "names": ["db", "db.local"]}]
    config = [{"name": "web", "resolv_conf": "nameserver 9.9.9.9\n", "hosts": hosts}, {"name": "db"}]
    current = {"web": ns_current("web", resolv_conf="nameserver 9.9.9.9\n", hosts=hosts), "db": ns_current("db")}
    for state in ("merged", "replaced", "overridden"):
        commands, after = plan(NetnsResource, config, current, state)
        assert commands == [], state
        assert after == current


def test_netns_merged_creates_missing_only_and_leaves_others():
    current = {"old": ns_current("old"), "foreign": ns_current("foreign", owned=False)}
    commands, after = plan(NetnsResource, [{"name": "old"}, {"name": "new"}], current)
    assert commands == ["ip netns add new", "ip -n new link set lo up"]
    assert set(after) == {"old", "foreign", "new"}
    assert after["new"]["_owned"] is True


def test_netns_resolv_conf_merged_vs_replaced():
    current = {"web": ns_current("web", resolv_conf="nameserver 1.1.1.1\n", hosts=[{"ip": "10.0.0.1", "names": ["a"]}])}
    # changed text is rewritten in place
    commands, _after = plan(NetnsResource, [{"name": "web", "resolv_conf": "nameserver 9.9.9.9"}], current)
    assert commands == ["printf '%s' 'nameserver 9.9.9.9\n' > /etc/netns/web/resolv.conf"]
    # omitted: merged leaves the files, replaced/overridden remove them
    assert plan(NetnsResource, [{"name": "web"}], current, "merged")[0] == []
    for state in ("replaced", "overridden"):
        commands, after = plan(NetnsResource, [{"name": "web"}], current, state)
        assert commands == ["rm -f /etc/netns/web/resolv.conf", "rm -f /etc/netns/web/hosts"], state
        assert after["web"]["resolv_conf"] is None and after["web"]["hosts"] is None
    assert not [c for c in commands if "netns delete" in c]


def test_netns_overridden_removes_only_owned():
    current = {
        "keep": ns_current("keep"),
        "gone": ns_current("gone"),
        "user": ns_current("user", owned=False),
        "docker": {"name": "docker", "resolv_conf": None, "hosts": None},  # no _owned key at all
    }
    commands, after = plan(NetnsResource, [{"name": "keep"}], current, "overridden")
    assert commands == ["ip netns delete gone", "rm -rf /etc/netns/gone"]
    assert set(after) == {"keep", "user", "docker"}


def test_netns_deleted():
    current = {"a": ns_current("a"), "b": ns_current("b"), "user": ns_current("user", owned=False)}
    # no config: every owned namespace, never a foreign one
    commands, after = plan(NetnsResource, [], current, "deleted")
    assert commands == ["ip netns delete a", "rm -rf /etc/netns/a", "ip netns delete b", "rm -rf /etc/netns/b"]
    assert set(after) == {"user"}
    # listed: exactly those (also a foreign one the user names); absent ones are no-ops
    commands, after = plan(NetnsResource, [{"name": "user"}, {"name": "absent"}], current, "deleted")
    assert commands == ["ip netns delete user", "rm -rf /etc/netns/user"]
    assert set(after) == {"a", "b"}
    assert plan(NetnsResource, [{"name": "absent"}], current, "deleted")[0] == []


def test_netns_hosts_round_trip():
    entries = [{"ip": "172.18.0.3", "names": ["db", "db.local"]}, {"ip": "fd00::3", "names": ["v6"]}]
    text = render_hosts(entries)
    assert text.startswith("# managed by linuxnet.bridge\n127.0.0.1\tlocalhost\n")
    assert parse_hosts(text) == entries
    # comments and blank lines of a hand-edited file are ignored
    assert parse_hosts("# x\n\n10.0.0.1 a b # c\n") == [{"ip": "10.0.0.1", "names": ["a", "b"]}]


def test_netns_hosts_entry_equal_to_a_standard_line_is_idempotent():
    # A user entry equal to one of the standard lines (127.0.0.1 localhost) is written to the
    # file, but parse_hosts() drops it when reading back, so every run rewrites the file.
    config = [{"name": "web", "hosts": [{"ip": "127.0.0.1", "names": ["localhost"]}, {"ip": "10.0.0.3", "names": ["db"]}]}]
    res = NetnsResource(FakeModule())
    wanted = res.normalize(config, "merged")[0]["hosts"]
    current = {"web": ns_current("web", hosts=parse_hosts(render_hosts(wanted)))}  # what gather() reads back
    assert plan(NetnsResource, config, current)[0] == []


def test_netns_plan_does_not_mutate_current():
    current = {"web": ns_current("web", resolv_conf="a\n")}
    snapshot = {k: dict(val) for k, val in current.items()}
    plan(NetnsResource, [{"name": "web", "resolv_conf": "b"}, {"name": "new"}], current, "overridden")
    assert current == snapshot


# ============================================================================== bridge


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


# ============================================================================== veth


def veth_current(
    name,
    peer="eth0",
    peer_netns="ns1",
    owned=True,
    master=None,
    addresses=(),
    gateway=None,
    mtu=1500,
    mac="02:00:00:00:00:aa",
    hairpin=None,
    up=True,
    peer_up=True,
):
    item = {
        "name": name,
        "peer": peer,
        "peer_netns": peer_netns,
        "master": master,
        "addresses": list(addresses),
        "gateway": gateway,
        "mtu": mtu,
        "mac": mac,
        "hairpin": hairpin if hairpin is not None else (False if master else None),
        "_owned": owned,
        "_up": up,
    }
    if peer is not None:
        item.update({"_peer_up": peer_up, "_peer_mtu": mtu})
    return item


def test_veth_render_full():
    commands = render(
        VethResource,
        [
            {
                "name": "veth-web",
                "peer_netns": "web",
                "master": "docker0",
                "addresses": ["172.17.0.5/16"],
                "gateway": "172.17.0.1",
                "mac": "docker",
                "mtu": 1400,
                "hairpin": True,
            }
        ],
    )
    assert commands == [
        "ip link add veth-web mtu 1400 type veth peer name eth0 mtu 1400 netns web",
        f"ip link set veth-web alias '{OWNER} veth peer=eth0 netns=web'",
        "ip link set veth-web master docker0",
        "bridge link set dev veth-web hairpin on",
        "ip link set veth-web up",
        "ip -n web link set eth0 address 02:42:ac:11:00:05",
        "ip -n web addr add 172.17.0.5/16 dev eth0",
        "ip -n web link set eth0 up",
        "ip -n web route replace default via 172.17.0.1",
    ]


def test_veth_render_host_pair():
    assert render(VethResource, [{"name": "va", "peer": "vb"}]) == [
        "ip link add va type veth peer name vb",
        f"ip link set va alias '{OWNER} veth peer=vb'",
        "ip link set va up",
        "ip link set vb up",
    ]


def test_veth_owner_alias_round_trip():
    assert parse_alias(owner_alias("eth0", "web")) == {"peer": "eth0", "peer_netns": "web"}
    assert parse_alias(owner_alias("vb", None)) == {"peer": "vb", "peer_netns": None}
    assert parse_alias("something else") is None
    assert parse_alias(None) is None
    assert parse_alias(OWNER) is None  # a bridge's mark is not a veth's


FULL_VETH = {
    "name": "v1",
    "peer_netns": "ns1",
    "master": "br0",
    "addresses": ["10.0.0.2/24"],
    "gateway": "10.0.0.1",
    "mtu": 1500,
    "mac": "02:00:00:00:00:aa",
    "hairpin": False,
}


def test_veth_idempotent():
    current = {
        "v1": veth_current("v1", master="br0", addresses=["10.0.0.2/24"], gateway="10.0.0.1"),
        "ens160": {**veth_current("ens160", owned=False), "peer": None, "peer_netns": None},  # foreign, peer unknown
    }
    for state in ("merged", "replaced", "overridden"):
        commands, after = plan(VethResource, [FULL_VETH], current, state)
        assert commands == [], state
        assert after == current
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], current)[0] == []


def test_veth_in_place_mtu_sets_both_ends():
    current = {"v1": veth_current("v1", master="br0")}
    commands, after = plan(VethResource, [{"name": "v1", "peer_netns": "ns1", "mtu": 9000}], current)
    assert commands == ["ip link set v1 mtu 9000", "ip -n ns1 link set eth0 mtu 9000"]
    assert after["v1"]["mtu"] == 9000
    # only the end that differs
    current["v1"]["_peer_mtu"] = 9000
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1", "mtu": 9000}], current)[0] == ["ip link set v1 mtu 9000"]


def test_veth_in_place_master_mac_addresses():
    current = {"v1": veth_current("v1", master="br0", addresses=["10.0.0.2/24"])}
    config = [{"name": "v1", "peer_netns": "ns1", "master": "br1", "mac": "02:00:00:00:00:bb", "addresses": ["10.0.1.2/24"]}]
    commands, after = plan(VethResource, config, current, "merged")
    assert commands == [
        "ip link set v1 master br1",
        "ip -n ns1 link set eth0 address 02:00:00:00:00:bb",
        "ip -n ns1 addr add 10.0.1.2/24 dev eth0",
    ]
    assert no_recreate(commands)
    assert after["v1"]["master"] == "br1" and after["v1"]["mac"] == "02:00:00:00:00:bb"
    assert after["v1"]["addresses"] == ["10.0.0.2/24", "10.0.1.2/24"]
    commands, after = plan(VethResource, config, current, "replaced")
    assert "ip -n ns1 addr del 10.0.0.2/24 dev eth0" in commands and no_recreate(commands)
    assert after["v1"]["addresses"] == ["10.0.1.2/24"]


def test_veth_gateway():
    current = {"v1": veth_current("v1", addresses=["10.0.0.2/24"], gateway="10.0.0.1")}
    commands, _after = plan(VethResource, [{"name": "v1", "peer_netns": "ns1", "gateway": "10.0.0.254"}], current)
    assert commands == ["ip -n ns1 route replace default via 10.0.0.254"]
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], current, "merged")[0] == []
    # The default route belongs to the namespace, which several pairs may share (eth0 + eth1):
    # a pair without gateway leaves it alone even in replaced state.
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], current, "replaced")[0] == []


def test_veth_hairpin_toggle():
    current = {"v1": veth_current("v1", master="br0")}
    commands, after = plan(VethResource, [{"name": "v1", "peer_netns": "ns1", "hairpin": True}], current)
    assert commands == ["bridge link set dev v1 hairpin on"]
    assert after["v1"]["hairpin"] is True
    current["v1"]["hairpin"] = True
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1", "hairpin": False}], current)[0] == [
        "bridge link set dev v1 hairpin off"
    ]
    # without a bridge there is no port to set hairpin on
    assert plan(VethResource, [{"name": "v2", "peer_netns": "ns2", "hairpin": True}], {})[0] == [
        "ip link add v2 type veth peer name eth0 netns ns2",
        f"ip link set v2 alias '{OWNER} veth peer=eth0 netns=ns2'",
        "ip link set v2 up",
        "ip -n ns2 link set eth0 up",
    ]


def test_veth_down_ends_are_brought_up():
    current = {"v1": veth_current("v1", up=False, peer_up=False)}
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], current)[0] == [
        "ip link set v1 up",
        "ip -n ns1 link set eth0 up",
    ]


@pytest.mark.parametrize(
    "change",
    [{"peer": "eth1"}, {"peer_netns": "ns2"}],
    ids=["peer", "peer_netns"],
)
def test_veth_recreated_only_when_peer_or_netns_changes(change):
    current = {"v1": veth_current("v1", master="br0", addresses=["10.0.0.2/24"])}
    item = {"name": "v1", "peer_netns": "ns1", "master": "br0", "addresses": ["10.0.0.2/24"], **change}
    commands, after = plan(VethResource, [item], current)
    assert commands[0].startswith("ip link del v1"), commands
    assert "recreate" in commands[0] and "peer" in commands[0]
    assert commands[1].startswith("ip link add v1 type veth peer name ")
    assert commands[1].endswith(f"peer name {item.get('peer', 'eth0')} netns {item['peer_netns']}")
    assert after["v1"]["peer"] == item.get("peer", "eth0") and after["v1"]["peer_netns"] == item["peer_netns"]


@pytest.mark.parametrize(
    "change",
    [{"mtu": 9000}, {"master": "br1"}, {"mac": "02:00:00:00:00:cc"}, {"addresses": ["10.9.9.9/24"]}, {"gateway": "10.0.0.9"},
     {"hairpin": True}],
    ids=["mtu", "master", "mac", "addresses", "gateway", "hairpin"],
)
def test_veth_attribute_changes_never_recreate(change):
    current = {"v1": veth_current("v1", master="br0", addresses=["10.0.0.2/24"], gateway="10.0.0.1")}
    for state in ("merged", "replaced", "overridden"):
        commands, _after = plan(VethResource, [{"name": "v1", "peer_netns": "ns1", **change}], current, state)
        assert commands and no_recreate(commands), (state, commands)


def test_veth_with_missing_peer_end_is_recreated_and_says_so():
    current = {"v1": {**veth_current("v1"), "peer": None, "peer_netns": None}}
    commands, _after = plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], current)
    assert commands[0] == "ip link del v1  # recreate: peer end is missing"


def test_veth_overridden_removes_only_owned():
    current = {
        "v1": veth_current("v1"),
        "v2": veth_current("v2", peer_netns="ns2"),
        "user": veth_current("user", peer_netns="userns", owned=False),
        "ens160": {**veth_current("ens160", owned=False), "peer": None, "peer_netns": None},
    }
    commands, after = plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], current, "overridden")
    assert commands == ["ip link del v2"]
    assert set(after) == {"v1", "user", "ens160"}
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], current, "replaced")[0] == []


def test_veth_deleted():
    current = {"v1": veth_current("v1"), "v2": veth_current("v2", peer_netns="ns2"), "user": veth_current("user", owned=False)}
    commands, after = plan(VethResource, [], current, "deleted")
    assert commands == ["ip link del v1", "ip link del v2"]
    assert set(after) == {"user"}
    commands, after = plan(VethResource, [{"name": "v2"}, {"name": "absent"}], current, "deleted")
    assert commands == ["ip link del v2"]


def test_veth_create_expectation():
    commands, after = plan(VethResource, [{"name": "v1", "peer_netns": "ns1", "addresses": ["10.0.0.2/24"]}], {})
    assert commands[0] == "ip link add v1 type veth peer name eth0 netns ns1"
    assert after["v1"]["_owned"] is True and after["v1"]["addresses"] == ["10.0.0.2/24"]
    assert after["v1"]["hairpin"] is None  # no bridge, no port


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


# ============================================================================== engine


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


class RunModule(FakeModule):
    def exit_json(self, **kwargs):
        raise ExitJson(kwargs)

    def fail_json(self, **kwargs):
        raise FailJson(kwargs)

    def warn(self, message):
        pass


class KernelForbidden(VethResource):
    """A resource whose kernel parts must not be reached."""

    def check_references(self, desired, state):
        raise AssertionError("rendered must not look at the host")

    def gather(self, desired, state):
        raise AssertionError("rendered must not look at the host")

    def apply(self, operations):
        raise AssertionError("rendered must not touch the host")


def test_engine_rendered_does_not_touch_the_host():
    config = [{"name": "v1", "peer_netns": "ns1", "addresses": ["10.0.0.2/24"]}]
    module = RunModule(state="rendered", config=config)
    with pytest.raises(ExitJson) as info:
        _engine.run(module, KernelForbidden(module))
    result = info.value.args[0]
    assert result["changed"] is False
    assert result["rendered"][0] == "ip link add v1 type veth peer name eth0 netns ns1"


def test_engine_validation_error_fails_before_gather():
    module = RunModule(state="merged", config=[{"name": "v1", "peer_netns": "ns1", "mtu": 67}])
    with pytest.raises(FailJson) as info:
        _engine.run(module, KernelForbidden(module))
    assert info.value.args[0]["msg"] == "config[0] (name=v1).mtu: MTU 67 is outside 68..65535"


@pytest.mark.parametrize("state", ["merged", "replaced", "overridden", "rendered"])
def test_engine_states_that_need_config(state):
    module = RunModule(state=state, config=None)
    with pytest.raises(FailJson) as info:
        _engine.run(module, KernelForbidden(module))
    assert info.value.args[0]["msg"].startswith("config:")


# ============================================================================== vocabulary


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


def test_netlink_forget_closes_the_namespace_socket(monkeypatch):
    from ansible_collections.linuxnet.bridge.plugins.module_utils import _netlink

    class Socket:
        closed = False

        def close(self):
            self.closed = True

    opened = []
    monkeypatch.setattr(_netlink, "new_iproute", lambda: opened.append(Socket()) or opened[-1])
    nl = _netlink.Netlink()
    first = nl.ipr(None)
    nl.forget(None)
    assert first.closed
    assert nl.ipr(None) is not first and len(opened) == 2
    nl.forget("never-opened")  # nothing to close: no error
