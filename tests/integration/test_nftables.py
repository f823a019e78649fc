"""firewall_backend: nftables against a real kernel, inside lab hosts, with real traffic.

One lab for the module (``linuxnet1`` 172.16.211.128 with ip_forward 0 at the start, ``outside``
172.16.211.1 with routes to the endpoint subnets). Before anything of ours, foreign tables are
loaded: a Docker 29 ``ip docker-bridges`` table, a user's ``inet admin`` table and iptables-nft
rules (``ip filter``/``ip nat``, the user rules of the iptables tests); they must stay
byte-identical. The firewall module builds the networks of ``test_firewall.py`` and port_mapping
publishes ports (a 1000-port shifted range, UDP, 127.0.0.1) in our table ``ip linuxnet``; the
traffic expectations of ``test_firewall.py`` run unchanged against it. Then: idempotence
(counted in ``nft`` invocations), check mode, gathered, parsed (the host's ``nft list ruleset``), the rendered script, an all-or-nothing
failure, ``nft flush ruleset`` recovery and a switch to iptables and back. The role passes
verify.yml with ``linuxnet_firewall_backend: nftables`` in a lab of its own.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_nftables.py -q``
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.linuxnet.bridge.plugins.module_utils import _nftables as nft
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import Rule
from tests.integration.helpers import ADDR, HOST, HOSTS, OUT_ADDR, OUTSIDE, PORT, Traffic, make_endpoints, playbook, res, sh
from tests.integration.helpers_firewall import ENDPOINTS, NETWORKS, SNAT_ADDR, TRAFFIC_CHECKS  # test_firewall.py's, run against nftables
from tests.lab.core import Lab
from tests.lab.playbook import run_playbook
from tests.unit.plugins.module_utils.fixtures.rulesets import USER_RULES

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

REPO = Path(__file__).resolve().parents[2]
F1, F2, B1 = ENDPOINTS["f1"][1], ENDPOINTS["f2"][1], ENDPOINTS["b1"][1]
MAPPINGS = [
    {"bridge": "lnx-front", "container_ip": F1, "publish": f"{ADDR}:81:{PORT}", "network": "front"},
    {"bridge": "lnx-front", "container_ip": F1, "publish": f"127.0.0.1:8081:{PORT}", "network": "front"},
    {"bridge": "lnx-back", "container_ip": B1, "publish": f"8080:{PORT}/udp", "network": "back"},
    {"bridge": "lnx-front", "container_ip": F2, "host_port": "20000-20999", "container_port": "30000-30999"},
]
FOREIGN = """
table ip docker-bridges {
  chain filter-FORWARD {
    type filter hook forward priority filter; policy accept;
    oifname "docker0" ct state established,related counter accept
  }
  chain nat-POSTROUTING {
    type nat hook postrouting priority srcnat; policy accept;
    oifname != "docker0" ip saddr 172.17.0.0/16 counter masquerade comment "MASQUERADE"
  }
}
table inet admin {
  chain input {
    type filter hook input priority 10; policy accept;
    ip saddr 198.51.100.0/24 counter drop
  }
}
"""
FOREIGN_TABLES = ("ip docker-bridges", "inet admin", "ip filter", "ip nat")
NFT_WRAPPER = """#!/bin/sh
echo "nft $*" >> {log}
exec /usr/sbin/nft "$@"
"""


def task(module: str, name: str, config: Any = None, state: str = "merged", backend: str = "nftables", **extra: Any) -> dict:
    args: dict[str, Any] = {"state": state, "firewall_backend": backend}
    if config is not None:
        args["config"] = config
    return {"name": name, f"linuxnet.bridge.{module}": args, **extra}


def both(name: str, backend: str = "nftables", **extra: Any) -> list[dict]:
    """The firewall and then the published ports, as the role runs them."""
    return [task("firewall", f"{name} firewall", NETWORKS, state="overridden", backend=backend, **extra),
            task("port_mapping", f"{name} ports", MAPPINGS, state="overridden", backend=backend, **extra)]


def run(lab: Lab, *tasks: dict, ok: bool = True, **kwargs: Any):
    result = run_playbook(lab.inventory_path, playbook(*tasks), **kwargs)
    if ok:
        result.assert_ok()
        failed = [t for t in result.tasks if t.failed]
        assert not failed, f"task {failed[0].task} failed: {failed[0].result}"
    return result


def ours(lab: Lab) -> str:
    return sh(lab, "nft list table ip linuxnet 2>/dev/null || true").stdout


def foreign(lab: Lab) -> dict[str, str]:
    return {t: sh(lab, f"nft list table {t} 2>/dev/null | grep -v 'counter packets [1-9]' || true").stdout
            for t in FOREIGN_TABLES}


def iptables_ours(lab: Lab) -> list[str]:
    return [line for line in sh(lab, "iptables-nft-save").stdout.splitlines() if "LINUXNET" in line or "lnx-" in line]


@pytest.fixture(scope="module")
def env(tmp_path_factory, real_netns_guard):
    workdir = tmp_path_factory.mktemp("nft")
    lab = Lab.create(workdir / "lab", HOSTS)
    traffic = None
    try:
        sh(lab, f"ip addr add {SNAT_ADDR}/24 dev ens160 && echo 0 > /proc/sys/net/ipv4/ip_forward")
        sh(lab, " && ".join(f"ip route add {n['subnet']} via {ADDR}" for n in NETWORKS), host=OUTSIDE)
        lab.run(HOST, ["nft", "-f", "-"], input=FOREIGN)
        lab.run(HOST, ["iptables-nft-restore", "--noflush"], input=USER_RULES)
        make_endpoints(lab, {n["bridge"]: n["subnet"].replace(".0.0/16", ".0.1/16") for n in NETWORKS}, ENDPOINTS)
        seeded = foreign(lab)
        wrap = workdir / "wrap"
        wrap.mkdir()
        log = workdir / "nft.log"
        log.write_text("")
        (wrap / "nft").write_text(NFT_WRAPPER.format(log=log))
        (wrap / "nft").chmod(0o755)
        path = {"PATH": f"{wrap}:/usr/sbin:/usr/bin:/sbin:/bin"}
        predicted = run(lab, *both("first", environment=path), check=True, diff=True)
        check_log = log.read_text()
        first = run(lab, *both("first", environment=path))
        traffic = Traffic(lab, workdir)
        traffic.start(OUTSIDE, None)
        for ns in ENDPOINTS:
            traffic.start(HOST, ns, tcp=(PORT, 30000, 30999) if ns == "f2" else (PORT,))
        yield {"lab": lab, "traffic": traffic, "backend": "iptables-nft", "seeded": seeded, "log": log, "path": path,
               "check_log": check_log, "predicted": predicted, "first": first}
    finally:
        if traffic is not None:
            traffic.stop()
        lab.destroy()


def nft_writes(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " -f " in f"{line} "]


# ============================================================================== converge


def test_check_mode_predicts_and_one_transaction_per_run(env):
    first, predicted = env["first"], env["predicted"]
    # (the ports' prediction in the same check-mode play cannot see the firewall's chains: not compared)
    assert res(predicted, "first firewall")["commands"] == res(first, "first firewall")["commands"], "check mode did not predict"
    assert res(first, "first firewall")["changed"] is True and res(first, "first ports")["changed"] is True
    assert res(predicted, "first ports")["changed"] is True and "diff" in res(predicted, "first firewall")
    assert nft_writes_in(env["check_log"]) == [], "check mode wrote"
    assert len(nft_writes(env["log"])) == 2, "one nft -f per module run"
    commands = res(first, "first firewall")["commands"]
    assert commands[0] == "nft 'add table ip linuxnet'" and all(c.startswith(("nft '", "sysctl -w")) for c in commands)
    # ip_forward was off: the module turned it on and, as dockerd does, drops what it does not accept
    assert "type filter hook forward priority filter; policy drop;" in ours(env["lab"])


def nft_writes_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if " -f " in f"{line} "]


def test_foreign_tables_are_byte_identical(env):
    assert foreign(env["lab"]) == env["seeded"]
    assert iptables_ours(env["lab"]) == [], "nothing of ours in iptables with the nftables backend"


def test_second_run_writes_nothing_and_gathered_round_trips(env):
    lab, log = env["lab"], env["log"]
    writes, before = len(nft_writes(log)), ours(lab)
    again = run(lab, *both("again", environment=env["path"]),
                task("firewall", "gathered", state="gathered", register="g"),
                task("firewall", "feed back", "{{ g.gathered }}", state="overridden", environment=env["path"]),
                task("port_mapping", "pm gathered", state="gathered", register="p"),
                task("port_mapping", "pm feed back", "{{ p.gathered }}", state="overridden", environment=env["path"]))
    for name in ("again firewall", "again ports", "feed back", "pm feed back"):
        assert res(again, name)["changed"] is False and res(again, name)["commands"] == [], (name, res(again, name)["commands"])
    assert len(nft_writes(log)) == writes, "a run without changes wrote"
    assert ours(lab) == before
    assert sorted(g["name"] for g in res(again, "gathered")["gathered"]) == ["back", "front", "intern", "snat"]
    assert len(res(again, "pm gathered")["gathered"]) == 4


def test_parsed_reads_nft_list_ruleset_as_gathered(env):
    """state: parsed of the host's whole ``nft list ruleset`` text (Docker 29's table with chains named
    like ours, iptables-nft's tables, the admin's inet table) is what gathered reads from our table."""
    lab = env["lab"]
    text = sh(lab, "nft list ruleset").stdout
    assert "table ip docker-bridges" in text and "table ip linuxnet" in text
    parsed = run(lab, *[{"name": f"{m} {state}", f"linuxnet.bridge.{m}": dict(args, state=state), "register": f"{m}_{state}"}
                        for m in ("firewall", "port_mapping")
                        for state, args in (("gathered", {"firewall_backend": "nftables"}), ("parsed", {"running_config": text}))])
    for module in ("firewall", "port_mapping"):
        gathered, offline = res(parsed, f"{module} gathered")["gathered"], res(parsed, f"{module} parsed")
        assert offline["changed"] is False and offline["parsed"], offline
        # offline there is no ownership record: networks are named after their bridges, mappings have no network
        if module == "firewall":
            assert sorted(offline["parsed"], key=lambda n: n["bridge"]) == sorted(
                (dict(n, name=n["bridge"]) for n in gathered), key=lambda n: n["bridge"])
        else:
            no_network = [{k: v for k, v in m.items() if k != "network"} for m in gathered]
            assert sorted(offline["parsed"], key=repr) == sorted(no_network, key=repr) and len(no_network) == 4


def test_every_kind_renders_as_nft_lists_it(env):
    """Each kind of KINDS, loaded into a throw-away netns of the lab host and listed back."""
    samples = {"bridge": "lnx-x", "chain": "LINUXNET", "verdict": "DROP", "subnet": "10.9.0.0/24", "snat_source": "192.0.2.9",
               "host_ip": "192.0.2.1", "proto": "udp", "dport": "81", "container_ip": "10.9.0.2", "to_ports": "80"}
    rules = [Rule.of(k, **{f: samples[f] for f in t.names if f in samples}) for k, t in nft.KINDS.items()]
    rules.append(Rule.of("dnat", proto="tcp", dport="20000-20999", container_ip="10.9.0.3", to_ports="30000-30999", base="20000"))
    # port_mapping's sources: a network, and a host (listed without its /32)
    rules.append(Rule.of("dnat", source="192.0.2.0/24", host_ip="192.0.2.1", proto="udp", dport="81", container_ip="10.9.0.2",
                         to_ports="80"))
    rules.append(Rule.of("accept_port", source="198.51.100.7/32", container_ip="10.9.0.2", bridge="lnx-x", proto="tcp", dport="80"))
    script = "add table ip t\nadd chain ip t filter-LINUXNET\nadd chain ip t c\n" + "".join(
        f"add rule ip t c {nft.render_rule(r)}\n" for r in rules)
    out = env["lab"].run(HOST, ["unshare", "--net", "sh", "-c", "nft -f - && nft list chain ip t c"], input=script).stdout
    listed = [line.strip() for line in out.splitlines()[2:-2]]
    assert listed == [nft.render_rule(r) for r in rules]
    assert [nft.parse_rule(line) for line in listed] == rules


def test_rendered_script_builds_the_same_table(env):
    """state rendered: the nft script, applied with nft -f to a throw-away netns, lists like our live table."""
    lab = env["lab"]
    result = run(lab, task("firewall", "r", NETWORKS, state="rendered"), task("port_mapping", "p", MAPPINGS, state="rendered"))
    script = res(result, "r")["rendered"] + [line for line in res(result, "p")["rendered"] if "add table" not in line]
    out = lab.run(HOST, ["unshare", "--net", "sh", "-c", "nft -f - && nft list table ip linuxnet"], input="\n".join(script) + "\n").stdout
    live = ours(lab).replace("policy drop;", "policy accept;")  # ip_forward was off: the live run chose DROP
    assert sorted(out.splitlines()) == sorted(live.splitlines())


def nft_rule_count(text: str) -> int:
    """The rules in an ``nft list table`` text (not chain headers, base chain declarations or braces)."""
    return sum(1 for line in text.splitlines()
               if line.strip() and not line.strip().startswith(("table ", "chain ", "type ", "}")))


def test_set_rules_load_and_list_as_rendered(env):
    """The set and map forms of published ports and isolation, IPv4 and IPv6, loaded into a throw-away
    netns and listed back: the same rules (nft lists the elements in an order of its own)."""
    def mappings(family: str) -> list[Rule]:
        c, h = ("10.9.0.", "192.0.2.1") if family == "ipv4" else ("fd00:9::", "2001:db8::1")
        out = []
        for i in (2, 3):
            out += [Rule.of("dnat", host_ip=h, proto="tcp", dport=f"8{i}", container_ip=f"{c}{i}", to_ports="80"),
                    Rule.of("dnat", proto="udp", dport=f"9{i}", container_ip=f"{c}{i}", to_ports="53"),
                    Rule.of("dnat", source="198.51.100.0/24" if family == "ipv4" else "2001:db8:5::/48", proto="tcp",
                            dport=f"7{i}", container_ip=f"{c}{i}", to_ports="80"),
                    Rule.of("accept_port", container_ip=f"{c}{i}", bridge="lnx-x", proto="tcp", dport="80"),
                    Rule.of("hairpin", container_ip=f"{c}{i}", proto="tcp", dport=f"{30000 + i}-{30010 + i}"),
                    Rule.of("direct_drop", container_ip=f"{c}{i}", bridge="lnx-x", proto="udp", dport="53")]
        return out
    # isolation over a set of bridges: stage 1, and stage 2 as the firewall orders it (per network)
    stage1 = [Rule.of("isolate", bridge=f"lnx-{i}", chain="LINUXNET-ISOLATION-STAGE-2") for i in (2, 3)]
    stage2 = [r for i in (2, 3) for r in (Rule.of("published_in", bridge=f"lnx-{i}", chain="LINUXNET"), Rule.of("isolated", bridge=f"lnx-{i}"))]
    script = ""
    for family, nft_family in (("ipv4", "ip"), ("ipv6", "ip6")):
        script += "".join(f"add {what} {nft_family} t{name}\n" for what, name in (
            ("table", ""), ("chain", " c"), ("chain", " filter-LINUXNET"), ("chain", " filter-LINUXNET-ISOLATION-STAGE-2")))
        script += "".join(f"add rule {nft_family} t c {spec}\n"
                          for rules in (mappings(family), stage1, stage2) for spec in nft.compact(rules, "filter", family))
    out = env["lab"].run(HOST, ["unshare", "--net", "sh", "-c", "nft -f - && nft list table ip t && nft list table ip6 t"],
                         input=script).stdout
    listed = [line.strip() for line in out.splitlines() if "{ " in line]
    # 3 DNAT maps, accept, hairpin and drop sets, stage 1, stage 2's jump and drop: one rule each per family
    assert len(listed) == 2 * 9, listed
    expected = [nft.render_rule(r, "filter", family) for family in ("ipv4", "ipv6") for r in mappings(family) + stage1 + stage2]
    assert sorted(spec for line in listed for spec in nft.expand(line)) == sorted(expected) and len(expected) == 2 * 18


def test_rule_count_stays_constant_as_endpoints_and_ports_are_added(env):
    """More endpoints publishing more ports (host address, anywhere, UDP) on a network: the set and map
    rules grow by elements, our table keeps its number of rules; a second run writes nothing."""
    lab, log = env["lab"], env["log"]

    def extra(n: int) -> list[dict]:
        out = []
        for i in range(n):
            cip = f"172.18.0.{100 + i}"  # addresses on lnx-front without an endpoint: counted, not reached
            out += [{"bridge": "lnx-front", "container_ip": cip, "publish": f"{ADDR}:{9000 + i}:80", "network": "front"},
                    {"bridge": "lnx-front", "container_ip": cip, "publish": f"{9100 + i}:443", "network": "front"},
                    {"bridge": "lnx-front", "container_ip": cip, "publish": f"{9200 + i}:53/udp", "network": "front"}]
        return out
    counts = []
    try:
        for n in (2, 6, 20):
            result = run(lab, task("port_mapping", "more", MAPPINGS + extra(n), state="overridden", environment=env["path"]))
            assert res(result, "more")["changed"] is True
            writes = len(nft_writes(log))
            again = run(lab, task("port_mapping", "again", MAPPINGS + extra(n), state="overridden", environment=env["path"]))
            assert res(again, "again")["commands"] == [] and len(nft_writes(log)) == writes
            counts.append(nft_rule_count(ours(lab)))
        assert counts[0] == counts[1] == counts[2], counts
        assert "9219 : 172.18.0.119 . 53" in ours(lab)
        env["traffic"].expect(OUTSIDE, {(None, "tcp", ADDR, 81): OUT_ADDR, (None, "udp", ADDR, 8080): OUT_ADDR,
                                        (None, "tcp", ADDR, 20000): f"{OUT_ADDR} 30000"})
        env["traffic"].expect(HOST, {("f1", "tcp", ADDR, 81): "172.18.0.1", (None, "tcp", "127.0.0.1", 8081): True})
    finally:
        run(lab, task("port_mapping", "back", MAPPINGS, state="overridden"))


# ============================================================================== traffic


@pytest.mark.parametrize("check", TRAFFIC_CHECKS, ids=lambda f: f.__name__.removeprefix("check_"))
def test_same_traffic_as_iptables(env, check):
    check(env["traffic"])


def test_published_ports_range_udp_and_localhost(env):
    traffic = env["traffic"]
    traffic.expect(OUTSIDE, {
        (None, "tcp", ADDR, 81): OUT_ADDR,  # DNAT, the client's own address arrives
        (None, "tcp", SNAT_ADDR, 81): False,  # published on 172.16.211.128 only
        (None, "udp", ADDR, 8080): OUT_ADDR,
        (None, "udp", SNAT_ADDR, 8080): OUT_ADDR,
        (None, "tcp", ADDR, 20000): f"{OUT_ADDR} 30000",  # the shifted range: one rule with a port map
        (None, "tcp", ADDR, 20999): f"{OUT_ADDR} 30999",
        (None, "tcp", ADDR, 21000): False,
        (None, "tcp", ADDR, 8081): False,  # 127.0.0.1 only
    })
    traffic.expect(HOST, {(None, "tcp", "127.0.0.1", 8081): True, (None, "tcp", ADDR, 81): True,
                          ("f1", "tcp", ADDR, 81): "172.18.0.1"})  # hairpin: masqueraded to the bridge address
    assert sh(env["lab"], "cat /proc/sys/net/ipv4/conf/lnx-front/route_localnet").stdout.strip() == "1"
    # the CVE-2020-8558 guard in our input chain
    assert nft.KINDS["localnet_guard"].text in ours(env["lab"])
    assert sum("20000-20999" in line for line in ours(env["lab"]).splitlines()) == 1


# ============================================================================== failure, flush, switch


def test_a_failing_transaction_changes_nothing(env):
    lab = env["lab"]
    before = ours(lab)
    fail = {"LINUXNET_TEST_FAIL_TABLE": "nft"}
    result = run(lab, task("firewall", "f", NETWORKS[:2], state="overridden", environment=fail, ignore_errors=True), ok=False)
    r = res(result, "f")
    assert r.get("failed") is True and "nothing was changed" in r["msg"], r
    assert ours(lab) == before


def test_flush_ruleset_then_the_next_run_restores_everything(env):
    lab = env["lab"]
    before = ours(lab)
    sh(lab, "nft flush ruleset")
    result = run(lab, *both("restore"))
    assert res(result, "restore firewall")["changed"] is True and res(result, "restore ports")["changed"] is True
    after = ours(lab)
    # the same table, except the policy: ip_forward is on now, so no DROP (as with iptables)
    assert sorted(after.replace("policy drop;", "policy accept;").splitlines()) == sorted(
        before.replace("policy drop;", "policy accept;").splitlines())
    env["traffic"].expect(OUTSIDE, {(None, "tcp", ADDR, 81): OUT_ADDR, (None, "tcp", ADDR, 20500): False})
    env["traffic"].expect(HOST, {("f1", "tcp", OUT_ADDR, PORT): ADDR, ("f1", "tcp", "172.19.0.2", PORT): False})
    assert [res(run(lab, *both("then")), n)["changed"] for n in ("then firewall", "then ports")] == [False, False]
    # the foreign tables went with the flush: put them back for the tests after this one
    lab.run(HOST, ["nft", "-f", "-"], input=FOREIGN)
    lab.run(HOST, ["iptables-nft-restore", "--noflush"], input=USER_RULES)
    env["seeded"] = foreign(lab)


def test_switching_backend_leaves_nothing_in_the_other(env):
    lab, traffic = env["lab"], env["traffic"]
    to_iptables = run(lab, *both("iptables", backend="iptables"))
    assert res(to_iptables, "iptables firewall")["changed"] is True
    assert ours(lab) == "", "the nft table must go when switching to iptables"
    assert ":LINUXNET-ISOLATION-STAGE-1 - [0:0]" in iptables_ours(lab)
    traffic.expect(OUTSIDE, {(None, "tcp", ADDR, 81): OUT_ADDR, (None, "tcp", ADDR, 20000): f"{OUT_ADDR} 30000"})
    traffic.expect(HOST, {("f1", "tcp", "172.19.0.2", PORT): False})
    nft_only = ("ip docker-bridges", "inet admin")  # ip filter/ip nat hold our iptables rules now
    assert {t: foreign(lab)[t] for t in nft_only} == {t: env["seeded"][t] for t in nft_only}

    back = run(lab, *both("back"))
    assert res(back, "back firewall")["changed"] is True
    assert iptables_ours(lab) == [], "iptables rules of ours left after switching to nftables"
    assert "chain filter-LINUXNET-ISOLATION-STAGE-1" in ours(lab)
    traffic.expect(OUTSIDE, {(None, "tcp", ADDR, 81): OUT_ADDR, (None, "udp", ADDR, 8080): OUT_ADDR})
    traffic.expect(HOST, {("f1", "tcp", "172.19.0.2", PORT): False, ("f1", "tcp", OUT_ADDR, PORT): ADDR})
    assert foreign(lab) == env["seeded"]
    again = run(lab, *both("settled"))
    assert [res(again, n)["commands"] for n in ("settled firewall", "settled ports")] == [[], []]


def test_deleted_removes_our_table_only(env):
    lab = env["lab"]
    run(lab, task("port_mapping", "pm", state="deleted"), task("firewall", "fw", state="deleted"))
    assert ours(lab) == ""
    assert foreign(lab) == env["seeded"]


# ============================================================================== the role


def test_role_with_nftables_passes_verify(lab_factory):
    lab = lab_factory(HOSTS, groups={"linuxnet_hosts": [HOST], "linuxnet_probes": [OUTSIDE]})
    topology = {
        "linuxnet_install_packages": False,
        "linuxnet_firewall_backend": "nftables",
        "linuxnet_networks": [{"name": "bridge", "subnet": "172.17.0.0/16"}, {"name": "usernet", "subnet": "172.18.0.0/16"}],
        "linuxnet_endpoints": [{"name": "c1", "network": "bridge"}, {"name": "c2", "network": "bridge"},
                               {"name": "web", "network": "bridge", "ports": [f"{ADDR}:81:80"]},
                               {"name": "c3", "network": "usernet"}],
    }
    for book in ("site.yml", "verify.yml"):
        result = run_playbook(lab.inventory_path, REPO / "playbooks" / book, extra_vars=topology)
        assert result.rc == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "chain filter-LINUXNET-ISOLATION-STAGE-1" in ours(lab) and iptables_ours(lab) == []
    again = run_playbook(lab.inventory_path, REPO / "playbooks" / "site.yml", extra_vars=topology)
    assert again.rc == 0 and again.stats[HOST]["changed"] == 0, [t.name for t in again.changed_tasks]
