"""Dual-stack networks through the role (issue 14, link side), against a real kernel in a lab host.

A network with ``subnet6`` gives its bridge ``gateway6`` and its endpoints an IPv6 address and an
IPv6 default route; endpoints of IPv4-only networks keep IPv6 off. Proven with ``ping -6``
between namespaces and with what the kernel reports (``ip -j``, ``/proc/sys``).

Run (root): ``.venv/bin/python -m pytest tests/integration/test_dual_stack.py -q``
"""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.helpers import ADDR, HOST, OUT_ADDR, OUTSIDE, REPO
from tests.integration.helpers_links import ipj, sh
from tests.integration.helpers_role import DUAL_STACK_ENDPOINTS as ENDPOINTS
from tests.integration.helpers_role import DUAL_STACK_NETWORKS as NETWORKS
from tests.integration.helpers_role import changed, converge, disable_ipv6, managed_python, ping, site

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")


@pytest.fixture
def lab(lab_factory):
    return lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]})


def addrs6(lab, netns: str | None, ifname: str) -> list[str]:
    """Global IPv6 addresses of ``ifname``, with their flags (``nodad``)."""
    out = ipj(lab, "-6", "addr", "show", "dev", ifname, netns=netns)
    return [f"{a['local']}/{a['prefixlen']}" + (" nodad" if a.get("nodad") else "")
            for e in out for a in e["addr_info"] if a.get("scope") == "global"]


def route6(lab, netns: str) -> list[tuple[str, str]]:
    return [(r.get("gateway"), r.get("dev")) for r in ipj(lab, "-6", "route", "show", "default", netns=netns)]


def sysctl(lab, netns: str | None, key: str) -> str:
    prefix = f"ip netns exec {netns} " if netns else ""
    return sh(lab, f"{prefix}cat /proc/sys/net/ipv6/conf/{key}").stdout.strip()


