"""The nftables adapter without a kernel: rule kinds, the ``nft -a list`` parser and the planner.

* Every rule kind of the iptables adapter (``_iptables.KINDS``) has an nft rendering that parses
  back to the same rule (a kind added later without one fails here). That each rendering is
  exactly what ``nft list`` prints is proven against the real nft in
  ``tests/integration/test_nftables.py``.
* The planner's scripts are applied to :class:`NftModel` (``fixtures/nftables.py``), a small model of an ``nft -f``
  transaction on our table (handles, base chains, jumps that must resolve), and the result is
  listed as ``nft -a list table`` prints it and read back with ``parse_list``: a converged table
  plans nothing, rules an admin added are kept, deleting everything deletes the table.

Run: ``.venv/bin/python -m pytest tests/unit -q`` (no root needed).
"""

from __future__ import annotations

import copy
import re

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _firewall as fw
from ansible_collections.linuxnet.bridge.plugins.module_utils import _iptables as iptables
from ansible_collections.linuxnet.bridge.plugins.module_utils import _nftables as nft
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import Rule
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import PortMappingResource

from .fixtures.nftables import MAPPINGS, NETWORKS, NftFakeModule, NftModel, fw_run, pm_run

# Sample values per field name (every field any kind of either adapter uses).
SAMPLES = {
    "bridge": "lnx-a", "chain": "LINUXNET-ISOLATION-STAGE-2", "verdict": "DROP", "subnet": "10.1.0.0/24",
    "snat_source": "192.0.2.9", "host_ip": "192.0.2.1", "proto": "tcp", "dport": "81", "container_ip": "10.1.0.2",
    "to_ports": "80", "base": None,
}


def sample_rules(kind: str) -> Rule:
    fields = set(re.findall(r"\{(\w+)\}", iptables.KINDS[kind].text))
    return Rule.of(kind, **{f: SAMPLES[f] for f in fields if f in SAMPLES})


# ============================================================================== kinds


def test_every_iptables_kind_has_an_nft_rendering():
    missing = sorted(set(iptables.KINDS) - set(nft.KINDS))
    assert not missing, f"rule kinds without an nft rendering in _nftables.KINDS: {missing}"
    assert not sorted(set(nft.KINDS) - set(iptables.KINDS)), "an nft kind that the model does not have"


@pytest.mark.parametrize("kind", sorted(iptables.KINDS))
def test_every_kind_parses_back_to_the_rule_it_renders_from(kind):
    rule = sample_rules(kind)
    text = nft.render_rule(rule, "filter")
    assert nft.parse_rule(text) == rule, text
    if rule.get("snat_source"):  # the other branch of [snat to ...|masquerade]
        plain = Rule.of(kind, **{k: v for k, v in rule.fields if k != "snat_source"})
        assert nft.parse_rule(nft.render_rule(plain)) == plain


def test_verdicts_and_chains_in_nft_words():
    assert nft.render_rule(Rule.of("icc", bridge="b", verdict="ACCEPT")) == 'iifname "b" oifname "b" accept'
    assert nft.render_rule(Rule.of("local_jump", chain="LINUXNET"), "nat") == "fib daddr type local jump nat-LINUXNET"
    assert nft.parse_rule("fib daddr type local jump nat-LINUXNET") == Rule.of("local_jump", chain="LINUXNET")
    # a jump into a chain that is none of ours is no rule of ours
    assert nft.parse_rule("jump somebody-elses") is None and nft.parse_rule("counter accept") is None


def test_a_shifted_1000_port_range_is_one_rule_with_a_port_map():
    rule = Rule.of("dnat", proto="tcp", dport="20000-20999", container_ip="10.1.0.3", to_ports="30000-30999", base="20000")
    text = nft.render_rule(rule)
    assert text.startswith("tcp dport 20000-20999 dnat to 10.1.0.3:tcp dport map { 20000 : 30000, 20001 : 30001, ")
    assert text.endswith(", 20999 : 30999 }") and text.count(" : ") == 1000
    assert nft.parse_rule(text) == rule
    # an unshifted range keeps the port: no map
    same = Rule.of("dnat", proto="udp", dport="5000-5009", container_ip="10.1.0.3", to_ports="5000-5009")
    assert nft.render_rule(same) == "udp dport 5000-5009 dnat to 10.1.0.3:5000-5009"


