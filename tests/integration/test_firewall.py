"""linuxnet.bridge.firewall against real kernels, inside lab hosts, with real traffic.

Lab hosts (``tests/lab``): ``linuxnet1`` 172.16.211.128 and ``outside`` 172.16.211.1 on a lab LAN.
The modules run through real ``ansible-playbook`` runs (community.docker.nsenter connection);
endpoints are network namespaces inside ``linuxnet1`` attached with the collection's netns/bridge/
veth modules. ``outside`` gets routes to the endpoint subnets via ``linuxnet1``, so that "cannot
reach" is the firewall's doing and "sees 172.16.211.128" proves the masquerade (without it the
endpoint's own address would arrive). Every listener is the product's prober
(``playbooks/files/linuxnet_probe.py``, through ``helpers.Traffic``) and answers with the peer
address it saw.

The traffic tests run once per firewall backend (``helpers.BACKENDS``: iptables-nft, iptables-legacy,
nftables), each backend with one lab shared by its tests (the module-scoped ``net`` fixture), over
IPv4 and, for the three dual-stack networks, IPv6 (``outside`` 2001:db8:ff::1, ``linuxnet1``
2001:db8:ff::128; IPv6 listeners on port 7006). Idempotence is counted in ``nft -f``/``*-restore``
calls (wrappers on PATH); someone else's nft table and iptables/ip6tables rules are loaded first and
compared after every step; each backend's last test switches to another backend and tears down. The topology
and the IPv4 traffic checks are ``helpers_firewall.py``'s (``test_nftables.py`` runs the checks too).

Nothing here touches the machine's own network namespace (``real_netns_guard``).

Run (root): ``.venv/bin/python -m pytest tests/integration/test_firewall.py -q``
"""


from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from ansible_collections.linuxnet.bridge.plugins.module_utils._iptables import parse_save
from tests.integration import helpers
from tests.integration.helpers import (
    ADDR,
    HOST,
    HOSTS,
    OUT_ADDR,
    OUTSIDE,
    PORT,
    Probe6,
    Traffic,
    add_ipv6,
    duplicates,
    foreign,
    fw_task,
    leftovers,
    make_endpoints,
    ours,
    playbook,
    res,
    restore_wrappers,
    restores,
    ruleset,
    run,
    save,
    sh,
    state_file,
    sysctls,
    write_wrappers,
    writes,
)
from tests.integration.helpers_firewall import (
    ENDPOINTS,
    NETWORKS,
    SNAT_ADDR,
    check_icc_off_blocks_the_network_but_not_the_way_out,
    check_internal_network_reaches_only_itself,
    check_networks_are_isolated_in_both_directions,
    check_outside_and_unpublished_endpoints,
    check_same_network_reaches_each_other_and_outside,
    check_snat_source_is_what_outside_sees,
)
from tests.lab.core import Lab
from tests.lab.playbook import run_playbook as run_playbook_now
from tests.unit.plugins.module_utils.fixtures.iptables_model import BUILTIN, assert_like_docker, reference_chains
from tests.unit.plugins.module_utils.fixtures.rulesets import DOCKER_12, additions, PORTS_143, REF_143, SCENARIO_143, USER_RULES

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")


@pytest.fixture
def lab(lab_factory):
    return lab_factory({HOST: ADDR})


# ============================================================================== traffic, three backends, two families

