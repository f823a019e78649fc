"""Published ports limited by source, and UDP flows that follow a moved mapping (issue 13), on both
firewall backends, with real traffic in lab hosts.

Lab hosts: ``linuxnet1`` 172.16.211.128 (ip_forward on, so the FORWARD policy stays ACCEPT: the
rules alone decide), ``outside`` 172.16.211.1 (an allowed source) and ``stranger`` 172.16.211.2
(a refused one); both route 10.61.0.0/24 via ``linuxnet1``. On ``linuxnet1``: bridge ``lnx-src``
10.61.0.0/24 (gateway_mode nat) with endpoints s1 10.61.0.2, s2 10.61.0.3, s3 10.61.0.4.

============================================================  =====================================
input                                                         expected (and observed)
============================================================  =====================================
outside -> 172.16.211.128:8000 (``sources: [172.16.211.1]``)  reached, seen as itself
stranger -> 172.16.211.128:8000                               refused (no DNAT, no ACCEPT)
outside / stranger -> 10.61.0.2:7000 (direct routing)         dropped for both (raw, one rule)
s3 -> 172.16.211.128:8000 (another source, via the host)      refused
a UDP sender that never pauses, mapping moved s1 -> s2        its datagrams arrive at s2 next
the same with conntrack missing on the host                   a warning; none reach the new one: the
                                                              flow's entry still points at the old
============================================================  =====================================

Run (root): ``.venv/bin/python -m pytest tests/integration/test_port_sources_conntrack.py -q``
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytest

from tests.integration import helpers
from tests.integration.helpers import ADDR, HOST, OUT_ADDR, OUTSIDE, Traffic, make_endpoints, res, sh
from tests.lab.core import Lab
from tests.lab.playbook import run_playbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

STRANGER, STRANGER_ADDR = "stranger", "172.16.211.2"
S1, S2, S3 = "10.61.0.2", "10.61.0.3", "10.61.0.4"
NETWORKS = [{"name": "src", "bridge": "lnx-src", "subnet": "10.61.0.0/24"}]
ENDPOINTS = {"s1": ("lnx-src", S1), "s2": ("lnx-src", S2), "s3": ("lnx-src", S3)}
LIMITED = {"bridge": "lnx-src", "container_ip": S1, "publish": "8000:7000", "sources": [OUT_ADDR]}
UDP_PORT, UDP_INSIDE = 9000, 7100
RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(100)
    print(data.decode(), peer[0], peer[1], flush=True)
"""
# bounded: at most 90 s (and the spawn's timeout), one datagram every 50 ms from one source port
SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[3])))
for n in range(1800):
    s.sendto(str(n).encode(), (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.05)
"""


def task(module: str, name: str, config: Any = None, state: str = "overridden", backend: str = "iptables", **extra: Any) -> dict:
    """backend: iptables or nftables, or a name of helpers.BACKENDS (an iptables variant chosen too)."""
    args: dict[str, Any] = {"state": state, **helpers.BACKENDS.get(backend, {"firewall_backend": backend})}
    if config is not None:
        args["config"] = config
    return {"name": name, f"linuxnet.bridge.{module}": args, **extra}


def converge(backend: str, ports: list[dict], **extra: Any) -> list[dict]:
    return [task("firewall", "firewall", NETWORKS, backend=backend), task("port_mapping", "ports", ports, backend=backend, **extra)]


def run(lab: Lab, *tasks: dict, **kwargs: Any):
    return helpers.run(run_playbook, lab, *tasks, **kwargs)


@pytest.fixture(scope="module")
def env(tmp_path_factory, real_netns_guard):
    workdir = tmp_path_factory.mktemp("sources")
    lab = Lab.create(workdir / "lab", {**helpers.HOSTS, STRANGER: STRANGER_ADDR})
    traffic = None
    try:
        sh(lab, "echo 1 > /proc/sys/net/ipv4/ip_forward")
        for client in (OUTSIDE, STRANGER):
            sh(lab, f"ip route add 10.61.0.0/24 via {ADDR}", host=client)
        make_endpoints(lab, {"lnx-src": "10.61.0.1/24"}, ENDPOINTS)
        traffic = Traffic(lab, workdir)
        traffic.start(HOST, "s1", tcp=(7000,), udp=())
        traffic.start(HOST, "s3", tcp=(7000,), udp=())
        logs = {ns: traffic.spawn(HOST, ns, [sys.executable, "-u", "-c", RECEIVER, str(UDP_INSIDE)], f"recv-{ns}")
                for ns in ENDPOINTS}
        yield {"lab": lab, "traffic": traffic, "logs": logs, "workdir": workdir}
    finally:
        if traffic is not None:
            traffic.stop()
        lab.destroy()


# ============================================================================== sources


@pytest.mark.parametrize("backend", list(helpers.BACKENDS))
def test_only_the_listed_sources_reach_a_published_port(env, backend):
    lab, traffic = env["lab"], env["traffic"]
    ports = [LIMITED]
    # the firewall first: check mode of the ports cannot see chains a firewall task of the same play would make
    run(lab, task("firewall", "firewall", NETWORKS, backend=backend))
    predicted = run(lab, task("port_mapping", "ports", ports, backend=backend), check=True, diff=True)
    assert "diff" in res(predicted, "ports")
    applied = run(lab, *converge(backend, ports))
    assert res(applied, "ports")["commands"] == res(predicted, "ports")["commands"], "check mode did not predict"
    commands = res(applied, "ports")["commands"]
    assert any(f"{OUT_ADDR}" in c and ("DNAT" in c or "dnat" in c) for c in commands), commands
    assert res(applied, "ports")["after"][0]["sources"] == [f"{OUT_ADDR}/32"]
    traffic.expect(OUTSIDE, {
        (None, "tcp", ADDR, 8000): f"{OUT_ADDR} 7000",  # allowed: DNATed, seen as itself
        (None, "tcp", S1, 7000): False,  # direct routing: dropped for an allowed source too
    })
    traffic.expect(STRANGER, {(None, "tcp", ADDR, 8000): False, (None, "tcp", S1, 7000): False})
    traffic.expect(HOST, {("s3", "tcp", ADDR, 8000): False})  # another source, through the host's address
    # second run and gathered -> config round trip: nothing to do, nothing written
    again = run(lab, *converge(backend, ports), task("port_mapping", "g", state="gathered", backend=backend, register="g"),
                task("port_mapping", "feed back", "{{ g.gathered }}", backend=backend))
    for name in ("firewall", "ports", "feed back"):
        assert res(again, name)["changed"] is False and res(again, name)["commands"] == [], (name, res(again, name)["commands"])
    assert [g.get("sources") for g in res(again, "g")["gathered"]] == [[f"{OUT_ADDR}/32"]]
    # widen to the stranger's /30: it is let in (and s3 still is not)
    wider = [dict(LIMITED, sources=[OUT_ADDR, "172.16.211.0/30"])]
    run(lab, *converge(backend, wider))
    traffic.expect(STRANGER, {(None, "tcp", ADDR, 8000): f"{STRANGER_ADDR} 7000"})
    traffic.expect(HOST, {("s3", "tcp", ADDR, 8000): False})
    # without sources: everyone, s3 too (published means published, moby#49509)
    run(lab, *converge(backend, [{k: v for k, v in LIMITED.items() if k != "sources"}]))
    traffic.expect(HOST, {("s3", "tcp", ADDR, 8000): True})
    # teardown: nothing of ours left in any backend (the next backend starts from a clean host)
    run(lab, task("port_mapping", "off", state="deleted", backend=backend), task("firewall", "fw off", state="deleted", backend=backend))
    assert helpers.leftovers(lab) == {}, "teardown left rules of ours"


def test_bad_sources_change_nothing(env):
    lab = env["lab"]
    run(lab, *converge("iptables", [LIMITED]))
    before = helpers.save(lab)
    bad = dict(LIMITED, sources=[OUT_ADDR, "172.16.211.1/24"])
    result = run(lab, task("port_mapping", "bad", [bad], ignore_errors=True), ok=False)
    r = res(result, "bad")
    assert r.get("failed") and r["msg"].startswith("config[0] (bridge=lnx-src).sources[1]:") and not r.get("commands"), r
    assert helpers.save(lab) == before
    run(lab, task("port_mapping", "off", state="deleted"))


# ============================================================================== UDP conntrack cleanup


def received(env: dict, ns: str) -> list[int]:
    """Sequence numbers ``ns`` got from this test's sender (``env["sport"]``: each test's own source port)."""
    lines = [line.split() for line in env["logs"][ns].read_text().splitlines()]
    return [int(f[0]) for f in lines if len(f) == 3 and f[2] == str(env["sport"])]


def wait_for(what: str, condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def flow_follows(env: dict, old: str, new: str, since: int) -> int:
    """Datagrams sent after the move (sequence > since) arrive at ``new`` and no longer at ``old``."""
    wait_for(f"datagrams at {new}", lambda: [n for n in received(env, new) if n > since])
    time.sleep(0.5)
    first_new = min(n for n in received(env, new) if n > since)
    late_old = [n for n in received(env, old) if n > first_new]
    assert not late_old, f"{old} still got datagrams {late_old[:5]} after {new} took over"
    return max(received(env, new))


def mapping(ns: str) -> list[dict]:
    return [{"bridge": "lnx-src", "container_ip": ENDPOINTS[ns][1], "publish": f"{UDP_PORT}:{UDP_INSIDE}/udp"}]


@pytest.mark.parametrize("backend,sport", [("iptables", 40001), ("nftables", 40002)])
def test_a_udp_flow_follows_its_mapping_to_the_new_endpoint(env, backend, sport):
    lab, traffic = env["lab"], env["traffic"]
    env["sport"] = sport
    run(lab, *converge(backend, mapping("s1")))
    sender = [sys.executable, "-u", "-c", SENDER, ADDR, str(UDP_PORT), str(sport)]
    traffic.spawn(OUTSIDE, None, sender, f"sender-{backend}", seconds=95)
    pgid = traffic.pids[-1]
    try:
        wait_for("datagrams at s1", lambda: received(env, "s1"))
        # the move, in check mode first: the cleanup is predicted (and not run)
        predicted = run(lab, task("port_mapping", "ports", mapping("s2"), backend=backend), check=True)
        cleanup = f"conntrack -D -p udp --orig-port-dst {UDP_PORT}"
        assert res(predicted, "ports")["commands"][-1] == cleanup
        time.sleep(0.5)
        assert received(env, "s2") == [], "check mode moved the flow"
        mark = max(received(env, "s1"))
        moved = run(lab, task("port_mapping", "ports", mapping("s2"), backend=backend))
        assert res(moved, "ports")["commands"] == res(predicted, "ports")["commands"]
        mark = flow_follows(env, "s1", "s2", mark)
        # removed: the flow is no longer DNATed anywhere (the host itself has nothing on 9000)
        run(lab, task("port_mapping", "ports", [], backend=backend))
        time.sleep(1)
        before = max(received(env, "s2"))
        time.sleep(1)
        assert max(received(env, "s2")) == before, "s2 still gets the flow after its mapping was removed"
        # the control: without the conntrack tool the flow does not follow (and the run only warns)
        run(lab, task("port_mapping", "ports", mapping("s3"), backend=backend))
        mark = flow_follows(env, "s2", "s3", before)
        hide = "mount --bind /dev/null /usr/sbin/conntrack"  # in the lab host's own mount namespace only
        sh(lab, hide)
        try:
            stale = run(lab, task("port_mapping", "ports", mapping("s1"), backend=backend))
        finally:
            sh(lab, "umount /usr/sbin/conntrack")
        assert res(stale, "ports")["changed"] is True and "failed" not in res(stale, "ports")
        assert any("conntrack not found" in w for w in res(stale, "ports").get("warnings", [])), res(stale, "ports")
        time.sleep(1.5)
        assert not [n for n in received(env, "s1") if n > mark], "s1 got the flow although nothing deleted its conntrack entry"
        # Its entry still translates it to s3. (s3, no longer published, now drops it: the network's
        # DROP for what is not published. Only datagrams sent while the run was still planning
        # reached s3; how many depends on how fast the run is, so they prove nothing here.)
        entry = sh(lab, f"conntrack -L -p udp --orig-port-dst {UDP_PORT} --orig-port-src {sport} 2>/dev/null").stdout
        assert f"src={S3} " in entry, entry
    finally:
        os.killpg(pgid, 15)
        traffic.pids.remove(pgid)
        run(lab, task("port_mapping", "off", state="deleted", backend=backend))
