"""Four leftovers of a review, their pure parts (no root, no kernel); the kernel parts are proven in
tests/integration/test_review_leftovers.py.

* ``_netlink``: a recorded veth pair whose peer is in another namespace than the one asked for
  (its host end's IFLA_LINK_NETNSID is not that namespace's id) is dropped, not trusted.
* ``_netns``: a stale name (a file under /run/netns with no namespace) is planned, never listed.
* ``_deployment``: writes a firewall step held for the next step are applied alone (their warnings
  reported) whatever exception stops that step, and the failure reports the steps' commands.
* ``_iptables``: the render cache is bounded.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_review_leftovers.py -q``
"""

from __future__ import annotations

import os

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment as d
from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine, _iptables, _netlink, _port_mapping
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import Rule
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import Gathered, NetnsResource

from .fixtures.netlink import FakeModule, ns_current
from .test_deployment_params import FakeStep, RunModule

# ------------------------------------------------------------------------------ _netlink


def test_a_pair_whose_peer_is_in_another_namespace_is_dropped(monkeypatch):
    """c0's id in the host is 0: the pair whose host end's link-netnsid is 0 is trusted; a pair
    recorded for c1 whose host end now says 5 (its peer moved) is dropped and c1's dump answers.
    A namespace whose id cannot be told (the kernel does not answer) is trusted as before."""
    dumps: list = []

    class Reader:
        def __init__(self, netns=None):
            self.netns = netns

        def links(self):
            dumps.append(self.netns)
            if self.netns is None:
                return [{"name": "v0", "index": 9, "kind": "veth", "link_netnsid": 0, "link": 2},
                        {"name": "v1", "index": 10, "kind": "veth", "link_netnsid": 5, "link": 2},
                        {"name": "v2", "index": 11, "kind": "veth", "link_netnsid": 7, "link": 2}]
            return [{"name": "lo", "index": 1}, {"name": "eth0", "index": 3}]

        def close(self):
            pass

    ids = {"c0": 0, "c1": 1}
    opened: dict[int, str] = {}  # fd -> the namespace it stands for
    asked: list = []

    def namespace_fd(netns):
        fd = os.open(os.devnull, os.O_RDONLY)
        opened[fd] = netns
        return fd

    def namespace_id(reader, fd):
        asked.append(opened[fd])
        if opened[fd] not in ids:
            raise OSError(95, "not supported")
        return ids[opened[fd]]

    monkeypatch.setattr(_netlink._rtnl, "Reader", Reader)
    monkeypatch.setattr(_netlink, "open_in_namespace", lambda netns, opener: Reader(netns))
    monkeypatch.setattr(_netlink, "namespace_fd", namespace_fd)
    monkeypatch.setattr(_netlink, "namespace_id", namespace_id)
    nl = _netlink.Netlink()
    for i, end in enumerate(("v0", "v1", "v2")):
        nl.pair(end, "eth0", f"c{i}")
    assert nl.index("eth0", "c0", "cmd") == 2 and dumps == [None]
    assert nl.index("eth0", "c1", "cmd") == 3 and dumps == [None, "c1"]  # not v1's IFLA_LINK: c1's own dump
    assert ("c1", "eth0") not in nl._pairs and "v1" not in nl._ends
    assert nl.index("eth0", "c2", "cmd") == 2  # id unknown: as before
    assert nl.index("eth0", "c0", "cmd") == 2 and asked.count("c0") == 1  # a namespace's id is asked once
    nl.forget("c0")
    nl.pair("v0", "eth0", "c0")
    assert nl.index("eth0", "c0", "cmd") == 2 and asked.count("c0") == 2  # forgotten with its namespace


# ------------------------------------------------------------------------------ _netns


def stale_and_live() -> Gathered:
    current = Gathered()
    current["keep"] = ns_current("keep")
    current.stale["a"] = {**ns_current("a", resolv_conf="nameserver 9.9.9.9\n"), "_stale": True}
    current.stale["b"] = {**ns_current("b"), "_stale": True}
    return current


def test_stale_names_are_planned_but_never_listed():
    res = NetnsResource(FakeModule())
    current = stale_and_live()
    assert _engine.listing(current, res) == [{"name": "keep"}]  # gathered, before
    desired = res.normalize([{"name": "a", "resolv_conf": "nameserver 9.9.9.9\n"}, {"name": "keep"}], "overridden")
    ops, after = res.plan(desired, current, "overridden")
    assert [op.command for op in ops] == ["ip netns add a", "ip -n a link set lo up", "rm -rf /etc/netns/b", "ip netns delete b"]
    assert _engine.listing(after, res) == [{"name": "a", "resolv_conf": "nameserver 9.9.9.9\n"}, {"name": "keep"}]
    ops, after = res.plan(res.normalize([], "deleted"), current, "deleted")
    assert [op.command for op in ops] == ["rm -rf /etc/netns/a", "ip netns delete a", "rm -rf /etc/netns/b",
                                          "ip netns delete b", "rm -rf /etc/netns/keep", "ip netns delete keep"]
    ops, after = res.plan(res.normalize([{"name": "keep"}], "merged"), current, "merged")
    assert ops == [] and list(after) == ["keep"]  # merged leaves them alone, and does not show them