def test_sources_are_ip_saddr_and_a_host_is_listed_without_its_prefix():
    lan = Rule.of("dnat", source="192.0.2.0/24", host_ip="192.0.2.1", proto="udp", dport="81", container_ip="10.1.0.2", to_ports="80")
    host = Rule.of("accept_port", source="198.51.100.7/32", container_ip="10.1.0.2", bridge="b", proto="tcp", dport="80")
    assert nft.render_rule(lan) == "ip saddr 192.0.2.0/24 ip daddr 192.0.2.1 udp dport 81 dnat to 10.1.0.2:80"
    assert nft.render_rule(host) == 'ip saddr 198.51.100.7 ip daddr 10.1.0.2 iifname != "b" oifname "b" tcp dport 80 accept'
    assert [nft.parse_rule(nft.render_rule(r)) for r in (lan, host)] == [lan, host]


def test_rule_kinds_do_not_shadow_each_other():
    for kind in nft.KINDS:
        rule = sample_rules(kind)
        assert nft.parse_rule(nft.render_rule(rule)).kind == kind


# ============================================================================== planner


def test_select_adapter_picks_the_backend_and_names_the_table_after_the_prefix():
    assert isinstance(fw.select_adapter(None, {}), iptables.Iptables)
    adapter = fw.select_adapter(None, {"firewall_backend": "nftables", "chain_prefix": "DOCKER"})
    assert isinstance(adapter, nft.Nftables) and adapter.table == "docker"
    # both iptables variants (test_firewall_backends_review.py)
    assert [type(a) for a in fw.other_adapters(None, {"firewall_backend": "nftables"})] == [iptables.Iptables] * 2
    assert fw.MODULE_OPTIONS["firewall_backend"] == {"type": "str", "default": "iptables", "choices": ["iptables", "nftables"]}


def test_rendered_script_has_dockers_29_base_chains_and_one_table_of_ours():
    res = fw.FirewallResource(NftFakeModule())
    script = res.render(res.normalize(NETWORKS, "rendered"))
    assert script[0] == "add table ip linuxnet"
    assert all(line.startswith(("add table ip linuxnet", "add chain ip linuxnet ", "add rule ip linuxnet ", "insert rule ip linuxnet "))
               for line in script), script
    base = {line.split()[4]: line.split("{ ")[1] for line in script if " hook " in line}
    assert base == {
        "filter-FORWARD": "type filter hook forward priority filter; policy accept; }",
        "filter-INPUT": "type filter hook input priority filter; policy accept; }",
        "nat-PREROUTING": "type nat hook prerouting priority dstnat; policy accept; }",
        "nat-OUTPUT": "type nat hook output priority -100; policy accept; }",
        "nat-POSTROUTING": "type nat hook postrouting priority srcnat; policy accept; }",
    }
    assert "add rule ip linuxnet filter-LINUXNET-USER return" in script
    # the admins' chain is jumped to first
    kernel = NftModel()
    kernel.apply(script)
    assert kernel.chains["filter-FORWARD"]["rules"][0][1] == "jump filter-LINUXNET-USER"
    assert kernel.chains["filter-FORWARD"]["rules"][1][1] == "jump filter-LINUXNET-ISOLATION-STAGE-1"


def test_converged_table_plans_nothing_and_gathered_round_trips():
    kernel = NftModel()
    first, _res = fw_run(kernel, NETWORKS)
    assert first and first[0] == "add table ip linuxnet"
    again, res = fw_run(kernel, NETWORKS, known=_res.final)
    assert again == [], again
    gathered = fw.parse_networks(res.live, "LINUXNET", _res.final, res.adapter.parse)
    assert {n["bridge"]: (n["subnet"], n["icc"], n["internal"], n["snat_source"]) for n in gathered.values()} == {
        "lnx-front": ("10.31.0.0/24", True, False, None), "lnx-back": ("10.32.0.0/24", False, False, None),
        "lnx-int": ("10.33.0.0/24", True, True, None), "lnx-snat": ("10.34.0.0/24", True, False, "192.0.2.5")}


