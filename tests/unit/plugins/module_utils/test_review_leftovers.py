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
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import NetnsResource

from .fixtures.deployment import FakeStep, WarnedModule
from .fixtures.netlink import FakeModule, fake_link_dumps, ns_current

# ------------------------------------------------------------------------------ _netlink


def test_a_pair_whose_peer_is_in_another_namespace_is_dropped(monkeypatch):
    """c0's id in the host is 0: the pair whose host end's link-netnsid is 0 is trusted; a pair
    recorded for c1 whose host end now says 5 (its peer moved) is dropped and c1's dump answers.
    A namespace whose id cannot be told (the kernel does not answer) is trusted as before."""
    dumps = fake_link_dumps(monkeypatch,
                            [{"name": "v0", "index": 9, "kind": "veth", "link_netnsid": 0, "link": 2},
                             {"name": "v1", "index": 10, "kind": "veth", "link_netnsid": 5, "link": 2},
                             {"name": "v2", "index": 11, "kind": "veth", "link_netnsid": 7, "link": 2}],
                            [{"name": "lo", "index": 1}, {"name": "eth0", "index": 3}])
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


def stale_and_live() -> dict:
    """As gather returns them (in name order): two stale names, hidden, and a namespace."""
    return {"a": {**ns_current("a", resolv_conf="nameserver 9.9.9.9\n"), _engine.HIDDEN: True},
            "b": {**ns_current("b"), _engine.HIDDEN: True},
            "keep": ns_current("keep")}


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
    assert ops == [] and _engine.listing(after, res) == [{"name": "keep"}]  # merged leaves them alone, and does not show them
    assert current == stale_and_live()  # planning changed nothing it was given


class Exited(Exception):
    pass


class Exiting(FakeModule):
    """The module's end: exit_json raises with the result (the run goes no further, as in Ansible)."""

    def exit_json(self, **result):
        raise Exited(result)

    def warn(self, message):
        pass


class Gathering(NetnsResource):
    """The namespaces of stale_and_live(), gathered without a host."""

    def check_references(self, desired, state):
        pass

    def gather(self, desired, state):
        return stale_and_live()


@pytest.mark.parametrize("state", ["gathered", "merged", "overridden"])
def test_a_module_run_lists_no_hidden_item(monkeypatch, state):
    """``_engine.run`` (check mode, diff): gathered, before, after and the diff leave the stale names
    out; the one a config names is made again and listed after."""
    a = {"name": "a", "resolv_conf": "nameserver 9.9.9.9\n"}  # its file is right: kept
    module = Exiting(check_mode=True, state=state, config=[a, {"name": "keep"}])
    module._diff = True
    monkeypatch.setattr(_engine, "missing_privilege", lambda: None)
    with pytest.raises(Exited) as info:
        _engine.run(module, Gathering(module))
    result = info.value.args[0]
    if state == "gathered":
        assert result == {"changed": False, "gathered": [{"name": "keep"}]}
        return
    assert result["before"] == [{"name": "keep"}] and result["after"] == [a, {"name": "keep"}]
    assert result["commands"][:2] == ["ip netns add a", "ip -n a link set lo up"]
    assert result["commands"][2:] == (["rm -rf /etc/netns/b", "ip netns delete b"] if state == "overridden" else [])
    assert '"b"' not in result["diff"]["before"] + result["diff"]["after"]


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
    module = WarnedModule()
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