# Per backend, one lab (module-scoped: every test of a backend shares it). ip_forward (and IPv6
# forwarding) at the start: the iptables-nft host starts with 0 (so the module turns it on and sets
# the FORWARD policy to DROP, as dockerd does); the other two start with 1 and keep policy ACCEPT,
# so there the collection's rules alone must do the isolating.
FORWARD_AT_START = {"iptables-nft": "0", "iptables-legacy": "1", "nftables": "1"}
ADDR6, OUT_ADDR6, PORT6 = "2001:db8:ff::128", "2001:db8:ff::1", 7006  # (7000 is the IPv4-only listeners')
SUBNETS6 = {"front": "fd00:18::/64", "back": "fd00:19::/64", "intern": "fd00:20::/64"}  # snat stays IPv4-only
NETWORKS_DS = [dict(n, subnet6=SUBNETS6[n["name"]]) if n["name"] in SUBNETS6 else n for n in NETWORKS]
ENDPOINTS6 = {"f1": "fd00:18::2", "f2": "fd00:18::3", "b1": "fd00:19::2", "b2": "fd00:19::3", "i1": "fd00:20::2", "i2": "fd00:20::3"}
FOREIGN_NFT = "table inet admin {\n  chain input {\n    type filter hook input priority 10; policy accept;\n    ip saddr 198.51.100.0/24 drop\n  }\n}\n"
FOREIGN6 = "*filter\n:USER6 - [0:0]\n-A FORWARD -s 2001:db8:dead::/48 -j USER6\n-A USER6 -j DROP\nCOMMIT\n"


def foreign_rules(lab: Lab, backend: str) -> dict[str, list[str]]:
    """Someone else's rules and chains (not built-in policies or empty table skeletons), per tool."""
    variant = "iptables-nft" if backend == "nftables" else backend
    out = {"nft inet admin": sh(lab, "nft list table inet admin").stdout.splitlines()}
    for tool in (variant, variant.replace("iptables", "ip6tables")):
        table, lines = "", []
        for line in foreign(save(lab, tool)):
            table = line if line.startswith("*") else table
            if line.startswith("-A ") or (line.startswith(":") and " - [" in line):
                lines.append(f"{table} {line}")
        out[tool] = lines
    return out


@pytest.fixture(scope="module", params=list(helpers.BACKENDS))
def net(request, tmp_path_factory, real_netns_guard):
    """A lab per backend: four networks (three dual-stack) with endpoints on linuxnet1, servers
    everywhere (IPv4: the product's prober; IPv6: test_ipv6_firewall's dual-stack one on PORT6),
    someone else's nft table and iptables/ip6tables rules loaded before anything of ours."""
    backend = request.param
    workdir = tmp_path_factory.mktemp(f"fw-{backend}")
    lab = Lab.create(workdir / "lab", HOSTS)
    traffic = probe6 = None
    try:
        fwd = FORWARD_AT_START[backend]
        sh(lab, f"ip addr add {SNAT_ADDR}/24 dev ens160 && ip -6 addr add {ADDR6}/64 dev ens160 nodad"
                f" && echo {fwd} > /proc/sys/net/ipv4/ip_forward && echo {fwd} > /proc/sys/net/ipv6/conf/all/forwarding")
        sh(lab, f"ip -6 addr add {OUT_ADDR6}/64 dev ens160 nodad && " + " && ".join(
            [f"ip route add {n['subnet']} via {ADDR}" for n in NETWORKS] + [f"ip -6 route add {s} via {ADDR6}" for s in SUBNETS6.values()]),
            host=OUTSIDE)
        variant = "iptables-nft" if backend == "nftables" else backend
        lab.run(HOST, [f"{variant}-restore", "--noflush"], input=USER_RULES)
        lab.run(HOST, [f"{variant.replace('iptables', 'ip6tables')}-restore", "--noflush"], input=FOREIGN6)
        lab.run(HOST, ["nft", "-f", "-"], input=FOREIGN_NFT)
        seeded = foreign_rules(lab, backend)
        make_endpoints(lab, {n["bridge"]: n["subnet"].replace(".0.0/16", ".0.1/16") for n in NETWORKS}, ENDPOINTS)
        add_ipv6(lab, {n["bridge"]: n["subnet6"].replace("::/64", "::1/64") for n in NETWORKS_DS if "subnet6" in n},
                 {ns: (ENDPOINTS[ns][0], a) for ns, a in ENDPOINTS6.items()})
        path, log = write_wrappers(workdir)
        result = run(run_playbook_now, lab, fw_task("firewall", NETWORKS_DS, backend=backend, environment=path))
        traffic = Traffic(lab, workdir)
        traffic.start(OUTSIDE, None)
        for ns in ENDPOINTS:
            traffic.start(HOST, ns)
        probe6 = Probe6(lab, workdir)
        probe6.serve(OUTSIDE, None, PORT6)
        for ns in ENDPOINTS6:
            probe6.serve(HOST, ns, PORT6)
        yield {"lab": lab, "traffic": traffic, "probe6": probe6, "backend": backend, "result": res(result, "firewall"),
               "seeded": seeded, "path": path, "log": log, "first_writes": writes(log)}
    finally:
        for server in (traffic, probe6 and probe6.traffic):
            if server is not None:
                server.stop()
        lab.destroy()


