"""What the earlier steps of a deployment leave (``_engine.Foreseen``) reaches each later step's
``check_references``: namespaces (netns), bridges and their addresses (bridge). So check mode, which
applies nothing, warns as the real run would, with no text matching of warnings afterwards; a
resource run alone (no Foreseen) warns as before. The deployment's port warnings name the
inventory's port. ``ApplyError(..., unchanged=True)``.

Run: ``.venv/bin/python -m pytest tests/unit -q`` (no root needed).
"""

from __future__ import annotations

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment as d
from ansible_collections.linuxnet.bridge.plugins.module_utils import _veth
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import BridgeResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError, Foreseen
from ansible_collections.linuxnet.bridge.plugins.module_utils._iptables import IptablesError
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import NetnsResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._nftables import NftablesError
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import PortMappingResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import VethResource

from .fixtures.deployment import FakeStep, WarnedModule
from .fixtures.firewall import FakeModule
from .test_deployment_params import NoFirewall

NOT_LOCAL = ("is not an address of this host now: the published port takes no traffic until it is "
             "(fine for a virtual address that keepalived/VRRP adds later)")


# ------------------------------------------------------------------------------ ApplyError


@pytest.mark.parametrize("kind", [ApplyError, IptablesError, NftablesError])
def test_unchanged_is_a_constructor_keyword(kind):
    assert kind("refused").unchanged is False
    failed = kind("refused", unchanged=True)
    assert failed.unchanged is True and str(failed) == "refused"
    assert d.StepFailed("netns: refused", {}).unchanged is False


# ------------------------------------------------------------------------------ what steps leave


def test_netns_and_bridge_steps_foresee_what_their_config_makes():
    foreseen = Foreseen()
    netns = NetnsResource(FakeModule())
    netns.foresee(netns.normalize([{"name": "web"}, {"name": "db"}], "overridden"), "overridden", foreseen)
    netns.foresee(netns.normalize([{"name": "gone"}], "deleted"), "deleted", foreseen)
    assert foreseen.namespaces == {"web", "db"}
    bridge = BridgeResource(FakeModule())
    config = [{"name": "br-a", "addresses": ["10.1.0.1/24"]}, {"name": "br-b"}, {"name": "br-in", "netns": "web"}]
    bridge.foresee(bridge.normalize(config, "overridden"), "overridden", foreseen)
    # br-b: addresses left out stay as they are; br-in is in a namespace (no later step looks there)
    assert foreseen.bridges == {"br-a": ["10.1.0.1/24"], "br-b": None}
    bridge.foresee(bridge.normalize([{"name": "br-a", "addresses": ["10.2.0.1/24"]}], "merged"), "merged", foreseen)
    assert foreseen.bridges["br-a"] is None  # merged adds to the live addresses


def test_host_addresses_after_the_bridge_step():
    foreseen = Foreseen(bridges={"br-a": ["10.1.0.1/24"], "br-new": ["10.3.0.1/24"], "br-b": None})
    live = {"lo": ["127.0.0.1/8"], "br-a": ["10.0.0.1/24"], "br-b": ["10.9.0.1/24"]}
    assert foreseen.host_addresses(live) == {"lo": ["127.0.0.1/8"], "br-a": ["10.1.0.1/24"], "br-b": ["10.9.0.1/24"],
                                             "br-new": ["10.3.0.1/24"]}


class HostLinks:
    """The resource's netlink adapter as check_references reads it: the host's links and addresses."""

    def __init__(self, links: dict[str, list[str]]) -> None:
        self._links = {name: {"name": name, "index": i, "kind": "bridge", "alias": None} for i, name in enumerate(links, 1)}
        self._addresses = {self._links[name]["index"]: cidrs for name, cidrs in links.items()}

    def links(self, netns):
        assert netns is None
        return self._links

    def addresses(self, netns):
        assert netns is None
        return self._addresses

    def close(self):
        pass


def checked_ports(config: list[dict], foreseen: Foreseen | None, fields: list[str] | None = None) -> list[str]:
    res = PortMappingResource(FakeModule(check_mode=True, config=config))
    res.netlink = HostLinks({"lo": ["127.0.0.1/8"], "br-old": ["10.0.0.1/24"], "eth0": ["192.0.2.10/24"]})
    res.fields = fields
    res.check_references(res.normalize(config, "overridden"), "overridden", foreseen)
    return res.warnings


PORTS = [{"publish": "8080:80", "bridge": "br-new", "container_ip": "10.3.0.2"},  # a bridge the bridge step creates
         {"publish": "10.3.0.1:8081:80", "bridge": "br-new", "container_ip": "10.3.0.2"},  # on its gateway
         {"publish": "8082:80", "bridge": "br-old", "container_ip": "10.1.0.2"},  # a bridge it re-addresses
         {"host_ip": "10.0.0.1", "host_port": "8083", "container_port": "80", "bridge": "br-old", "container_ip": "10.1.0.2"},
         {"publish": "203.0.113.7:8084:80", "bridge": "br-old", "container_ip": "10.1.0.2"}]  # on nothing