def test_forward_policy_drop_lives_in_our_base_chain():
    kernel = NftModel()
    res = fw.FirewallResource(NftFakeModule())
    desired = res.normalize(NETWORKS[:1], "merged")
    res.live, res.adapter.other_chains = kernel.live()
    res.sysctls = {fw.IP_FORWARD: "0", fw.BRIDGE_NF: "1"}
    lines = [op.args["line"] for op in res.plan(desired, {}, "merged")[0] if op.action == "nft"]
    kernel.apply(lines)
    assert "policy drop;" in kernel.chains["filter-FORWARD"]["base"]
    assert fw_run(kernel, NETWORKS[:1])[0] == [], "a later run (forwarding on) keeps the policy"


def test_port_mappings_share_the_table_and_a_range_is_one_rule():
    kernel = NftModel()
    fw_run(kernel, NETWORKS)
    lines, _res = pm_run(kernel, MAPPINGS)
    assert lines and not [line for line in lines if "table" in line.split()[:2]]
    dnat = [t for _h, t in kernel.chains["nat-LINUXNET"]["rules"]]
    assert len(dnat) == 3 and sum("20000-20999" in t for t in dnat) == 1
    # the two TCP ports on a host address are one map lookup (as nft lists it, elements sorted)
    assert "dnat ip to ip daddr . tcp dport map { 127.0.0.1 . 8081 : 10.31.0.2 . 80, 192.0.2.1 . 81 : 10.31.0.2 . 80 }" in dnat
    assert pm_run(kernel, MAPPINGS)[0] == []
    assert fw_run(kernel, NETWORKS)[0] == [], "the firewall must not take the mappings' rules for its own"


def test_admin_rules_are_kept_and_only_damage_is_repaired():
    kernel = NftModel()
    fw_run(kernel, NETWORKS)
    pm_run(kernel, MAPPINGS)
    kernel.apply(["insert rule ip linuxnet filter-LINUXNET-USER ip saddr 192.0.2.7 drop",
                  "add rule ip linuxnet filter-FORWARD counter accept"])
    handle = kernel.chains["filter-FORWARD"]["rules"][4][0]
    kernel.apply([f"delete rule ip linuxnet filter-FORWARD handle {handle}", "flush chain ip linuxnet filter-LINUXNET-ISOLATION-STAGE-2"])
    repair, _res = fw_run(kernel, NETWORKS)
    assert "flush chain ip linuxnet filter-LINUXNET-ISOLATION-STAGE-2" in repair
    assert not [line for line in repair if " filter-LINUXNET-USER " in line or "nat-" in line], repair
    assert fw_run(kernel, NETWORKS)[0] == [] and pm_run(kernel, MAPPINGS)[0] == []
    assert kernel.chains["filter-LINUXNET-USER"]["rules"][0][1] == "ip saddr 192.0.2.7 drop"
    assert [t for _h, t in kernel.chains["filter-FORWARD"]["rules"]].count("counter accept") == 1


def test_deleting_everything_deletes_the_table_and_keeps_an_admins_user_chain():
    kernel = NftModel()
    _lines, res = fw_run(kernel, NETWORKS)
    known = res.final
    _lines, pm = pm_run(kernel, MAPPINGS)
    pm_known = pm.final
    pm_run(kernel, [], state="deleted", known=pm_known)
    assert fw_run(kernel, [], state="deleted", known=known)[0] == ["delete table ip linuxnet"]
    assert not kernel.exists
    # with an admin's rule in the USER chain: only that chain and its jump stay
    fw_run(kernel, NETWORKS)
    kernel.apply(["insert rule ip linuxnet filter-LINUXNET-USER ip saddr 192.0.2.7 drop"])
    fw_run(kernel, [], state="deleted", known=known)
    assert {name: [t for _h, t in c["rules"]] for name, c in kernel.chains.items()} == {
        "filter-FORWARD": ["jump filter-LINUXNET-USER"],
        "filter-LINUXNET-USER": ["ip saddr 192.0.2.7 drop", "return"],
    }
    assert fw_run(kernel, [], state="deleted", known=known)[0] == []


def test_a_failing_script_changes_nothing():
    kernel = NftModel()
    fw_run(kernel, NETWORKS)
    before = kernel.listing()
    with pytest.raises(AssertionError):
        kernel.apply(["flush chain ip linuxnet filter-LINUXNET-ISOLATION-STAGE-2", "add rule ip linuxnet no-such accept"])
    assert kernel.listing() == before