def test_dual_stack_network_end_to_end(lab, run_playbook):
    first = site(run_playbook, lab, NETWORKS, ENDPOINTS)
    assert changed(first) > 0

    # the bridge: gateway6, IPv6 on, no router advertisements taken
    assert addrs6(lab, None, "br-dual") == ["fd00:20::1/64 nodad"]
    assert sysctl(lab, None, "br-dual/accept_ra") == "0" and sysctl(lab, None, "br-dual/disable_ipv6") == "0"
    # the endpoints: address6 allocated in order, IPv6 default route via gateway6, accept_ra=0
    assert addrs6(lab, "d1", "eth0") == ["fd00:20::2/64 nodad"]
    assert addrs6(lab, "d2", "eth0") == ["fd00:20::3/64 nodad"]
    assert addrs6(lab, "m1", "eth1") == ["fd00:20::4/64 nodad"]
    assert route6(lab, "d1") == [("fd00:20::1", "eth0")]
    assert route6(lab, "m1") == [("fd00:20::1", "eth1")]
    assert [(r.get("gateway"), r.get("dev")) for r in ipj(lab, "-4", "route", "show", "default", netns="m1")] == [
        ("172.21.0.1", "eth0")]
    assert sysctl(lab, "d1", "eth0/accept_ra") == "0" and disable_ipv6(lab, "d1") == "0"

    # real IPv6 traffic on the global addresses: endpoint to endpoint, endpoint to gateway6
    assert ping(lab, "d1", "fd00:20::3", six=True), "d1 -> d2 over IPv6"
    assert ping(lab, "d2", "fd00:20::2", six=True), "d2 -> d1 over IPv6"
    assert ping(lab, "m1", "fd00:20::2", six=True), "m1 (eth1) -> d1 over IPv6"
    assert ping(lab, "d1", "fd00:20::1", six=True), "d1 -> gateway6"
    assert ping(lab, "d1", "172.20.0.3"), "IPv4 still works on the dual-stack network"

    # endpoints and ports of the IPv4-only network keep IPv6 off, as Docker does
    assert disable_ipv6(lab, "v1") == "1" and disable_ipv6(lab, "m1", "eth0") == "1"
    assert not sh(lab, "ip netns exec v1 ip -6 addr show dev eth0").stdout.strip()

    again = site(run_playbook, lab, NETWORKS, ENDPOINTS)
    assert changed(again) == 0 and converge(again)["changed_steps"] == []

    # drift: an address, the IPv6 route and accept_ra changed behind the role's back; check mode
    # blames the link steps and the run does exactly what it predicted
    sh(lab, "ip -n d2 -6 route del default; ip netns exec d1 sysctl -qw net.ipv6.conf.eth0.accept_ra=1;"
            " ip addr del fd00:20::1/64 dev br-dual")
    predicted = converge(site(run_playbook, lab, NETWORKS, ENDPOINTS, check=True))
    assert predicted["changed_steps"] == ["bridge", "veth"], predicted["commands"]
    repaired = converge(site(run_playbook, lab, NETWORKS, ENDPOINTS))
    assert repaired["commands"] == predicted["commands"]
    assert "ip -n d2 -6 route replace default via fd00:20::1" in repaired["commands"]["veth"]
    assert route6(lab, "d2") == [("fd00:20::1", "eth0")] and sysctl(lab, "d1", "eth0/accept_ra") == "0"
    assert ping(lab, "d2", "fd00:20::1", six=True)
    assert converge(site(run_playbook, lab, NETWORKS, ENDPOINTS))["changed_steps"] == []

    # a newcomer listed first takes the next free address; nobody is renumbered; check mode is exact
    grown = [{"name": "d0", "network": "dual"}] + ENDPOINTS
    predicted = converge(site(run_playbook, lab, NETWORKS, grown, check=True))
    assert not sh(lab, "ip netns list").stdout.count("d0")
    applied = converge(site(run_playbook, lab, NETWORKS, grown))
    assert applied["commands"] == predicted["commands"]
    assert addrs6(lab, "d0", "eth0") == ["fd00:20::5/64 nodad"]
    assert [addrs6(lab, n, "eth0") for n in ("d1", "d2")] == [["fd00:20::2/64 nodad"], ["fd00:20::3/64 nodad"]]
    assert addrs6(lab, "m1", "eth1") == ["fd00:20::4/64 nodad"]
    assert ping(lab, "d0", "fd00:20::2", six=True)
    assert changed(site(run_playbook, lab, NETWORKS, grown)) == 0


def test_icc_off_blocks_ipv6_between_endpoints_of_a_dual_stack_network(lab, run_playbook):
    """ICC off on a dual-stack network: IPv6 between its endpoints is dropped (ip6tables), IPv6 to
    the gateway still works; with ICC on the same pair talks."""
    quiet = [{"name": "quiet", "subnet": "172.22.0.0/16", "subnet6": "fd00:22::/64", "icc": False}]
    endpoints = [{"name": "q1", "network": "quiet"}, {"name": "q2", "network": "quiet"}]
    site(run_playbook, lab, quiet, endpoints)
    assert ping(lab, "q1", "fd00:22::1", six=True), "the gateway answers over IPv6"
    assert not ping(lab, "q1", "fd00:22::3", six=True, tries=1), "ICC off: IPv6 between endpoints must be dropped"
    assert not ping(lab, "q1", "172.22.0.3", tries=1), "ICC off: IPv4 between endpoints must be dropped"
    site(run_playbook, lab, [dict(quiet[0], icc=True)], endpoints)
    assert ping(lab, "q1", "fd00:22::3", six=True), "control: ICC on lets the same IPv6 pair talk"


