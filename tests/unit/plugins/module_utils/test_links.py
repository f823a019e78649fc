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
from ansible_collections.linuxnet.bridge.plugins.module_utils import _links
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError, Operation
from ansible_collections.linuxnet.bridge.plugins.module_utils._links import (
    docker_mac,
    op_addr,
    op_default_route,
    op_set_mtu,
    schedule,
)
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


# ------------------------------------------------------------------------------ batched apply

def planned(resource_cls, config, current=None, state="merged"):
    res = resource_cls(FakeModule(state=state, config=config))
    return res.plan(res.normalize(config, state), current or {}, state)[0]


def waves_by_command(ops):
    return {op.command: wave for op, wave in zip(ops, schedule(ops))}


def test_veth_pairs_go_in_three_waves_whatever_their_number():
    """Create every pair, then configure the host ends (and switch the peers' IPv6 off), then the
    peers in their namespaces: a link is configured only after its creation was answered."""
    config = [{"name": f"v{i}", "peer_netns": f"c{i}", "master": "br0", "addresses": [f"10.0.0.{i + 2}/24"],
               "gateway": "10.0.0.1", "mac": "docker", "hairpin": True} for i in range(3)]
    waves = waves_by_command(planned(VethResource, config))
    for i in range(3):
        assert waves[f"ip link add v{i} type veth peer name eth0 netns c{i}"] == 0
        assert waves[f"ip link set v{i} alias 'linuxnet.bridge veth peer=eth0 netns=c{i}'"] == 1
        assert waves[f"ip link set v{i} master br0"] == waves[f"bridge link set dev v{i} hairpin on"] == 1
        assert waves[f"ip link set v{i} up"] == 1
        assert waves[f"ip netns exec c{i} sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1"] == 1  # before the peer goes up
        assert waves[f"ip -n c{i} addr add 10.0.0.{i + 2}/24 dev eth0"] == 2
        assert waves[f"ip -n c{i} link set eth0 up"] == waves[f"ip -n c{i} route replace default via 10.0.0.1"] == 2


def test_a_recreated_pair_is_deleted_before_it_is_made_again_on_the_same_socket():
    current = {"v1": veth_current("v1", peer="eth1", peer_netns="ns1", master="br0")}
    ops = planned(VethResource, [{"name": "v1", "peer_netns": "ns1", "master": "br0"}], current, "replaced")
    assert ops[0].command.startswith("ip link del v1")
    waves = schedule(ops)
    assert waves[:2] == [0, 0]  # one datagram: the kernel deletes, then creates


def test_namespaces_are_made_before_their_lo_is_set_up_files_beside():
    ops = planned(NetnsResource, [{"name": "a", "resolv_conf": "nameserver 9.9.9.9\n"}, {"name": "b"}])
    assert waves_by_command(ops) == {"ip netns add a": 0, "ip -n a link set lo up": 1,
                                     ops[2].command: 0, "ip netns add b": 0, "ip -n b link set lo up": 1}


def test_an_operation_of_unknown_kind_is_a_barrier():
    ops = [op_set_mtu("a", None, 1400), Operation("something else", "other", {}), op_set_mtu("b", None, 1400)]
    assert schedule(ops) == [0, 1, 2]


class FakeNetlink:
    """What apply uses of Netlink: dumps (names -> indexes) and transact, with chosen refusals."""

    def __init__(self, refuse: dict[str, int]) -> None:
        self.refuse = refuse  # command -> errno
        self.sent: list[tuple] = []
        self.by_message: dict[bytes, str] = {}

    def index(self, name, netns, command):
        return 7

    def invalidate(self, netns=...):
        pass

    def transact(self, netns, messages):
        self.sent.append((netns, len(messages)))
        return [self.refuse.get(self.by_message.get(body, ""), 0) for _kind, _flags, body in messages]


def test_apply_names_the_command_whose_request_was_refused_and_what_was_applied(monkeypatch):
    ops = [op_set_mtu("a", "n1", 1400), op_addr("a", "n1", "10.0.0.2/24", True), op_default_route("n1", "10.9.0.1"),
           op_set_mtu("b", "n2", 1400)]
    res = BridgeResource(FakeModule())
    res.netlink = FakeNetlink({"ip -n n1 route replace default via 10.9.0.1": 101})
    for op in ops:
        res.netlink.by_message[_links.ENCODERS[op.action](res.netlink, op).message[2]] = op.command
    with pytest.raises(ApplyError) as failed:
        res.apply(ops)
    assert str(failed.value) == ("ip -n n1 route replace default via 10.9.0.1: Network is unreachable (errno 101) (2 of 4 "
                                 "operations were applied before it, the last: 'ip -n n1 addr add 10.0.0.2/24 dev eth0'"
                                 "; the next run goes on from there)").replace(" dev eth0", " dev a")
    assert res.netlink.sent == [("n1", 3)]  # one datagram for n1; nothing sent after the refusal


