"""Dual-stack networks: the IPv6 rule kinds of both adapters, the firewall and port_mapping models, validation."""

from __future__ import annotations

import pytest

from ansible_collections.linuxnet.bridge.plugins.module_utils import _firewall as fw
from ansible_collections.linuxnet.bridge.plugins.module_utils import _iptables as ipt
from ansible_collections.linuxnet.bridge.plugins.module_utils import _nftables as nft
from ansible_collections.linuxnet.bridge.plugins.module_utils import _port_mapping as pm
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import Rule
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

SAMPLES = {"bridge": "lnx-x", "chain": "LINUXNET", "verdict": "DROP", "subnet": "fd00:9::/64", "host_ip": "2001:db8::1",
           "proto": "udp", "dport": "81", "container_ip": "fd00:9::2", "to_ports": "80", "source": "2001:db8:9::/48"}


class Module:
    check_mode = False

    def __init__(self, backend: str = "iptables") -> None:
        self.params = {"chain_prefix": "LINUXNET", "firewall_backend": backend, "iptables_variant": "auto"}


def rules6(kinds: dict) -> list[Rule]:
    return [Rule.of(k, **{f: SAMPLES[f] for f in t.names if f in SAMPLES}) for k, t in kinds.items()] + [
        Rule.of("dnat", proto="tcp", dport="20000-20002", container_ip="fd00:9::3", to_ports="30000-30002", base="20000")]


@pytest.mark.parametrize("adapter", [ipt, nft], ids=["iptables", "nftables"])
def test_every_ipv6_kind_round_trips(adapter):
    for rule in rules6(adapter.KINDS6):
        text = adapter.render_rule(rule, family="ipv6")
        assert adapter.parse_rule(text, family="ipv6") == rule, text
    assert "localnet_guard" not in adapter.KINDS6  # no route_localnet for IPv6


def test_ipv6_texts_as_the_tools_print_them():
    dnat = Rule.of("dnat", proto="tcp", dport="8080", container_ip="fd00:9::2", to_ports="80", host_ip="2001:db8::1")
    # Docker 29: IPv6 DNAT skips link-local sources
    assert ipt.render_rule(dnat, "ipv6") == "! -s fe80::/10 -d 2001:db8::1/128 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:9::2]:80"
    assert nft.render_rule(dnat, "nat", "ipv6") == "ip6 saddr != fe80::/10 ip6 daddr 2001:db8::1 tcp dport 8080 dnat to [fd00:9::2]:80"
    drop = Rule.of("direct_drop", container_ip="fd00:9::2", bridge="lnx-x", proto="tcp", dport="80")
    assert ipt.render_rule(drop, "ipv6") == "-d fd00:9::2/128 ! -i lnx-x -p tcp -m tcp --dport 80 -j DROP"
    # ... and the IPv4 texts are what they were
    assert ipt.render_rule(dnat.__class__.of("dnat", proto="tcp", dport="8080", container_ip="10.0.0.2", to_ports="80")) == \
        "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80"


# anchors-rulesets.md §2.3, Docker 29's TestIptabler golden (proxy on: `! -i br-dummy`, which we never write)
DOCKER29_DNAT6 = "-A DOCKER ! -s fe80::/10 ! -i br-dummy -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd49:efd7:54aa::1]:80"


def test_ipv6_dnat_excludes_link_local_sources_as_docker_29():
    rule = Rule.of("dnat", proto="tcp", dport="8080", container_ip="fd49:efd7:54aa::1", to_ports="80")
    assert ipt.render_rule(rule, "ipv6") == DOCKER29_DNAT6.removeprefix("-A DOCKER ").replace(" ! -i br-dummy", "")
    assert nft.render_rule(rule, "nat", "ipv6") == "ip6 saddr != fe80::/10 tcp dport 8080 dnat to [fd49:efd7:54aa::1]:80"
    # a port's own sources replace the exclusion (one -s in iptables); IPv4 has none
    sourced = Rule.of("dnat", source="2001:db8::/32", proto="tcp", dport="8080", container_ip="fd49:efd7:54aa::1", to_ports="80")
    assert ipt.render_rule(sourced, "ipv6").startswith("-s 2001:db8::/32 -p tcp ")
    assert nft.render_rule(sourced, "nat", "ipv6").startswith("ip6 saddr 2001:db8::/32 tcp dport 8080 ")
    assert "fe80" not in ipt.render_rule(Rule.of("dnat", proto="tcp", dport="8080", container_ip="10.0.0.2", to_ports="80"))
    for adapter in (ipt, nft):
        for r in (rule, sourced):
            assert adapter.parse_rule(adapter.render_rule(r, family="ipv6") if adapter is ipt else nft.render_rule(r, "nat", "ipv6"),
                                      family="ipv6") == r
    # an IPv6 DNAT of before (without the exclusion) is no rule of ours any more: the run rewrites it
    assert ipt.parse_rule("-p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd49:efd7:54aa::1]:80", "ipv6") is None