LISTING = """table ip linuxnet { # handle 7
\tset admins { # handle 3
\t\ttype ipv4_addr
\t\telements = { 192.0.2.7,
\t\t\t     192.0.2.8 }
\t}

\tchain filter-FORWARD { # handle 1
\t\ttype filter hook forward priority filter; policy drop;
\t\tjump filter-LINUXNET-USER # handle 11
\t\tip saddr @admins counter packets 3 bytes 180 accept # handle 40
\t}

\tchain admin-own { # handle 12
\t\tcounter packets 0 bytes 0 # handle 13
\t}

\tchain filter-LINUXNET-USER { # handle 7
\t\treturn # handle 10
\t}
}
"""


def test_parse_list_reads_policies_rules_handles_and_skips_what_is_not_ours():
    tables, other = nft.parse_list(LISTING)
    assert other == ["admin-own"] and list(tables) == ["filter"]
    filt = tables["filter"]
    assert filt.chains == {"FORWARD": "DROP", "LINUXNET-USER": "-"}
    assert filt.rules["FORWARD"] == ["jump filter-LINUXNET-USER", "ip saddr @admins counter packets 3 bytes 180 accept"]
    assert filt.handles["FORWARD"] == [11, 40]
    assert nft.parse_list("") == ({}, [])


@pytest.mark.parametrize("name", ["bad name", "1abc", "-x", "x\n", ""])
def test_bad_table_name_is_refused(name):
    with pytest.raises(nft.v.ValidationError, match="nft table name"):
        assert nft.Nftables(None, table=name).table


@pytest.mark.parametrize("name", ["_x", "a-b", "linuxnet"])
def test_table_names_nft_reads_as_identifiers_are_taken(name):
    assert nft.Nftables(None, table=name).table == name


# ============================================================================== sets and maps (published ports)


def more_mappings(n: int) -> list[dict]:
    """``n`` endpoints on lnx-front, each publishing TCP on the host address and anywhere, and UDP."""
    out = []
    for i in range(n):
        cip = f"10.31.0.{10 + i}"
        out += [{"bridge": "lnx-front", "container_ip": cip, "publish": f"192.0.2.1:{9000 + i}:80"},
                {"bridge": "lnx-front", "container_ip": cip, "publish": f"{9100 + i}:443"},
                {"bridge": "lnx-front", "container_ip": cip, "publish": f"{9200 + i}:53/udp"}]
    return out


def rule_count(kernel: NftModel) -> int:
    return sum(len(chain["rules"]) for chain in kernel.chains.values())


def test_rule_count_does_not_grow_with_endpoints_or_ports():
    counts = []
    for n in (2, 5, 12):
        kernel = NftModel()
        fw_run(kernel, NETWORKS)
        pm_run(kernel, MAPPINGS + more_mappings(n))
        counts.append(rule_count(kernel))
        assert pm_run(kernel, MAPPINGS + more_mappings(n))[0] == []
    assert counts[0] == counts[1] == counts[2], counts
    nat = [t for _h, t in kernel.chains["nat-LINUXNET"]["rules"]]
    assert "dnat ip to udp dport map { 8080 : 10.32.0.2 . 80, 9200 : 10.31.0.10 . 53, 9201 : 10.31.0.11 . 53, 9202 : 10.31.0.12 . 53," \
        in " ".join(nat)


def test_a_set_rule_listed_in_nfts_own_order_is_read_back_as_its_rules():
    """nft lists the elements of an anonymous set in an order of its own: nothing differs for that."""
    kernel = NftModel()
    fw_run(kernel, NETWORKS)
    pm_run(kernel, MAPPINGS + more_mappings(3))
    for chain in kernel.chains.values():
        chain["rules"] = [(h, _shuffled(t)) for h, t in chain["rules"]]
    assert pm_run(kernel, MAPPINGS + more_mappings(3))[0] == []
    tables, _other = nft.parse_list(kernel.listing())
    raw = tables["raw"].rules["PREROUTING"]
    assert 'ip daddr 10.31.0.12 iifname != "lnx-front" tcp dport 443 drop' in raw  # the resources read single rules
    # one endpoint fewer: its set rules are rewritten without it
    lines, _res = pm_run(kernel, MAPPINGS + more_mappings(2))
    assert lines and all("10.31.0.12" not in line for line in lines)


