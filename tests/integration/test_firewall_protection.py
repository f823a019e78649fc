"""Isolation that holds for every packet (issue 13): gateway_mode, direct routing, published ports
from another network, and protection that survives a foreign flush, with real IPv4 and IPv6 traffic
in lab hosts, on each firewall backend (``helpers.BACKENDS``: iptables-nft, iptables-legacy, nftables;
one lab per backend, shared by its tests).

``outside`` (172.16.211.1, 2001:db8:ff::1) plays the LAN host of Docker's ``TestDirectRoutingOpenPorts``:
it routes every endpoint subnet (both families) via ``linuxnet1`` (172.16.211.128, 2001:db8:ff::128).
``linuxnet1`` starts with IPv4 and IPv6 forwarding on, so the collection never sets a FORWARD policy:
it stays ACCEPT (iptables, ip6tables; our nft forward chains accept), the worst case; everything
closed here is closed by the collection's rules alone. Dual-stack networks (linuxnet.bridge.firewall)
and published ports (linuxnet.bridge.port_mapping, one mapping per family as Docker 27+ makes for
``-p`` on a dual-stack endpoint); the listeners are the product's dual-stack prober:

* ``prot`` lnx-prot 10.51.0.0/24 + fd00:51::/64, gateway_mode nat (the default): p1 10.51.0.2 /
  fd00:51::2, port 7000 published as 8000 (tcp) and 8000/udp, port 7001 not published;
* ``open`` lnx-open 10.52.0.0/24 + fd00:52::/64, gateway_mode nat-unprotected: o1, 7000 published as 8001;
* ``other`` lnx-oth 10.53.0.0/24 + fd00:53::/64: x1, a client on another network.

Attack table, for both families (input -> expected, observed by the tests below):

====================================================  ===============================  ==========
outside -> p1:7000 (published, by address)             dropped (raw PREROUTING)         test_direct_routing_matrix
outside -> p1:7001 (unpublished)                       dropped (per-network DROP)       test_direct_routing_matrix
outside -> o1:7000/7001 (nat-unprotected)              reached (Docker <= 27 behaviour) test_direct_routing_matrix
x1 -> host address:8000 (published, other network)     reached (moby#49509)             test_published_port_from_another_network
x1 -> p1:7000 (direct, other network)                  dropped (isolation)              test_published_port_from_another_network
nft flush ruleset / ip(6)tables -F, then a re-run      closed again, <P>-USER whole     test_foreign_flush_then_rerun
====================================================  ===============================  ==========

Run (root): ``.venv/bin/python -m pytest tests/integration/test_firewall_protection.py -q``
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from tests.integration import helpers
from tests.integration.helpers import ADDR, HOST, OUT_ADDR, OUTSIDE, Traffic, fw_task, res, ruleset, sh
from tests.lab.core import Lab
from tests.lab.playbook import run_playbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

ADDR6, OUT_ADDR6 = "2001:db8:ff::128", "2001:db8:ff::1"
P1, O1, X1 = "10.51.0.2", "10.52.0.2", "10.53.0.2"
P1_6, O1_6, X1_6 = "fd00:51::2", "fd00:52::2", "fd00:53::2"
NETWORKS = [
    {"name": "prot", "bridge": "lnx-prot", "subnet": "10.51.0.0/24", "subnet6": "fd00:51::/64"},
    {"name": "open", "bridge": "lnx-open", "subnet": "10.52.0.0/24", "subnet6": "fd00:52::/64", "gateway_mode": "nat-unprotected"},
    {"name": "other", "bridge": "lnx-oth", "subnet": "10.53.0.0/24", "subnet6": "fd00:53::/64"},
]
ENDPOINTS = {"p1": ("lnx-prot", P1), "o1": ("lnx-open", O1), "x1": ("lnx-oth", X1)}
ENDPOINTS6 = {"p1": ("lnx-prot", P1_6), "o1": ("lnx-open", O1_6), "x1": ("lnx-oth", X1_6)}
MAPPINGS = [
    {"bridge": "lnx-prot", "container_ip": P1, "publish": "8000:7000"},
    {"bridge": "lnx-prot", "container_ip": P1, "publish": "8000:7000/udp"},
    {"bridge": "lnx-open", "container_ip": O1, "publish": "8001:7000"},
    {"bridge": "lnx-prot", "container_ip": P1_6, "publish": "8000:7000"},
    {"bridge": "lnx-prot", "container_ip": P1_6, "publish": "8000:7000/udp"},
    {"bridge": "lnx-open", "container_ip": O1_6, "publish": "8001:7000"},
]


def _flush(*tools: str) -> str:
    return " && ".join(f"{t} -F && {t} -t nat -F && {t} -t raw -F" for t in tools)


#: The foreign flushes that empty what a backend wrote (a firewall reload, an admin's ``-F``).
FLUSHES = {
    "iptables-nft": ["nft flush ruleset", _flush("iptables-nft", "ip6tables-nft")],
    "iptables-legacy": [_flush("iptables-legacy", "ip6tables-legacy")],
    "nftables": ["nft flush ruleset"],
}


def pm_task(name: str, config: Any = None, state: str = "overridden", options: dict | None = None, **extra: Any) -> dict:
    args: dict[str, Any] = {"state": state, **(options or {})}
    if config is not None:
        args["config"] = config
    return {"name": name, "linuxnet.bridge.port_mapping": args, **extra}


def converge_tasks(backend: str, networks: list[dict] | None = None, **extra: Any) -> list[dict]:
    networks = NETWORKS if networks is None else networks
    return [fw_task("firewall", networks, state="overridden", backend=backend, **extra),
            pm_task("ports", MAPPINGS, options=helpers.BACKENDS[backend], **extra)]


def run(lab: Lab, *tasks: dict, **kwargs: Any):
    return helpers.run(run_playbook, lab, *tasks, **kwargs)


def rules(env: dict) -> dict[int, list[str]]:
    """Our ruleset per family in the backend's own words, without counters (compared across runs)."""
    out = {}
    for family in (4, 6):
        text = ruleset(env["lab"], env["backend"], family)
        text = re.sub(r"\[\d+:\d+\]|counter packets \d+ bytes \d+", "", text)
        out[family] = sorted(line.rstrip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return out


@pytest.fixture(scope="module", params=list(helpers.BACKENDS))
def env(request, tmp_path_factory, real_netns_guard):
    backend = request.param
    workdir = tmp_path_factory.mktemp(f"protect-{backend}")
    lab = Lab.create(workdir / "lab", helpers.HOSTS)
    traffic = None
    try:
        sh(lab, f"ip -6 addr add {ADDR6}/64 dev ens160 nodad"
                " && echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding")
        sh(lab, f"ip -6 addr add {OUT_ADDR6}/64 dev ens160 nodad && " + " && ".join(
            f"ip route add {n['subnet']} via {ADDR} && ip -6 route add {n['subnet6']} via {ADDR6}" for n in NETWORKS), host=OUTSIDE)
        helpers.make_endpoints(lab, {n["bridge"]: n["subnet"].replace(".0/24", ".1/24") for n in NETWORKS}, ENDPOINTS)
        helpers.add_ipv6(lab, {n["bridge"]: n["subnet6"].replace("::/64", "::1/64") for n in NETWORKS}, ENDPOINTS6)
        run(lab, *converge_tasks(backend))
        traffic = Traffic(lab, workdir)
        for ns in ("p1", "o1"):
            traffic.start(HOST, ns, tcp=(7000, 7001), udp=(7000, 7001))  # dual-stack listeners
        yield {"lab": lab, "traffic": traffic, "backend": backend}
    finally:
        if traffic is not None:
            traffic.stop()
        lab.destroy()


def closed_from_outside(traffic: Traffic) -> None:
    """TestDirectRoutingOpenPorts, both families: nat protects published and unpublished ports;
    nat-unprotected does not."""
    expected: dict[tuple, Any] = {}
    for p1, o1, addr, out in ((P1, O1, ADDR, OUT_ADDR), (P1_6, O1_6, ADDR6, OUT_ADDR6)):
        expected.update({
            (None, "tcp", p1, 7000): False,  # published, but only through the DNAT
            (None, "udp", p1, 7000): False,
            (None, "tcp", p1, 7001): False,  # unpublished
            (None, "udp", p1, 7001): False,
            (None, "tcp", addr, 8000): f"{out} 7000",  # published: reached, client seen as itself
            (None, "udp", addr, 8000): f"{out} 7000",
            (None, "tcp", o1, 7000): f"{out} 7000",  # nat-unprotected: what Docker <= 27 did
            (None, "tcp", o1, 7001): f"{out} 7001",
            (None, "tcp", addr, 8001): f"{out} 7000",
        })
    traffic.expect(OUTSIDE, expected)


def forward_policies(env: dict) -> dict[int, str]:
    """The policy of the FORWARD hook our rules sit in, per family (iptables: the built-in chain;
    nftables: our base chain at the forward hook)."""
    out = {}
    for family in (4, 6):
        text = ruleset(env["lab"], env["backend"], family)
        if env["backend"] == "nftables":
            found = re.findall(r"hook forward priority \S+; policy (\w+);", text)
        else:
            found = re.findall(r"^:FORWARD (\w+)", text, re.M)
        out[family] = ",".join(sorted(set(found)))
    return out


def open_policies(backend: str) -> dict[int, str]:
    return {4: "accept", 6: "accept"} if backend == "nftables" else {4: "ACCEPT", 6: "ACCEPT"}


def test_direct_routing_matrix(env):
    lab, backend = env["lab"], env["backend"]
    assert forward_policies(env) == open_policies(backend), "the policy must stay ACCEPT: the rules alone protect"
    if backend != "nftables":  # Docker's rules, in both families (the nftables ones are proven by the packets)
        live = {family: ruleset(lab, backend, family).splitlines() for family in (4, 6)}
        for family, p1, length in ((4, P1, 32), (6, P1_6, 128)):
            assert "-A FORWARD ! -i lnx-prot -o lnx-prot -j DROP" in live[family], family
            assert "-A FORWARD ! -i lnx-open -o lnx-open -j DROP" not in live[family], family
            assert f"-A PREROUTING -d {p1}/{length} ! -i lnx-prot -p tcp -m tcp --dport 7000 -j DROP" in live[family], family
            assert not [line for line in live[family] if line.startswith("-A PREROUTING -d 10.52.") or line.startswith("-A PREROUTING -d fd00:52:")]
    closed_from_outside(env["traffic"])


def test_published_port_from_another_network(env):
    """moby#49509: x1 (network other) reaches p1's and o1's published ports through the host's address,
    never their addresses directly (IPv6: NAT66 on the way out of lnx-oth, as IPv4's masquerade)."""
    expected: dict[tuple, Any] = {}
    for p1, o1, addr, gw_prot, gw_open in ((P1, O1, ADDR, "10.51.0.1", "10.52.0.1"), (P1_6, O1_6, ADDR6, "fd00:51::1", "fd00:52::1")):
        expected.update({
            ("x1", "tcp", addr, 8000): f"{gw_prot} 7000",  # masqueraded on the way out of lnx-oth
            ("x1", "udp", addr, 8000): f"{gw_prot} 7000",
            ("x1", "tcp", addr, 8001): f"{gw_open} 7000",
            ("x1", "tcp", p1, 7000): False,
            ("x1", "tcp", p1, 7001): False,
            ("x1", "tcp", o1, 7000): False,
            ("p1", "tcp", o1, 7000): False,
            ("o1", "tcp", p1, 7001): False,
        })
    env["traffic"].expect(HOST, expected)


def test_second_run_check_mode_and_gathered(env):
    """The new rules are idempotent; gathered reports gateway_mode and feeds back unchanged; switching
    a network's gateway_mode is predicted by check mode, closes its endpoint and switches back."""
    lab, backend = env["lab"], env["backend"]
    options = helpers.BACKENDS[backend]
    before = rules(env)
    result = run(lab, *converge_tasks(backend), fw_task("gathered", state="gathered", register="g", backend=backend),
                 fw_task("feed back", "{{ g.gathered }}", state="overridden", backend=backend))
    for name in ("firewall", "ports", "feed back"):
        assert res(result, name)["changed"] is False and res(result, name)["commands"] == [], (name, res(result, name)["commands"])
    gathered = {g["name"]: g for g in res(result, "gathered")["gathered"]}
    assert {name: g["gateway_mode"] for name, g in gathered.items()} == {"prot": "nat", "open": "nat-unprotected", "other": "nat"}
    assert {name: g["subnet6"] for name, g in gathered.items()} == {n["name"]: n["subnet6"] for n in NETWORKS}
    assert rules(env) == before
    # switching open to nat: check mode predicts the firewall's change and writes nothing
    switched = [dict(n, gateway_mode="nat") for n in NETWORKS]
    predicted = run(lab, fw_task("firewall", switched, state="overridden", **options), check=True, diff=True)
    commands = res(predicted, "firewall")["commands"]
    assert res(predicted, "firewall")["changed"] is True and "diff" in res(predicted, "firewall") and commands
    if backend != "nftables":
        assert all(" FORWARD " in c for c in commands), commands
        for tool in ("iptables", "ip6tables"):
            assert any(c.startswith(f"{tool} ") and c.endswith("! -i lnx-open -o lnx-open -j DROP") for c in commands), (tool, commands)
    assert rules(env) == before
    applied = run(lab, *converge_tasks(backend, switched))
    assert res(applied, "firewall")["commands"] == commands
    if backend != "nftables":
        assert any(f"-d {O1}/32 ! -i lnx-open" in c for c in res(applied, "ports")["commands"])
        assert any(f"-d {O1_6}/128 ! -i lnx-open" in c for c in res(applied, "ports")["commands"])
    env["traffic"].expect(OUTSIDE, {
        (None, "tcp", O1, 7000): False, (None, "tcp", O1, 7001): False, (None, "tcp", ADDR, 8001): f"{OUT_ADDR} 7000",
        (None, "tcp", O1_6, 7000): False, (None, "tcp", O1_6, 7001): False, (None, "tcp", ADDR6, 8001): f"{OUT_ADDR6} 7000",
    })
    again = run(lab, *converge_tasks(backend, switched))
    assert not res(again, "firewall")["changed"] and not res(again, "ports")["changed"]
    # and back to the module's starting point
    run(lab, *converge_tasks(backend))
    assert rules(env) == before


def user_hook(env: dict) -> dict[int, list[str]]:
    """What the admins' hook <P>-USER holds, per family."""
    out = {}
    for family in (4, 6):
        text = ruleset(env["lab"], env["backend"], family)
        if env["backend"] == "nftables":
            chain = re.search(r"chain filter-LINUXNET-USER \{\n(.*?)\n\s*\}", text, re.S)
            out[family] = [line.strip() for line in chain.group(1).splitlines() if line.strip()] if chain else ["<missing>"]
        else:
            out[family] = [line for line in text.splitlines() if line.startswith("-A LINUXNET-USER")]
    return out


def test_foreign_flush_then_rerun(env):
    """A firewall reload empties everything the backend wrote (``nft flush ruleset``; ``ip(6)tables -F``),
    with the FORWARD policy ACCEPT: one re-run closes the endpoints again in both families, without
    relying on the policy, and <P>-USER is whole again."""
    lab, traffic, backend = env["lab"], env["traffic"], env["backend"]
    before, hook = rules(env), user_hook(env)
    if backend == "nftables":  # our kept chain, in both tables (falling off its end returns)
        assert "<missing>" not in hook[4] + hook[6], hook
    else:  # Docker's DOCKER-USER, in iptables and ip6tables
        assert hook == {4: ["-A LINUXNET-USER -j RETURN"], 6: ["-A LINUXNET-USER -j RETURN"]}, hook
    for flush in FLUSHES[backend]:
        sh(lab, flush)
        # what the flush opened: unpublished ports of the protected network answer the LAN host
        traffic.expect(OUTSIDE, {(None, "tcp", P1, 7001): f"{OUT_ADDR} 7001", (None, "tcp", P1_6, 7001): f"{OUT_ADDR6} 7001"})
        result = run(lab, *converge_tasks(backend))
        assert res(result, "firewall")["changed"] is True, flush
        assert forward_policies(env) == open_policies(backend), flush
        assert user_hook(env) == hook, flush
        closed_from_outside(traffic)
        assert rules(env) == before, flush
        again = run(lab, *converge_tasks(backend))
        assert not res(again, "firewall")["changed"] and not res(again, "ports")["changed"], flush
