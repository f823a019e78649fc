"""Dual-stack networks: the IPv6 side of the firewall and port_mapping modules, with real IPv6 packets.

One lab per backend (iptables-nft, iptables-legacy, nftables): ``linuxnet1`` (172.16.211.128,
2001:db8:ff::128) and ``outside`` (172.16.211.1, 2001:db8:ff::1) on the lab LAN, ``outside`` with
routes to the endpoint subnets via ``linuxnet1`` (so "not reached" is the firewall's doing, and
"sees 2001:db8:ff::128" proves NAT66). The link modules do not give endpoints IPv6 yet, so the
bridges' and endpoints' IPv6 addresses and default routes are made here with plain ``ip``, inside
the lab host. IPv6 forwarding is off at the start: the module turns it on (and, as dockerd, sets the
ip6tables FORWARD policy to DROP / our ip6 table's forward chain to drop).

Networks: ``d1`` (ICC off), ``d2`` (ICC on, NAT66), ``d3`` (``masquerade6: false``: routed IPv6);
port 8086 is published on both families for ``b1`` (an IPv4 and an IPv6 mapping, as Docker does
for ``-p 8086:7000`` on a dual-stack endpoint) and ``[2001:db8:ff::128]:8087`` on IPv6 only.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_ipv6_firewall.py -q``
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from ansible_collections.linuxnet.bridge.plugins.module_utils import _nftables as nft
from tests.integration.helpers import (
    ADDR, ADDR6, HOST, HOSTS, OUT_ADDR, OUT_ADDR6, OUTSIDE, PORT, Probe6, make_endpoints, playbook, res, sh,
)
from tests.lab.core import Lab
from tests.lab.playbook import run_playbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

LINK_LOCAL, OUT_LINK_LOCAL = "fe80::128", "fe80::1"  # on the lab LAN too: Docker 29 does not DNAT link-local sources
NETWORKS = [
    {"name": "d1", "bridge": "lnx-d1", "subnet": "172.22.0.0/16", "subnet6": "fd00:22::/64", "icc": False},
    {"name": "d2", "bridge": "lnx-d2", "subnet": "172.23.0.0/16", "subnet6": "fd00:23::/64"},
    {"name": "d3", "bridge": "lnx-d3", "subnet": "172.24.0.0/16", "subnet6": "fd00:24::/64", "masquerade6": False},
]
ENDPOINTS = {  # netns: (bridge, IPv4, IPv6)
    "a1": ("lnx-d1", "172.22.0.2", "fd00:22::2"), "a2": ("lnx-d1", "172.22.0.3", "fd00:22::3"),
    "b1": ("lnx-d2", "172.23.0.2", "fd00:23::2"), "b2": ("lnx-d2", "172.23.0.3", "fd00:23::3"),
    "c1": ("lnx-d3", "172.24.0.2", "fd00:24::2"),
}
B1, B1_6 = ENDPOINTS["b1"][1], ENDPOINTS["b1"][2]
MAPPINGS = [  # Docker's -p 8086:7000 on a dual-stack endpoint: one mapping per family
    {"bridge": "lnx-d2", "container_ip": B1, "publish": f"8086:{PORT}", "network": "d2"},
    {"bridge": "lnx-d2", "container_ip": B1_6, "publish": f"8086:{PORT}", "network": "d2"},
    {"bridge": "lnx-d2", "container_ip": B1_6, "publish": f"[{ADDR6}]:8087:{PORT}/tcp", "network": "d2"},
]
BACKENDS = {  # lab name: module options
    "iptables-nft": {"firewall_backend": "iptables", "iptables_variant": "iptables-nft"},
    "iptables-legacy": {"firewall_backend": "iptables", "iptables_variant": "iptables-legacy"},
    "nftables": {"firewall_backend": "nftables"},
}


def task(module: str, name: str, options: dict, config: Any = None, state: str = "merged", **extra: Any) -> dict:
    args: dict[str, Any] = {"state": state, **options}
    if config is not None:
        args["config"] = config
    return {"name": name, f"linuxnet.bridge.{module}": args, **extra}


def both(name: str, options: dict, state: str = "overridden", **extra: Any) -> list[dict]:
    return [task("firewall", f"{name} firewall", options, NETWORKS, state, **extra),
            task("port_mapping", f"{name} ports", options, MAPPINGS, state, **extra)]


def run(lab: Lab, *tasks: dict, **kwargs: Any):
    result = run_playbook(lab.inventory_path, playbook(*tasks), **kwargs)
    result.assert_ok()
    failed = [t for t in result.tasks if t.failed]
    assert not failed, f"task {failed[0].task} failed: {failed[0].result}"
    return result


def ipv6_endpoints(lab: Lab) -> None:
    """What the link side will do later: IPv6 gateway addresses on the bridges, endpoint addresses and routes."""
    lines = ["set -e"]
    for net in NETWORKS:
        gateway = net["subnet6"].replace("::/64", "::1/64")
        lines.append(f"sysctl -qw net.ipv6.conf.{net['bridge']}.disable_ipv6=0 net.ipv6.conf.{net['bridge']}.accept_ra=0")
        lines.append(f"ip -6 addr add {gateway} dev {net['bridge']} nodad")
    for ns, (bridge, _v4, v6) in ENDPOINTS.items():
        gateway = next(n["subnet6"] for n in NETWORKS if n["bridge"] == bridge).replace("::/64", "::1")
        lines += [f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0",
                  f"ip -n {ns} -6 addr add {v6}/64 dev eth0 nodad", f"ip -n {ns} -6 route add default via {gateway}"]
    sh(lab, "\n".join(lines))


@pytest.fixture(scope="module", params=list(BACKENDS))
def env(request, tmp_path_factory, real_netns_guard):
    name, options = request.param, BACKENDS[request.param]
    workdir = tmp_path_factory.mktemp(f"v6-{name}")
    lab = Lab.create(workdir / "lab", HOSTS)
    probe = None
    try:
        sh(lab, f"ip -6 addr add {ADDR6}/64 dev ens160 nodad && ip -6 addr add {LINK_LOCAL}/64 dev ens160 nodad"
                " && echo 0 > /proc/sys/net/ipv6/conf/all/forwarding")
        sh(lab, f"ip -6 addr add {OUT_ADDR6}/64 dev ens160 nodad && ip -6 addr add {OUT_LINK_LOCAL}/64 dev ens160 nodad && " + " && ".join(
            f"ip -6 route add {n['subnet6']} via {ADDR6} && ip route add {n['subnet']} via {ADDR}" for n in NETWORKS), host=OUTSIDE)
        make_endpoints(lab, {n["bridge"]: n["subnet"].replace(".0.0/16", ".0.1/16") for n in NETWORKS},
                       {ns: (bridge, v4) for ns, (bridge, v4, _v6) in ENDPOINTS.items()})
        ipv6_endpoints(lab)
        predicted = run(lab, *both("first", options), check=True, diff=True)
        first = run(lab, *both("first", options))
        probe = Probe6(lab, workdir)
        probe.serve(OUTSIDE, None)
        for ns in ENDPOINTS:
            probe.serve(HOST, ns)
        yield {"lab": lab, "probe": probe, "options": options, "name": name, "first": first, "predicted": predicted}
    finally:
        if probe is not None:
            probe.traffic.stop()
        lab.destroy()


def ruleset6(env) -> str:
    """Our IPv6 ruleset in the backend of the lab."""
    if env["name"] == "nftables":
        return sh(env["lab"], "nft list table ip6 linuxnet 2>/dev/null || true").stdout
    return sh(env["lab"], f"{env['name'].replace('iptables', 'ip6tables')}-save").stdout


def test_first_run_check_mode_and_sysctls(env):
    first, predicted = env["first"], env["predicted"]
    assert res(first, "first firewall")["changed"] is True and res(first, "first ports")["changed"] is True
    assert res(predicted, "first firewall")["commands"] == res(first, "first firewall")["commands"], "check mode did not predict"
    commands = res(first, "first firewall")["commands"]
    assert "sysctl -w net.ipv6.conf.all.forwarding=1" in commands, commands  # (bridge-nf-call-ip6tables starts as 1 in a netns)
    if env["name"] == "nftables":
        assert "nft 'add table ip6 linuxnet'" in commands
        assert "type filter hook forward priority filter; policy drop;" in ruleset6(env)
    else:
        assert "ip6tables -t filter -P FORWARD DROP" in commands
        assert ":FORWARD DROP" in ruleset6(env)
    assert sh(env["lab"], "cat /proc/sys/net/ipv6/conf/all/forwarding /proc/sys/net/bridge/bridge-nf-call-ip6tables").stdout.split() == ["1", "1"]
    after = {n["name"]: n for n in res(first, "first firewall")["after"]}
    assert after["d3"]["subnet6"] == "fd00:24::/64" and after["d3"]["masquerade6"] is False and after["d2"]["masquerade6"] is True
    assert len(res(first, "first ports")["after"]) == 3


def test_second_run_writes_nothing_and_gathered_round_trips(env):
    lab, options = env["lab"], env["options"]
    before = ruleset6(env)
    again = run(lab, *both("again", options),
                task("firewall", "gathered", options, state="gathered", register="g"),
                task("firewall", "feed back", options, "{{ g.gathered }}", state="overridden"),
                task("port_mapping", "pm gathered", options, state="gathered", register="p"),
                task("port_mapping", "pm feed back", options, "{{ p.gathered }}", state="overridden"))
    for name in ("again firewall", "again ports", "feed back", "pm feed back"):
        assert res(again, name)["changed"] is False and res(again, name)["commands"] == [], (name, res(again, name)["commands"])
    assert res(again, "gathered")["gathered"] == res(env["first"], "first firewall")["after"]
    gathered = res(again, "pm gathered")["gathered"]
    assert sorted((m["container_ip"], m.get("host_ip", "-"), m["host_port"]) for m in gathered) == sorted(
        [(B1, "-", "8086"), (B1_6, "-", "8086"), (B1_6, ADDR6, "8087")])
    assert counted(ruleset6(env)) == counted(before)


def counted(text: str) -> list[str]:
    return [re.sub(r"\[\d+:\d+\]", "", line) for line in text.splitlines() if not line.startswith("#")]


def test_icc_off_and_isolation_over_ipv6(env):
    probe = env["probe"]
    a2, b1, b2, c1 = (ENDPOINTS[n][2] for n in ("a2", "b1", "b2", "c1"))
    probe.expect(HOST, "a1", {(a2, PORT): "-", (b1, PORT): "-", (c1, PORT): "-"})  # ICC off; other networks
    probe.expect(HOST, "b1", {(b2, PORT): B1_6, (ENDPOINTS["a1"][2], PORT): "-", (c1, PORT): "-"})


def test_nat66_and_routed_ipv6_to_outside(env):
    probe = env["probe"]
    probe.expect(HOST, "b1", {(OUT_ADDR6, PORT): ADDR6})  # NAT66: outside sees the host
    probe.expect(HOST, "a1", {(OUT_ADDR6, PORT): ADDR6})  # ICC off still goes out
    probe.expect(HOST, "c1", {(OUT_ADDR6, PORT): ENDPOINTS["c1"][2]})  # masquerade6 false: routed, its own address


def test_published_ports_on_both_families_and_direct_routing_protection(env):
    probe = env["probe"]
    probe.expect(OUTSIDE, None, {
        (ADDR6, 8086): OUT_ADDR6,  # the IPv6 mapping: DNAT, the client's own address arrives
        (ADDR, 8086): OUT_ADDR,  # the IPv4 mapping of the same host port
        (ADDR6, 8087): OUT_ADDR6,  # published on [2001:db8:ff::128] only, IPv6 only
        (ADDR, 8087): "-",
        (B1_6, PORT): "-",  # direct routing to the published container port: raw DROP
        (ENDPOINTS["b2"][2], PORT): "-",  # ... and to an unpublished one: the per-network DROP
        (ENDPOINTS["c1"][2], PORT): "-",  # routed IPv6 goes out, but nothing unpublished comes in
    })
    probe.expect(HOST, "b2", {(ADDR6, 8086): ENDPOINTS["b2"][2]})  # from another endpoint of the network
    # from a link-local source (to the host's link-local address) nothing is DNATed: the host's own
    # listener on port 8086 answers, while the same port on the global address still reaches b1
    probe.serve(HOST, None, 8086)
    seen = probe.peers(OUTSIDE, None, [(f"{LINK_LOCAL}%ens160", 8086), (ADDR6, 8086)])
    assert seen[0].startswith("fe80:") and seen[1] == OUT_ADDR6, seen
    rules = ruleset6(env)
    if env["name"] == "nftables":
        specs = [spec for line in rules.splitlines() for spec in nft.expand(line.strip())]  # set rules as their rules
        assert f'ip6 daddr {B1_6} iifname != "lnx-d2" tcp dport {PORT} drop' in specs
        assert f"ip6 saddr != fe80::/10 tcp dport 8086 dnat to [{B1_6}]:{PORT}" in specs
    else:
        assert f"-A PREROUTING -d {B1_6}/128 ! -i lnx-d2 -p tcp -m tcp --dport {PORT} -j DROP" in rules
        assert f"-A LINUXNET ! -s fe80::/10 -p tcp -m tcp --dport 8086 -j DNAT --to-destination [{B1_6}]:{PORT}" in rules


def test_ipv4_only_again_removes_the_ipv6_ruleset(env):
    """Last in the module: the networks without subnet6 (and no IPv6 mappings) leave nothing in the IPv6 ruleset."""
    lab, options = env["lab"], env["options"]
    v4_only = [{k: val for k, val in n.items() if k not in ("subnet6", "masquerade6")} for n in NETWORKS]
    result = run(lab, task("port_mapping", "ports", options, MAPPINGS[:1], "overridden"),
                 task("firewall", "fw", options, v4_only, "overridden"),
                 task("firewall", "again", options, v4_only, "overridden"))
    assert res(result, "again")["changed"] is False
    rules = ruleset6(env)
    assert "LINUXNET" not in rules and "lnx-" not in rules and "linuxnet" not in rules, rules
    env["probe"].expect(OUTSIDE, None, {(ADDR, 8086): OUT_ADDR})