def test_first_run_result_and_backend(net):
    """The rules are in the chosen backend only, one write per table (iptables) or one nft -f; ``after``
    names the networks as configured; someone else's rules are untouched."""
    lab, backend, result = net["lab"], net["backend"], net["result"]
    assert result["changed"] is True and result["before"] == []
    assert sysctls(lab).split() == ["1", "1"]
    assert sh(lab, "cat /proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "1"
    assert sh(lab, "cat /proc/sys/net/ipv4/conf/lnx-front/route_localnet").stdout.strip() == "1"
    tools = [line.split()[0] for line in net["first_writes"]]
    if backend == "nftables":
        assert tools == ["nft"], net["first_writes"]  # one transaction, both families
        assert "chain filter-LINUXNET-ISOLATION-STAGE-1" in ruleset(lab, backend, 4)
        assert "chain filter-LINUXNET-ISOLATION-STAGE-1" in ruleset(lab, backend, 6)
        assert set(leftovers(lab)) == {"nft"}, f"rules leaked into iptables: {leftovers(lab)}"
        assert "policy drop" not in ruleset(lab, backend, 4) and not [c for c in result["commands"] if "policy drop" in c]
    else:
        six = backend.replace("iptables", "ip6tables")
        assert sorted(tools) == sorted([f"{backend}-restore"] * 2 + [f"{six}-restore"] * 2), net["first_writes"]
        assert all("--noflush" in line for line in net["first_writes"])
        assert ":LINUXNET-ISOLATION-STAGE-1 - [0:0]" in ruleset(lab, backend, 4).splitlines()
        assert ":LINUXNET-ISOLATION-STAGE-1 - [0:0]" in ruleset(lab, backend, 6).splitlines()
        assert set(leftovers(lab)) == {f"{backend}-save", f"{six}-save"}, f"rules leaked: {leftovers(lab)}"
        mine = save(lab, backend)
        if FORWARD_AT_START[backend] == "0":
            assert ":FORWARD DROP [0:0]" in mine  # dockerd: it had to turn ip_forward on, so policy DROP
            assert "iptables -t filter -P FORWARD DROP" in result["commands"]
        else:
            assert ":FORWARD ACCEPT [0:0]" in mine and not [c for c in result["commands"] if " -P " in c]
    configured = (dict(n, icc=n.get("icc", True), internal=n.get("internal", False), masquerade=True, gateway_mode="nat",
                       **({"masquerade6": True} if "subnet6" in n else {})) for n in NETWORKS_DS)
    expected = sorted(configured, key=lambda n: n["name"])
    assert result["after"] == expected, "after does not report the networks as configured"
    assert foreign_rules(lab, backend) == net["seeded"], "someone else's rules changed"


def test_second_run_and_gathered_change_nothing(net):
    """Idempotence and gathered round trip on each backend: changed false, no command, and not one
    ``nft -f`` or ``*-restore`` started (counted by wrappers on PATH)."""
    lab, backend, log = net["lab"], net["backend"], net["log"]
    before = [ruleset(lab, backend, family) for family in (4, 6)]
    written = len(writes(log))
    result = run(run_playbook_now, lab, fw_task("again", NETWORKS_DS, backend=backend, environment=net["path"]),
                 fw_task("gathered", state="gathered", backend=backend, register="g"),
                 fw_task("feed back", "{{ g.gathered }}", state="overridden", backend=backend, environment=net["path"]))
    for name in ("again", "feed back"):
        assert res(result, name)["changed"] is False and res(result, name)["commands"] == [], (name, res(result, name)["commands"])
    assert writes(log)[written:] == [], "a run without changes wrote"
    assert res(result, "gathered")["gathered"] == net["result"]["after"]
    assert [counted(ruleset(lab, backend, family)) for family in (4, 6)] == [counted(text) for text in before]


def counted(text: str) -> list[str]:
    """A ruleset without counters (nft lists none of ours; iptables-save's [p:b] vary with traffic)."""
    return [re.sub(r"\[\d+:\d+\]", "", line) for line in text.splitlines() if not line.startswith("#")]


def test_same_network_reaches_each_other_and_outside(net):
    check_same_network_reaches_each_other_and_outside(net["traffic"])


def test_icc_off_blocks_the_network_but_not_the_way_out(net):
    check_icc_off_blocks_the_network_but_not_the_way_out(net["traffic"])


def test_networks_are_isolated_in_both_directions(net):
    check_networks_are_isolated_in_both_directions(net["traffic"])


def test_internal_network_reaches_only_itself(net):
    check_internal_network_reaches_only_itself(net["traffic"])


def test_snat_source_is_what_outside_sees(net):
    check_snat_source_is_what_outside_sees(net["traffic"])


def test_outside_and_unpublished_endpoints(net):
    check_outside_and_unpublished_endpoints(net["traffic"])


# ------------------------------------------------------------------------------ the same over IPv6


def expect6(net, checks: dict[str | None, dict[tuple[str, int], str]]) -> None:
    """{source netns (None: outside): {(address, port): peer the listener must see, "-" for not reached}},
    the sources probed at once. The IPv6 prober waits 1 s, Linux's first SYN retransmission time: a
    check that must reach gets a second try (as verify.yml's patient one), one that must not does not."""
    def one(item):
        source, expected = item
        host = OUTSIDE if source is None else HOST
        got = dict(zip(expected, net["probe6"].peers(host, source, list(expected))))
        again = [t for t, want in expected.items() if want != "-" and got[t] != want]
        got.update(zip(again, net["probe6"].peers(host, source, again) if again else []))
        wrong = {t: (want, got[t]) for t, want in expected.items() if got[t] != want}
        assert not wrong, f"from {host}/{source}: (expected, seen) {wrong}"
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        list(pool.map(one, checks.items()))


def test_ipv6_same_network_icc_internal_and_nat66(net):
    e = ENDPOINTS6
    expect6(net, {
        "f1": {(e["f2"], PORT6): e["f1"], (OUT_ADDR6, PORT6): ADDR6},  # bridged, no NAT; NAT66 to the LAN address
        "b1": {(OUT_ADDR6, PORT6): ADDR6, (e["b2"], PORT6): "-"},  # ICC off still goes out
        "i1": {(OUT_ADDR6, PORT6): "-"},  # internal: not out (and between its endpoints: the next test)
    })


def test_ipv6_internal_network_reaches_itself(net):
    """Bridged neighbour discovery (fe80:: to ff02::1:ff..) passes FORWARD (bridge-nf-call-ip6tables):
    the internal drops spare what stays on the bridge, as Docker's ip6tables rules do."""
    expect6(net, {"i1": {(ENDPOINTS6["i2"], PORT6): ENDPOINTS6["i1"]}, "i2": {(ENDPOINTS6["i1"], PORT6): ENDPOINTS6["i2"]}})


def test_ipv6_networks_are_isolated_and_closed_from_outside(net):
    e = ENDPOINTS6
    expect6(net, {
        "f1": {(e["b1"], PORT6): "-", (e["i1"], PORT6): "-"},
        "b1": {(e["f1"], PORT6): "-", (e["i2"], PORT6): "-"},
        "i1": {(e["f1"], PORT6): "-"},
        None: {(e["f1"], PORT6): "-", (e["b1"], PORT6): "-", (e["i1"], PORT6): "-"},  # gateway_mode nat, internal
    })


SWITCH_TO = {"iptables-nft": "nftables", "iptables-legacy": "nftables", "nftables": "iptables-nft"}


def test_backend_switch_then_teardown_leave_nothing(net):
    """Last of each backend's tests: switching backend moves the rules (nothing left in the old one,
    the same isolation from the new one); deleted then leaves nothing of ours anywhere; someone
    else's rules stay as they were throughout."""
    lab, backend = net["lab"], net["backend"]
    other = SWITCH_TO[backend]
    options = dict(helpers.BACKENDS[other])
    if backend == "iptables-legacy":
        options["iptables_variant"] = backend  # the variant whose rules the switch to nftables cleans up
    switched = run(run_playbook_now, lab, fw_task("switch", NETWORKS_DS, state="overridden", **options))
    assert res(switched, "switch")["changed"] is True
    places = {"nft"} if other == "nftables" else {"iptables-nft-save", "ip6tables-nft-save"}
    assert set(leftovers(lab)) == places, f"after the switch to {other}: {leftovers(lab)}"
    net["traffic"].expect(HOST, {("f1", "tcp", "172.19.0.2", PORT): False, ("b1", "tcp", "172.19.0.3", PORT): False})
    expect6(net, {"f1": {(ENDPOINTS6["b1"], PORT6): "-"}})
    egress = [net["traffic"].probe(HOST, [("f1", "tcp", OUT_ADDR, PORT)])[0]["ok"],
              net["probe6"].peers(HOST, "f1", [(OUT_ADDR6, PORT6)]) == [ADDR6]]
    assert foreign_rules(lab, backend) == net["seeded"], "the switch changed someone else's rules"
    down = run(run_playbook_now, lab, fw_task("deleted", state="deleted", **options), fw_task("again", state="deleted", **options))
    assert res(down, "deleted")["changed"] is True and res(down, "again")["changed"] is False
    assert leftovers(lab) == {}, "teardown left rules of ours"
    assert foreign_rules(lab, backend) == net["seeded"], "teardown changed someone else's rules"
    if FORWARD_AT_START[backend] == "0":
        # The iptables backend had turned forwarding on and so set the FORWARD policies to DROP (as
        # dockerd does); the switch gives them back (a DROP in any base chain is final for nftables).
        commands = res(switched, "switch")["commands"]
        assert "iptables -t filter -P FORWARD ACCEPT" in commands and "ip6tables -t filter -P FORWARD ACCEPT" in commands
        assert ":FORWARD ACCEPT [0:0]" in save(lab, backend) and ":FORWARD ACCEPT [0:0]" in save(lab, backend.replace("iptables", "ip6tables"))
    assert egress == [True, True], "masquerade (IPv4, IPv6) to outside after the switch"


# ============================================================================== rulesets


def test_chain_prefix_docker_builds_dockers_ruleset(lab, run_playbook):
    """chain_prefix DOCKER: chains DOCKER-*, and the live ruleset (as iptables-save prints it) is
    dockerd's §1.4.3 one, rule for rule, in an order with the same effect; a second run writes nothing."""
    tasks = [
        fw_task("firewall", SCENARIO_143, chain_prefix="DOCKER"),
        {"name": "ports", "linuxnet.bridge.port_mapping": {"chain_prefix": "DOCKER", "config": PORTS_143}},
    ]
    run(run_playbook, lab, *tasks)
    live = save(lab)
    chains = sorted(line.split()[0][1:] for line in live if line.startswith(":"))
    assert [c for c in chains if c not in BUILTIN["filter"] + BUILTIN["nat"]] == [
        "DOCKER", "DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"]
    assert ":FORWARD DROP [0:0]" in live
    parsed = parse_save("\n".join(live) + "\n")
    ours_ = {t: {c: list(r) for c, r in tab.rules.items()} for t, tab in parsed.items()}
    assert_like_docker(ours_, reference_chains(REF_143), extra=additions(SCENARIO_143))
    again = run(run_playbook, lab, *tasks)
    for name in ("firewall", "ports"):
        assert res(again, name)["changed"] is False and res(again, name)["commands"] == [], name
    assert save(lab) == live


OURS = [
    {"name": "front", "bridge": "lnx-front", "subnet": "10.31.0.0/24"},
    {"name": "back", "bridge": "lnx-back", "subnet": "10.32.0.0/24", "icc": False},
    {"name": "intern", "bridge": "lnx-int", "subnet": "10.33.0.0/24", "internal": True},
]


def seed_foreign(lab: Lab) -> list[str]:
    """Docker's full §1.2 ruleset (DOCKER-* chains) plus a user's rules, as someone else made them."""
    sh(lab, "echo 1 > /proc/sys/net/ipv4/ip_forward")  # as on a host where dockerd runs
    lab.run(HOST, ["iptables-restore", "--noflush"], input=DOCKER_12)
    lab.run(HOST, ["iptables-restore", "--noflush"], input=USER_RULES)
    live = save(lab)
    assert "-A DOCKER-USER -j RETURN" in live and "-A FORWARD -s 198.51.100.0/24 -j DROP" in live
    return live


def test_foreign_rules_are_byte_identical_after_converge_and_deleted(lab, run_playbook):
    seeded = seed_foreign(lab)
    result = run(run_playbook, lab, fw_task("firewall", OURS))
    assert res(result, "firewall")["changed"] is True
    live = save(lab)
    assert "-A FORWARD -j LINUXNET-ISOLATION-STAGE-1" in live
    assert foreign(live) == seeded, "foreign rules changed by converge"
    # the admin's own rule in LINUXNET-USER is theirs: kept by every later run
    sh(lab, "iptables -I LINUXNET-USER 1 -s 192.0.2.7/32 -j DROP")
    result = run(run_playbook, lab, fw_task("again", OURS), fw_task("overridden", OURS[:1], state="overridden"))
    assert res(result, "again")["commands"] == []
    assert foreign(save(lab)) == seeded, "foreign rules changed by overridden"
    assert "-A LINUXNET-USER -s 192.0.2.7/32 -j DROP" in save(lab)
    result = run(run_playbook, lab, fw_task("deleted", state="deleted"))
    after = save(lab)
    assert [line for line in after if "LINUXNET" in line] == [
        ":LINUXNET-USER - [0:0]", "-A FORWARD -j LINUXNET-USER", "-A LINUXNET-USER -s 192.0.2.7/32 -j DROP", "-A LINUXNET-USER -j RETURN"]
    assert foreign(after) == seeded, "foreign rules changed by deleted"
    # and once the admin's rule is gone too, deleted leaves exactly the seeded ruleset
    sh(lab, "iptables -D LINUXNET-USER -s 192.0.2.7/32 -j DROP")
    run(run_playbook, lab, fw_task("deleted", state="deleted"))
    assert save(lab) == seeded


def test_an_admins_rule_without_match_or_target_is_kept(lab, run_playbook):
    """`iptables -A FORWARD` (a packet counter) is "-A FORWARD" alone in iptables-save: it made every run a traceback."""
    sh(lab, "iptables -A FORWARD")
    assert [line for line in save(lab) if line.startswith("-A ")] == ["-A FORWARD"]
    result = run(run_playbook, lab, fw_task("firewall", OURS[:1]), fw_task("again", OURS[:1]))
    assert res(result, "firewall")["changed"] is True and res(result, "again")["commands"] == []
    forward = [line for line in save(lab) if line.startswith("-A FORWARD")]
    assert forward[-1] == "-A FORWARD" and "-A FORWARD -j LINUXNET-USER" in forward  # ours first, as Docker's
    run(run_playbook, lab, fw_task("deleted", state="deleted"))
    assert [line for line in save(lab) if line.startswith("-A ")] == ["-A FORWARD"]


def test_idempotence_check_mode_and_repair(lab, run_playbook, tmp_path):
    env, log = restore_wrappers(tmp_path)
    seeded = seed_foreign(lab)
    sh(lab, "echo 0 > /proc/sys/net/ipv4/ip_forward")
    apply = fw_task("firewall", OURS, environment=env)

    predicted = run(run_playbook, lab, apply, check=True, diff=True)
    assert save(lab) == seeded and restores(log) == [] and sysctls(lab).split()[0] == "0", "check mode changed the host"
    assert res(predicted, "firewall")["changed"] is True and "diff" in res(predicted, "firewall")

    created = run(run_playbook, lab, apply)
    commands = res(created, "firewall")["commands"]
    assert commands == res(predicted, "firewall")["commands"], "check mode did not predict the run"
    assert "sysctl -w net.ipv4.ip_forward=1" in commands
    assert not [c for c in commands if " -P " in c], "the FORWARD policy was DROP already (Docker's ruleset)"
    assert [line.split()[0] for line in restores(log)] == ["iptables-nft-restore"] * 2  # one per table
    assert all("--noflush" in line for line in restores(log))
    converged = save(lab)
    assert duplicates(converged) == []

    # second run: nothing to do, nothing written; gathered feeds back unchanged
    again = run(run_playbook, lab, apply, fw_task("gathered", state="gathered", register="g"),
                fw_task("feed back", "{{ g.gathered }}", state="overridden", environment=env))
    for name in ("firewall", "feed back"):
        assert res(again, name)["changed"] is False and res(again, name)["commands"] == [], (name, res(again, name)["commands"])
    assert len(restores(log)) == 2, f"a run without changes wrote: {restores(log)[2:]}"
    assert save(lab) == converged
    assert sorted(g["name"] for g in res(again, "gathered")["gathered"]) == ["back", "front", "intern"]

    # a firewall reload flushes FORWARD: detected, reported, only FORWARD repaired
    sh(lab, "iptables -F FORWARD")
    repaired = run(run_playbook, lab, apply)
    commands = res(repaired, "firewall")["commands"]
    assert res(repaired, "firewall")["changed"] is True
    assert commands and all(re.match(r"iptables -t filter -[IA] FORWARD ", c) for c in commands), commands
    after = save(lab)
    assert [line for line in after if ours(line)] == [line for line in converged if ours(line)]
    # (Docker's and the user's FORWARD rules are not ours to put back)
    assert [line for line in after if line.startswith("-A FORWARD") and not ours(line)] == []

    # chains deleted: recreated, with the jump
    sh(lab, "iptables -D FORWARD -j LINUXNET-ISOLATION-STAGE-1 && iptables -F LINUXNET-ISOLATION-STAGE-1"
            " && iptables -F LINUXNET-ISOLATION-STAGE-2 && iptables -X LINUXNET-ISOLATION-STAGE-1"
            " && iptables -X LINUXNET-ISOLATION-STAGE-2 && iptables -t nat -F POSTROUTING")
    repaired = run(run_playbook, lab, apply, fw_task("then", OURS))
    assert res(repaired, "firewall")["changed"] is True and res(repaired, "then")["commands"] == []
    assert [line for line in save(lab) if ours(line)] == [line for line in converged if ours(line)]


def test_all_or_nothing_when_the_nat_table_fails(lab, run_playbook):
    seed_foreign(lab)
    fail = {"LINUXNET_TEST_FAIL_TABLE": "nat"}
    # from a host without our chains, and from a host with one network, adding more
    for start in ([], OURS[:1]):
        if start:
            run(run_playbook, lab, fw_task("start", start))
        before, before_state, before_sysctls = save(lab), state_file(lab), sysctls(lab)
        result = run(run_playbook, lab, fw_task("firewall", OURS, environment=fail, ignore_errors=True), ok=False)
        r = res(result, "firewall")
        assert r.get("failed") is True, r
        assert "table nat" in r["msg"] and "table filter restored" in r["msg"], r["msg"]
        assert r["commands"], "the failed run should still say what it tried"
        assert save(lab) == before, "filter (or nat) was left half-changed"
        assert state_file(lab) == before_state and sysctls(lab) == before_sysctls
    # without the fault, the same run goes through
    result = run(run_playbook, lab, fw_task("firewall", OURS))
    assert res(result, "firewall")["changed"] is True and "-A FORWARD -i lnx-back -o lnx-back -j DROP" in save(lab)


def test_two_parallel_runs_end_without_duplicates(lab, run_playbook):
    seeded = seed_foreign(lab)
    books = [playbook(fw_task("firewall", OURS[:2])), playbook(fw_task("firewall", OURS[1:])),
             playbook(fw_task("firewall", OURS))]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda book: run_playbook(lab.inventory_path, book), books))
    for result in results:
        result.assert_ok()
    live = save(lab)
    assert duplicates(live) == [], f"duplicate rules after parallel runs: {duplicates(live)}"
    assert foreign(live) == seeded
    assert sum(res(r, "firewall")["changed"] for r in results) >= 1
    final = run(run_playbook, lab, fw_task("firewall", OURS, state="overridden"))
    assert res(final, "firewall")["commands"] == [], "parallel runs did not end in the correct ruleset"