def _shuffled(text: str) -> str:
    m = re.fullmatch(r"(.*\{ )(.*)( \}.*)", text)
    if m is None or "dport map { 20000 :" in text:
        return text
    return m.group(1) + ", ".join(reversed(m.group(2).split(", "))) + m.group(3)


def test_sources_keep_a_set_rule_per_source_and_ipv6_forms_are_nfts():
    rules = [Rule.of("accept_port", source=src, container_ip=cip, bridge="lnx-a", proto="tcp", dport="80")
             for src in ("192.0.2.0/24", "198.51.100.7/32") for cip in ("10.1.0.2", "10.1.0.3")]
    assert nft.compact(rules) == [
        'ip saddr 192.0.2.0/24 ip daddr . tcp dport { 10.1.0.2 . 80, 10.1.0.3 . 80 } iifname != "lnx-a" oifname "lnx-a" accept',
        'ip saddr 198.51.100.7 ip daddr . tcp dport { 10.1.0.2 . 80, 10.1.0.3 . 80 } iifname != "lnx-a" oifname "lnx-a" accept']
    dnat6 = [Rule.of("dnat", host_ip="2001:db8::1", proto="tcp", dport=str(81 + i), container_ip=f"fd00::{2 + i}", to_ports="80")
             for i in range(2)]
    # as nft 1.0.6 lists what it was given (tests/integration/test_nftables.py loads them)
    assert nft.compact(dnat6, "nat", "ipv6") == [
        "ip6 saddr != fe80::/10 dnat ip6 to ip6 daddr . tcp dport map { 2001:db8::1 . 81 : fd00::2 . 80, 2001:db8::1 . 82 : fd00::3 . 80 }"]
    assert [nft.parse_rule(s, "ipv6") for s in nft.expand(nft.compact(dnat6, "nat", "ipv6")[0])] == dnat6
    # a single rule stays the rule it always was; a shifted range keeps its port map rule
    assert nft.compact(dnat6[:1], "nat", "ipv6") == [nft.render_rule(dnat6[0], "nat", "ipv6")]


def networks(n: int) -> list[dict]:
    return [{"name": f"n{i}", "bridge": f"lnx-n{i}", "subnet": f"10.{40 + i}.0.0/24"} for i in range(n)]


def test_isolation_is_three_rules_whatever_the_number_of_networks():
    """Stage 1 is one set rule, stage 2 one published-port jump and one drop over a set of bridges."""
    for n in (2, 7):
        kernel = NftModel()
        fw_run(kernel, NETWORKS + networks(n))
        stage1 = [t for _h, t in kernel.chains["filter-LINUXNET-ISOLATION-STAGE-1"]["rules"]]
        stage2 = [t for _h, t in kernel.chains["filter-LINUXNET-ISOLATION-STAGE-2"]["rules"]]
        assert len(stage1) == 2 + 1 + 1 and len(stage2) == 4, (stage1, stage2)  # lnx-int's internal drops, the set rule, return
        assert stage1[2].startswith('iifname { "lnx-back", "lnx-front", "lnx-n0", ') and \
            ' iifname . oifname != { "lnx-back" . "lnx-back", ' in stage1[2] and stage1[2].endswith(" jump filter-LINUXNET-ISOLATION-STAGE-2")
        assert stage2[1].endswith("} ct status dnat jump filter-LINUXNET") and stage2[2].startswith("oifname { ") and stage2[2].endswith(" } drop")
        for chain in kernel.chains.values():  # nft's own element order is no change
            chain["rules"] = [(h, _shuffled(t)) for h, t in chain["rules"]]
        again, res = fw_run(kernel, NETWORKS + networks(n))
        assert again == []
        gathered = fw.parse_networks(res.live, "LINUXNET", {}, res.adapter.parse)
        assert len(gathered) == len(NETWORKS) + n
    # one network fewer: the set rules are rewritten, the table keeps its rule count
    before = sum(len(c["rules"]) for c in kernel.chains.values())
    lines, _res = fw_run(kernel, NETWORKS + networks(n - 1), state="overridden")
    assert lines and all("lnx-n6" not in line for line in lines if line.startswith("add rule"))
    assert sum(len(c["rules"]) for c in kernel.chains.values()) < before  # (its FORWARD and NAT rules went)