@pytest.mark.parametrize("python", ["3.9", "3.13"])
def test_dual_stack_with_debian_python_without_pyroute2(python, lab_factory, run_playbook):
    """The IPv6 reads and writes (addresses with nodad, the IPv6 default route, the gathers) with the
    Python of Debian 11 and 13 and no pyroute2 (the controller's venv, used above, has one)."""
    lab = lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]}, python_interpreter=str(managed_python(python)))
    site(run_playbook, lab, NETWORKS, ENDPOINTS)
    assert addrs6(lab, "m1", "eth1") == ["fd00:20::4/64 nodad"] and route6(lab, "m1") == [("fd00:20::1", "eth1")]
    assert addrs6(lab, None, "br-dual") == ["fd00:20::1/64 nodad"]
    assert ping(lab, "d1", "fd00:20::3", six=True) and ping(lab, "d2", "fd00:20::1", six=True)
    assert disable_ipv6(lab, "v1") == "1"
    assert changed(site(run_playbook, lab, NETWORKS, ENDPOINTS)) == 0
    sh(lab, "ip -n d2 -6 route del default; ip -n d1 addr del fd00:20::2/64 dev eth0")
    repaired = converge(site(run_playbook, lab, NETWORKS, ENDPOINTS))
    assert repaired["commands"]["veth"] == ["ip -n d1 addr add fd00:20::2/64 dev eth0 nodad",
                                            "ip -n d2 -6 route replace default via fd00:20::1"]
    assert ping(lab, "d1", "fd00:20::3", six=True)


def test_subnet6_overlapping_a_host_ipv6_route_is_refused_before_anything_changes(lab, run_playbook):
    """A subnet6 the host already routes elsewhere (a LAN or VPN prefix) would take its traffic:
    refused naming the field, the host unchanged; ``allow_overlap: true`` says it is meant."""
    sh(lab, "ip -6 addr add 2001:db8:55::80/64 dev ens160 nodad; ip -6 route add 2001:db8:77::/48 via 2001:db8:55::1")
    before = sh(lab, "ip -j link show; ip -br addr show; ip netns list").stdout
    for subnet6, clash in (("2001:db8:55::/64", "route 2001:db8:55::/64 dev ens160"),
                           ("2001:db8:77:1::/64", "route 2001:db8:77::/48 dev ens160")):
        result = site(run_playbook, lab, [{"name": "v6", "subnet": "172.23.0.0/16", "subnet6": subnet6}],
                      [{"name": "o1", "network": "v6"}], ok=False)
        messages = json.dumps([t.result.get("msg") for t in result.tasks if t.failed])
        gateway6 = subnet6.replace("::/64", "::1/64")
        assert f"config[0] (name=br-v6).addresses[1]: {gateway6} overlaps the host's {clash}" in messages, messages
        assert sh(lab, "ip -j link show; ip -br addr show; ip netns list").stdout == before
    allowed = site(run_playbook, lab, [{"name": "v6", "subnet": "172.23.0.0/16", "subnet6": "2001:db8:77:1::/64",
                                        "allow_overlap": True}], [{"name": "o1", "network": "v6"}])
    assert changed(allowed) > 0 and ping(lab, "o1", "2001:db8:77:1::1", six=True)


def test_verify_checks_ipv6_pairs_with_real_packets(lab_factory, run_playbook):
    """verify.yml on two dual-stack networks (one with ICC off) and an IPv4-only one: the IPv6
    pairs (ICC, ICC off, isolation) are sent as real pings and all match Docker's model."""
    networks = NETWORKS + [{"name": "quiet", "subnet": "172.22.0.0/16", "subnet6": "fd00:22::/64", "icc": False}]
    endpoints = ENDPOINTS + [{"name": "q1", "network": "quiet"}, {"name": "q2", "network": "quiet"}]
    lab = lab_factory({HOST: ADDR, OUTSIDE: OUT_ADDR}, groups={"linuxnet_hosts": [HOST], "linuxnet_probes": [OUTSIDE]})
    site(run_playbook, lab, networks, endpoints)
    topology = {"linuxnet_install_packages": False, "linuxnet_networks": networks, "linuxnet_endpoints": endpoints}
    result = run_playbook(lab.inventory_path, REPO / "playbooks" / "verify.yml", extra_vars=topology)
    results = result.task("Compare expected with observed", HOST).result["ansible_facts"]["__results"]
    six = {(r["source"], r["target"]): (r["expect"], bool(r["observed"])) for r in results if ":" in r["address"]}
    assert six[("d1", "d2")] == (True, True) and six[("m1", "d1")] == (True, True)
    assert six[("q1", "q2")] == (False, False) and six[("d1", "q1")] == (False, False) and six[("q1", "d1")] == (False, False)
    assert ("v1", "d1") not in six  # v1 has no IPv6
    assert result.rc == 0, result.stdout[-3000:]