# ------------------------------------------------------------------------------ _deployment


class FirewallStep(FakeStep):
    """A firewall step: its apply warns (as port_mapping's conntrack cleanup does)."""

    def apply(self, operations):
        self.applied += operations
        self.warnings.append(f"{type(self).__name__}: a warning of its apply")

    def persist(self):
        self.persisted = True


class Unreadable(FirewallStep):
    def gather(self, desired, state):
        raise PermissionError(13, "Permission denied", "/run/linuxnet/port_mapping/LINUXNET.json")


class Joining:
    """The shared firewall of both firewall steps, whose writes it can foresee (they join)."""

    actions: frozenset = frozenset({"test"})

    def attach(self, resource):
        pass

    def serves(self, resource):
        return isinstance(resource, FirewallStep)

    def foreseeable(self, operations):
        return True

    def foresee(self, operations):
        pass


class Warned(RunModule):
    def __init__(self) -> None:
        self.warned: list[str] = []

    def warn(self, message):
        self.warned.append(message)


@pytest.mark.parametrize("error", [Unreadable, None])
def test_writes_held_for_a_step_that_raises_are_applied_alone_and_reported(error):
    """netns changes, firewall's writes are held for port_mapping, whose gather raises an OSError:
    firewall's writes are applied alone (persisted, their warning reported) and the failure is a
    StepFailed naming port_mapping and the error, with netns' and firewall's commands. Nothing
    changed (netns changes nothing) and no held write: the error is raised as it is."""
    names = ("netns", "firewall", "port_mapping")
    classes = {"netns": FakeStep, "firewall": FirewallStep, "port_mapping": Unreadable}
    if error is None:
        classes = {"netns": type("Quiet", (FakeStep,), {"plan": lambda self, *a: ([], {})}), "firewall": Unreadable}
    steps = tuple((name, classes[name], options, module_options)
                  for name, _cls, options, module_options in d.STEPS if name in names and name in classes)
    module = Warned()
    if error is None:
        with pytest.raises(PermissionError):
            d._run_steps(module, d.SharedNetlink(), Joining(), steps, None, "deleted", "LINUXNET", "auto", None)
        return
    with pytest.raises(d.StepFailed) as info:
        d._run_steps(module, d.SharedNetlink(), Joining(), steps, None, "deleted", "LINUXNET", "auto", None)
    assert str(info.value) == ("port_mapping: PermissionError: [Errno 13] Permission denied: '/run/linuxnet/port_mapping/LINUXNET.json'"
                               " (firewall's writes, held to join the port_mapping step's, were applied alone)")
    assert info.value.commands == {"netns": ["change by FakeStep"], "firewall": ["change by FirewallStep"]}
    assert isinstance(info.value.__cause__, PermissionError)
    assert module.warned == ["FirewallStep: a warning of its apply"]


# ------------------------------------------------------------------------------ _iptables


def test_the_render_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(_iptables, "RENDERED_MAX", 8)
    monkeypatch.setattr(_iptables, "_RENDERED", {})
    rules = [Rule.of("dnat", proto="tcp", dport=str(port), container_ip="172.18.0.2", to_ports="80") for port in range(1000, 1050)]
    texts = [_iptables.render_rule(rule) for rule in rules]
    assert len(_iptables._RENDERED) <= 8
    assert texts == [_iptables.KINDS["dnat"].render(dict(rule.fields)) for rule in rules]  # the same answers
    assert [_iptables.render_rule(rule) for rule in rules] == texts


def test_the_port_range_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(_port_mapping, "RANGES_MAX", 8)
    monkeypatch.setattr(_port_mapping, "_RANGES", {})
    texts = [f"{port}-{port + 5}" for port in range(1000, 1050)]
    ranges = [_port_mapping.port_range(text, "ports[0].host_port") for text in texts]
    assert len(_port_mapping._RANGES) <= 8
    assert ranges == [(port, port + 5) for port in range(1000, 1050)]
    assert [_port_mapping.port_range(text, "ports[0].host_port") for text in texts] == ranges