def test_apply_sends_one_datagram_per_namespace_and_wave():
    ops = [op for i in range(100) for op in (op_set_mtu(f"v{i}", None, 1400), op_set_mtu("eth0", f"c{i}", 1400))]
    res = BridgeResource(FakeModule())
    res.netlink = FakeNetlink({})
    res.apply(ops)
    assert sorted(res.netlink.sent, key=str) == sorted([(None, 100)] + [(f"c{i}", 1) for i in range(100)], key=str)


def test_a_wave_of_many_veths_holds_at_most_fd_budget_namespace_fds(monkeypatch, tmp_path):
    """A veth made into a namespace names it by an open fd until the kernel answered: a wave of
    more veths than FD_BUDGET is sent in parts (each part's datagrams as full as before), so the
    descriptors a run holds stay bounded whatever the number of endpoints."""
    from ansible_collections.linuxnet.bridge.plugins.module_utils import _ownership
    from ansible_collections.linuxnet.bridge.plugins.module_utils._links import FD_BUDGET, op_veth_add

    monkeypatch.setattr(_ownership, "CREATING_DIR", str(tmp_path / "creating"))
    live: set[int] = set()
    peak = []
    real_close = _links.os.close

    def namespace_fd(netns):
        fd = _links.os.open(_links.os.devnull, _links.os.O_RDONLY)  # a real descriptor stands in
        live.add(fd)
        return fd

    def close(fd):
        live.discard(fd)
        real_close(fd)

    class Fake(FakeNetlink):
        def transact(self, netns, messages):
            peak.append(len(live))
            return super().transact(netns, messages)

        def pair(self, host_end, peer, peer_netns):
            pass

    monkeypatch.setattr(_links, "namespace_fd", namespace_fd)
    monkeypatch.setattr(_links.os, "close", close)
    count = 2 * FD_BUDGET + 10
    ops = [op_veth_add(f"v{i}", "eth0", f"c{i}", None) for i in range(count)]
    assert set(schedule(ops)) == {0}  # one wave
    res = BridgeResource(FakeModule())
    res.netlink = Fake({})
    res.apply(ops)
    assert res.netlink.sent == [(None, FD_BUDGET), (None, FD_BUDGET), (None, 10)]
    assert max(peak) == FD_BUDGET and not live
    assert FD_BUDGET % _links._rtnl.WINDOW == 0  # each part: whole datagrams of WINDOW requests

    # a refusal in the first part: nothing more is encoded (no fd opened) or sent
    class Refusing(Fake):
        def transact(self, netns, messages):
            return [17 if i == 3 else error for i, error in enumerate(super().transact(netns, messages))]

    res.netlink = Refusing({})
    opened = []
    monkeypatch.setattr(_links, "namespace_fd", lambda netns: opened.append(netns) or namespace_fd(netns))
    with pytest.raises(ApplyError, match=r"^ip link add v3 type veth .*File exists \(errno 17\)"):
        res.apply(ops)
    assert res.netlink.sent == [(None, FD_BUDGET)] and len(opened) == FD_BUDGET and not live


class GroupNetlink(FakeNetlink):
    """FakeNetlink that also has a namespace's dump (the groups its links are in) and keeps the messages
    sent; ``refuse_group``: the errno a group delete gets."""

    def __init__(self, refuse: dict[str, int], groups: list[int], refuse_group: int = 0) -> None:
        super().__init__(refuse)
        self.groups, self.refuse_group = groups, refuse_group
        self.messages: list[list[tuple]] = []

    def links(self, netns=None):
        return {f"l{i}": {"name": f"l{i}", "group": group} for i, group in enumerate(self.groups)}

    def transact(self, netns, messages):
        self.messages.append(messages)
        return [self.refuse_group if message == _links._rtnl.del_group(self.used) else error
                for message, error in zip(messages, super().transact(netns, messages))]

    @property
    def used(self) -> int:
        return _links.free_group(self.links().values())


