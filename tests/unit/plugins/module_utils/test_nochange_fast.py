"""The shortcuts of the no-change pass give exactly what the plain computations give (issue 17).

* ``_iptables.parse_rule`` tries only the kinds whose first token and ``-j`` target (and whether it
  is the last token) can match: the same answer as trying every kind in order, for every kind's
  rendering and for near misses.
* ``RuleTemplate.render`` (one format string per set of optional branches taken) renders as the regex
  substitution did, and a missing field raises the KeyError it raised.
* ``_netns._Expansion`` (the groups of a namespace expanded once for all namespaces using them)
  gives ``expand_hosts`` less the standard lines, and the file ``render_hosts`` writes.
* The netns gather skips parsing a hosts file equal to the one it would write, and plans the same.
* ``_deployment._copy_table`` shares nothing with the saved table.

Run: ``.venv/bin/python -m pytest tests/unit -q``
"""

from __future__ import annotations

import itertools
import random

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment, _iptables, _netns, _nftables
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import _FIELD, Rule, Table, _branches

from .fixtures.netlink import FakeModule

SAMPLES = {
    "chain": ["LINUXNET", "DROP", "ACCEPT", "DNAT"], "bridge": ["br0", "-j"], "subnet": ["10.0.0.0/24", "fd00::/64"],
    "verdict": ["ACCEPT", "DROP"], "snat_source": ["192.0.2.1", "-j"], "source": ["192.0.2.0/24", "fd00::/64"],
    "host_ip": ["127.0.0.1", "::1"], "proto": ["tcp"], "dport": ["80", "80-90"], "container_ip": ["10.0.0.2", "fd00::2"],
    "to_ports": ["80"], "base": ["80"],
}


def every_kind_parsed(spec: str, family: str) -> Rule | None:
    for kind, template in _iptables.KINDS_BY_FAMILY[family].items():
        fields = template.parse(spec)
        if fields is not None:
            return Rule.of(kind, **fields)
    return None


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_parse_rule_by_target_is_the_full_scan(family):
    specs = []
    for template in _iptables.KINDS_BY_FAMILY[family].values():
        names = sorted(set(template.names))
        for values in itertools.product(*[SAMPLES[name] + [None] for name in names]):
            try:
                spec = template.render({n: val for n, val in zip(names, values) if val is not None})
            except KeyError:
                continue
            specs += [spec, spec + " -j RETURN", spec.replace("-j ", ""), "-s 1.2.3.4/32 " + spec,
                      # another first token, a target no longer last, one more token before it
                      "-d 10.0.0.2/32 " + spec, "! " + spec, spec + " --to-source 1.2.3.4", spec.replace(" -j ", " -x y -j "),
                      "-x " + spec.split(" ", 1)[-1]]
    assert len(specs) > 500
    for spec in specs:
        assert _iptables.parse_rule(spec, family) == every_kind_parsed(spec, family), spec


def substituted(template, fields: dict) -> str:
    """RuleTemplate.render as it was: a regex substitution per segment."""
    if template.derive is not None:
        fields = template.derive(dict(fields))
    out = ""
    for seg in template.segments:
        if seg.startswith("["):
            first, second = _branches(seg)
            seg = first if all(fields.get(name) is not None for name in _FIELD.findall(first)) else second
        out += _FIELD.sub(lambda m: template.convert.get(m.group(1), (str, str))[0](fields[m.group(1)]), seg)
    return out


def test_render_is_the_substitution():
    templates = [t for kinds in (*_iptables.KINDS_BY_FAMILY.values(), *_nftables.KINDS_BY_FAMILY.values()) for t in kinds.values()]
    for template in templates:
        names = sorted(set(template.names))
        for values in itertools.product(*[["br0", "10.0.0.0/24", None]] * len(names)):
            fields = {n: val for n, val in zip(names, values) if val is not None}
            try:
                expected = substituted(template, fields)
            except KeyError as missing:  # the same error: the first missing field of the text
                with pytest.raises(KeyError) as raised:
                    template.render(fields)
                assert raised.value.args == missing.args, (template.text, fields)
                continue
            assert template.render(fields) == expected


def test_render_rule_cached_is_rendered():
    rule = Rule.of("dnat", proto="tcp", dport="8080", container_ip="10.0.0.2", to_ports="80")
    first = _iptables.render_rule(rule)
    assert first == "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80"
    assert _iptables.render_rule(rule) == first
    assert _iptables.render_rule(Rule.of("dnat", proto="tcp", dport="8080", container_ip="fd00::2", to_ports="80"), "ipv6") \
        == "! -s fe80::/10 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00::2]:80"