def test_published_ports_of_a_dual_stack_endpoint_answer_over_both_families(lab_factory, run_playbook, tmp_path):
    """Docker 27+'s publishing: ``-p 8080:80`` on a dual-stack endpoint answers an outside lab host
    over IPv4 and IPv6, ``[addr6]:`` over IPv6 only, an IPv4 host address over IPv4 only, ``sources``
    apply per family, an IPv4-only endpoint stays IPv4-only; the second run changes nothing."""
    from tests.integration.helpers import PORT
    from tests.integration.helpers import ADDR6, OUT_ADDR6, Probe6

    networks = NETWORKS[:2]
    endpoints = [
        {"name": "web", "network": "dual", "ports": [
            f"8080:{PORT}", f"[{ADDR6}]:8081:{PORT}", f"{ADDR}:8082:{PORT}",
            {"publish": f"8084:{PORT}", "sources": [OUT_ADDR6, "192.0.2.0/24"]}]},  # IPv6 from outside only
        {"name": "v1", "network": "v4only", "ports": [f"8083:{PORT}"]},
    ]
    lab = lab_factory({HOST: ADDR, OUTSIDE: OUT_ADDR}, groups={"linuxnet_hosts": [HOST]})
    sh(lab, f"ip -6 addr add {ADDR6}/64 dev ens160 nodad")
    lab.run(OUTSIDE, ["ip", "-6", "addr", "add", f"{OUT_ADDR6}/64", "dev", "ens160", "nodad"])
    first = site(run_playbook, lab, networks, endpoints)
    assert changed(first) > 0
    # A fresh endpoint's first inbound IPv6 SYN was seen to miss the probe's 1 s timeout (neighbour
    # discovery on br-dual; a real client's SYN retry gets through): resolve the neighbours first.
    assert ping(lab, "web", "fd00:20::1", six=True) and lab.run(OUTSIDE, ["ping", "-6", "-c", "1", "-W", "2", ADDR6])
    probe = Probe6(lab, tmp_path)
    try:
        probe.serve(HOST, "web")
        probe.serve(HOST, "v1")
        probe.expect(OUTSIDE, None, {
            (ADDR, 8080): OUT_ADDR, (ADDR6, 8080): OUT_ADDR6,  # no host address: both families, DNAT keeps the client
            (ADDR6, 8081): OUT_ADDR6, (ADDR, 8081): "-",  # an IPv6 host address: IPv6 only
            (ADDR, 8082): OUT_ADDR, (ADDR6, 8082): "-",  # an IPv4 host address: IPv4 only
            (ADDR6, 8084): OUT_ADDR6, (ADDR, 8084): "-",  # sources split: the IPv4 list leaves out the outside host
            (ADDR, 8083): OUT_ADDR, (ADDR6, 8083): "-",  # the IPv4-only endpoint publishes IPv4 only
        })
        again = site(run_playbook, lab, networks, endpoints)
        assert changed(again) == 0 and converge(again)["changed_steps"] == []
        probe.expect(OUTSIDE, None, {(ADDR, 8080): OUT_ADDR, (ADDR6, 8080): OUT_ADDR6})
    finally:
        probe.traffic.stop()