def sent_as(netlink: GroupNetlink, group: int) -> list[list[str]]:
    """Each datagram's messages, as the ip commands they are."""
    names = {_links._rtnl.set_group(f"br{c}", group): f"set br{c} group" for c in "abcd"}
    names.update({_links._rtnl.del_link(f"br{c}"): f"del br{c}" for c in "abcd"})
    names[_links._rtnl.del_group(group)] = "del group"
    names.update({_links.ENCODERS["request"](netlink, op).message: op.command for op in [op_set_mtu("bra", None, 1400)]})
    return [[names[message] for message in messages] for messages in netlink.messages]


def test_consecutive_deletes_on_one_socket_go_as_one_group_delete():
    """Two or more link deletes in a row on one socket: the links are put in a group no link of the
    namespace is in, and the group is deleted (one batch of the kernel); a delete alone stays one."""
    ops = [_links.op_delete(f"br{c}", None) for c in "abc"]
    res = BridgeResource(FakeModule())
    res.netlink = GroupNetlink({}, [0, _links.DELETE_GROUP])
    res.apply(ops)
    group = _links.DELETE_GROUP + 1  # the first one is some link's
    assert sent_as(res.netlink, group) == [["set bra group", "set brb group", "set brc group", "del group"]]

    res.netlink = GroupNetlink({}, [0])
    res.apply([_links.op_delete("bra", None), op_set_mtu("bra", None, 1400), _links.op_delete("brb", None),
               _links.op_delete("brc", None)])
    assert sent_as(res.netlink, _links.DELETE_GROUP) == [
        ["del bra", "ip link set bra mtu 1400", "set brb group", "set brc group", "del group"]]


def test_a_link_a_group_delete_cannot_take_fails_alone_and_a_refused_group_delete_goes_link_by_link():
    ops = [_links.op_delete(f"br{c}", None) for c in "abc"]
    res = BridgeResource(FakeModule())
    res.netlink = GroupNetlink({}, [0])
    res.netlink.by_message[_links._rtnl.set_group("brb", _links.DELETE_GROUP)[2]] = "brb"
    res.netlink.refuse = {"brb": 19}  # no such device: the others go
    with pytest.raises(ApplyError, match=r"^ip link del brb: No such device \(errno 19\) \(2 of 3 operations"):
        res.apply(ops)

    res.netlink = GroupNetlink({}, [0], refuse_group=95)  # a kernel without group deletes
    res.apply(ops)
    assert sent_as(res.netlink, _links.DELETE_GROUP) == [["set bra group", "set brb group", "set brc group", "del group"],
                                                         ["del bra", "del brb", "del brc"]]


# ------------------------------------------------------------------------------ request arguments


class _Reads(dict):
    """The attrs of a request, recording which the encoder reads."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.read: set = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


class _Indexes:
    def index(self, name, netns, command):
        return 7


@pytest.mark.parametrize("op", [
    op_addr("eth0", "c1", "10.0.0.2/24", True), op_addr("eth0", "c1", "10.0.0.2/31", True),
    op_addr("eth0", "c1", "fd00::2/64", True), op_addr("eth0", "c1", "10.0.0.2/24", False),
    op_default_route("c1", "10.0.0.1"), op_default_route("c1", "fd00::1"),
    _links.op_stp("br0", None, True), op_set_mtu("br0", None, 1400), _links.op_set_mac("br0", None, "02:00:00:00:00:01"),
    _links.op_set_state("br0", "c1", False), _links.op_set_alias("br0", None, "x"), _links.op_hairpin("v1", True),
    _links.op_lo_up("c1"), _links.op_delete("v1", None),
], ids=lambda op: op.command)
def test_every_request_argument_is_read_by_its_encoder(op):
    """An argument the encoder never reads is one a reader could believe is sent (a broadcast, a
    route's destination): every request carries only what its netlink message is made of."""
    attrs = _Reads(op.args["attrs"])
    _links.ENCODERS[op.action](_Indexes(), Operation(op.command, op.action, {**op.args, "attrs": attrs}))
    assert set(attrs) <= attrs.read, set(attrs) - attrs.read


def test_address_commands_say_nodad_for_ipv6_only():
    assert op_addr("eth0", "c1", "fd00::2/64", True).command == "ip -n c1 addr add fd00::2/64 dev eth0 nodad"
    assert op_addr("eth0", "c1", "10.0.0.2/31", True).command == "ip -n c1 addr add 10.0.0.2/31 dev eth0"
    assert op_addr("eth0", None, "fd00::2/64", False).command == "ip addr del fd00::2/64 dev eth0"
