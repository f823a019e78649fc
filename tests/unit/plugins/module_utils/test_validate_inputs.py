"""Adversarial input, field by field, through every entry the collection has (pure; no root, no kernel).

Each table is a field and the values it must refuse: trailing and embedded newlines, option-like
leading '-', iptables' trailing '+' wildcard, zones, strings where lists or booleans belong,
non-ASCII digits, ... Every refusal is a ValidationError whose message starts with the field (never
another exception: a traceback names nothing), raised by the layer that validates before anything
changes (``normalize``, ``plan_deployment``, a module's ``main`` before its first write).
test_validate.py holds the older tables (lengths, '/', ':', whitespace, '.', '..', MACs, CIDRs).

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_validate_inputs.py -q``
"""

from __future__ import annotations

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment, _engine, _firewall, _persist
from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import BridgeResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import NetnsResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import PortMappingResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import plan_deployment
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import VethResource
from ansible_collections.linuxnet.bridge.plugins.modules import deployment as deployment_module
from ansible_collections.linuxnet.bridge.plugins.modules import persist as persist_module

from .fixtures.firewall import FakeModule

NET = {"name": "usernet", "subnet": "172.18.0.0/16"}
WEB = {"name": "web", "network": "usernet"}


def refused(func, *args, **kwargs) -> str:
    """The message of the ValidationError ``func(*args, **kwargs)`` raises (any other exception fails the test)."""
    with pytest.raises(ValidationError) as info:
        func(*args, **kwargs)
    return str(info.value)


def normalize(resource_class, config: list[dict], **params) -> list[dict]:
    return resource_class(FakeModule(**params)).normalize(config, "merged")


def plan(networks: list, endpoints: list) -> dict:
    return plan_deployment(networks, endpoints)


# ------------------------------------------------------------------------------------------ names

# The kernel takes all of these as link names; each reaches argv or rule text as something else.
BAD_IFNAMES = {
    "leading dash (an option: '-i -j', 'ip link set -x')": "-j",
    "leading dash alone": "-",
    "trailing plus (iptables: '-o br+' matches every br...)": "br+",
    "only a plus": "+",
}


@pytest.mark.parametrize("bad", BAD_IFNAMES.values(), ids=BAD_IFNAMES.keys())
def test_interface_names_refused_in_every_field(bad):
    fields = [
        (lambda: normalize(BridgeResource, [{"name": bad}]), "config[0] (name=", ".name: "),
        (lambda: normalize(VethResource, [{"name": bad, "peer_netns": "ns1"}]), "config[0] (name=", ".name: "),
        (lambda: normalize(VethResource, [{"name": "v1", "peer": bad, "peer_netns": "ns1"}]), "config[0] (name=v1).peer: ", ""),
        (lambda: normalize(VethResource, [{"name": "v1", "peer_netns": "ns1", "master": bad}]), "config[0] (name=v1).master: ", ""),
        (lambda: normalize(_firewall.FirewallResource, [{"name": "n", "bridge": bad, "subnet": "10.0.0.0/24"}]),
         "config[0] (name=n).bridge: ", ""),
        (lambda: normalize(PortMappingResource, [{"bridge": bad, "container_ip": "10.0.0.2", "container_port": 80}]),
         "config[0] (bridge=", ".bridge: "),
        (lambda: plan([dict(NET, bridge=bad)], []), "linuxnet_networks[0].bridge: ", ""),
    ]
    for func, start, part in fields:
        message = refused(func)
        assert message.startswith(start) and part in message, message
        assert "'-'" in message or "'+'" in message, message


@pytest.mark.parametrize("good", ["br0", "br-x", "a+b", "x@y", "docker0", "veth_1.2"])
def test_interface_names_still_accepted(good):
    assert normalize(BridgeResource, [{"name": good}])[0]["name"] == good


BAD_NAMES = {"leading dash": "-web", "dash alone": "-", "option-like": "-Hevil"}


