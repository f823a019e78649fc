"""linuxnet.bridge.firewall without a kernel: rendering, minimal-diff planning, validation.

* The rendered ``iptables-restore`` payloads (``state: rendered``) for the reference scenarios, with
  ``chain_prefix: DOCKER``, are applied to a small model of ``iptables-restore --noflush`` and the
  resulting chains are compared with what dockerd 20.10 (``--userland-proxy=false``) created,
  copied verbatim from ``../shared/reference/anchors-rulesets.md`` §1.4.3 and §1.4.2: the same
  rules in every chain, and an order with the same effect (two rules may only trade places when no
  packet can get a different verdict from it).
* ``plan_table()`` / ``FirewallResource.plan()`` against handmade live rulesets: nothing when equal,
  only owned rules touched, foreign rules never deleted, re-insertion after FORWARD was flushed.
* Bad input is refused by ``normalize()`` with a message naming the item and field.

Run: ``.venv/bin/python -m pytest tests/unit -q`` (no root needed).
"""

from __future__ import annotations

import re

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils import _firewall as fw
from ansible_collections.linuxnet.bridge.plugins.module_utils import _iptables as iptables
from ansible_collections.linuxnet.bridge.plugins.module_utils._iptables import (
    ownership,
    plan_table,
    render_rule,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

from .fixtures.firewall import FakeModule, build, converge, firewall, rendered
from .fixtures.iptables_model import (
    BUILTIN,
    Kernel,
    assert_like_docker,
    kernel_chains,
    order_problems,
    reference_chains,
)
from .fixtures.rulesets import DOCKER_12, GUARD, additions, PORTS_143, REF_142_FILTER, REF_143, REFERENCE_DOC, SCENARIO_142, SCENARIO_143, USER_RULES

# ============================================================================== reference scenarios


def test_reference_text_is_verbatim_from_the_anchors_document():
    """The constants of fixtures/rulesets.py are copies; if the reference document is around, prove it."""
    if not REFERENCE_DOC.exists():
        pytest.skip(f"{REFERENCE_DOC} is not on this machine (the constants are the reference)")
    doc = REFERENCE_DOC.read_text(encoding="utf-8")
    section_143 = doc[doc.index("#### 1.4.3"):doc.index("#### 1.4.4")]
    section_142 = doc[doc.index("#### 1.4.2"):doc.index("#### 1.4.3")]
    section_12 = doc[doc.index("### 1.2 "):doc.index("### 1.3 ")]
    assert REF_143 in section_143
    assert REF_142_FILTER in section_142
    assert DOCKER_12 in section_12


def test_rendered_143_is_dockers_ruleset_with_userland_proxy_off():
    """firewall + port_mapping rendered with chain_prefix DOCKER == dockerd's own rules (§1.4.3)."""
    kernel = build(SCENARIO_143, PORTS_143)
    ref = reference_chains(REF_143)
    assert_like_docker(kernel_chains(kernel), ref, extra=additions(SCENARIO_143))
    # chain names are Docker's own
    assert kernel.chain_names("filter") == set(BUILTIN["filter"]) | {
        "DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2"}
    assert kernel.chain_names("nat") == set(BUILTIN["nat"]) | {"DOCKER"}
    # the admin's jump comes first, isolation second, ICC-off DROP last (as Docker does)
    forward = kernel.rules("filter", "FORWARD")
    assert forward[:2] == ["-j DOCKER-USER", "-j DOCKER-ISOLATION-STAGE-1"]
    assert forward[-1] == "-i docker0 -o docker0 -j DROP"
    assert kernel.rules("filter", "DOCKER-ISOLATION-STAGE-1")[-1] == "-j RETURN"
    assert kernel.rules("filter", "DOCKER-ISOLATION-STAGE-2")[-1] == "-j RETURN"
    assert kernel.rules("filter", "DOCKER-USER") == ["-j RETURN"]


def test_rendered_firewall_alone_is_dockers_network_part_of_143():
    """Without port mappings: every rule of §1.4.3 that is not per-port, nothing else."""
    per_port = re.compile(r"--dport")
    ref = {t: {c: [r for r in rules if not per_port.search(r)] for c, rules in chains.items()}
           for t, chains in reference_chains(REF_143).items()}
    ref = {t: {c: r for c, r in chains.items() if r} for t, chains in ref.items()}
    kernel = build(SCENARIO_143)
    assert_like_docker(kernel_chains(kernel), ref, extra=additions(SCENARIO_143))
    assert kernel.rules("filter", "DOCKER") == [] and kernel.rules("nat", "DOCKER") == []


def test_rendered_142_internal_network_filter_table():
    """§1.2 + §1.4.1 (ICC off) + §1.4.2 (internal): the full filter table, rule for rule."""
    kernel = build(SCENARIO_142, PORTS_143)
    ours = kernel_chains(kernel)
    assert_like_docker({"filter": ours["filter"]}, reference_chains(REF_142_FILTER), extra=additions(SCENARIO_142))
    # internal: no NAT at all, no conntrack/-j DOCKER/isolation-stage-2 rule for br-int
    nat_rules = [r for rules in ours["nat"].values() for r in rules]
    assert not [r for r in nat_rules if "br-int" in r or "172.20." in r], nat_rules
    assert "-o br-int -j DOCKER-ISOLATION-STAGE-2" not in kernel.rules("filter", "DOCKER-ISOLATION-STAGE-2")
    assert not [r for r in kernel.rules("filter", "FORWARD") if "br-int" in r and r != "-i br-int -o br-int -j ACCEPT"]
    # the ICC-off network: §1.4.1's nat rule, plus the proxy-off hairpin rule
    assert "-s 172.19.0.0/16 ! -o br-noicc -j MASQUERADE" in kernel.rules("nat", "POSTROUTING")
    assert "-o br-noicc -m addrtype --src-type LOCAL -j MASQUERADE" in kernel.rules("nat", "POSTROUTING")


def test_internal_network_without_icc():
    kernel = build([{"name": "int", "bridge": "br-int", "subnet": "172.20.0.0/16", "internal": True, "icc": False}])
    assert kernel.rules("filter", "FORWARD") == ["-j DOCKER-USER", "-j DOCKER-ISOLATION-STAGE-1", "-i br-int -o br-int -j DROP"]
    assert kernel.rules("filter", "DOCKER-ISOLATION-STAGE-1") == [
        "! -s 172.20.0.0/16 -o br-int -j DROP", "! -d 172.20.0.0/16 -i br-int -j DROP", "-j RETURN"]
    assert kernel.rules("nat", "POSTROUTING") == []


def test_rendered_snat_source_and_no_masquerade():
    """Docker's host_ipv4 gives SNAT instead of MASQUERADE (hairpin too); masquerade off drops the
    subnet rule but keeps the proxy-off hairpin rule."""
    kernel = build([
        {"name": "a", "bridge": "br-a", "subnet": "10.1.0.0/24", "snat_source": "172.16.211.130"},
        {"name": "b", "bridge": "br-b", "subnet": "10.2.0.0/24", "masquerade": False},
    ])
    assert sorted(kernel.rules("nat", "POSTROUTING")) == sorted([
        "-o br-a -m addrtype --src-type LOCAL -j SNAT --to-source 172.16.211.130",
        "-s 10.1.0.0/24 ! -o br-a -j SNAT --to-source 172.16.211.130",
        "-o br-b -m addrtype --src-type LOCAL -j MASQUERADE",
    ])


def test_rendered_payload_shape():
    """One *filter and one *nat transaction, each ending in COMMIT; chains declared before use."""
    lines = rendered(SCENARIO_143)
    assert lines[0] == "*filter" and lines.count("COMMIT") == 2 and lines[-1] == "COMMIT"
    assert lines.index("*nat") == lines.index("COMMIT") + 1
    declared = [line for line in lines if line.startswith(":")]
    assert set(declared) == {":DOCKER - [0:0]", ":DOCKER-USER - [0:0]", ":DOCKER-ISOLATION-STAGE-1 - [0:0]",
                             ":DOCKER-ISOLATION-STAGE-2 - [0:0]"}
    for line in lines:
        assert "\n" not in line and "'" not in line and '"' not in line
    # the rendered payload does not depend on the order of config
    assert rendered(list(reversed(SCENARIO_143))) == lines


def test_rendered_with_default_prefix_names_linuxnet_chains():
    kernel = Kernel("\n".join(rendered(SCENARIO_143, prefix="LINUXNET")) + "\n")
    assert kernel.chain_names("filter") - set(BUILTIN["filter"]) == {
        "LINUXNET", "LINUXNET-USER", "LINUXNET-ISOLATION-STAGE-1", "LINUXNET-ISOLATION-STAGE-2"}
    assert not [r for t in kernel.tables for rules in kernel.tables[t]["chains"].values() for r in rules if "DOCKER" in r]


# ============================================================================== sysctls and policy


def test_forward_policy_drop_only_when_ip_forward_was_off():
    kernel = Kernel()
    commands, lines = converge(kernel, {}, SCENARIO_143, sysctls={fw.IP_FORWARD: "0", fw.BRIDGE_NF: "0"}, apply=False)[:2]
    assert lines["filter"][0] == ":FORWARD DROP [0:0]"
    assert commands[0] == "iptables -t filter -P FORWARD DROP"
    assert commands[-2:] == ["sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.bridge.bridge-nf-call-iptables=1"]
    commands, lines = converge(kernel, {}, SCENARIO_143, apply=False)[:2]
    assert not [c for c in commands if " -P " in c or c.startswith("sysctl")], commands
    # br_netfilter not loaded (no sysctl file): modprobe first
    commands = converge(kernel, {}, SCENARIO_143, sysctls={fw.IP_FORWARD: "1"}, apply=False).commands
    assert commands[-2:] == ["modprobe br_netfilter", "sysctl -w net.bridge.bridge-nf-call-iptables=1"]


def test_route_localnet_only_for_bridges_that_exist():
    res = firewall()
    desired = res.normalize(SCENARIO_143, "merged")
    res.live, res.known = Kernel().live(), {}
    res.sysctls = {fw.IP_FORWARD: "1", fw.BRIDGE_NF: "1", fw.route_localnet_path("docker0"): "0"}
    res.bridges_present = {"docker0"}
    ops = res.plan(desired, {}, "merged")[0]
    assert [op.command for op in ops if op.action == "sysctl"] == ["sysctl -w net.ipv4.conf.docker0.route_localnet=1"]


# ============================================================================== minimal diffs


def test_plan_is_empty_when_the_live_ruleset_is_the_desired_one():
    kernel = Kernel()
    run_ = converge(kernel, {}, SCENARIO_142)
    commands, known = run_.commands, run_.known
    assert commands and kernel.restores == 2
    for state in ("merged", "replaced", "overridden"):
        again, lines = converge(kernel, known, SCENARIO_142, state=state)[:2]
        assert again == [] and lines == {}, state
    assert kernel.restores == 2  # nothing written
    # plan_table itself: [] for every table when live == want
    res = firewall()
    want = fw.firewall_model(res.normalize(SCENARIO_142, "merged"), [], "LINUXNET", kernel.live(), False, res.adapter)
    is_ours = ownership(want)
    for table in ("filter", "nat"):
        assert plan_table(table, kernel.live()[table], want.tables[table], is_ours) == []


def foreign_view(kernel: Kernel, prefix: str = "LINUXNET", ours: tuple[str, ...] = ("lnx",)) -> dict:
    """Everything but our chains and the rules that mention our prefix or our bridges."""
    view = {}
    for table, t in kernel.tables.items():
        view[table] = {
            "policy": dict(t["policy"]),
            "chains": {c: [r for r in rules if prefix not in r and r != GUARD and not any(f" {b}" in r for b in ours)]
                       for c, rules in t["chains"].items() if not c.startswith(prefix)},
        }
    return view


OURS = [
    {"name": "front", "bridge": "lnx-front", "subnet": "10.31.0.0/24"},
    {"name": "back", "bridge": "lnx-back", "subnet": "10.32.0.0/24", "icc": False},
]


def test_foreign_docker_and_user_rules_are_never_touched():
    """A full Docker ruleset (DOCKER-* chains) and user rules stay byte-identical through
    create, change, re-create, and deleted; every -D is one of our rules."""
    kernel = Kernel(DOCKER_12)
    kernel.restore(USER_RULES)
    foreign = foreign_view(kernel)
    original = kernel.save()
    known: dict = {}
    steps = [
        (OURS, "merged"),
        (OURS + [{"name": "int", "bridge": "lnx-int", "subnet": "10.33.0.0/24", "internal": True}], "merged"),
        ([OURS[1]], "overridden"),
        ([], "deleted"),
    ]
    for config, state in steps:
        commands, lines, known = converge(kernel, known, config, state=state)
        assert commands, (config, state)
        assert foreign_view(kernel) == foreign, f"foreign rules changed by {state} {config}"
        for table, body in lines.items():
            for line in body:
                if line.startswith(("-D ", "-F ", "-X ", ":")):
                    assert "LINUXNET" in line or "lnx-" in line or GUARD in line, f"touches a foreign rule or chain: {line}"
    assert kernel.save() == original, "deleted did not leave exactly the foreign ruleset"


def test_our_forward_rules_go_first_and_foreign_ones_keep_their_order():
    kernel = Kernel(DOCKER_12)
    converge(kernel, {}, [{"name": "x", "bridge": "lnx0", "subnet": "10.40.0.0/24"}])
    forward = kernel.rules("filter", "FORWARD")
    assert forward[:2] == ["-j LINUXNET-USER", "-j LINUXNET-ISOLATION-STAGE-1"]
    assert forward[-10:] == reference_chains(DOCKER_12)["filter"]["FORWARD"]


def test_forward_flushed_is_reinserted_and_only_forward_changes():
    kernel = Kernel(DOCKER_12)
    kernel.restore(USER_RULES)
    known = converge(kernel, {}, OURS).known
    expected = kernel.save()
    ours_in_forward = [r for r in kernel.rules("filter", "FORWARD") if "LINUXNET" in r or "lnx-" in r]
    kernel.restore("*filter\n-F FORWARD\nCOMMIT\n")  # a firewall reload flushes FORWARD
    commands, lines = converge(kernel, known, OURS)[:2]
    assert set(lines) == {"filter"}, lines
    assert all(line.startswith(("-I FORWARD ", "-A FORWARD ")) for line in lines["filter"]), lines
    assert kernel.rules("filter", "FORWARD") == ours_in_forward  # Docker's/user's FORWARD rules are not ours to restore
    kernel2 = Kernel(expected)
    assert kernel.rules("filter", "INPUT") == kernel2.rules("filter", "INPUT")
    assert commands == [f"iptables -t filter {line}" for line in lines["filter"]]


def test_only_the_damaged_parts_are_rewritten():
    kernel = Kernel(USER_RULES)
    known = converge(kernel, {}, OURS).known
    # a rule of ours deleted from POSTROUTING: only nat is written, only that rule's place
    kernel.restore("*nat\n-D POSTROUTING -s 10.31.0.0/24 ! -o lnx-front -j MASQUERADE\nCOMMIT\n")
    lines = converge(kernel, known, OURS).lines
    assert set(lines) == {"nat"}
    assert all("POSTROUTING" in line for line in lines["nat"]), lines
    assert "-s 10.31.0.0/24 ! -o lnx-front -j MASQUERADE" in kernel.rules("nat", "POSTROUTING")
    # an owned chain emptied: only that chain is rewritten
    kernel.restore("*filter\n-F LINUXNET-ISOLATION-STAGE-2\nCOMMIT\n")
    lines = converge(kernel, known, OURS).lines
    assert lines == {"filter": [":LINUXNET-ISOLATION-STAGE-2 - [0:0]",
                                "-A LINUXNET-ISOLATION-STAGE-2 -m conntrack --ctstate DNAT --ctdir REPLY -j RETURN",
                                "-A LINUXNET-ISOLATION-STAGE-2 -o lnx-back -m conntrack --ctstate DNAT -j LINUXNET",
                                "-A LINUXNET-ISOLATION-STAGE-2 -o lnx-back -j DROP",
                                "-A LINUXNET-ISOLATION-STAGE-2 -o lnx-front -m conntrack --ctstate DNAT -j LINUXNET",
                                "-A LINUXNET-ISOLATION-STAGE-2 -o lnx-front -j DROP", "-A LINUXNET-ISOLATION-STAGE-2 -j RETURN"]}
    # chains deleted (with the jumps into them): recreated
    kernel.restore("*filter\n-D FORWARD -j LINUXNET-ISOLATION-STAGE-1\n-F LINUXNET-ISOLATION-STAGE-1\n"
                   "-X LINUXNET-ISOLATION-STAGE-1\nCOMMIT\n")
    lines = converge(kernel, known, OURS).lines
    assert "LINUXNET-ISOLATION-STAGE-1" in kernel.chain_names("filter")
    assert kernel.rules("filter", "FORWARD")[:2] == ["-j LINUXNET-USER", "-j LINUXNET-ISOLATION-STAGE-1"]
    assert converge(kernel, known, OURS)[0] == []


def test_admin_rules_in_user_chain_survive_everything():
    kernel = Kernel()
    known = converge(kernel, {}, OURS).known
    kernel.restore("*filter\n-I LINUXNET-USER 1 -s 192.0.2.7/32 -j DROP\nCOMMIT\n")
    assert converge(kernel, known, OURS)[0] == []
    known = converge(kernel, known, [OURS[0]], state="overridden").known
    assert kernel.rules("filter", "LINUXNET-USER") == ["-s 192.0.2.7/32 -j DROP", "-j RETURN"]
    known = converge(kernel, known, [], state="deleted").known
    assert known == {}
    # the admin's chain and its jump stay; everything else of ours is gone
    assert kernel.rules("filter", "LINUXNET-USER") == ["-s 192.0.2.7/32 -j DROP", "-j RETURN"]
    assert kernel.rules("filter", "FORWARD") == ["-j LINUXNET-USER"]
    assert kernel.chain_names("filter") == set(BUILTIN["filter"]) | {"LINUXNET-USER"}
    assert kernel.chain_names("nat") == set(BUILTIN["nat"])
    assert converge(kernel, known, [], state="deleted")[0] == []


def test_deleted_one_network_removes_only_its_rules():
    kernel = Kernel()
    known = converge(kernel, {}, OURS).known
    before = kernel_chains(kernel)
    known = converge(kernel, known, [{"name": "back", "bridge": "lnx-back", "subnet": "10.32.0.0/24"}], state="deleted").known
    assert set(known) == {"front"}
    after = kernel_chains(kernel)
    for table, chains in before.items():
        for chain, rules in chains.items():
            assert after[table].get(chain, []) == [r for r in rules if "lnx-back" not in r and "10.32." not in r], (table, chain)


def test_deleted_and_overridden_on_a_foreign_only_host_write_nothing():
    kernel = Kernel(DOCKER_12)
    for state in ("deleted", "overridden"):
        commands, lines = converge(kernel, {}, [], state=state)[:2]
        assert commands == [] and lines == {}, state
    assert kernel.restores == 1


def test_network_change_in_place_replaces_its_rules():
    kernel = Kernel()
    known = converge(kernel, {}, OURS).known
    changed = [dict(OURS[0], icc=False), OURS[1]]
    run_ = converge(kernel, known, changed, state="replaced")
    commands, known = run_.commands, run_.known
    assert "iptables -t filter -A FORWARD -i lnx-front -o lnx-front -j DROP" in commands
    assert "-i lnx-front -o lnx-front -j ACCEPT" not in kernel.rules("filter", "FORWARD")
    assert converge(kernel, known, changed)[0] == []


def test_gathered_rebuilds_the_config():
    kernel = Kernel(DOCKER_12)
    config = OURS + [
        {"name": "int", "bridge": "lnx-int", "subnet": "10.33.0.0/24", "internal": True},
        {"name": "snat", "bridge": "lnx-snat", "subnet": "10.34.0.0/24", "snat_source": "172.16.211.130"},
        {"name": "open", "bridge": "lnx-open", "subnet": "10.35.0.0/24", "gateway_mode": "nat-unprotected"},
    ]
    known = converge(kernel, {}, config).known
    found = fw.parse_networks(kernel.live(), "LINUXNET", known, firewall().adapter.parse)
    res = firewall()
    gathered = [res.public(found[name]) for name in sorted(found)]
    expected = {n["name"]: res.public(n) for n in res.normalize(config, "merged")}
    assert {g["name"]: g for g in gathered} == expected
    # fed back as config, gathered changes nothing
    for state in ("merged", "replaced", "overridden"):
        assert converge(kernel, known, gathered, state=state)[0] == [], state


# ============================================================================== protection (gateway_mode)


def docker_rule(section: str, chain: str, bridge: str) -> str:
    """The one rule of ``chain`` for ``bridge`` in a section of the reference document (its text after ``-A chain``)."""
    doc = REFERENCE_DOC.read_text(encoding="utf-8")
    text = doc[doc.index(section):]
    return next(line.split(" ", 2)[2] for line in text.splitlines()
                if line.startswith(f"-A {chain} ") and f" {bridge} " in line and line.endswith("-j DROP"))


def test_default_gateway_mode_nat_has_dockers_28_29_per_network_drop():
    """gateway_mode nat (default): Docker 28/29's ``! -i br -o br -j DROP`` (setDefaultForwardRule),
    after the jump into <P> (the published ports), so the FORWARD policy no longer matters."""
    kernel = build([{"name": "usernet", "bridge": "br-xxx", "subnet": "172.18.0.0/16"}])
    forward = kernel.rules("filter", "FORWARD")
    drop = "! -i br-xxx -o br-xxx -j DROP"
    if REFERENCE_DOC.exists():
        assert drop == docker_rule("### 2.3 ", "DOCKER", "br-xxx")  # Docker 29, verbatim
        assert drop == docker_rule("### 2.2 ", "DOCKER", "br-xxx")  # Docker 28.5
    assert forward.index(drop) == forward.index("-o br-xxx -j DOCKER") + 1
    assert forward.index(drop) < forward.index("-i br-xxx ! -o br-xxx -j ACCEPT")
    # nat-unprotected: dockerd 20.10-27's rules, no such DROP; internal networks never get one
    kernel = build([{"name": "usernet", "bridge": "br-xxx", "subnet": "172.18.0.0/16", "gateway_mode": "nat-unprotected"},
                    {"name": "int", "bridge": "br-int", "subnet": "172.20.0.0/16", "internal": True}])
    assert not [r for r in kernel.rules("filter", "FORWARD") if r.endswith("-o br-xxx -j DROP") or "! -i br-int" in r]


def test_switching_gateway_mode_touches_only_the_protection_rule():
    kernel = Kernel(USER_RULES)
    known = converge(kernel, {}, OURS).known
    before = kernel_chains(kernel)
    open_ = [dict(n, gateway_mode="nat-unprotected") for n in OURS]
    run_ = converge(kernel, known, open_)
    assert all(c.startswith("iptables -t filter -") and " FORWARD " in c for c in run_.commands), run_.commands
    assert [r for r in before["filter"]["FORWARD"] if not r.startswith("! -i lnx-")] == kernel.rules("filter", "FORWARD")
    assert not [r for r in kernel.rules("filter", "FORWARD") if r.startswith("! -i lnx-")]
    assert converge(kernel, run_.known, open_).commands == []
    # and back; the state file lost on the way: the rule is recognised as ours anyway
    converge(kernel, {}, OURS)
    assert kernel_chains(kernel) == before
    assert converge(kernel, known, OURS).commands == []


def test_user_chain_is_whole_again_after_a_flush():
    """``iptables -F`` (or nft flush ruleset) empties <P>-USER: its RETURN comes back, the admin's rules stay."""
    kernel = Kernel()
    known = converge(kernel, {}, OURS).known
    kernel.restore("*filter\n-F LINUXNET-USER\n-F FORWARD\n-I LINUXNET-USER 1 -s 192.0.2.7/32 -j DROP\nCOMMIT\n")
    run_ = converge(kernel, known, OURS)
    assert "iptables -t filter -A LINUXNET-USER -j RETURN" in run_.commands
    assert kernel.rules("filter", "LINUXNET-USER") == ["-s 192.0.2.7/32 -j DROP", "-j RETURN"]
    assert "! -i lnx-front -o lnx-front -j DROP" in kernel.rules("filter", "FORWARD")
    assert converge(kernel, known, OURS).commands == []


def test_published_ports_of_a_network_are_open_to_dnated_packets_from_another():
    """moby#49509: stage 2 sends DNATed packets into <P> (published ports) before its DROP, and lets
    their replies back."""
    kernel = build(OURS, prefix="LINUXNET")
    assert kernel.rules("filter", "LINUXNET-ISOLATION-STAGE-2") == [
        "-m conntrack --ctstate DNAT --ctdir REPLY -j RETURN", "-o lnx-back -m conntrack --ctstate DNAT -j LINUXNET", "-o lnx-back -j DROP",
        "-o lnx-front -m conntrack --ctstate DNAT -j LINUXNET", "-o lnx-front -j DROP", "-j RETURN"]


@pytest.mark.parametrize("bad", ["routed", "NAT", "nat\n", 1])
def test_bad_gateway_mode(bad):
    message = refused([{"name": "x", "bridge": "br-x", "subnet": "10.2.0.0/24", "gateway_mode": bad}])
    assert message.startswith("config[0] (name=x).gateway_mode:"), message


# ============================================================================== validation


def refused(config, prefix: str = "LINUXNET", state: str = "merged") -> str:
    with pytest.raises(ValidationError) as info:
        firewall(prefix).normalize(config, state)
    return str(info.value)


@pytest.mark.parametrize(
    "prefix",
    ["", "docker", "ABCDEFGHIJK", "A B", "A\nB", "A'B", 'A"B', "A/B", "A:B", "DÖCKER", 7,
     "EVIL\n", "DOCKER\n", "FORWARD", "INPUT", "ACCEPT", "DROP", "RETURN", "MASQUERADE", "DNAT", "POSTROUTING"],
)
def test_bad_chain_prefix(prefix):
    message = refused([{"name": "a", "bridge": "br0", "subnet": "10.0.0.0/24"}], prefix=prefix)
    assert message.startswith("chain_prefix:"), message


@pytest.mark.parametrize("prefix", ["A", "DOCKER", "LINUXNET", "ABCDEFGHIJ", "X_1-2"])
def test_good_chain_prefix_fits_iptables_chain_name_limit(prefix):
    firewall(prefix).normalize([], "merged")
    assert len(f"{prefix}-ISOLATION-STAGE-1") <= 28


def test_overlapping_subnets_name_both_networks_and_the_field():
    message = refused([
        {"name": "a", "bridge": "br-a", "subnet": "172.17.0.0/16"},
        {"name": "b", "bridge": "br-b", "subnet": "10.0.0.0/8"},
        {"name": "c", "bridge": "br-c", "subnet": "172.17.3.0/24"},
    ])
    assert "subnet" in message and "network c (172.17.3.0/24)" in message and "network a (172.17.0.0/16)" in message, message


def test_overlap_with_networks_managed_earlier_is_refused_before_any_change():
    kernel = Kernel()
    known = converge(kernel, {}, OURS).known
    saved = kernel.save()
    with pytest.raises(ValidationError) as info:
        converge(kernel, known, [{"name": "new", "bridge": "lnx-new", "subnet": "10.31.0.128/25"}])
    assert "new" in str(info.value) and "front" in str(info.value) and "managed earlier" in str(info.value)
    assert kernel.save() == saved
    # overridden replaces the earlier networks: then it is fine
    converge(kernel, known, [{"name": "new", "bridge": "lnx-new", "subnet": "10.31.0.128/25"}], state="overridden")


def test_duplicate_names_and_bridges():
    message = refused([{"name": "a", "bridge": "br-a", "subnet": "10.1.0.0/24"}, {"name": "a", "bridge": "br-b", "subnet": "10.2.0.0/24"}])
    assert message.startswith("config[1]: duplicate network name 'a'"), message
    message = refused([{"name": "a", "bridge": "br-a", "subnet": "10.1.0.0/24"}, {"name": "b", "bridge": "br-a", "subnet": "10.2.0.0/24"}])
    assert message.startswith("config[1]: duplicate bridge 'br-a'"), message


BAD_TEXT = {"newline": "a\nb", "space": "a b", "single quote": "a'b", "double quote": 'a"b', "tab": "a\tb",
            "carriage return": "a\rb", "empty": "", "slash": "a/b", "dotdot": ".."}


@pytest.mark.parametrize("bad", BAD_TEXT.values(), ids=BAD_TEXT.keys())
def test_name_that_could_reach_restore_text_is_refused(bad):
    message = refused([{"name": "ok", "bridge": "br-ok", "subnet": "10.1.0.0/24"}, {"name": bad, "bridge": "br-x", "subnet": "10.2.0.0/24"}])
    assert message.split(": ", 1)[0].startswith("config[1]") and message.split(": ", 1)[0].endswith(".name"), message


@pytest.mark.parametrize("bad", BAD_TEXT.values(), ids=BAD_TEXT.keys())
def test_bridge_that_could_reach_restore_text_is_refused(bad):
    message = refused([{"name": "x", "bridge": bad, "subnet": "10.2.0.0/24"}])
    assert message.startswith("config[0] (name=x).bridge:"), message


@pytest.mark.parametrize("bad", ["a" * 16, "br$x", "br;x", "br,x", "br!", "br#1", "-j ACCEPT"])
def test_bridge_not_a_valid_interface_name(bad):
    assert refused([{"name": "x", "bridge": bad, "subnet": "10.2.0.0/24"}]).startswith("config[0] (name=x).bridge:")


@pytest.mark.parametrize("bad", ["10.0.0.1/24", "10.0.0.0", "10.0.0.0/33", "fd00::/64", "net", "", "10.0.0.0/24 -j ACCEPT"])
def test_bad_subnet(bad):
    assert refused([{"name": "x", "bridge": "br-x", "subnet": bad}]).startswith("config[0] (name=x).subnet:")


@pytest.mark.parametrize("bad", ["172.16.211.300", "fd00::1", "host", "1.2.3.4 -j DROP"])
def test_bad_snat_source(bad):
    message = refused([{"name": "x", "bridge": "br-x", "subnet": "10.2.0.0/24", "snat_source": bad}])
    assert message.startswith("config[0] (name=x).snat_source:"), message


def test_normalized_defaults():
    item = firewall().normalize([{"name": "x", "bridge": "br-x", "subnet": "10.2.0.0/24", "icc": None}], "overridden")[0]
    assert item == {"name": "x", "bridge": "br-x", "subnet": "10.2.0.0/24", "icc": True, "internal": False,
                    "masquerade": True, "snat_source": None, "gateway_mode": "nat"}
    # merged/replaced: the defaults too, and which options were left out (they keep a known network's values)
    item = firewall().normalize([{"name": "x", "bridge": "br-x", "subnet": "10.2.0.0/24", "icc": False}], "merged")[0]
    assert item.pop(fw.OMITTED) == ("internal", "masquerade", "snat_source", "gateway_mode", "subnet6", "masquerade6")
    assert item == {"name": "x", "bridge": "br-x", "subnet": "10.2.0.0/24", "icc": False, "internal": False,
                    "masquerade": True, "snat_source": None, "gateway_mode": "nat"}


def test_the_same_effect_check_is_not_vacuous():
    """Moving ICC-off DROP above the conntrack ACCEPT, or RETURN above the isolation jumps, is caught."""
    ref = reference_chains(REF_143)
    forward = list(ref["filter"]["FORWARD"])
    drop = forward.pop()
    forward.insert(forward.index("-o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"), drop)
    assert order_problems(ref["filter"]["FORWARD"], forward, ref["filter"])
    iso1 = list(reversed(ref["filter"]["DOCKER-ISOLATION-STAGE-1"]))
    assert order_problems(ref["filter"]["DOCKER-ISOLATION-STAGE-1"], iso1, ref["filter"])
    # two DNATs of one port on different host addresses are disjoint; on the same, they are not
    a = "-d 172.16.211.128/32 -p tcp -m tcp --dport 81 -j DNAT --to-destination 172.17.0.2:80"
    b = "-p tcp -m tcp --dport 81 -j DNAT --to-destination 172.17.0.3:80"
    assert order_problems([a, b], [b, a], {}) and not order_problems([a, b.replace("81", "82")], [b.replace("81", "82"), a], {})


# ============================================================================== rule kinds, adapter


def test_every_live_rule_of_the_reference_parses_back_to_the_rule_it_renders_from():
    """One template per kind renders and parses: each rule of Docker's 143 ruleset is a kind of ours."""
    for table in reference_chains(REF_143).values():
        for rules in table.values():
            for spec in rules:
                rule = iptables.parse_rule(spec)
                assert rule is not None and render_rule(rule) == spec, spec


def test_rule_kinds_do_not_shadow_each_other():
    """A literal target is never read as a jump into a chain of that name."""
    assert iptables.parse_rule("-o br-x -j DROP").kind == "isolated"
    assert iptables.parse_rule("-i br-x ! -o br-x -j ACCEPT").kind == "outbound"
    assert iptables.parse_rule("-j RETURN").kind == "return"
    assert iptables.parse_rule("-i br-x ! -o br-y -j ACCEPT") is None  # one bridge, written twice


def test_backend_is_a_deprecated_alias_of_iptables_variant():
    spec = _engine.config_argument_spec(fw.ITEM_OPTIONS, fw.MODULE_OPTIONS)
    result = ArgumentSpecValidator(spec).validate({"backend": "iptables-legacy"})
    assert result.validated_parameters["iptables_variant"] == "iptables-legacy"
    assert [(d["version"], d["collection_name"]) for d in result._deprecations] == [("0.3.0", "linuxnet.bridge")]


class NoIptablesModule(FakeModule):
    """A host without iptables; failing the module from inside a library call is a bug."""

    def get_bin_path(self, name):
        return None

    def fail_json(self, **kwargs):
        raise AssertionError(f"fail_json called from a library: {kwargs}")


def test_missing_iptables_is_raised_as_an_error_the_engine_reports():
    res = fw.FirewallResource(NoIptablesModule(check_mode=True, config=[], state="overridden"))
    with pytest.raises(iptables.IptablesError, match="iptables not found on the managed host") as info:
        _engine.predict(res, "overridden")
    # _engine.run and deployment_info report an ApplyError from gather and from apply alike
    assert isinstance(info.value, _engine.ApplyError)


class SaveRestoreModule(FakeModule):
    """iptables-save prints ``tables``; iptables-restore fails for the table named in ``fail``."""

    def __init__(self, tables: dict[str, str], fail: str | None = None) -> None:
        super().__init__()
        self.tables, self.fail, self.calls = dict(tables), fail, []
        self.unlisted: set[str] = set()  # tables that iptables-save without -t leaves out

    def get_bin_path(self, name: str) -> str:
        return f"/usr/sbin/{name}"

    def run_command(self, argv: list[str], data: str | None = None, **_kw):
        self.calls.append(" ".join(argv[:3]))
        if argv[0].endswith("-save") and len(argv) == 1:  # every table (less ``unlisted``), each between comments
            return 0, "".join(f"# Generated by iptables-save\n{text}# Completed\n" for table, text in self.tables.items()
                              if table not in self.unlisted), ""
        if argv[0].endswith("-save"):
            return 0, self.tables[argv[2]], ""
        table = data.splitlines()[0][1:]
        if table == self.fail:
            return 1, "", "iptables-restore: line 2 failed"
        if "--noflush" not in argv:
            self.tables[table] = data
        return 0, "", ""


def test_an_apply_rolls_back_to_the_text_read_for_the_plan_without_saving_again():
    """The ruleset read for the plan (under the run's lock) is the snapshot a failed later table
    rolls back to: a table is saved once and restored once per run, not saved again before its restore."""
    saved = {"filter": "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j FOREIGN\nCOMMIT\n",
             "nat": "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"}
    ops = [_engine.Operation("iptables -t filter -N X", "restore", {"table": "filter", "line": ":X - [0:0]"}),
           _engine.Operation("iptables -t nat -N X", "restore", {"table": "nat", "line": ":X - [0:0]"})]
    module = SaveRestoreModule(saved)
    adapter = iptables.Iptables(module, variant="iptables-legacy")
    adapter.save(("filter", "nat"))
    adapter.apply(ops)
    assert module.calls == ["/usr/sbin/iptables-legacy-save",  # one save reads both tables
                            "/usr/sbin/iptables-legacy-restore -w --noflush", "/usr/sbin/iptables-legacy-restore -w --noflush"]
    # a restore makes the text read before it stale: the next apply reads the table again
    module.calls.clear()
    adapter.apply(ops[:1])
    assert module.calls == ["/usr/sbin/iptables-legacy-save -t filter", "/usr/sbin/iptables-legacy-restore -w --noflush"]
    # nat fails: filter goes back to what was read for the plan, in full (no --noflush)
    module = SaveRestoreModule(saved, fail="nat")
    adapter = iptables.Iptables(module, variant="iptables-legacy")
    adapter.save(("filter", "nat"))
    with pytest.raises(iptables.IptablesError, match=r"table filter restored to its previous content"):
        adapter.apply(ops)
    assert module.calls[1:] == ["/usr/sbin/iptables-legacy-restore -w --noflush", "/usr/sbin/iptables-legacy-restore -w --noflush",
                                "/usr/sbin/iptables-legacy-restore -w"]
    assert module.tables["filter"] == saved["filter"]


def test_one_save_reads_every_table_and_a_table_it_does_not_print_is_read_as_with_its_own_save():
    """One iptables-save for several tables (each run of iptables-nft-save fetches the whole
    ruleset). A table it leaves out: iptables-nft has no such table, whose -t text (built-in chains,
    empty, ACCEPT) is taken without a second save; iptables-legacy has not loaded it, and -t loads
    it (or fails to: a kernel without raw) as before. A failed save reads each table alone."""
    saved = {"filter": "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -j FOREIGN\nCOMMIT\n",
             "nat": "*nat\n:POSTROUTING ACCEPT [0:0]\n:LINUXNET - [0:0]\nCOMMIT\n"}
    raw = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"  # what `-t raw` prints of no raw table
    for variant, reads in (("iptables-nft", []), ("iptables-legacy", ["/usr/sbin/iptables-legacy-save -t raw"])):
        module = SaveRestoreModule({**saved, "raw": raw})
        module.unlisted = {"raw"}  # the save of every table prints filter and nat; `-t raw` prints raw
        adapter = iptables.Iptables(module, variant=variant)
        live = adapter.save(("filter", "nat", "raw"))
        assert module.calls == [f"/usr/sbin/{variant}-save"] + reads, variant
        assert live == {"filter": iptables.parse_save(saved["filter"])["filter"], "nat": iptables.parse_save(saved["nat"])["nat"],
                        "raw": iptables.empty_table("raw")}
        assert adapter._texts == {**saved, "raw": raw}  # the snapshots an apply rolls back to
    # a table iptables-nft-save says it cannot read is read alone (as it always was)
    module = SaveRestoreModule({**saved, "raw": raw})
    module.run_command = lambda argv, data=None, **kw: (module.calls.append(" ".join(argv)), (
        0, saved["filter"] + "# Table `raw' is incompatible, use 'nft' tool.\n", "") if len(argv) == 1 else (0, raw, ""))[1]
    assert iptables.Iptables(module, variant="iptables-nft").save(("filter", "raw"))["raw"] == iptables.empty_table("raw")
    assert module.calls == ["/usr/sbin/iptables-nft-save", "/usr/sbin/iptables-nft-save -t raw"]
    assert iptables.split_save_tables("*filter\n:INPUT ACCEPT [0:0]\n*nat\n:X - [0:0]\nCOMMIT\n") == {"nat": "*nat\n:X - [0:0]\nCOMMIT\n"}

    class FailingSave(SaveRestoreModule):
        def run_command(self, argv, data=None, **kw):
            if argv[0].endswith("-save") and len(argv) == 1:
                self.calls.append(argv[0])
                return 1, "", "iptables-nft-save: table `mangle' is incompatible"
            return super().run_command(argv, data, **kw)

    module = FailingSave(saved)
    assert iptables.Iptables(module, variant="iptables-nft").save(("filter", "nat"))["filter"].chains["FORWARD"] == "DROP"
    assert module.calls == ["/usr/sbin/iptables-nft-save", "/usr/sbin/iptables-nft-save -t filter", "/usr/sbin/iptables-nft-save -t nat"]
    module.calls.clear()
    iptables.Iptables(module, variant="iptables-nft").save(("nat",))  # one table: read alone, as always
    assert module.calls == ["/usr/sbin/iptables-nft-save -t nat"]