DUAL = [{"name": "d", "bridge": "lnx-d", "subnet": "172.30.0.0/16", "subnet6": "FD00:30::/64", "icc": False},
        {"name": "r", "bridge": "lnx-r", "subnet": "172.31.0.0/16", "subnet6": "fd00:31::/64", "masquerade6": False},
        {"name": "v4", "bridge": "lnx-4", "subnet": "172.29.0.0/16"}]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_ipv4_ruleset_is_unchanged_by_subnet6(backend):
    res = fw.FirewallResource(Module(backend))
    dual = res.render(res.normalize(DUAL, "merged"))
    v4_only = res.render(res.normalize([{k: v for k, v in n.items() if k not in ("subnet6", "masquerade6")} for n in DUAL], "merged"))
    assert dual[:len(v4_only)] == v4_only
    six = "\n".join(dual[len(v4_only):])
    assert "fd00:30::/64" in six and "lnx-4" not in six and "127.0.0.0/8" not in six
    # NAT66 for d; r is routed (masquerade6 false) but keeps its host-local masquerade (hairpin)
    if backend == "iptables":
        assert dual[len(v4_only)] == "# ip6tables-restore --noflush"
        assert "-I POSTROUTING 2 -s fd00:30::/64 ! -o lnx-d -j MASQUERADE" in six and "-s fd00:31::/64" not in six
    else:
        assert "add table ip6 linuxnet" in six and 'ip6 saddr fd00:30::/64 oifname != "lnx-d" masquerade' in six
        assert "fd00:31::/64 oifname" not in six


def test_subnet6_validation_and_defaults():
    res = fw.FirewallResource(Module())
    items = res.normalize(DUAL, "merged")
    assert items[0]["subnet6"] == "fd00:30::/64" and items[0]["masquerade6"] is True
    assert items[1]["masquerade6"] is False and "subnet6" not in items[2]
    for bad in ("fd00:30::1/64", "fe80::/64", "ff00::/64", "fd00::/48", "fd00::/124", "10.0.0.0/24", "fd00::/64\n", "::1/128"):
        with pytest.raises(ValidationError, match=r"config\[0\].*subnet6"):
            res.normalize([{**DUAL[0], "subnet6": bad}], "merged")
    with pytest.raises(ValidationError, match="masquerade6: needs subnet6"):
        # (merged and replaced: when planned, as the network's current subnet6 counts there)
        res.normalize([{**DUAL[2], "masquerade6": True}], "overridden")
    with pytest.raises(ValidationError, match="subnet6 of network b .* overlaps"):
        res.normalize([DUAL[0], {**DUAL[1], "name": "b", "subnet6": "fd00:30::/80"}], "merged")


def test_gathered_networks_carry_subnet6():
    live = ipt.parse_save("*filter\n-A LINUXNET-ISOLATION-STAGE-2 -o lnx-d -j DROP\nCOMMIT\n"
                          "*nat\n-A POSTROUTING -s 172.30.0.0/16 ! -o lnx-d -j MASQUERADE\nCOMMIT\n")
    live6 = ipt.parse_save("*filter\n-A LINUXNET-ISOLATION-STAGE-2 -o lnx-d -j DROP\nCOMMIT\n"
                           "*nat\n-A POSTROUTING -s fd00:30::/64 ! -o lnx-d -j MASQUERADE\nCOMMIT\n")
    v4 = fw.parse_networks(live, "LINUXNET", {}, ipt.parse_rule)
    v6 = fw.parse_networks(live6, "LINUXNET", {}, lambda s: ipt.parse_rule(s, "ipv6"))
    net = fw.merge_ipv6(v4, v6)["lnx-d"]
    assert (net["subnet"], net["subnet6"], net["masquerade"], net["masquerade6"]) == ("172.30.0.0/16", "fd00:30::/64", True, True)
    assert fw.split_save("*filter\nCOMMIT\n# Generated by ip6tables-save v1.8\n*filter\nCOMMIT\n")[1].startswith("# Generated by ip6")


