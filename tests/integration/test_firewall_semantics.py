"""merged/replaced leave out options without changing them, and the localnet guard in INPUT, with real
kernels and real traffic in lab hosts (firewall backend iptables-nft).

Lab hosts: ``linuxnet1`` 172.16.211.128 (ip_forward on), ``outside`` 172.16.211.1 (an allowed source)
and ``stranger`` 172.16.211.2 (a refused one); both route 10.62.0.0/23 via ``linuxnet1``. On
``linuxnet1``: ``lnx-int`` 10.62.0.0/24 (an internal network, endpoint i1 10.62.0.2) and ``lnx-pub``
10.62.1.0/24 (endpoint p1 10.62.1.2, port 8000 published for ``outside`` only).

=========================================================================  ==============================
input                                                                      expected (and observed)
=========================================================================  ==============================
a fresh host with the admin's kube-proxy guard in INPUT, firewall deleted   the guard stays, changed=false
firewall and port_mapping ``merged`` leaving out internal/icc/... sources  changed=false, nothing written
i1 -> outside:7000 after that                                              refused: still internal
outside -> 172.16.211.128:8000, stranger -> the same after that            reached / refused: sources kept
two chain prefixes, one ``overridden: []``, each run again                  changed=false, guard stays once
the last prefix deleted                                                    the guard it inserted goes
=========================================================================  ==============================

Run (root): ``.venv/bin/python -m pytest tests/integration/test_firewall_semantics.py -q``
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.integration import helpers
from tests.integration.helpers import ADDR, GUARD, HOST, OUT_ADDR, OUTSIDE, PORT, Traffic, make_endpoints, res, sh
from tests.lab.core import Lab
from tests.lab.playbook import run_playbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

STRANGER, STRANGER_ADDR = "stranger", "172.16.211.2"
I1, P1 = "10.62.0.2", "10.62.1.2"
INTERNAL = {"name": "int", "bridge": "lnx-int", "subnet": "10.62.0.0/24", "internal": True, "icc": False,
            "masquerade": False, "gateway_mode": "nat-unprotected"}
PUBLIC = {"name": "pub", "bridge": "lnx-pub", "subnet": "10.62.1.0/24"}
MAPPING = {"bridge": "lnx-pub", "container_ip": P1, "publish": "8000:7000", "sources": [f"{OUT_ADDR}/32"]}
VARIANT = {"firewall_backend": "iptables", "iptables_variant": "iptables-nft"}


def task(module: str, name: str, config: Any = None, state: str = "merged", **options: Any) -> dict:
    args: dict[str, Any] = {"state": state, **VARIANT, **options}
    if config is not None:
        args["config"] = config
    return {"name": name, f"linuxnet.bridge.{module}": args}


def run(lab: Lab, *tasks: dict, **kwargs: Any):
    return helpers.run(run_playbook, lab, *tasks, **kwargs)


def guards(lab: Lab) -> list[str]:
    return [line for line in sh(lab, "iptables-nft -S INPUT").stdout.splitlines() if GUARD in line]


@pytest.fixture(scope="module")
def env(tmp_path_factory, real_netns_guard):
    workdir = tmp_path_factory.mktemp("semantics")
    lab = Lab.create(workdir / "lab", {**helpers.HOSTS, STRANGER: STRANGER_ADDR})
    traffic = None
    try:
        sh(lab, "echo 1 > /proc/sys/net/ipv4/ip_forward")
        for client in (OUTSIDE, STRANGER):
            sh(lab, f"ip route add 10.62.0.0/23 via {ADDR}", host=client)
        make_endpoints(lab, {"lnx-int": "10.62.0.1/24", "lnx-pub": "10.62.1.1/24"}, {"i1": ("lnx-int", I1), "p1": ("lnx-pub", P1)})
        traffic = Traffic(lab, workdir)
        traffic.start(HOST, "p1", tcp=(7000,), udp=())
        traffic.start(OUTSIDE, None, tcp=(PORT,), udp=())
        yield {"lab": lab, "traffic": traffic}
    finally:
        if traffic is not None:
            traffic.stop()
        lab.destroy()


def _rules(save_text: str) -> list[str]:
    """iptables-save text without comments and chain lines (their counters move)."""
    return [line for line in save_text.splitlines() if not line.startswith(("#", ":"))]


def test_an_admins_guard_survives_deleted_on_a_host_the_collection_never_managed(env):
    lab = env["lab"]
    sh(lab, f"iptables-nft -I INPUT 1 {GUARD}")
    try:
        result = run(lab, task("firewall", "off", state="deleted"), task("firewall", "named", [PUBLIC], state="deleted"),
                     task("port_mapping", "ports named", [MAPPING], state="deleted"))
        for name in ("off", "named", "ports named"):
            assert res(result, name)["changed"] is False and res(result, name)["commands"] == [], name
        assert guards(lab) == [f"-A INPUT {GUARD}"]
        # the promised warning for an item that is not ours (doc fragment linuxnet.bridge.resource)
        assert any("network pub was not created by linuxnet.bridge" in w for w in res(result, "named").get("warnings", []))
        assert any("port mapping 0.0.0.0:8000/tcp was not created" in w for w in res(result, "ports named").get("warnings", []))
    finally:
        sh(lab, f"iptables-nft -D INPUT {GUARD}", check=False)  # (gone already if the module deleted it)


def test_merged_leaving_options_out_keeps_internal_closed_and_sources_enforced(env):
    lab, traffic = env["lab"], env["traffic"]
    try:
        merged_keeps_options(lab, traffic)
    finally:  # the next test starts from a host without networks of ours
        run(lab, task("port_mapping", "off", state="deleted"), task("firewall", "fw off", state="deleted"))
    assert helpers.leftovers(lab) == {}


def merged_keeps_options(lab: Lab, traffic: Traffic) -> None:
    run(lab, task("firewall", "fw", [INTERNAL, PUBLIC], state="overridden"), task("port_mapping", "ports", [MAPPING], state="overridden"))
    before = sh(lab, "iptables-nft-save -t filter; iptables-nft-save -t nat").stdout
    bare = [{k: INTERNAL[k] for k in ("name", "bridge", "subnet")}, PUBLIC]
    unlimited = [{k: v for k, v in MAPPING.items() if k != "sources"}]
    predicted = run(lab, task("firewall", "fw", bare), task("port_mapping", "ports", unlimited), check=True)
    result = run(lab, task("firewall", "fw", bare), task("port_mapping", "ports", unlimited),
                 task("firewall", "fw replaced", bare, state="replaced"), task("port_mapping", "ports replaced", unlimited, state="replaced"))
    for name in ("fw", "ports"):
        assert res(predicted, name)["changed"] is False and res(predicted, name)["commands"] == [], name
    for name in ("fw", "ports", "fw replaced", "ports replaced"):
        assert res(result, name)["changed"] is False and res(result, name)["commands"] == [], (name, res(result, name)["commands"])
    after = sh(lab, "iptables-nft-save -t filter; iptables-nft-save -t nat").stdout
    assert _rules(after) == _rules(before)
    assert res(result, "fw")["after"][0] == {**INTERNAL}
    assert res(result, "ports")["after"][0]["sources"] == [f"{OUT_ADDR}/32"]
    # packets: the internal network is still closed, the port still open to outside only
    traffic.expect(HOST, {("i1", "tcp", OUT_ADDR, PORT): False})
    traffic.expect(OUTSIDE, {(None, "tcp", ADDR, 8000): f"{OUT_ADDR} 7000"})
    traffic.expect(STRANGER, {(None, "tcp", ADDR, 8000): False})


def test_two_chain_prefixes_converge_and_the_guard_goes_with_the_last(env):
    lab = env["lab"]
    assert guards(lab) == []
    alpha = task("firewall", "alpha", [PUBLIC], chain_prefix="ALPHA")
    beta = task("firewall", "beta", [INTERNAL], chain_prefix="BETA")
    run(lab, alpha, beta)
    assert guards(lab) == [f"-A INPUT {GUARD}"]
    alpha_off = task("firewall", "alpha off", [], state="overridden", chain_prefix="ALPHA")
    run(lab, alpha_off)
    assert guards(lab) == [f"-A INPUT {GUARD}"], "BETA's networks still need it"
    again = run(lab, beta, alpha_off, beta, alpha_off)
    assert [t.result["changed"] for t in again.tasks if t.host == HOST][-4:] == [False] * 4
    run(lab, task("firewall", "beta off", state="deleted", chain_prefix="BETA"))
    assert guards(lab) == [f"-A INPUT {GUARD}"], "ALPHA inserted it: BETA leaves it"
    result = run(lab, task("firewall", "alpha gone", state="deleted", chain_prefix="ALPHA"))
    assert [c for c in res(result, "alpha gone")["commands"] if c.endswith(f"-t filter -D INPUT {GUARD}")]
    assert guards(lab) == []
    assert helpers.leftovers(lab, "ALPHA") == {} and helpers.leftovers(lab, "BETA") == {}