def test_port_mapping_judges_by_the_bridges_the_bridge_step_leaves():
    foreseen = Foreseen(namespaces={"web"}, bridges={"br-new": ["10.3.0.1/24"], "br-old": ["10.1.0.1/24"]})
    # the old gateway, gone with the re-address, and an address nothing adds: warned (as the real run warns)
    assert checked_ports(PORTS, foreseen) == [f"config[3] (bridge=br-old).host_ip: 10.0.0.1 {NOT_LOCAL}",
                                              f"config[4] (bridge=br-old).host_ip: 203.0.113.7 {NOT_LOCAL}"]


def test_port_mapping_alone_warns_as_before():
    assert checked_ports(PORTS, None) == [
        "config[0].bridge: bridge br-new not found; container_ip not checked",
        "config[1].bridge: bridge br-new not found; container_ip not checked",
        "config[2].container_ip: 10.1.0.2 is outside every subnet of bridge br-old (10.0.0.0/24) (an earlier task may change the bridge)",
        "config[3].container_ip: 10.1.0.2 is outside every subnet of bridge br-old (10.0.0.0/24) (an earlier task may change the bridge)",
        "config[4].container_ip: 10.1.0.2 is outside every subnet of bridge br-old (10.0.0.0/24) (an earlier task may change the bridge)",
        f"config[1] (bridge=br-new).host_ip: 10.3.0.1 {NOT_LOCAL}",
        f"config[4] (bridge=br-old).host_ip: 203.0.113.7 {NOT_LOCAL}",
    ]


def test_port_mapping_of_a_deployment_names_the_inventory_port():
    fields = [f"linuxnet_endpoints[0].ports[{k}]" for k in range(len(PORTS))]
    foreseen = Foreseen(bridges={"br-old": ["10.1.0.1/24"]})  # br-new: not foreseen, not live
    assert checked_ports(PORTS, foreseen, fields) == [
        "linuxnet_endpoints[0].ports[0]: bridge br-new not found; container_ip not checked",
        "linuxnet_endpoints[0].ports[1]: bridge br-new not found; container_ip not checked",
        f"linuxnet_endpoints[0].ports[1]: 10.3.0.1 {NOT_LOCAL}",  # a publish string: the port
        f"linuxnet_endpoints[0].ports[3].host_ip: 10.0.0.1 {NOT_LOCAL}",  # its own field
        f"linuxnet_endpoints[0].ports[4]: 203.0.113.7 {NOT_LOCAL}",
    ]


def test_veth_counts_the_namespaces_and_bridges_earlier_steps_make(monkeypatch):
    monkeypatch.setattr(_veth, "list_namespaces", lambda: ["live"])
    config = [{"name": "veth1", "peer": "eth0", "peer_netns": "web", "master": "br-new"},
              {"name": "veth2", "peer": "eth0", "peer_netns": "live", "master": "br-old"}]

    def warnings(foreseen):
        res = VethResource(FakeModule(check_mode=True))
        res.netlink = HostLinks({"br-old": []})
        res.check_references(res.normalize(config, "overridden"), "overridden", foreseen)
        return res.warnings

    assert warnings(Foreseen(namespaces={"web"}, bridges={"br-new": None})) == []
    assert warnings(None) == [
        "config[0] (name=veth1).peer_netns: namespace web does not exist (an earlier task may create it)",
        "config[0] (name=veth1).master: bridge br-new does not exist (an earlier task may create it)"]


# ------------------------------------------------------------------------------ the deployment's wiring


class Creating(FakeStep):
    """A netns step whose config makes namespace web."""

    def foresee(self, desired, state, foreseen):
        foreseen.namespaces.add("web")


class Referring(FakeStep):
    """A later step that refers to namespace web."""

    def check_references(self, desired, state, foreseen=None):
        if not (foreseen and "web" in foreseen.namespaces):
            self.warnings.append("namespace web does not exist (an earlier task may create it)")


class CheckModule(WarnedModule):
    check_mode = True


@pytest.mark.parametrize("first", [Creating, FakeStep])
def test_each_step_is_checked_with_what_the_steps_before_it_leave(first):
    steps = tuple((name, first if name == "netns" else Referring, options, module_options)
                  for name, _cls, options, module_options in d.STEPS if name in ("netns", "bridge"))
    module = CheckModule()
    result = d._run_steps(module, d.SharedNetlink(), NoFirewall(), steps, None, "overridden", "LINUXNET", "auto", None)
    assert result["changed"] is True
    expected = [] if first is Creating else ["namespace web does not exist (an earlier task may create it)"]
    assert module.warned == expected
