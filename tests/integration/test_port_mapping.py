"""linuxnet.bridge.port_mapping against a real kernel, inside lab hosts, with real traffic.

One lab per firewall backend (``helpers.BACKENDS``: iptables-nft, iptables-legacy, nftables), shared
by the module's tests (lab hosts ``linuxnet1`` 172.16.211.128 + 172.16.211.130 and
``outside`` 172.16.211.1). On ``linuxnet1``: bridge ``lnx-web`` 10.41.0.0/24 with the ``web``
namespace (10.41.0.2, ``python3 -m http.server 80``) and ``rng`` (10.41.0.3, peer-reporting TCP
servers on 30000, 30500 and 30999), bridge ``lnx-udp`` 10.42.0.0/24 with ``udp`` (10.42.0.2, a UDP
echo on port 80 that also reports the peer), and linuxnet.bridge.firewall for both networks.
Before anything of ours, someone else's rules are loaded: Docker's full §1.2 ruleset (with its
published ports moved to 8181/8088 so that they do not answer for ours) and a user's rules in
INPUT, FORWARD and nat (in the iptables variant of the lab; next to the nftables backend, Docker
29's ``ip docker-bridges`` table instead of the §1.2 ruleset, whose FORWARD policy DROP would drop
our forwarded packets); they must stay byte-identical through everything. Rules are read back with
the backend's own tool (``iptables-save`` of the variant, ``nft list table ip linuxnet``);
idempotence is counted in ``nft -f``/``*-restore`` calls. IPv6 published ports on the three
backends are test_ipv6_firewall.py's.

The traffic helper (the product's prober: listeners that answer with the peer address they saw,
parallel probes) and the playbook helpers are ``helpers.py``, shared with ``test_firewall.py``. Nothing here touches the machine's own network namespace.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_port_mapping.py -q``
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

import pytest

from ansible_collections.linuxnet.bridge.plugins.module_utils import _nftables as nft
from tests.integration import helpers
from tests.integration.helpers import Probe6
from tests.lab.core import Lab
from tests.lab.playbook import run_playbook
from tests.unit.plugins.module_utils.fixtures.rulesets import DOCKER_12, USER_RULES

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

HOST, OUTSIDE = helpers.HOST, helpers.OUTSIDE
ADDR, OUT_ADDR, OTHER_ADDR = helpers.ADDR, helpers.OUT_ADDR, "172.16.211.130"
WEB, RNG, UDP = "10.41.0.2", "10.41.0.3", "10.42.0.2"

NETWORKS = [
    {"name": "web", "bridge": "lnx-web", "subnet": "10.41.0.0/24", "subnet6": "fd00:41::/64"},
    {"name": "udp", "bridge": "lnx-udp", "subnet": "10.42.0.0/24"},
]
# IPv6 (network web is dual-stack): the dual-stack TCP listener of test_ipv6_firewall on web and rng
ADDR6, OUT_ADDR6, PORT6 = "2001:db8:ff::128", "2001:db8:ff::1", 7006
WEB6, RNG6 = "fd00:41::2", "fd00:41::3"
MAPPINGS6 = [
    {"bridge": "lnx-web", "container_ip": WEB6, "publish": f"8086:{PORT6}", "network": "web"},
    {"bridge": "lnx-web", "container_ip": RNG6, "container_port": "32000-32999", "host_port": "22000-22999"},
]
ENDPOINTS = {"web": ("lnx-web", WEB), "rng": ("lnx-web", RNG), "udp": ("lnx-udp", UDP)}
M_WEB = {"bridge": "lnx-web", "container_ip": WEB, "publish": f"{ADDR}:81:80", "network": "web"}
M_LOCAL = {"bridge": "lnx-web", "container_ip": WEB, "publish": "127.0.0.1:8081:80", "network": "web"}
M_UDP = {"bridge": "lnx-udp", "container_ip": UDP, "publish": "8080:80/udp", "network": "udp"}
M_RANGE = {"bridge": "lnx-web", "container_ip": RNG, "container_port": "30000-30999", "host_port": "20000-20999"}
MAPPINGS = [M_WEB, M_LOCAL, M_UDP, M_RANGE]

# Docker's §1.2 ruleset, its two published host ports moved out of the way of ours.
DOCKER_FOREIGN = DOCKER_12.replace("--dport 81 ", "--dport 8181 ").replace("--dport 8080 ", "--dport 8088 ")


#: The backend of the lab the tests run in (set by the module-scoped ``env`` fixture, one lab per backend).
OPTIONS: dict[str, str] = {}


def pm_task(name: str, config: Any = None, state: str = "overridden", **extra: Any) -> dict:
    args: dict[str, Any] = {"state": state, **OPTIONS}
    if config is not None:
        args["config"] = config
    return {"name": name, "linuxnet.bridge.port_mapping": args, **extra}


def run(lab: Lab, *tasks: dict, ok: bool = True, **kwargs: Any):
    return helpers.run(run_playbook, lab, *tasks, ok=ok, **kwargs)


def res(result, name: str) -> dict:
    return result.task(name, HOST).result


def live(env: dict) -> list[str]:
    """The lab host's IPv4 ruleset as the backend's own tool lists it: all of iptables-save, or our nft table."""
    if env["backend"] == "nftables":
        return [line.strip() for line in helpers.ruleset(env["lab"], "nftables").splitlines()]
    return helpers.save(env["lab"], env["backend"])


def tables(lines: list[str]) -> list[list[str]]:
    """iptables-save text as its tables, in order of name, without empty built-in skeletons: reading a
    table with iptables-legacy-save creates it (the raw table appears in the middle of the listing)."""
    out, table = [], []
    for line in lines:
        table.append(line)
        if line == "COMMIT":
            if [t for t in table[1:-1] if not re.fullmatch(r":[A-Z]+ ACCEPT \[0:0\]", t)]:
                out.append(table)
            table = []
    return sorted(out)


def foreign_now(env: dict) -> list[str]:
    """Someone else's rules: the iptables variant's (and, beside our nft table, Docker 29's nft table)."""
    lab = env["lab"]
    if env["backend"] == "nftables":
        return foreign(helpers.save(lab, "iptables-nft")) + helpers.sh(lab, "nft list table ip docker-bridges").stdout.splitlines()
    return foreign(helpers.save(lab, env["backend"]))


def ours(line: str) -> bool:
    # (the raw DROP of the port published on 127.0.0.1 names no bridge nor subnet of ours)
    return (helpers.ours(line, bridges=("lnx-",)) or "10.41." in line or "10.42." in line
            or "-d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 8081 -j DROP" in line)


def foreign(lines: list[str]) -> list[str]:
    """Everything not ours; the raw table's empty skeleton (iptables-nft lists it once our raw rules
    made it exist) is nobody's."""
    out, table = [], []
    for line in lines:
        if line.startswith("*"):
            table = [line]
        elif table and table[0] == "*raw" and line != "COMMIT":
            table.append(line)
        elif table and table[0] == "*raw":
            kept = [r for r in table[1:] if r not in (":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]") and not ours(r)]
            out += [table[0], *[r for r in table[1:] if not ours(r)], line] if kept else []
            table = []
            continue
        if not (table and table[0] == "*raw") and not ours(line):
            out.append(line)
    return out


def port_rules(lines: list[str]) -> list[str]:
    """Rules that belong to port mappings (DNAT in nat <P>, ACCEPT in filter <P>, hairpins), as
    iptables-save or nft lists them."""
    return [line for line in lines if line.startswith("-A LINUXNET ") or re.match(r"-A POSTROUTING -s (10\.4[12]\.\S+)/32 -d \1/32 ", line)
            or " dnat to " in line or re.match(r"ip daddr 10\.4[12]\.\S+ .* accept$", line)
            or re.match(r"ip saddr (10\.4[12]\.\S+) ip daddr \1 .* masquerade$", line)]


def state_file(lab: Lab) -> str:
    return helpers.sh(lab, "cat /run/linuxnet/port_mapping/LINUXNET.json 2>/dev/null || true").stdout


# With the nftables backend, Docker 20.10-28's iptables ruleset (FORWARD policy DROP) would drop
# our forwarded packets (a drop in any base chain is final): that lab gets Docker 29's nft table instead.
DOCKER29_FOREIGN = """
table ip docker-bridges {
  chain filter-FORWARD {
    type filter hook forward priority filter; policy accept;
    oifname "docker0" ct state established,related accept
  }
  chain nat-PREROUTING {
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local tcp dport 8181 dnat to 172.17.0.2:80
  }
}
"""


@pytest.fixture(scope="module", params=list(helpers.BACKENDS))
def env(request, tmp_path_factory, real_netns_guard):
    backend = request.param
    workdir = tmp_path_factory.mktemp(f"pm-{backend}")
    lab = Lab.create(workdir / "lab", helpers.HOSTS)
    traffic = probe6 = None
    OPTIONS.clear()
    OPTIONS.update(helpers.BACKENDS[backend])
    try:
        helpers.sh(lab, f"ip addr add {OTHER_ADDR}/24 dev ens160 && echo 1 > /proc/sys/net/ipv4/ip_forward")
        helpers.sh(lab, " && ".join(f"ip route add {n['subnet']} via {ADDR}" for n in NETWORKS), host=OUTSIDE)
        variant = "iptables-nft" if backend == "nftables" else backend
        if backend == "nftables":
            lab.run(HOST, ["nft", "-f", "-"], input=DOCKER29_FOREIGN)
        else:
            lab.run(HOST, [f"{variant}-restore", "--noflush"], input=DOCKER_FOREIGN)
        lab.run(HOST, [f"{variant}-restore", "--noflush"], input=USER_RULES)
        seeded = foreign_now({"lab": lab, "backend": backend})
        helpers.make_endpoints(lab, {n["bridge"]: n["subnet"].replace(".0/24", ".1/24") for n in NETWORKS}, ENDPOINTS)
        helpers.sh(lab, f"ip -6 addr add {ADDR6}/64 dev ens160 nodad")
        helpers.sh(lab, f"ip -6 addr add {OUT_ADDR6}/64 dev ens160 nodad && ip -6 route add fd00:41::/64 via {ADDR6}", host=OUTSIDE)
        helpers.add_ipv6(lab, {"lnx-web": "fd00:41::1/64"}, {"web": ("lnx-web", WEB6), "rng": ("lnx-web", RNG6)})
        run(lab, helpers.fw_task("firewall", NETWORKS, backend=backend))
        traffic = helpers.Traffic(lab, workdir)
        site = workdir / "site"
        site.mkdir()
        (site / "index.html").write_text("web-namespace-index\n")
        server = [sys.executable, "-u", "-m", "http.server", "80", "--bind", "0.0.0.0", "--directory", str(site)]
        http_log = traffic.spawn(HOST, "web", server, "http-server")
        traffic.start(HOST, "rng", tcp=(30000, 30500, 30999), udp=())
        traffic.start(HOST, "udp", tcp=(), udp=(80,))
        probe6 = Probe6(lab, workdir)
        for ns, port in (("web", PORT6), ("rng", 32000), ("rng", 32999)):
            probe6.serve(HOST, ns, port)
        deadline = time.monotonic() + 10
        while not traffic.probe(HOST, [(None, "http", WEB, 80)])[0]["ok"]:
            assert time.monotonic() < deadline, f"http.server did not start: {http_log.read_text()}"
            time.sleep(0.1)
        yield {"lab": lab, "traffic": traffic, "http_log": http_log, "seeded": seeded, "applied": None, "backend": backend,
               "probe6": probe6}
    finally:
        OPTIONS.clear()
        for servers in (traffic, probe6 and probe6.traffic):
            if servers is not None:
                servers.stop()
        lab.destroy()


def apply(env: dict, config: list[dict]) -> None:
    """Make the lab's mappings exactly ``config`` (skipped when the previous test left them so)."""
    if env["applied"] != config:
        env["applied"] = None
        run(env["lab"], pm_task("port_mapping", config))
        env["applied"] = config


def assert_foreign_untouched(env: dict) -> None:
    assert foreign_now(env) == env["seeded"], "someone else's rules changed"


def client_of(env: dict, reply: str) -> str:
    """The client address http.server logged for the request of an http probe (reply = token ...)."""
    token = reply.split()[0]
    deadline = time.monotonic() + 5
    while True:
        for line in env["http_log"].read_text().splitlines():
            if f"/?{token} " in line:
                return line.split()[0]
        assert time.monotonic() < deadline, f"no log line for {token}:\n{env['http_log'].read_text()[-2000:]}"
        time.sleep(0.05)


# ============================================================================== converge


def test_check_mode_apply_and_idempotence(env, tmp_path):
    lab, backend = env["lab"], env["backend"]
    wrapper_env, log = helpers.write_wrappers(tmp_path)
    before, before_state = live(env), state_file(lab)
    assert port_rules(before) == [] and before_state == ""
    task = pm_task("port_mapping", MAPPINGS, state="merged", environment=wrapper_env)

    predicted = run(lab, task, check=True, diff=True)
    assert res(predicted, "port_mapping")["changed"] is True and "diff" in res(predicted, "port_mapping")
    assert tables(live(env)) == tables(before) and state_file(lab) == "" and helpers.writes(log) == [], "check mode changed the host"

    applied = run(lab, task)
    commands = res(applied, "port_mapping")["commands"]
    assert commands == res(predicted, "port_mapping")["commands"], "check mode did not predict the run"
    written = [line.split()[0] for line in helpers.writes(log)]
    # one transaction per table (filter, nat, raw), or one nft -f
    assert written == (["nft"] if backend == "nftables" else [f"{backend}-restore"] * 3), helpers.writes(log)
    after = res(applied, "port_mapping")["after"]
    assert {(m["host_port"], m.get("host_ip"), m["protocol"], m.get("network")) for m in after} == {
        ("81", ADDR, "tcp", "web"), ("8081", "127.0.0.1", "tcp", "web"), ("8080", None, "udp", "udp"), ("20000-20999", None, "tcp", None)}
    rules = live(env)
    # the 1000-port range costs exactly four rules: DNAT, forward ACCEPT, hairpin, raw DROP (gateway_mode nat)
    if backend == "nftables":
        assert len([line for line in rules if "20000-20999" in line or "30000-30999" in line]) == 4, rules
    else:
        assert sorted(line for line in rules if "20000" in line or "30000" in line) == sorted([
            f"-A LINUXNET -d {RNG}/32 ! -i lnx-web -o lnx-web -p tcp -m tcp --dport 30000:30999 -j ACCEPT",
            f"-A POSTROUTING -s {RNG}/32 -d {RNG}/32 -p tcp -m tcp --dport 30000:30999 -j MASQUERADE",
            f"-A LINUXNET -p tcp -m tcp --dport 20000:20999 -j DNAT --to-destination {RNG}:30000-30999/20000",
            f"-A PREROUTING -d {RNG}/32 ! -i lnx-web -p tcp -m tcp --dport 30000:30999 -j DROP",
        ])
    if backend == "nftables":  # one-port DNATs share a map rule per form (with/without host address); the range is one rule
        assert sum(bool(re.search(r" dnat (ip )?to ", f" {line}")) for line in rules) == 3 and sum("20000" in line for line in rules) == 1, rules
    else:
        assert len(port_rules(rules)) == 4 + 3 + 3  # 4 DNAT; 3 ACCEPT and 3 hairpins (web's two ports share theirs)
    assert helpers.duplicates(rules) == []
    env["applied"] = MAPPINGS

    written = len(helpers.writes(log))
    again = run(lab, task, pm_task("gathered", state="gathered", register="g"),
                pm_task("feed back", "{{ g.gathered }}", environment=wrapper_env))
    for name in ("port_mapping", "feed back"):
        assert res(again, name)["changed"] is False and res(again, name)["commands"] == [], (name, res(again, name)["commands"])
    assert helpers.writes(log)[written:] == [], "a run without changes wrote"
    assert live(env) == rules
    assert len(res(again, "gathered")["gathered"]) == 4
    assert_foreign_untouched(env)


# ============================================================================== traffic


def test_outside_reaches_the_web_namespace_and_is_seen_as_itself(env):
    apply(env, MAPPINGS)
    result = env["traffic"].probe(OUTSIDE, [(None, "http", ADDR, 81)])[0]
    assert result["ok"], result
    assert result["reply"].split()[1:] == ["200", "web-namespace-index"]
    assert client_of(env, result["reply"]) == OUT_ADDR, "the server must see the client's own address (no SNAT inbound)"
    # published on 172.16.211.128 only: not on the host's other address, nor on 8081 (127.0.0.1 only)
    env["traffic"].expect(OUTSIDE, {(None, "http", OTHER_ADDR, 81): False, (None, "http", ADDR, 8081): False,
                                    (None, "http", ADDR, 80): False})


def test_from_the_host_itself(env):
    apply(env, MAPPINGS)
    env["traffic"].expect(HOST, {(None, "http", ADDR, 81): True, (None, "http", "127.0.0.1", 8081): True,
                                 (None, "http", OTHER_ADDR, 81): False, (None, "udp", ADDR, 8080): True})
    lab = env["lab"]
    # localhost publishing needs route_localnet on the bridge, and then kube-proxy's guard (CVE-2020-8558)
    assert helpers.sh(lab, "cat /proc/sys/net/ipv4/conf/lnx-web/route_localnet").stdout.strip() == "1"
    guard = nft.KINDS["localnet_guard"].text if env["backend"] == "nftables" else f"-A INPUT {helpers.GUARD}"
    assert guard in "\n".join(live(env))


def test_a_neighbour_routing_127_to_the_host_does_not_reach_a_loopback_published_port(env):
    """Docker 28's filterPortMappedOnLoopback: a port published on 127.0.0.1 is for this host only.
    A neighbour that routes 127.0.0.1 to the host (its own route_localnet on) gets its packet
    DNATed in PREROUTING before the kernel would drop the martian destination: only the raw DROP of
    packets to 127/8 that did not come in on lo stops it. Without that rule the same probe gets
    through (shown by taking the rule out for a moment), so the test can fail."""
    apply(env, MAPPINGS)
    lab, backend = env["lab"], env["backend"]
    dev = helpers.sh(lab, f"ip -4 -o route get {ADDR} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'", host=OUTSIDE).stdout.strip()
    # only tcp to 127.0.0.1:8081 leaves the outside host (looked up before its local table); its own loopback stays
    divert = (f"sysctl -qw net.ipv4.conf.{dev}.route_localnet=1 net.ipv4.conf.all.route_localnet=1"
              f" && ip route add 127.0.0.1/32 via {ADDR} dev {dev} src {OUT_ADDR} table 81"
              " && ip rule add priority 10 to 127.0.0.1 ipproto tcp dport 8081 lookup 81"
              " && ip rule add priority 20 lookup local && ip rule del priority 0 lookup local")
    restore = ("ip rule add priority 0 lookup local; ip rule del priority 20 lookup local; ip rule del priority 10;"
               f" ip route flush table 81; sysctl -qw net.ipv4.conf.{dev}.route_localnet=0 net.ipv4.conf.all.route_localnet=0")
    loopback_drop = ("ip daddr 127.0.0.1 iifname != \"lo\" tcp dport 8081 drop" if backend == "nftables"
                     else "-A PREROUTING -d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 8081 -j DROP")
    assert loopback_drop in live(env)
    helpers.sh(lab, divert, host=OUTSIDE)
    try:
        env["traffic"].expect(OUTSIDE, {(None, "http", "127.0.0.1", 8081): False})
        if backend != "nftables":  # the rule is what stops it: without it the neighbour gets in
            tool = "iptables-legacy" if backend == "iptables-legacy" else "iptables-nft"
            helpers.sh(lab, f"{tool} -t raw -D PREROUTING -d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 8081 -j DROP")
            env["traffic"].expect(OUTSIDE, {(None, "http", "127.0.0.1", 8081): True})
    finally:
        helpers.sh(lab, restore, host=OUTSIDE, check=False)
        env["applied"] = None
        apply(env, MAPPINGS)  # puts the rule back
    assert loopback_drop in live(env)


def test_hairpin(env):
    """A namespace reaches its own published port via the host's LAN address (and its neighbour too)."""
    apply(env, MAPPINGS)
    traffic = env["traffic"]
    results = traffic.probe(HOST, [("web", "http", ADDR, 81), ("rng", "http", ADDR, 81)])
    assert all(r["ok"] for r in results), results
    # its own published port: the hairpin MASQUERADE makes the bridge's address the client
    assert client_of(env, results[0]["reply"]) == "10.41.0.1"
    traffic.expect(HOST, {("udp", "udp", ADDR, 8080): "10.42.0.1"})


def test_udp_mapping(env):
    apply(env, MAPPINGS)
    env["traffic"].expect(OUTSIDE, {(None, "udp", ADDR, 8080): f"{OUT_ADDR} 80", (None, "udp", OTHER_ADDR, 8080): f"{OUT_ADDR} 80",
                                    (None, "tcp", ADDR, 8080): False})


def test_three_ports_of_a_1000_port_range(env):
    apply(env, MAPPINGS)
    env["traffic"].expect(OUTSIDE, {
        (None, "tcp", ADDR, 20000): f"{OUT_ADDR} 30000",
        (None, "tcp", ADDR, 20500): f"{OUT_ADDR} 30500",
        (None, "tcp", ADDR, 20999): f"{OUT_ADDR} 30999",
        (None, "tcp", ADDR, 19999): False,
        (None, "tcp", ADDR, 21000): False,
    })


def test_ipv6_published_ports_range_and_idempotence(env, tmp_path):
    """The same mappings over IPv6: one port published on both families' host addresses by two
    mappings (IPv4 http, IPv6 the peer-reporting listener), a shifted range, direct routing closed;
    a second run writes nothing."""
    lab = env["lab"]
    wrapper_env, log = helpers.write_wrappers(tmp_path)
    env["applied"] = None
    first = run(lab, pm_task("v6", MAPPINGS + MAPPINGS6, environment=wrapper_env))
    assert res(first, "v6")["changed"] is True
    env["applied"] = MAPPINGS + MAPPINGS6
    env["probe6"].expect(OUTSIDE, None, {
        (ADDR6, 8086): OUT_ADDR6,  # DNAT, the client's own address arrives
        (ADDR6, 22000): OUT_ADDR6, (ADDR6, 22999): OUT_ADDR6,  # the ends of the shifted range
        (ADDR6, 23000): "-", (ADDR6, 21999): "-",
        (ADDR, 8086): "-", (ADDR, 22000): "-",  # IPv6 mappings: nothing on the IPv4 address
        (WEB6, PORT6): "-", (RNG6, 32000): "-",  # direct routing to the published container ports: dropped
    })
    env["probe6"].expect(HOST, "rng", {(ADDR6, 8086): RNG6})  # from another endpoint of the network, as itself
    written = len(helpers.writes(log))
    again = run(lab, pm_task("again", MAPPINGS + MAPPINGS6, environment=wrapper_env))
    assert res(again, "again")["changed"] is False and res(again, "again")["commands"] == []
    assert helpers.writes(log)[written:] == [], "a run without changes wrote"
    assert_foreign_untouched(env)


# ============================================================================== bad input


def test_conflicts_and_bad_input_are_rejected_with_nothing_changed(env):
    apply(env, MAPPINGS)
    lab = env["lab"]
    before, before_state = live(env), state_file(lab)
    web = {"bridge": "lnx-web", "container_ip": WEB}
    bad = {
        "any address vs managed 172.16.211.128:81": (
            pm_task("a", [dict(web, publish="81:80")], state="merged"), "mapping (with mappings managed earlier) "),
        "within config": (pm_task("b", [dict(web, publish="9000:80"), dict(web, publish=f"{ADDR}:9000:81")]),
                          "mapping 172.16.211.128:9000/tcp"),
        "range overlaps managed udp": (pm_task("c", [dict(web, publish="8000-8090:8000-8090/udp")], state="merged"),
                                       "mapping (with mappings managed earlier) "),
        "container ip outside the bridge": (pm_task("d", [dict(web, container_ip="10.42.0.9", publish="9001:80")]),
                                            "config[0].container_ip: 10.42.0.9 is outside every subnet of bridge lnx-web"),
        "random host port": (pm_task("e", [dict(web, publish="80")]), "config[0] (bridge=lnx-web).publish:"),
    }
    result = run(lab, *[dict(t, ignore_errors=True) for t, _start in bad.values()], ok=False)
    assert result.rc == 0, result.stderr
    problems = []
    for label, (task, start) in bad.items():
        r = res(result, task["name"])
        if not r.get("failed") or not r["msg"].startswith(start) or r.get("changed") or r.get("commands"):
            problems.append(f"{label}: failed={r.get('failed')} msg={r.get('msg')!r} commands={r.get('commands')}")
    assert not problems, "\n".join(problems)
    assert live(env) == before and state_file(lab) == before_state


# ============================================================================== removal


def test_removing_mappings_stops_the_traffic_and_leaves_no_rule(env):
    apply(env, MAPPINGS)
    lab, traffic = env["lab"], env["traffic"]
    # deleted: only that mapping; the 127.0.0.1 one shares its ACCEPT and hairpin rules and keeps working
    result = run(lab, pm_task("deleted", [{"bridge": "lnx-web", "container_ip": WEB, "publish": f"{ADDR}:81:80"}], state="deleted"))
    env["applied"] = None
    commands = res(result, "deleted")["commands"]
    if env["backend"] == "nftables":
        assert commands[0] == "nft 'flush chain ip linuxnet nat-LINUXNET'" and len(commands) == 4, commands  # the 3 others back
        assert all(c.startswith("nft 'add rule ip linuxnet nat-LINUXNET ") and "dport 81 " not in c for c in commands[1:]), commands
    else:
        assert commands == [
            "iptables -t nat -F LINUXNET",
            f"iptables -t nat -A LINUXNET -p udp -m udp --dport 8080 -j DNAT --to-destination {UDP}:80",
            f"iptables -t nat -A LINUXNET -d 127.0.0.1/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination {WEB}:80",
            f"iptables -t nat -A LINUXNET -p tcp -m tcp --dport 20000:20999 -j DNAT --to-destination {RNG}:30000-30999/20000",
        ]
    traffic.expect(OUTSIDE, {(None, "http", ADDR, 81): False, (None, "tcp", ADDR, 20000): f"{OUT_ADDR} 30000"})
    traffic.expect(HOST, {(None, "http", ADDR, 81): False, (None, "http", "127.0.0.1", 8081): True})
    assert not [line for line in live(env) if "dport 81 " in line]
    # overridden without the web mappings: nothing of 10.41.0.2 is left; the others still work
    run(lab, pm_task("overridden", [M_UDP, M_RANGE]))
    env["applied"] = [M_UDP, M_RANGE]
    traffic.expect(HOST, {(None, "http", "127.0.0.1", 8081): False, ("web", "http", ADDR, 81): False})
    traffic.expect(OUTSIDE, {(None, "udp", ADDR, 8080): f"{OUT_ADDR} 80"})
    assert not [line for line in live(env) if WEB in line]
    assert json.loads(state_file(lab))["items"].keys() == {"0.0.0.0:8080/udp", "0.0.0.0:20000-20999/tcp"}
    assert_foreign_untouched(env)


def test_deleted_without_config_leaves_only_what_was_there(env):
    lab = env["lab"]
    apply(env, [M_UDP, M_RANGE])
    result = run(lab, pm_task("deleted", state="deleted"), pm_task("again", state="deleted"))
    env["applied"] = []
    assert res(result, "deleted")["changed"] is True and res(result, "again")["commands"] == []
    rules = live(env)
    assert port_rules(rules) == []
    # the chains are the firewall's: still there, empty
    if env["backend"] == "nftables":
        assert sum(line.startswith(("chain filter-LINUXNET {", "chain nat-LINUXNET {")) for line in rules) == 2, rules
    else:
        assert rules.count(":LINUXNET - [0:0]") == 2
    assert re.sub(r"\s+", "", state_file(lab)) == '{"items":{}}'
    env["traffic"].expect(OUTSIDE, {(None, "udp", ADDR, 8080): False, (None, "tcp", ADDR, 20000): False})
    assert_foreign_untouched(env)
