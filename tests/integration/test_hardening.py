"""Hardening of the link modules and the role (issue 13), against a real kernel inside lab hosts.

Each test makes what an attacker, a crash or a careless inventory would make, and asserts the
outcome with real packets or with what the kernel reports afterwards. The attack table in
``tests/README.md`` points at these tests.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_hardening.py -q``
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest

from tests.integration.helpers import ADDR, HOST, REPO, res, run, sh
from tests.integration.helpers_links import apply_tasks, task
from tests.integration.helpers_links import snapshot as link_snapshot
from tests.integration.helpers_role import changed, disable_ipv6, ping

SITE = REPO / "playbooks" / "site.yml"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")


@pytest.fixture
def lab(lab_factory):
    return lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]})


def site(run_playbook, lab, networks=None, endpoints=None, ok: bool = True, **extra: Any):
    """playbooks/site.yml on the lab host with the topology as extra vars."""
    extra_vars = {"linuxnet_install_packages": False, **extra}
    if networks is not None:
        extra_vars["linuxnet_networks"] = networks
    if endpoints is not None:
        extra_vars["linuxnet_endpoints"] = endpoints
    result = run_playbook(lab.inventory_path, SITE, extra_vars=extra_vars)
    if ok:
        failed = [t for t in result.tasks if t.failed]
        assert not failed, f"task {failed[0].task} failed: {json.dumps(failed[0].result, indent=1)[:3000]}"
        result.assert_ok()
    return result


def link_local(mac: str) -> str:
    """The EUI-64 link-local address the kernel gives an interface with ``mac``."""
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 2
    groups = [b[0] << 8 | b[1], b[2] << 8 | 0xFF, 0xFE << 8 | b[3], b[4] << 8 | b[5]]
    return "fe80::" + ":".join(f"{g:x}" for g in groups)


# ------------------------------------------------------------------------------ ICC over IPv6

QUIET = [{"name": "quiet", "subnet": "172.19.0.0/16", "icc": False}]
QUIET_EPS = [{"name": "q1", "network": "quiet"}, {"name": "q2", "network": "quiet"}]


def test_icc_off_cannot_be_bypassed_over_ipv6_link_local(lab, run_playbook):
    """Attack: ``ping -6 fe80::...%eth0`` between two endpoints of an ``icc: false`` network.

    The ICC DROP is an IPv4 rule; Docker closes the gap by turning IPv6 off on endpoints of
    networks without IPv6. The control step turns it back on by hand: the bypass is real, and
    the next run repairs it (one veth change), then changes nothing.
    """
    site(run_playbook, lab, QUIET, QUIET_EPS)
    q2_ll = link_local("02:42:ac:13:00:03") + "%eth0"  # q2 = 172.19.0.3
    assert disable_ipv6(lab, "q1") == disable_ipv6(lab, "q2") == "1"
    assert not ping(lab, "q1", "172.19.0.3"), "ICC off: IPv4 between endpoints must be dropped"
    assert ping(lab, "q1", "172.19.0.1"), "the endpoint's own IPv4 must still work (gateway)"
    assert not ping(lab, "q1", q2_ll, six=True, tries=1), "ICC off bypassed over IPv6 link-local"
    assert not sh(lab, "ip netns exec q1 ip -6 addr show dev eth0").stdout.strip()

    # control: IPv6 back on by hand (drift) -> the bypass works -> the next run repairs it
    sh(lab, "for n in q1 q2; do ip netns exec $n sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0; done")
    assert ping(lab, "q1", q2_ll, six=True, tries=10), "control: link-local should pass the IPv4-only ICC rule"
    repaired = site(run_playbook, lab, QUIET, QUIET_EPS)
    assert changed(repaired) > 0
    assert disable_ipv6(lab, "q1") == disable_ipv6(lab, "q2") == "1"
    assert not ping(lab, "q1", q2_ll, six=True, tries=1)
    assert ping(lab, "q1", "172.19.0.1")
    again = site(run_playbook, lab, QUIET, QUIET_EPS)
    assert changed(again) == 0


def test_veth_module_ipv6_option_and_gathered(lab, run_playbook):
    """The veth module: IPv6 off by default (before the peer is up), ``ipv6: true`` turns it on, gathered reports it."""
    ns = [{"name": "s1"}, {"name": "s2"}]
    br = [{"name": "brs", "addresses": ["10.77.0.1/24"]}]
    veth = [{"name": "vs1", "peer_netns": "s1", "master": "brs", "addresses": ["10.77.0.2/24"], "mac": "docker"},
            {"name": "vs2", "peer_netns": "s2", "master": "brs", "addresses": ["10.77.0.3/24"], "mac": "docker", "ipv6": True}]
    created = run(run_playbook, lab, *apply_tasks(ns, br, veth))
    cmds = res(created, "veth")["commands"]
    off = "ip netns exec s1 sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1"
    assert cmds.index(off) < cmds.index("ip -n s1 link set eth0 up")
    # on: accept_ra=0 first (no router advertisement of a neighbour is ever taken), also before up
    on = "ip netns exec s2 sysctl -qw net.ipv6.conf.eth0.accept_ra=0 net.ipv6.conf.eth0.disable_ipv6=0"
    assert cmds.index(on) < cmds.index("ip -n s2 link set eth0 up")
    assert disable_ipv6(lab, "s1") == "1" and disable_ipv6(lab, "s2") == "0"
    result = run(run_playbook, lab, *apply_tasks(ns, br, veth), task("gather", "veth", "gathered"))
    assert res(result, "veth")["commands"] == []
    gathered = {i["name"]: i.get("ipv6") for i in res(result, "gather")["gathered"]}
    assert gathered == {"vs1": False, "vs2": True}


# ------------------------------------------------------------------------------ kill -9 between two requests

HALF_MADE = """
import os, sys
from ansible_collections.linuxnet.bridge.plugins.module_utils import _links, _ownership
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import Netlink
nl = Netlink()
# The first request of each creation, as the product makes it; the process then dies (os._exit)
# where a kill -9 would stop it: before the second request (the alias, the namespace).
for op in (_links.op_bridge_add("brk", None), _links.op_veth_add("vk", "eth0", "nk", None)):
    _links.LINK_OPERATIONS[op.action](nl, op)
