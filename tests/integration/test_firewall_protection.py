"""Isolation that holds for every packet (issue 13): gateway_mode, direct routing, published ports
from another network, and protection that survives a foreign flush, with real traffic in lab hosts.

``outside`` (172.16.211.1) plays the LAN host of Docker's ``TestDirectRoutingOpenPorts``: it routes
every endpoint subnet via ``linuxnet1``. ``linuxnet1`` starts with ip_forward=1, so the collection
never sets the FORWARD policy: it stays ACCEPT, the worst case; everything closed here is closed by
the collection's rules alone. Networks (linuxnet.bridge.firewall) and published ports
(linuxnet.bridge.port_mapping):

* ``prot`` lnx-prot 10.51.0.0/24, gateway_mode nat (the default): p1 10.51.0.2, port 7000 published
  as 8000 (tcp) and 8000/udp, port 7001 not published;
* ``open`` lnx-open 10.52.0.0/24, gateway_mode nat-unprotected: o1 10.52.0.2, 7000 published as 8001;
* ``other`` lnx-oth 10.53.0.0/24: x1 10.53.0.2, a client on another network.

Attack table (input -> expected, observed by the tests below):

====================================================  ===============================  ==========
outside -> 10.51.0.2:7000 (published, by address)      dropped (raw PREROUTING)         test_direct_routing_matrix
outside -> 10.51.0.2:7001 (unpublished)                dropped (per-network DROP)       test_direct_routing_matrix
outside -> 10.52.0.2:7000/7001 (nat-unprotected)       reached (Docker <= 27 behaviour) test_direct_routing_matrix
x1 -> 172.16.211.128:8000 (published, other network)   reached (moby#49509)             test_published_port_from_another_network
x1 -> 10.51.0.2:7000 (direct, other network)           dropped (isolation)              test_published_port_from_another_network
nft flush ruleset / iptables -F, then a re-run         closed again, <P>-USER whole     test_foreign_flush_then_rerun
====================================================  ===============================  ==========

Run (root): ``.venv/bin/python -m pytest tests/integration/test_firewall_protection.py -q``
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.integration import helpers
from tests.integration.helpers import ADDR, HOST, OUT_ADDR, OUTSIDE, Traffic, fw_task, res, save, sh
from tests.lab.core import Lab
from tests.lab.playbook import run_playbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

P1, O1, X1 = "10.51.0.2", "10.52.0.2", "10.53.0.2"
NETWORKS = [
    {"name": "prot", "bridge": "lnx-prot", "subnet": "10.51.0.0/24"},
    {"name": "open", "bridge": "lnx-open", "subnet": "10.52.0.0/24", "gateway_mode": "nat-unprotected"},
    {"name": "other", "bridge": "lnx-oth", "subnet": "10.53.0.0/24"},
]
ENDPOINTS = {"p1": ("lnx-prot", P1), "o1": ("lnx-open", O1), "x1": ("lnx-oth", X1)}
MAPPINGS = [
    {"bridge": "lnx-prot", "container_ip": P1, "publish": "8000:7000"},
    {"bridge": "lnx-prot", "container_ip": P1, "publish": "8000:7000/udp"},
    {"bridge": "lnx-open", "container_ip": O1, "publish": "8001:7000"},
]


def pm_task(name: str, config: Any = None, state: str = "overridden", **extra: Any) -> dict:
    args: dict[str, Any] = {"state": state}
    if config is not None:
        args["config"] = config
    return {"name": name, "linuxnet.bridge.port_mapping": args, **extra}


def converge_tasks(networks: list[dict] | None = None, **extra: Any) -> list[dict]:
    networks = NETWORKS if networks is None else networks
    return [fw_task("firewall", networks, state="overridden", **extra), pm_task("ports", MAPPINGS, **extra)]


def run(lab: Lab, *tasks: dict, **kwargs: Any):
    return helpers.run(run_playbook, lab, *tasks, **kwargs)


@pytest.fixture(scope="module")
def env(tmp_path_factory, real_netns_guard):
    workdir = tmp_path_factory.mktemp("protect")
    lab = Lab.create(workdir / "lab", helpers.HOSTS)
    traffic = None
    try:
        sh(lab, "echo 1 > /proc/sys/net/ipv4/ip_forward")
        sh(lab, " && ".join(f"ip route add {n['subnet']} via {ADDR}" for n in NETWORKS), host=OUTSIDE)
        helpers.make_endpoints(lab, {n["bridge"]: n["subnet"].replace(".0/24", ".1/24") for n in NETWORKS}, ENDPOINTS)
        run(lab, *converge_tasks())
        traffic = Traffic(lab, workdir)
        for ns in ("p1", "o1"):
            traffic.start(HOST, ns, tcp=(7000, 7001), udp=(7000, 7001))
        yield {"lab": lab, "traffic": traffic}
    finally:
        if traffic is not None:
            traffic.stop()
        lab.destroy()


def closed_from_outside(traffic: Traffic) -> None:
    """TestDirectRoutingOpenPorts: nat protects published and unpublished ports; nat-unprotected does not."""
    traffic.expect(OUTSIDE, {
        (None, "tcp", P1, 7000): False,  # published, but only through the DNAT
        (None, "udp", P1, 7000): False,
        (None, "tcp", P1, 7001): False,  # unpublished
        (None, "udp", P1, 7001): False,
        (None, "tcp", ADDR, 8000): f"{OUT_ADDR} 7000",  # published: reached, client seen as itself
        (None, "udp", ADDR, 8000): f"{OUT_ADDR} 7000",
        (None, "tcp", O1, 7000): f"{OUT_ADDR} 7000",  # nat-unprotected: what Docker <= 27 did
        (None, "tcp", O1, 7001): f"{OUT_ADDR} 7001",
        (None, "tcp", ADDR, 8001): f"{OUT_ADDR} 7000",
    })


def test_direct_routing_matrix(env):
    lab = env["lab"]
    assert ":FORWARD ACCEPT [0:0]" in save(lab), "the policy must stay ACCEPT: the rules alone protect"
    live = save(lab)
    assert "-A FORWARD ! -i lnx-prot -o lnx-prot -j DROP" in live
    assert "-A FORWARD ! -i lnx-open -o lnx-open -j DROP" not in live
    assert f"-A PREROUTING -d {P1}/32 ! -i lnx-prot -p tcp -m tcp --dport 7000 -j DROP" in live
    assert not [line for line in live if line.startswith(f"-A PREROUTING -d {O1}/32")]
    closed_from_outside(env["traffic"])


def test_published_port_from_another_network(env):
    """moby#49509: x1 (network other) reaches p1's and o1's published ports through the host's address,
    never their addresses directly."""
    env["traffic"].expect(HOST, {
        ("x1", "tcp", ADDR, 8000): "10.51.0.1 7000",  # masqueraded on the way out of lnx-oth
        ("x1", "udp", ADDR, 8000): "10.51.0.1 7000",
        ("x1", "tcp", ADDR, 8001): "10.52.0.1 7000",
        ("x1", "tcp", P1, 7000): False,
        ("x1", "tcp", P1, 7001): False,
        ("x1", "tcp", O1, 7000): False,
        ("p1", "tcp", O1, 7000): False,
        ("o1", "tcp", P1, 7001): False,
    })


def test_second_run_check_mode_and_gathered(env):
    """The new rules are idempotent; gathered reports gateway_mode and feeds back unchanged."""
    lab = env["lab"]
    before = save(lab)
    result = run(lab, *converge_tasks(), fw_task("gathered", state="gathered", register="g"),
                 fw_task("feed back", "{{ g.gathered }}", state="overridden"))
    for name in ("firewall", "ports", "feed back"):
        assert res(result, name)["changed"] is False and res(result, name)["commands"] == [], (name, res(result, name)["commands"])
    modes = {g["name"]: g["gateway_mode"] for g in res(result, "gathered")["gathered"]}
    assert modes == {"prot": "nat", "open": "nat-unprotected", "other": "nat"}
    assert save(lab) == before
    # switching open to nat: check mode predicts the firewall's change and writes nothing
    switched = [dict(n, gateway_mode="nat") for n in NETWORKS]
    predicted = run(lab, fw_task("firewall", switched, state="overridden"), check=True, diff=True)
    commands = res(predicted, "firewall")["commands"]
    assert res(predicted, "firewall")["changed"] is True and "diff" in res(predicted, "firewall")
    assert all(" FORWARD " in c for c in commands) and any(c.endswith("! -i lnx-open -o lnx-open -j DROP") for c in commands), commands
    assert save(lab) == before
    applied = run(lab, *converge_tasks(switched))
    assert res(applied, "firewall")["commands"] == res(predicted, "firewall")["commands"]
    assert any(f"-d {O1}/32 ! -i lnx-open" in c for c in res(applied, "ports")["commands"])
    env["traffic"].expect(OUTSIDE, {(None, "tcp", O1, 7000): False, (None, "tcp", O1, 7001): False,
                                    (None, "tcp", ADDR, 8001): f"{OUT_ADDR} 7000"})
    again = run(lab, *converge_tasks(switched))
    assert not res(again, "firewall")["changed"] and not res(again, "ports")["changed"]
    # and back to the module's starting point
    run(lab, *converge_tasks())
    assert save(lab) == before


@pytest.mark.parametrize("flush", ["nft flush ruleset", "iptables -F && iptables -t nat -F && iptables -t raw -F"])
def test_foreign_flush_then_rerun(env, flush):
    """A firewall reload empties everything (FORWARD policy ACCEPT): one re-run closes the endpoints
    again, without relying on the policy, and <P>-USER has its RETURN again."""
    lab, traffic = env["lab"], env["traffic"]
    before = save(lab)
    sh(lab, flush)
    # what the flush opened: unpublished ports of the protected network answer the LAN host
    traffic.expect(OUTSIDE, {(None, "tcp", P1, 7001): f"{OUT_ADDR} 7001"})
    result = run(lab, *converge_tasks())
    assert res(result, "firewall")["changed"] is True
    live = save(lab)
    assert ":FORWARD ACCEPT [0:0]" in live
    assert [line for line in live if line.startswith("-A LINUXNET-USER")] == ["-A LINUXNET-USER -j RETURN"]
    closed_from_outside(traffic)
    assert sorted(live) == sorted(before)
    again = run(lab, *converge_tasks())
    assert not res(again, "firewall")["changed"] and not res(again, "ports")["changed"]
