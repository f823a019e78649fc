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
from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment, _engine, _firewall, _iptables, _persist
from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import BridgeResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import NetnsResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import PortMappingResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import plan_deployment
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import VethResource
from ansible_collections.linuxnet.bridge.plugins.modules import deployment as deployment_module
from ansible_collections.linuxnet.bridge.plugins.modules import persist as persist_module

from .fixtures import firewall as fwr
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
    "every namespace's loopback (ip link add ... peer name lo: File exists, midway)": "lo",
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
        assert "'-'" in message or "'+'" in message or "loopback" in message, message


@pytest.mark.parametrize("good", ["br0", "br-x", "a+b", "x@y", "docker0", "veth_1.2"])
def test_interface_names_still_accepted(good):
    assert normalize(BridgeResource, [{"name": good}])[0]["name"] == good


BAD_NAMES = {"leading dash": "-web", "dash alone": "-", "option-like": "-Hevil"}


def test_a_network_name_whose_default_bridge_is_refused_names_the_network():
    """``front+`` is a valid network name but ``br-front+`` an iptables wildcard: the error names what the user wrote."""
    assert refused(plan, [dict(NET, name="front+")], []).startswith("linuxnet_networks[0].name (its default bridge): ")


@pytest.mark.parametrize("bad", ["db+1", "a@b", "+x"])
def test_endpoint_names_are_host_names(bad):
    """Valid namespace names, but an endpoint's name is its host name in its peers' hosts files:
    refused in the plan, naming the field the user wrote (it used to fail at the netns step, on hosts[0].names)."""
    assert refused(plan, [NET], [dict(WEB, name=bad)]).startswith("linuxnet_endpoints[0].name (the endpoint's host name")


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
    "leading digit (nft -f: table 1abc is a syntax error, after a deployment's links were made)": "1ABC",
    "leading underscore (was refused as an 'nft table name')": "_X",
    "trailing newline": "LINUXNET\n",
}


@pytest.mark.parametrize("bad", BAD_PREFIXES.values(), ids=BAD_PREFIXES.keys())
def test_chain_prefix_starts_with_a_letter(bad):
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
    for owner, name in ((_persist, "apply"), (_deployment, "remove"), (_deployment, "converge"), (persist_module, "live_plan")):
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


def test_deployment_refuses_a_service_endpoint_without_a_name(monkeypatch):
    """persist checks the services before the plan checks the endpoints: a missing name is the
    field's error (it was a KeyError traceback), and nothing runs."""
    endpoints = [{"network": "bridge", "service": {"command": "sleep 100"}}]
    message, called = module_main(monkeypatch, deployment_module, state="present", persist=True, endpoints=endpoints,
                                  networks=[{"name": "n1", "subnet": "10.99.0.0/24"}])
    assert message == "linuxnet_endpoints[0].name: a namespace name is required" and called == []


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
    for key in ("icc", "internal", "masquerade", "allow_overlap"):  # "" too: bool("") was False, Ansible refuses it
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


@pytest.mark.parametrize("bad", ["224.0.0.1", "127.0.0.1", "255.255.255.255", "0.0.0.0"])
def test_veth_gateway_the_kernel_refuses_only_when_routing(bad):
    """ip route add default via <bad>: "Nexthop has invalid gateway" (or no device), after the links were made."""
    message = refused(normalize, VethResource, [{"name": "v1", "peer_netns": "n", "gateway": bad}])
    assert message.startswith("config[0] (name=v1).gateway: "), message


@pytest.mark.parametrize("bad", ["ff02::1", "::", "::1"])
def test_veth_gateway6_the_kernel_refuses_only_when_routing(bad):
    """ip -6 route add default via <bad>: "Invalid gateway address" / "No route to host"."""
    message = refused(normalize, VethResource, [{"name": "v1", "peer_netns": "n", "gateway6": bad}])
    assert message.startswith("config[0] (name=v1).gateway6: "), message


def test_link_local_gateway6_stays_allowed():
    assert normalize(VethResource, [{"name": "v1", "peer_netns": "n", "gateway6": "fe80::1"}])[0]["gateway6"] == "fe80::1"