_ownership.mark_namespace("nk2")                 # marked, killed before the create
_ownership.mark_namespace("nk3")                 # marked, killed inside attach: a mountpoint, no mount
open("/run/netns/nk3", "w").close()
os._exit(0)
"""
KILLED_NS = [{"name": "nk2"}, {"name": "nk3"}]  # nk, the pair's, is made by hand: foreign, never configured
KILLED_BR = [{"name": "brk", "addresses": ["10.78.0.1/24"]}]
KILLED_VETH = [{"name": "vk", "peer_netns": "nk", "master": "brk", "addresses": ["10.78.0.2/24"], "mac": "docker"}]


def test_a_run_killed_between_create_and_mark_strands_nothing(lab, run_playbook):
    """Attack: kill -9 between ``link add`` and ``link set alias`` (the kernel ignores IFLA_IFALIAS in
    the RTM_NEWLINK that creates a link, so they are two requests), or between the namespace's mark
    and its creation. Before: every later run failed with "a veth of that name exists that
    linuxnet.bridge did not create", and a bridge made so was never the collection's again. Now:
    the next run adopts what it half made, converges, and a later ``deleted`` removes all of it."""
    sh(lab, "ip netns add nk")
    lab.run(HOST, ["env", f"PYTHONPATH={REPO / '.collections'}", sys.executable, "-c", HALF_MADE])
    assert not json.loads(lab.run(HOST, ["ip", "-j", "-d", "link", "show", "vk"]).stdout)[0].get("ifalias")
    notes = sh(lab, "ls /run/linuxnet/creating").stdout.split()
    assert notes == ["brk", "vk"], notes

    result = run(run_playbook, lab, *apply_tasks(KILLED_NS, KILLED_BR, KILLED_VETH))
    cmds = {m: res(result, m)["commands"] for m in ("netns", "bridge", "veth")}
    assert cmds["bridge"][0] == "ip link set brk alias 'linuxnet.bridge'", cmds
    assert cmds["veth"][0] == "ip link set vk alias 'linuxnet.bridge veth peer=eth0 netns=nk'", cmds
    assert not [c for c in cmds["veth"] + cmds["bridge"] if "link del" in c or "link add" in c], cmds
    assert cmds["netns"][:4] == ["ip netns add nk2", "ip -n nk2 link set lo up", "ip netns add nk3", "ip -n nk3 link set lo up"]
    assert sh(lab, "ls /run/linuxnet/creating").stdout.split() == []
    assert sh(lab, "ip netns exec nk ping -c1 -W2 10.78.0.1", check=False).returncode == 0

    again = run(run_playbook, lab, *apply_tasks(KILLED_NS, KILLED_BR, KILLED_VETH))
    assert {m: res(again, m)["commands"] for m in ("netns", "bridge", "veth")} == {"netns": [], "bridge": [], "veth": []}
    gone = run(run_playbook, lab, task("veth", "veth", "deleted"), task("bridge", "bridge", "deleted"),
               task("netns", "netns", "deleted", [{"name": "nk2"}, {"name": "nk3"}]))
    assert res(gone, "veth")["commands"] == ["ip link del vk"]
    assert res(gone, "bridge")["commands"] == ["ip link del brk"]
    assert [n["name"] for n in json.loads(sh(lab, "ip -j netns list").stdout)] == ["nk"]  # made by hand above: not the collection's


# ------------------------------------------------------------------------------ changing runs

TWO_NETS = [{"name": "front", "subnet": "172.21.0.0/16"}, {"name": "back", "subnet": "172.22.0.0/16"}]


def endpoint_view(lab, netns: str) -> dict[str, Any]:
    """Interface -> IPv4 addresses, plus the default gateway, of one endpoint."""
    addrs = {e["ifname"]: [f"{a['local']}/{a['prefixlen']}" for a in e.get("addr_info", [])]
             for e in json.loads(sh(lab, f"ip -n {netns} -j -4 addr show").stdout) if e["ifname"] != "lo"}
    routes = json.loads(sh(lab, f"ip -n {netns} -j -4 route show default").stdout)
    return {"addrs": addrs, "gateway": [r.get("gateway") for r in routes]}


def test_first_network_of_an_endpoint_changes(lab, run_playbook):
    """Attack: eth0 moves to another network (``networks: [front, back]`` -> ``[back, front]``): the
    new eth0 must not be created while the old one still holds the name ("File exists")."""
    site(run_playbook, lab, TWO_NETS, [{"name": "m1", "networks": ["front", "back"]}])
    assert endpoint_view(lab, "m1") == {"addrs": {"eth0": ["172.21.0.2/16"], "eth1": ["172.22.0.2/16"]}, "gateway": ["172.21.0.1"]}
    moved = site(run_playbook, lab, TWO_NETS, [{"name": "m1", "networks": ["back", "front"]}])
    assert changed(moved) > 0
    assert endpoint_view(lab, "m1") == {"addrs": {"eth0": ["172.22.0.2/16"], "eth1": ["172.21.0.2/16"]}, "gateway": ["172.22.0.1"]}
    assert ping(lab, "m1", "172.22.0.1") and ping(lab, "m1", "172.21.0.1")
    assert changed(site(run_playbook, lab, TWO_NETS, [{"name": "m1", "networks": ["back", "front"]}])) == 0


def test_a_network_is_renamed(lab, run_playbook):
    """Attack: the same subnet under a new name (new bridge br-NEW, new veth names, same eth0)."""
    site(run_playbook, lab, [{"name": "old", "subnet": "172.23.0.0/16"}], [{"name": "r1", "network": "old"}, {"name": "r2", "network": "old"}])
    renamed_nets = [{"name": "renamed", "subnet": "172.23.0.0/16"}]
    renamed_eps = [{"name": "r1", "network": "renamed"}, {"name": "r2", "network": "renamed"}]
    assert changed(site(run_playbook, lab, renamed_nets, renamed_eps)) > 0
    links = {e["ifname"] for e in json.loads(sh(lab, "ip -j link show").stdout)}
    assert "br-renamed" in links and "br-old" not in links
    assert ping(lab, "r1", "172.23.0.3") and ping(lab, "r1", "172.23.0.1")
    assert changed(site(run_playbook, lab, renamed_nets, renamed_eps)) == 0


def test_two_runs_at_the_same_instant(lab, run_playbook):
    """Attack: two role runs started together on one host. Both succeed; a third changes nothing."""
    import threading

    eps = [{"name": f"t{i}", "networks": ["front", "back"] if i % 2 else ["front"]} for i in range(6)]
    results: list[Any] = [None, None]

    def one(i: int) -> None:
        results[i] = site(run_playbook, lab, TWO_NETS, eps, ok=False)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        failed = [t for t in r.tasks if t.failed]
        assert not failed and r.rc == 0, f"task {failed[0].task if failed else '?'} failed: " + (
            json.dumps(failed[0].result, indent=1)[:3000] if failed else r.stdout[-3000:])
    assert changed(site(run_playbook, lab, TWO_NETS, eps)) == 0
    assert ping(lab, "t1", "172.21.0.2") and ping(lab, "t1", "172.22.0.1")


# ------------------------------------------------------------------------------ kernel-refused values

def test_kernel_refusal_midway_says_what_was_applied_and_the_next_run_goes_on(lab, run_playbook):
    """Attack: values only the kernel can judge. Refused by validation where it can (all-zero MAC,
    names the kernel reserves, an off-link gateway next to its addresses: nothing changes); else the
    kernel refuses midway (a gateway whose subnet no address of the namespace has, when the item
    gives none): the error names the refused command and what was applied before it, and the
    next run plans only what is still missing."""
    sh(lab, "ip netns add nsa && ip netns add nsb && ip link add bra type bridge && ip addr add 10.98.0.1/24 dev bra && ip link set bra up")
    before = link_snapshot(lab)
    refused = run(run_playbook, lab, *[dict(t, ignore_errors=True) for t in (
        task("zero mac", "veth", "merged", [{"name": "vz", "peer_netns": "nsa", "mac": "00:00:00:00:00:00"}]),
        task("reserved", "bridge", "merged", [{"name": "all"}]),
        task("off-link", "veth", "merged", [{"name": "vo", "peer_netns": "nsa", "addresses": ["10.98.0.9/24"], "gateway": "10.97.0.1"}]),
    )], ok=False)
    assert res(refused, "zero mac")["msg"].startswith("config[0] (name=vz).mac: '00:00:00:00:00:00' is the all-zero MAC")
    assert res(refused, "reserved")["msg"].startswith("config[0] (name=all).name: interface name 'all' is reserved")
    assert res(refused, "off-link")["msg"].startswith("config[0] (name=vo).gateway: 10.97.0.1 is in no subnet")
    assert link_snapshot(lab) == before

    pairs = [{"name": "va", "peer_netns": "nsa", "master": "bra", "addresses": ["10.98.0.2/24"], "gateway": "10.98.0.1"},
             {"name": "vb", "peer_netns": "nsb", "master": "bra", "gateway": "10.99.0.1"}]
    first = run(run_playbook, lab, dict(task("veth", "veth", "merged", pairs), ignore_errors=True), ok=False)
    msg = res(first, "veth")["msg"]
    assert msg.startswith("ip -n nsb route replace default via 10.99.0.1:"), msg
    assert "operations were applied before it, the last: 'ip -n nsb link set eth0 up'; the next run goes on from there" in msg, msg
    assert sh(lab, "ip netns exec nsa ping -c1 -W2 10.98.0.1", check=False).returncode == 0  # va is whole
    second = run(run_playbook, lab, dict(task("veth", "veth", "merged", pairs), ignore_errors=True), ok=False)
    assert res(second, "veth")["commands"] == ["ip -n nsb route replace default via 10.99.0.1"]
    assert "nothing was applied: it was the first of 1 operations" in res(second, "veth")["msg"]
    pairs[1].update(addresses=["10.98.0.3/24"], gateway="10.98.0.1")
    fixed = run(run_playbook, lab, task("veth", "veth", "merged", pairs))
    assert res(fixed, "veth")["commands"] == ["ip -n nsb addr add 10.98.0.3/24 dev eth0", "ip -n nsb route replace default via 10.98.0.1"]
    assert sh(lab, "ip netns exec nsb ping -c1 -W2 10.98.0.2", check=False).returncode == 0
    assert res(run(run_playbook, lab, task("veth", "veth", "merged", pairs)), "veth")["commands"] == []


# ------------------------------------------------------------------------------ subnets over the host's own

def test_subnet_overlapping_a_host_route_or_address_is_refused_unless_allowed(lab, run_playbook):
    """Attack: a network on the uplink LAN (172.16.211.0/24 on ens160) or on a subnet the host routes
    elsewhere (10.55.0.0/16 via the LAN): the bridge would take that traffic. Refused before anything
    changes, naming the field; ``allow_overlap: true`` says it is meant."""
    sh(lab, "ip route add 10.55.0.0/16 via 172.16.211.1")
    before = link_snapshot(lab)
    lan = site(run_playbook, lab, [{"name": "lan", "subnet": "172.16.0.0/16"}], [{"name": "o1", "network": "lan"}], ok=False)
    routed = site(run_playbook, lab, [{"name": "vpn", "subnet": "10.55.3.0/24"}], [{"name": "o1", "network": "vpn"}], ok=False)
    messages = [json.dumps([t.result.get("msg") for t in r.tasks if t.failed]) for r in (lan, routed)]
    assert "172.16.0.1/16 overlaps the host's route 172.16.211.0/24 dev ens160" in messages[0], messages[0]
    assert "config[0] (name=br-lan).addresses[0]" in messages[0], messages[0]
    assert "10.55.3.1/24 overlaps the host's route 10.55.0.0/16 dev ens160" in messages[1], messages[1]
    assert "allow_overlap: true" in messages[1]
    assert link_snapshot(lab) == before, "a refused network changed the host"

    allowed = site(run_playbook, lab, [{"name": "vpn", "subnet": "10.55.3.0/24", "allow_overlap": True}], [{"name": "o1", "network": "vpn"}])
    assert changed(allowed) > 0 and ping(lab, "o1", "10.55.3.1")
    # the module alone: the same check, the same switch
    result = run(run_playbook, lab, dict(task("lan", "bridge", "merged", [{"name": "brx", "addresses": ["172.16.211.77/24"]}]), ignore_errors=True),
                 task("allowed", "bridge", "merged", [{"name": "bry", "addresses": ["172.16.211.78/24"], "allow_overlap": True}]), ok=False)
    assert res(result, "lan")["msg"].startswith("config[0] (name=brx).addresses[0]: 172.16.211.77/24 overlaps the host's"), res(result, "lan")
    assert res(result, "allowed")["changed"] is True
