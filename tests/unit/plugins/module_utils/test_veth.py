"""plan() and render() of the veth resource (pure; no root, no kernel).

``current`` is handmade in the shape ``gather()`` returns, so these tests pin the semantics of
the states (merged / replaced / overridden / deleted), ownership, idempotence and the exact
command lines, without a kernel. Behaviour against a kernel is in tests/integration.

Run: ``.venv/bin/python -m pytest tests/unit -q``
"""

from __future__ import annotations

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import (
    VethResource,
    owner_alias,
    parse_alias,
)

from .fixtures.netlink import FULL_VETH, OWNER, no_recreate, plan, render, veth_current


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
        "ip netns exec web sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1",
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
        "sysctl -qw net.ipv6.conf.vb.disable_ipv6=1",
        "ip link set va up",
        "ip link set vb up",
    ]


def test_veth_owner_alias_round_trip():
    assert parse_alias(owner_alias("eth0", "web")) == {"peer": "eth0", "peer_netns": "web"}
    assert parse_alias(owner_alias("vb", None)) == {"peer": "vb", "peer_netns": None}
    assert parse_alias("something else") is None
    assert parse_alias(None) is None
    assert parse_alias(OWNER) is None  # a bridge's mark is not a veth's


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
        "ip netns exec ns2 sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1",
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


def test_ipv6_off_on_our_pairs_by_default_left_alone_on_foreign_ones():
    """Docker turns IPv6 off on endpoints of IPv4-only networks: link-local would bypass ICC."""
    on = dict(veth_current("v1"), ipv6=True)
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], {"v1": on})[0] == [
        "ip netns exec ns1 sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1"
    ]
    off = dict(veth_current("v1"), ipv6=False)
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], {"v1": off})[0] == []
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1", "ipv6": True}], {"v1": off})[0] == [
        "ip netns exec ns1 sysctl -qw net.ipv6.conf.eth0.accept_ra=0 net.ipv6.conf.eth0.disable_ipv6=0"
    ]
    # on, but taking router advertisements (drift, or made by an older release): accept_ra=0 again
    taking = dict(veth_current("v1"), ipv6=True, _accept_ra=1)
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1", "ipv6": True}], {"v1": taking})[0] == [
        "ip netns exec ns1 sysctl -qw net.ipv6.conf.eth0.accept_ra=0 net.ipv6.conf.eth0.disable_ipv6=0"
    ]
    settled = dict(veth_current("v1"), ipv6=True, _accept_ra=0)
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1", "ipv6": True}], {"v1": settled})[0] == []
    foreign = dict(veth_current("v1", owned=False), ipv6=True)
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], {"v1": foreign})[0] == []
    # a kernel without IPv6 reports None: nothing to switch
    unknown = dict(veth_current("v1"), ipv6=None)
    assert plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], {"v1": unknown})[0] == []


def test_ipv6_sysctl_key_of_a_name_with_dots_uses_slashes():
    commands = render(VethResource, [{"name": "v1", "peer": "eth0.5", "peer_netns": "ns1"}])
    assert "ip netns exec ns1 sysctl -qw net/ipv6/conf/eth0.5/disable_ipv6=1" in commands
    assert commands.index("ip netns exec ns1 sysctl -qw net/ipv6/conf/eth0.5/disable_ipv6=1") < commands.index(
        "ip -n ns1 link set eth0.5 up")


def test_a_pair_left_unmarked_by_a_killed_run_is_marked_not_recreated():
    """gather() adopts an unaliased pair that has a creation note (see _ownership): the plan sets the alias."""
    half = dict(veth_current("v1", up=False, peer_up=False), _unmarked=True)
    commands, after = plan(VethResource, [{"name": "v1", "peer_netns": "ns1"}], {"v1": half})
    assert commands == [f"ip link set v1 alias '{OWNER} veth peer=eth0 netns=ns1'", "ip link set v1 up", "ip -n ns1 link set eth0 up"]
    assert "_unmarked" not in after["v1"]


def test_deletions_come_first_so_a_freed_peer_name_can_be_taken():
    """eth0 moves from v1 to v2 (an endpoint's first network changes): v1 goes before v2 is made."""
    current = {"v1": veth_current("v1"), "v2": veth_current("v2", peer="eth1")}
    commands, _after = plan(VethResource, [{"name": "v2", "peer_netns": "ns1"}, {"name": "v1", "peer": "eth1", "peer_netns": "ns1"}],
                            current, "overridden")
    deletes = [c for c in commands if " link del " in c]
    assert commands[:len(deletes)] == deletes and len(deletes) == 2, commands


def test_expected_after_lists_the_peer_addresses_as_the_gather_will():
    """Check mode's ``after`` is the real run's: the peer's addresses in the kernel's order (see
    test_bridge.test_kernel_order_of_added_addresses), for a new pair and an existing one."""
    config = [{"name": "v1", "peer_netns": "c1", "addresses": ["fd00:1::2/64", "10.1.0.2/24", "fd00:1::3/64"]}]
    _commands, after = plan(VethResource, config, {})
    assert after["v1"]["addresses"] == ["10.1.0.2/24", "fd00:1::3/64", "fd00:1::2/64"]
    current = {"v1": veth_current("v1", peer_netns="c1", addresses=["10.1.0.2/24", "fd00:1::3/64", "fd00:1::2/64"])}
    config = [{"name": "v1", "peer_netns": "c1", "addresses": ["10.1.0.9/24", "10.2.0.2/24", "fd00:1::4/64"]}]
    _commands, after = plan(VethResource, config, current)
    assert after["v1"]["addresses"] == ["10.1.0.2/24", "10.2.0.2/24", "10.1.0.9/24", "fd00:1::4/64", "fd00:1::3/64", "fd00:1::2/64"]


def test_normalize_checks_a_shared_name_or_gateway_once_yet_refuses_each_bad_one_by_its_field():
    """Items sharing the peer name, a bridge and a gateway normalize as each does alone; a bad value
    after good ones (the same field, another item) is refused naming its own item."""
    from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

    from .fixtures.netlink import FakeModule

    def item(n: int, **changes) -> dict:
        return {"name": f"v{n}", "peer_netns": f"ns{n}", "master": "br0", "addresses": [f"10.0.0.{n + 2}/24"],
                "gateway": "10.0.0.1", "mac": "docker", **changes}

    res = VethResource(FakeModule(state="merged"))
    config = [item(n) for n in range(3)]
    assert res.normalize(config, "merged") == [res.normalize([one], "merged")[0] for one in config]
    for field, bad, message in (("master", "br/0", "config[2] (name=v2).master: interface name 'br/0'"),
                                ("peer", "eth 0", "config[2] (name=v2).peer: interface name 'eth 0'"),
                                ("gateway", "224.0.0.1", "config[2] (name=v2).gateway: '224.0.0.1' is a multicast")):
        with pytest.raises(ValidationError) as err:
            res.normalize([item(0), item(1), item(2, **{field: bad})], "merged")
        assert str(err.value).startswith(message), str(err.value)