@pytest.mark.parametrize("field, item", [
    ("host_ip", {"host_ip": "::ffff:192.0.2.1", "host_port": 80}),
    ("publish", {"publish": "[::ffff:192.0.2.1]:80:80"}),
])
def test_ipv4_mapped_host_address_is_refused(field, item):
    """An IPv6 DNAT for ::ffff:192.0.2.1 matches no packet: IPv4 arrives as IPv4."""
    config = [{"bridge": "br0", "container_ip": "fd00::2", "container_port": 80, **item}]
    if "publish" in item:
        del config[0]["container_port"]
    message = refused(normalize, PortMappingResource, config)
    assert message.startswith(f"config[0] (bridge=br0).{field}: ") and "192.0.2.1" in message, message


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
    "network name a list (unhashable)": ([NET], [{"name": "web", "networks": [{"name": ["usernet"]}]}],
                                         "linuxnet_endpoints[0].networks[0].name: "),
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


# ------------------------------------------------------------------------------------------ what the host prints

# Verbatim `iptables -A FORWARD; iptables-save -t filter` (iptables 1.8.9): a rule with no match and
# no target (an admin's packet counter) is "-A FORWARD" alone.
EMPTY_RULE_SAVE = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD\nCOMMIT\n"


def test_an_admins_empty_rule_is_read_and_kept_not_a_traceback():
    assert _iptables.parse_save(EMPTY_RULE_SAVE)["filter"].rules["FORWARD"] == [""]
    res = fwr.firewall()
    desired = res.normalize([{"name": "n", "bridge": "br0", "subnet": "10.0.0.0/24"}], "merged")
    res.live = {"filter": _iptables.parse_save(EMPTY_RULE_SAVE)["filter"], "nat": _iptables.empty_table("nat")}
    res.known, res.sysctls, res.bridges_present = {}, {_firewall.IP_FORWARD: "1", _firewall.BRIDGE_NF: "1"}, set()
    lines = [op.args["line"] for op in res.plan(desired, {}, "merged")[0] if op.action == "restore"]
    assert "-I FORWARD 1 -j LINUXNET-USER" in lines and not any(line.startswith("-D FORWARD") for line in lines)


@pytest.mark.parametrize("text", [EMPTY_RULE_SAVE, "*filter\n:FORWARD\n-A FORWARD\nCOMMIT\n", "*nat\n:\n-A \nCOMMIT\n"])
def test_odd_running_config_is_parsed_or_refused_never_a_traceback(text):
    try:
        fwr.firewall().parsed(text)
        PortMappingResource(FakeModule()).parsed(text)
    except ValidationError as exc:
        assert str(exc).startswith("running_config: "), exc


# ------------------------------------------------------------------------------------------ unknown keys

UNKNOWN_KEYS = {
    "network key misspelt (an internal network built open)": ([dict(NET, internl=True)], [], "linuxnet_networks[0].internl: "),
    "endpoint key misspelt": ([NET], [dict(WEB, port=["80:80"])], "linuxnet_endpoints[0].port: "),
    "endpoint mtu (a network's)": ([NET], [dict(WEB, mtu=1400)], "linuxnet_endpoints[0].mtu: "),
    "attachment key misspelt": ([NET], [{"name": "web", "networks": [{"name": "usernet", "adress": "172.18.0.9"}]}],
                                "linuxnet_endpoints[0].networks[0].adress: "),
    "dns key misspelt": ([NET], [dict(WEB, dns={"nameserver": ["9.9.9.9"]})], "linuxnet_endpoints[0].dns.nameserver: "),
    "port key misspelt (sources: every source)": ([NET], [dict(WEB, ports=[{"publish": "80:80", "source": ["192.0.2.0/24"]}])],
                                                  "linuxnet_endpoints[0].ports[0].source: "),
    "port item naming its container": ([NET], [dict(WEB, ports=[{"publish": "80:80", "container_ip": "10.9.9.9"}])],
                                       "linuxnet_endpoints[0].ports[0].container_ip: "),
}


@pytest.mark.parametrize("networks, endpoints, start", UNKNOWN_KEYS.values(), ids=UNKNOWN_KEYS.keys())
def test_unknown_keys_are_refused_naming_them(networks, endpoints, start):
    """The role's argument spec refuses them; the deployment module (and the filters) took them silently."""
    message = refused(plan, networks, endpoints)
    assert message.startswith(start) and "unknown key" in message, message