def test_stage_two_is_reordered_only_where_rules_commute():
    pairs = [Rule.of("published_in", bridge=b, chain="LINUXNET") for b in ("a", "b")]
    drops = [Rule.of("isolated", bridge=b) for b in ("a", "b")]
    assert nft._by_kind([pairs[0], drops[0], pairs[1], drops[1]]) == pairs + drops
    # a bridge whose drop comes before its jump keeps the order as it was
    odd = [pairs[0], drops[0], drops[1], pairs[1]]
    assert nft._by_kind(odd) == odd


# ============================================================================== foresee: two steps, one nft -f


def step(kind: str, config: list[dict], state: str, known: dict | None):
    if kind == "firewall":
        res = fw.FirewallResource(NftFakeModule())
        res.sysctls = {fw.IP_FORWARD: "1", fw.BRIDGE_NF: "1"}
    else:
        res = PortMappingResource(NftFakeModule())
    res.known = copy.deepcopy(known or {})
    return res, res.normalize(config, state)


def two_steps(kernel: NftModel, runs: list[tuple], joined: bool) -> list[list[str]]:
    """``runs`` ((kind, config, state, known), ...) one after the other: each read and applied alone,
    or (``joined``) each planned on the table as the adapter foresees the earlier ones' lines and
    all of them applied in one script, as a deployment run joins its firewall steps."""
    live, other = kernel.live()
    scripts, lines = [], []
    for kind, config, state, known in runs:
        res, desired = step(kind, config, state, known)
        if not joined:
            live, other = kernel.live()
        res.live, res.adapter.other_chains = copy.deepcopy(live), other
        ops = res.plan(desired, {}, state)[0]
        scripts.append([op.args["line"] for op in ops if op.action == "nft"])
        if joined:
            assert all(res.adapter.foresees(op) for op in ops if op.action == "nft"), scripts[-1]
            res.adapter.foresee(live, ops)
            other, lines = res.adapter.other_chains, lines + scripts[-1]
        elif scripts[-1]:
            kernel.apply(scripts[-1])
    if joined and lines:
        kernel.apply(lines)
    return scripts


def rules_of(kernel: NftModel) -> dict:
    return {name: (c["base"], [t for _h, t in c["rules"]]) for name, c in kernel.chains.items()} if kernel.exists else {}


def test_foreseen_steps_join_into_one_script_that_does_what_two_would():
    """Firewall then port_mapping planned on the foreseen table give the same lines as when each reads
    the kernel after the other (so check mode's commands stay exact) and one script applies both:
    building, changing (a network and a mapping fewer, one more), tearing down (port_mapping first)."""
    fw_known, pm_known = {}, {}

    def runs(networks: list[dict], mappings: list[dict], state: str = "overridden", order=("firewall", "port_mapping")):
        config = {"firewall": (networks, fw_known), "port_mapping": (mappings, pm_known)}
        return [(kind, config[kind][0], state, config[kind][1]) for kind in order]

    changed = [dict(NETWORKS[0], subnet="10.35.0.0/24")] + NETWORKS[1:3]
    fewer = MAPPINGS[:2] + [{"bridge": "lnx-back", "container_ip": "10.32.0.3", "publish": "8443:443"}]
    alone, together = NftModel(), NftModel()  # the same sequence: one step at a time, and joined
    for plan, writes in ((runs(NETWORKS, MAPPINGS), True), (runs(changed, fewer), True), (runs(changed, fewer), False),
                         (runs([], [], "deleted", ("port_mapping", "firewall")), True)):
        before = len(together.scripts)
        scripts = two_steps(alone, plan, joined=False)
        assert two_steps(together, plan, joined=True) == scripts
        assert rules_of(together) == rules_of(alone)
        assert all(scripts) is writes and any(scripts) is writes
        assert together.scripts[before:] == ([scripts[0] + scripts[1]] if writes else []), "one nft -f with both steps' lines"
        for kind, config, state, _known in plan:  # what the steps own now (their state files)
            res, desired = step(kind, config, state, fw_known if kind == "firewall" else pm_known)
            res.live, res.adapter.other_chains = together.live()
            res.plan(desired, {}, state)
            (fw_known if kind == "firewall" else pm_known).clear()
            (fw_known if kind == "firewall" else pm_known).update(res.final)
    assert not together.exists and not alone.exists