def test_bad_input_changes_nothing(lab, run_playbook):
    run(run_playbook, lab, fw_task("start", OURS))
    before, before_state = save(lab), state_file(lab)
    bad = {
        "overlap earlier": (fw_task("overlap earlier", [{"name": "x", "bridge": "lnx-x", "subnet": "10.31.0.128/25"}]),
                            "subnet (with networks managed earlier) of network x"),
        "prefix": (fw_task("prefix", OURS, chain_prefix="docker"), "chain_prefix:"),
        "newline": (fw_task("newline", [{"name": "ok", "bridge": "lnx\n-A", "subnet": "10.50.0.0/24"}]), "config[0] (name=ok).bridge:"),
        "duplicate": (fw_task("duplicate", [{"name": "a", "bridge": "lnx-a", "subnet": "10.60.0.0/24"},
                                            {"name": "a", "bridge": "lnx-b", "subnet": "10.61.0.0/24"}]), "config[1]: duplicate network name"),
        "snat": (fw_task("snat", [{"name": "a", "bridge": "lnx-a", "subnet": "10.60.0.0/24", "snat_source": "host"}]),
                 "config[0] (name=a).snat_source:"),
        # iptables refuses the chain "-X" only in the restore; "-o lnx+" would match every lnx... interface
        "prefix dash": (fw_task("prefix dash", OURS, chain_prefix="-X"), "chain_prefix:"),
        "wildcard bridge": (fw_task("wildcard bridge", [{"name": "w", "bridge": "lnx+", "subnet": "10.62.0.0/24"}]),
                            "config[0] (name=w).bridge:"),
    }
    result = run(run_playbook, lab, *[dict(t, ignore_errors=True) for t, _start in bad.values()], ok=False)
    assert result.rc == 0, result.stderr
    problems = []
    for name, (_task, start) in bad.items():
        r = res(result, name)
        if not r.get("failed") or not r["msg"].startswith(start) or r.get("changed") or r.get("commands"):
            problems.append(f"{name}: failed={r.get('failed')} msg={r.get('msg')!r} commands={r.get('commands')}")
    assert not problems, "\n".join(problems)
    assert save(lab) == before and state_file(lab) == before_state