def _entry(rng: random.Random) -> dict:
    ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "127.0.0.1", "fd00::1", "fd00::2", "::1", "fe00::", "ff02::1"]
    names = ["a", "b", "c", "localhost", "ip6-localnet", "ip6-allnodes", "ip6-localhost", "ip6-loopback"]
    return {"ip": rng.choice(ips), "names": [rng.choice(names) for _name in range(rng.choice([1, 1, 1, 2, 3]))]}


def test_expansion_is_expand_hosts_less_the_standard_lines():
    rng = random.Random(17)
    for _case in range(5000):
        groups = [[_entry(rng) for _entry_no in range(rng.randint(0, 6))] for _group_no in range(rng.randint(0, 3))]
        own = [_entry(rng) for _own_no in range(rng.randint(0, 3))]
        expected = [h for h in _netns.expand_hosts(own, groups) if not _netns._standard(h)]
        hosts, text = _netns._Expansion(groups).hosts(own, groups)
        assert hosts == expected
        assert text == _netns.render_hosts(expected)
        assert _netns.parse_hosts(text) == hosts  # what gather reads back from the file


@pytest.fixture
def netns_host(tmp_path, monkeypatch):
    """Two namespaces with hosts files under tmp_path (no kernel)."""
    monkeypatch.setattr(_netns, "ETC_NETNS", str(tmp_path))
    monkeypatch.setattr(_netns, "list_namespaces", lambda: ["a", "b"])
    monkeypatch.setattr(_netns, "namespace_owned", lambda name: True)
    monkeypatch.setattr(_netns.os.path, "ismount", lambda path: True)
    monkeypatch.setattr(_netns, "_is_mount", lambda name, names_dir: True)  # (gather's ismount of a name)
    return tmp_path


def test_gather_skips_parsing_a_file_as_planned_and_plans_the_same(netns_host):
    group = [{"ip": "10.0.0.2", "names": ["a"]}, {"ip": "10.0.0.3", "names": ["b"]}, {"ip": "10.0.0.4", "names": ["c"]}]
    params = {"host_groups": [{"name": "net", "hosts": group}]}
    config = [{"name": "a", "hosts": [{"ip": "10.0.0.2", "names": ["a"]}], "host_groups": ["net"]},
              {"name": "b", "hosts": [{"ip": "10.0.0.3", "names": ["b"]}], "host_groups": ["net"]}]
    res = _netns.NetnsResource(FakeModule(**params))
    res.hold_lock = lambda state: None
    desired = res.normalize(config, "overridden")
    assert desired[0]["hosts"] == [{"ip": "10.0.0.2", "names": ["a"]}, {"ip": "10.0.0.3", "names": ["b"]},
                                   {"ip": "10.0.0.4", "names": ["c"]}]
    for item in desired:
        (netns_host / item["name"]).mkdir()
    # a: as written; b: the same entries spaced differently (parsed: equal, nothing to write)
    (netns_host / "a" / "hosts").write_text(_netns.render_hosts(desired[0]["hosts"]))
    spaced = _netns.render_hosts(desired[1]["hosts"])[len(_netns.HOSTS_HEADER):].replace("\t", "  ")
    (netns_host / "b" / "hosts").write_text(_netns.HOSTS_HEADER + spaced)
    current = res.gather(desired, "overridden")
    assert current["a"]["hosts"] is desired[0]["hosts"]
    assert current["b"]["hosts"] == desired[1]["hosts"] and current["b"]["hosts"] is not desired[1]["hosts"]
    assert res.plan(desired, current, "overridden")[0] == []
    # a file that differs is rewritten with exactly the rendered text
    (netns_host / "a" / "hosts").write_text(_netns.render_hosts(desired[0]["hosts"][:2]))
    operations, _after = res.plan(desired, res.gather(desired, "overridden"), "overridden")
    assert [op.args["text"] for op in operations] == [_netns.render_hosts(desired[0]["hosts"])]


def test_copy_table_shares_nothing():
    saved = Table(chains={"FORWARD": "ACCEPT", "P": "-"}, rules={"FORWARD": ["-j P"], "P": []})
    copied = _deployment._copy_table(saved)
    assert copied == saved
    copied.rules["FORWARD"].append("-j DROP")
    copied.chains["X"] = "-"
    copied.rules["P"].append("-j RETURN")
    assert saved == Table(chains={"FORWARD": "ACCEPT", "P": "-"}, rules={"FORWARD": ["-j P"], "P": []})
    nft = _nftables.NftTable()
    nft.rules["c"], nft.handles["c"] = ["x"], [7]
    copied_nft = _deployment._copy_table(nft)
    assert copied_nft.handles == {"c": [7]} and copied_nft.handles["c"] is not nft.handles["c"]
