"""The shortcuts of the firewall and port-mapping steps give exactly what the plain computations give (issue 17).

* ``_port_mapping.mapping_rules`` builds its rules with ``Rule.ordered`` (fields given in name order):
  the same rules as ``Rule.of``.
* ``_fwmodel.parsable_as`` (the hairpin rules of POSTROUTING are not parsed when the firewall reads
  its networks back) never leaves out a rule that parses as one of the kinds asked for.
* ``_iptables.parse_save`` (rule lines handled first) reads every text as before.

Run: ``.venv/bin/python -m pytest tests/unit -q``
"""

from __future__ import annotations

import itertools

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _iptables, _nftables, _port_mapping
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import Rule, Table, parsable_as

from .fixtures.netlink import FakeModule
from .test_nochange_fast import SAMPLES


def plain_mapping_rules(item: dict) -> dict:
    """mapping_rules as it was (Rule.of)."""
    proto, cip = item["protocol"], item["container_ip"]
    hp, cp = _port_mapping.format_range(item["_hp"]), _port_mapping.format_range(item["_cp"])
    base = str(item["_hp"][0]) if item["_hp"][0] != item["_hp"][1] and item["_hp"] != item["_cp"] else None
    sources = item.get("sources") or [None]
    return {
        "dnat": [Rule.of("dnat", source=src, host_ip=item["host_ip"], proto=proto, dport=hp, container_ip=cip,
                         to_ports=cp, base=base) for src in sources],
        "accept": [Rule.of("accept_port", source=src, container_ip=cip, bridge=item["bridge"], proto=proto, dport=cp)
                   for src in sources],
        "hairpin": Rule.of("hairpin", container_ip=cip, proto=proto, dport=cp),
        "direct": Rule.of("direct_drop", container_ip=cip, bridge=item["bridge"], proto=proto, dport=cp),
        "loopback": _port_mapping._loopback_rule(item),
    }


@pytest.mark.parametrize("host_ip", [None, "127.0.0.1", "192.0.2.1", "fd00::1"])
@pytest.mark.parametrize("sources", [None, ["192.0.2.0/24"], ["192.0.2.0/24", "198.51.100.7/32"]])
@pytest.mark.parametrize("ports", [("8080", "80"), ("8000-8009", "8000-8009"), ("8000-8009", "9000-9009")])
def test_mapping_rules_are_the_rules_of_rule_of(host_ip, sources, ports):
    item = _port_mapping.with_internal({"bridge": "br0", "container_ip": "10.0.0.2", "host_port": ports[0],
                                        "container_port": ports[1], "host_ip": host_ip, "protocol": "udp",
                                        "sources": sources})
    fast, plain = _port_mapping.mapping_rules(item), plain_mapping_rules(item)
    assert fast == plain
    for rule in fast["dnat"] + fast["accept"] + [fast["hairpin"], fast["direct"]]:
        assert list(rule.fields) == sorted(rule.fields) and None not in dict(rule.fields).values()


def sample_specs(kinds: dict) -> list[str]:
    """Every kind rendered with sample values (and without its optional fields), and near misses."""
    specs = []
    for template in kinds.values():
        names = sorted(set(template.names))
        for values in itertools.product(*[SAMPLES.get(name, ["x"])[:2] + [None] for name in names]):
            try:
                spec = template.render({n: val for n, val in zip(names, values) if val is not None})
            except KeyError:
                continue
            specs += [spec, spec + " -j RETURN", spec[3:], spec.replace(" ", "  ", 1)]
    return specs


ADAPTERS = [(_iptables.Iptables, "ipv4"), (_iptables.Iptables, "ipv6"), (_nftables.Nftables, "ipv4"), (_nftables.Nftables, "ipv6")]


@pytest.mark.parametrize("adapter, family", ADAPTERS)
def test_parsable_as_leaves_out_no_rule_of_the_kinds(adapter, family):
    parse = adapter(FakeModule(), family=family).parse
    kinds = parse.templates
    specs = sample_specs(kinds)
    assert len(specs) > 400
    parsed = {spec: parse(spec) for spec in specs}
    asked = [("local_nat", "out_nat"), ("hairpin",), ("dnat", "accept_port"), tuple(kinds)]
    for wanted in asked:
        kept = parsable_as(parse, specs, wanted)
        assert kept == [spec for spec in specs if spec in kept]  # (in order)
        assert {spec for spec, rule in parsed.items() if rule is not None and rule.kind in wanted} <= set(kept), wanted
    # the hairpin rules are what it leaves out for the NAT rules
    hairpins = [spec for spec, rule in parsed.items() if rule is not None and rule.kind == "hairpin"]
    assert hairpins and not parsable_as(parse, hairpins, ("local_nat", "out_nat"))
    # a parse that tells no templates: every spec
    assert parsable_as(lambda spec: None, specs, ("local_nat",)) == specs


def plain_parse_save(text: str) -> dict[str, Table]:
    """parse_save as it was."""
    tables: dict[str, Table] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], Table())
        elif current is None or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy = (line[1:].split() + ["-", "-"])[:2]
            current.chains[name] = policy
            current.rules.setdefault(name, [])
        elif line.startswith("-A "):
            chain, spec = (line.split(" ", 2) + [""])[1:3]
            current.rules.setdefault(chain, []).append(spec)
    return tables


def test_parse_save_reads_as_before():
    text = "\n".join([
        "-A FORWARD -j BEFORE-ANY-TABLE", "# Generated by iptables-save", "*filter", ":INPUT ACCEPT [0:0]",
        ":FORWARD DROP [1:2]", ":LINUXNET - [0:0]", ":ODD", "-A FORWARD", "-A FORWARD ", "-A  FORWARD -j X",
        "  -A LINUXNET -d 10.0.0.2/32 ! -i br0 -o br0 -p tcp -m tcp --dport 80 -j ACCEPT  ", "-A NEW -j RETURN",
        "-I FORWARD 1 -j LINUXNET", "", "COMMIT", "-A FORWARD -j AFTER-COMMIT", "*nat", ":POSTROUTING ACCEPT [0:0]",
        "-A POSTROUTING -s 10.0.0.0/24 ! -o br0 -j MASQUERADE", "*filter", "-A INPUT -j AGAIN", "COMMIT",
    ])
    assert _iptables.parse_save(text) == plain_parse_save(text)
    assert _iptables.parse_save(text)["filter"].rules["FORWARD"][:3] == ["", "", "-j AFTER-COMMIT"]