BR = {"bridge": "lnx-d"}


def normalize(config: list[dict]) -> list[dict]:
    return pm.PortMappingResource(Module()).normalize(config, "merged")


def test_ipv6_publish_forms_and_keys():
    items = normalize([{**BR, "container_ip": "172.30.0.2", "publish": "8080:80"},
                       {**BR, "container_ip": "fd00:30::2", "publish": "8080:80"},  # the same host port, the other family
                       {**BR, "container_ip": "FD00:30::2", "publish": "[2001:DB8::1]:8081:80/udp"},
                       {**BR, "container_ip": "fd00:30::2", "publish": "[::]:8082:80", "sources": ["2001:db8:9::/48"]}])
    assert [pm.mapping_key(i) for i in items] == ["0.0.0.0:8080/tcp", "[::]:8080/tcp", "[2001:db8::1]:8081/udp", "[::]:8082/tcp"]
    assert items[2]["container_ip"] == "fd00:30::2" and items[3]["host_ip"] is None and items[3]["sources"] == ["2001:db8:9::/48"]


@pytest.mark.parametrize("item,field", [
    ({"container_ip": "172.30.0.2", "publish": "[::]:8080:80"}, "publish"),  # no NAT46
    ({"container_ip": "fd00:30::2", "publish": "0.0.0.0:8080:80"}, "publish"),
    ({"container_ip": "fd00:30::2", "publish": "[::1]:8080:80"}, "publish"),  # no route_localnet for IPv6
    ({"container_ip": "fd00:30::2", "host_port": 80, "container_port": 80, "host_ip": "fe80::1"}, "host_ip"),
    ({"container_ip": "fd00:30::2", "publish": "80:80", "sources": ["192.0.2.0/24"]}, "sources[0]"),
    ({"container_ip": "fd00:30::2", "publish": "80:80", "sources": ["2001:db8::/48\n"]}, "sources[0]"),
    ({"container_ip": "::1", "publish": "80:80"}, "container_ip"),
    ({"container_ip": "fd00:30::2", "publish": "[::]::80"}, "publish"),  # random host port
])
def test_bad_ipv6_mappings_name_the_field(item, field):
    with pytest.raises(ValidationError) as info:
        normalize([{**BR, **item}])
    assert str(info.value).split(": ", 1)[0].endswith(f".{field}"), str(info.value)


def test_ipv6_conflicts_within_the_family_only():
    with pytest.raises(ValidationError, match=r"\[2001:db8::1\]:8080/tcp .* conflicts with \[::\]:8080/tcp"):
        normalize([{**BR, "container_ip": "fd00:30::2", "publish": "8080:80"},
                   {**BR, "container_ip": "fd00:30::3", "publish": "[2001:db8::1]:8080:80"}])


def test_ipv6_mapping_model_and_udp_cleanup():
    items = normalize([{**BR, "container_ip": "fd00:30::2", "publish": "8080:80/udp"}])
    model = pm.mapping_model(items, [], "LINUXNET", None, "ipv6")
    lines = ipt.Iptables(None, "ipv6").render_model(model)
    assert "-A LINUXNET ! -s fe80::/10 -p udp -m udp --dport 8080 -j DNAT --to-destination [fd00:30::2]:80" in lines
    assert "-A PREROUTING -d fd00:30::2/128 ! -i lnx-d -p udp -m udp --dport 80 -j DROP" in lines
    ops = pm.conntrack_ops({}, {pm.mapping_key(items[0]): items[0]})
    assert [op.command for op in ops] == ["conntrack -D -f ipv6 -p udp --orig-port-dst 8080"]
    assert pm.conntrack_argvs("/c", ops[0].args) == [["/c", "-D", "-f", "ipv6", "-p", "udp", "--orig-port-dst", "8080"]]