@pytest.mark.parametrize("bad", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_namespace_and_network_names_refused_with_a_leading_dash(bad):
    """/run/netns/<ns>, /etc/netns/<ns>/hosts, unit names, "ip netns exec <ns>", state files."""
    assert refused(normalize, NetnsResource, [{"name": bad}]).startswith("config[0] (name=")
    assert refused(normalize, BridgeResource, [{"name": "br0", "netns": bad}]).startswith("config[0] (name=br0).netns: ")
    assert refused(normalize, VethResource, [{"name": "v1", "peer_netns": bad}]).startswith("config[0] (name=v1).peer_netns: ")
    assert refused(plan, [NET], [dict(WEB, name=bad)]).startswith("linuxnet_endpoints[0].name: ")
    assert refused(plan, [dict(NET, name=bad)], []).startswith("linuxnet_networks[0].name: ")
    assert refused(normalize, _firewall.FirewallResource, [{"name": bad, "bridge": "br0", "subnet": "10.0.0.0/24"}]).startswith(
        "config[0] (name=")
    message = refused(normalize, PortMappingResource,
                      [{"bridge": "br0", "container_ip": "10.0.0.2", "container_port": 80, "network": bad}])
    assert message.startswith("config[0] (bridge=br0).network: "), message
    message = refused(NetnsResource(FakeModule(host_groups=[{"name": bad, "hosts": []}])).normalize, [], "merged")
    assert message.startswith("host_groups[0].name: "), message


# ------------------------------------------------------------------------------------------ chain_prefix

BAD_PREFIXES = {
    "leading dash (iptables-restore: chain name not allowed to start with '-')": "-X",
    "leading digit (nft reads table 1abc as a number)": "1ABC",
    "leading underscore (nft table _x is no name of ours)": "_X",
    "trailing newline": "LINUXNET\n",
}


@pytest.mark.parametrize("bad", BAD_PREFIXES.values(), ids=BAD_PREFIXES.keys())
def test_chain_prefix_that_only_the_apply_would_refuse(bad):
    assert refused(_firewall.chain_prefix, bad).startswith("chain_prefix: ")
    assert refused(normalize, PortMappingResource, [], chain_prefix=bad).startswith("chain_prefix: ")


class Failed(Exception):
    pass


class MainModule:
    """What a module's main() reads of AnsibleModule; fail_json stops the run."""

    check_mode = False
    _diff = False

    def __init__(self, params: dict) -> None:
        self.params = params

    def fail_json(self, **result) -> None:
        raise Failed(result["msg"])

    def warn(self, _message: str) -> None:
        pass


def module_main(monkeypatch, module, **params) -> tuple[str, list[str]]:
    """Run ``module.main()`` with ``params``; (fail_json's message, what it called that changes the host)."""
    called: list[str] = []
    base = {"networks": [], "endpoints": [], "state": "absent", "persist": False, "return_plan": "always",
            "chain_prefix": "LINUXNET", "iptables_variant": "auto", "firewall_backend": "iptables"}
    monkeypatch.setattr(_engine, "privileged_module", lambda _spec: MainModule({**base, **params}))
    for owner, name in ((_persist, "apply"), (_deployment, "remove"), (_deployment, "converge")):
        monkeypatch.setattr(owner, name, lambda *_a, _name=name, **_k: called.append(_name) or {})
    monkeypatch.setattr(_persist, "systemd_running", lambda: True)
    with pytest.raises(Failed) as info:
        module.main()
    return str(info.value), called


def test_deployment_absent_refuses_a_bad_chain_prefix_before_persist_changes_anything(monkeypatch):
    """state=absent stops and removes the boot-time restore's units before the steps run: the
    prefix is checked first, so nothing is removed for a run that fails."""
    message, called = module_main(monkeypatch, deployment_module, chain_prefix="-X")
    assert message.startswith("chain_prefix: ") and called == []


def test_persist_module_refuses_a_bad_chain_prefix_before_saving_it(monkeypatch):
    message, called = module_main(monkeypatch, persist_module, state="present", chain_prefix="1ABC")
    assert message.startswith("chain_prefix: ") and called == []


# ------------------------------------------------------------------------------------------ values

BAD_MTUS = {"trailing newline": "1500\n", "leading space": " 1500", "fraction": 1500.7, "fullwidth digits": "\uff11\uff15\uff10\uff10",
            "bool": True, "float text": "1e3", "hex": "0x5dc", "list": [1500]}


@pytest.mark.parametrize("bad", BAD_MTUS.values(), ids=BAD_MTUS.keys())
def test_mtu_takes_an_int_or_its_ascii_digits_only(bad):
    assert refused(normalize, BridgeResource, [{"name": "br0", "mtu": bad}]).startswith("config[0] (name=br0).mtu: ")
    assert refused(normalize, VethResource, [{"name": "v1", "peer_netns": "n", "mtu": bad}]).startswith("config[0] (name=v1).mtu: ")
    assert refused(plan, [dict(NET, mtu=bad)], []).startswith("linuxnet_networks[0].mtu: ")


def test_mtu_as_text_is_still_read():
    assert normalize(BridgeResource, [{"name": "br0", "mtu": "9000"}])[0]["mtu"] == 9000
    assert v.mtu(1500, "f") == 1500


@pytest.mark.parametrize("bad", ["fd00::1%x/64", "fd00::1%eth0\n/64", "2001:db8::1%a b/64"])
def test_address_with_a_zone_is_refused(bad):
    """ip_interface() takes a zone, and str() drops or keeps it depending on the Python version."""
    assert refused(normalize, BridgeResource, [{"name": "br0", "addresses": [bad]}]).startswith(
        "config[0] (name=br0).addresses[0]: ")
    assert refused(normalize, VethResource, [{"name": "v1", "peer_netns": "n", "addresses": [bad]}]).startswith(
        "config[0] (name=v1).addresses[0]: ")


# Ansible's booleans, as a role variable or an extra var may carry them (quoted: a string).
BOOLEAN_WORDS = [("no", False), ("false", False), ("False", False), ("off", False), ("0", False), (0, False),
                 ("yes", True), ("true", True), ("on", True), ("1", True), (1, True), (False, False), (True, True)]


@pytest.mark.parametrize("key", ["icc", "internal", "masquerade", "allow_overlap"])
@pytest.mark.parametrize("word, meaning", BOOLEAN_WORDS)
def test_network_booleans_given_as_words_mean_what_they_say(key, word, meaning):
    """bool("no") is True: an internal network given as internal: "false" was built internal."""
    assert plan_deployment([dict(NET, **{key: word})], [])["networks"][0][key] is meaning


@pytest.mark.parametrize("key", ["icc", "internal", "masquerade"])
@pytest.mark.parametrize("word, meaning", BOOLEAN_WORDS)
def test_firewall_booleans_given_as_words_mean_what_they_say(key, word, meaning):
    item = normalize(_firewall.FirewallResource, [{"name": "n", "bridge": "br0", "subnet": "10.0.0.0/24", key: word}])[0]
    assert item[key] is meaning


@pytest.mark.parametrize("bad", ["maybe", "", "nein", 2, [True], {"a": 1}, 0.5])
def test_bad_booleans_name_the_field(bad):
    for key in ("icc", "internal", "masquerade", "allow_overlap"):
        if bad == "":  # unset, as before: the default
            continue
        assert refused(plan, [dict(NET, **{key: bad})], []).startswith(f"linuxnet_networks[0].{key}: ")
    message = refused(normalize, _firewall.FirewallResource,
                      [{"name": "n", "bridge": "br0", "subnet": "10.0.0.0/24", "subnet6": "fd00::/64", "masquerade6": "nope"}])
    assert message.startswith("config[0] (name=n).masquerade6: "), message


BAD_UNICAST = {"unspecified": "0.0.0.0", "this network": "0.1.2.3", "loopback": "127.0.0.1", "multicast": "224.0.0.1",
               "limited broadcast": "255.255.255.255"}


@pytest.mark.parametrize("bad", BAD_UNICAST.values(), ids=BAD_UNICAST.keys())
def test_snat_source_and_container_ip_are_unicast(bad):
    """A DNAT to, or an SNAT from, these addresses reaches no endpoint."""
    assert refused(plan, [dict(NET, snat_source=bad)], []).startswith("linuxnet_networks[0].snat_source: ")
    assert refused(normalize, _firewall.FirewallResource,
                   [{"name": "n", "bridge": "br0", "subnet": "10.0.0.0/24", "snat_source": bad}]).startswith(
        "config[0] (name=n).snat_source: ")
    assert refused(normalize, PortMappingResource, [{"bridge": "br0", "container_ip": bad, "container_port": 80}]).startswith(
        "config[0] (bridge=br0).container_ip: ")


BAD_PORTS = {"fullwidth digits": "\uff18\uff10", "arabic-indic digits": "\u0668\u0660", "5000 digits (int() refuses them)": "9" * 5000,
             "six digits": "000080", "range of fullwidth": "\uff18\uff10-81"}


@pytest.mark.parametrize("bad", BAD_PORTS.values(), ids=BAD_PORTS.keys())
def test_ports_are_ascii_digits(bad):
    message = refused(normalize, PortMappingResource, [{"bridge": "br0", "container_ip": "10.0.0.2", "container_port": bad}])
    assert message.startswith("config[0] (bridge=br0).container_port: "), message
    message = refused(normalize, PortMappingResource,
                      [{"bridge": "br0", "container_ip": "10.0.0.2", "container_port": 80, "host_port": bad}])
    assert message.startswith("config[0] (bridge=br0).host_port: "), message


# ------------------------------------------------------------------------------------------ dns, hosts

BAD_DNS = {
    "options as a string (was split into characters: 'options n d o t s : 5')": ({"options": "ndots:5"}, "dns.options"),
    "search as a string": ({"search": "example.com"}, "dns.search"),
    "nameservers as a string": ({"nameservers": "9.9.9.9"}, "dns.nameservers"),
    "option with '#'": ({"options": ["ndots:5#x"]}, "dns.options"),
    "option with ';'": ({"options": ["a;b"]}, "dns.options"),
    "option with '$'": ({"options": ["$(id)"]}, "dns.options"),
    "option with '/'": ({"options": ["../x"]}, "dns.options"),
    "option look-alike": ({"options": ["nd\u043ets:5"]}, "dns.options"),
    "option with a leading dash": ({"options": ["-x"]}, "dns.options"),
    "option with a trailing newline": ({"options": ["rotate\n"]}, "dns.options"),
    "option value not a number": ({"options": ["ndots:x"]}, "dns.options"),
    "dns as a string": ("9.9.9.9", "dns"),
    "dns as a list": (["9.9.9.9"], "dns"),
}


@pytest.mark.parametrize("dns, field", BAD_DNS.values(), ids=BAD_DNS.keys())
def test_bad_dns_names_the_field(dns, field):
    message = refused(plan, [NET], [dict(WEB, dns=dns)])
    assert message.startswith(f"linuxnet_endpoints[0].{field}: "), message


def test_dns_options_glibc_knows_are_accepted():
    options = ["ndots:5", "timeout:2", "attempts:3", "rotate", "edns0", "trust-ad", "single-request-reopen", "use-vc"]
    netns = plan([NET], [dict(WEB, dns={"nameservers": ["9.9.9.9"], "search": ["example.com"], "options": options})])["netns"]
    assert netns[0]["resolv_conf"] == ("nameserver 9.9.9.9\nsearch example.com\noptions " + " ".join(options) + "\n")


@pytest.mark.parametrize("bad", [5, ["nameserver 9.9.9.9"], {"a": 1}])
def test_resolv_conf_is_text(bad):
    """str() would have written "['nameserver 9.9.9.9']" as the file."""
    message = refused(normalize, NetnsResource, [{"name": "web", "resolv_conf": bad}])
    assert message.startswith("config[0] (name=web).resolv_conf: "), message


# ------------------------------------------------------------------------------------------ structure

BAD_SHAPES = {
    "endpoint a string": ([NET], ["web"], "linuxnet_endpoints[0]: "),
    "endpoint None": ([NET], [None], "linuxnet_endpoints[0]: "),
    "network reference an int": ([NET], [{"name": "web", "networks": [5]}], "linuxnet_endpoints[0].networks[0]: "),
    "networks a string (was read letter by letter)": ([NET], [{"name": "web", "networks": "usernet"}], "linuxnet_endpoints[0].networks: "),
    "port a list": ([NET], [dict(WEB, ports=[["8080:80"]])], "linuxnet_endpoints[0].ports[0]: "),
    "port a bool": ([NET], [dict(WEB, ports=[True])], "linuxnet_endpoints[0].ports[0]: "),
    "ports a string": ([NET], [dict(WEB, ports="8080:80")], "linuxnet_endpoints[0].ports: "),
}


@pytest.mark.parametrize("networks, endpoints, start", BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_wrong_shapes_are_errors_naming_the_field_not_tracebacks(networks, endpoints, start):
    message = refused(plan, networks, endpoints)
    assert message.startswith(start), message


# ------------------------------------------------------------------------------------------ persist


@pytest.mark.parametrize("unit", ["-Hevil.service", "-.service", "--now.service"])
def test_service_unit_cannot_be_a_systemctl_option(unit):
    """systemctl restart -Hevil.service would be "-H evil.service": run on another host."""
    message = refused(_persist.endpoint_service, {"unit": unit}, "linuxnet_endpoints[0].service", "web", "bridge")
    assert message.startswith("linuxnet_endpoints[0].service.unit: "), message
    assert refused(plan, [NET], [dict(WEB, service={"unit": unit})]).startswith("linuxnet_endpoints[0].service.unit: ")


# ------------------------------------------------------------------------------------------ every validator

# Every value here must be refused by every name validator with a ValidationError naming the field.
HOSTILE = ["x\n", "x\r\n", "x\ny", "x\x00", "x y", "x\t", "'x'", '"x"', "x;y", "x#y", "x/y", "..", ".", "x$", "$(id)",
           "x\\y", "x`id`", "x\u200b", "x\u2028y", "\u0445", "\uff58", "-x", "", None, 5, ["x"], {"x": 1}]


@pytest.mark.parametrize("check", [v.interface_name, v.netns_name, v.label, v.hostname, v.dns_option],
                         ids=["interface_name", "netns_name", "label", "hostname", "dns_option"])
def test_every_name_validator_refuses_every_hostile_value(check):
    for value in HOSTILE:
        if check is v.hostname and value == 5:  # a number is a host name ("5"), as in a hosts file
            continue
        with pytest.raises(ValidationError, match=r"^field: "):
            check(value, "field")
            pytest.fail(f"{value!r} accepted")
