"""``_deployment.converge()`` and ``remove()`` (the module linuxnet.bridge.deployment) against a real kernel.

The contract test calls ``converge()`` outside Ansible, as the boot-time restore does: a small
object with params, check_mode, run_command, warn and fail_json stands in for the module. It runs
in a lab host (private net/mount namespaces, private /run and /etc/netns); packets between
endpoints prove the result.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_deployment.py -q``
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.helpers import BLOCKED_TIMEOUT, REACH_TIMEOUT, Probe6
from tests.integration.helpers_role import run_deployment

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

HOST, ADDR = "linuxnet1", "172.16.211.128"

NETWORKS = [{"name": "bridge", "subnet": "172.17.0.0/16"}, {"name": "usernet", "subnet": "172.18.0.0/16"}]
ENDPOINTS = [
    {"name": "c1", "network": "bridge"},
    {"name": "c2", "network": "bridge", "ports": ["8081:80", "9000:9000/udp"]},
    {"name": "u1", "networks": ["usernet", "bridge"], "dns": {"nameservers": ["192.0.2.53"]}},
]

# Runs inside the lab host (helpers_role.run_deployment): converge, remove, or converge a plan.
BODY = """
options = request.get("options") or {}
if request["what"] == "remove":
    result = _deployment.remove(module, **options)
elif request["what"] == "plan":
    plan = _deployment.pending_changes(module, request["networks"], request["endpoints"], "LINUXNET", "auto")["plan"]
    result = _deployment.converge(module, None, None, plan=plan)
else:
    result = _deployment.converge(module, request["networks"], request["endpoints"], **options)
"""


@pytest.fixture
def lab(lab_factory):
    return lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]})


def call(lab, tmp_path: Path, what: str, check_mode: bool = False, networks=None, endpoints=None, **options: str) -> dict:
    request = {"what": what, "check_mode": check_mode, "networks": NETWORKS if networks is None else networks,
               "endpoints": ENDPOINTS if endpoints is None else endpoints, "options": options}
    return run_deployment(lab, tmp_path, BODY, request)


def host_state(lab) -> str:
    """Links, addresses, routes, namespaces, resolver files and rules of the lab host."""
    script = ("ip -o link; ip -o addr; ip route; ip netns list; iptables-save | grep -v '^#' | sed 's/\\[[0-9:]*\\]//';"
              " for ns in $(ip netns list | cut -d' ' -f1); do echo \"== $ns\"; ip -n $ns -o addr; ip -n $ns route;"
              " cat /etc/netns/$ns/* 2>/dev/null; done; cat /proc/sys/net/ipv4/ip_forward")
    return lab.run(HOST, ["sh", "-c", script]).stdout


def ping(lab, netns: str, address: str) -> bool:
    return lab.run(HOST, ["ip", "netns", "exec", netns, "ping", "-c1", "-W2", address], check=False).returncode == 0


def test_converge_contract_check_mode_apply_rerun_and_remove(lab, tmp_path):
    empty = host_state(lab)
    predicted = call(lab, tmp_path, "converge", check_mode=True)
    assert "error" not in predicted, predicted
    assert predicted["changed"] is True
    assert host_state(lab) == empty, "check mode changed the host"
    assert set(predicted["commands"]) == {"netns", "bridge", "veth", "firewall", "port_mapping"}
    assert list(predicted["plan"]["veth"]) and predicted["plan"]["netns"]

    applied = call(lab, tmp_path, "converge")
    assert "error" not in applied, applied
    assert applied["changed"] is True
    # check mode predicted exactly, step by step, also the steps that depend on earlier ones
    # (the bridges' route_localnet sysctls, DNAT into chains the firewall step creates)
    assert applied["commands"] == predicted["commands"]
    assert any("route_localnet=1" in c for c in applied["commands"]["firewall"]), applied["commands"]["firewall"]
    assert any("DNAT" in c for c in applied["commands"]["port_mapping"])
    # packets: same network reaches, the gateway answers; different networks are isolated
    assert ping(lab, "c1", "172.17.0.3") and ping(lab, "c2", "172.17.0.1")
    assert ping(lab, "u1", "172.18.0.1")
    assert not ping(lab, "c1", "172.18.0.2")
    converged = host_state(lab)

    again = call(lab, tmp_path, "converge")
    assert again["changed"] is False and not any(again["commands"].values()), again["commands"]
    assert host_state(lab) == converged
    # an already computed plan (pending_changes) is applied the same way
    planned = call(lab, tmp_path, "plan")
    assert planned.get("changed") is False, planned

    # drop an endpoint: its namespace goes, its veth with it (not predicted twice), nothing else changes
    fewer = [ep for ep in ENDPOINTS if ep["name"] != "c1"]
    predicted = call(lab, tmp_path, "converge", check_mode=True, endpoints=fewer)
    shrunk = call(lab, tmp_path, "converge", endpoints=fewer)
    assert shrunk["commands"] == predicted["commands"]
    assert shrunk["commands"]["netns"] == ["rm -rf /etc/netns/c1", "ip netns delete c1"]
    assert shrunk["commands"]["veth"] == [] and shrunk["commands"]["bridge"] == []
    # (c2 -> u1, not the gateway: the bridge's MAC, never set, may follow its lowest port MAC, c1's)
    assert ping(lab, "c2", "172.17.0.4")

    predicted = call(lab, tmp_path, "remove", check_mode=True)
    removed = call(lab, tmp_path, "remove")
    assert "error" not in removed, removed
    assert removed["commands"] == predicted["commands"]
    assert list(removed["commands"]) == ["port_mapping", "firewall", "netns", "veth", "bridge"]
    assert removed["commands"]["veth"] == []  # every pair went with its namespace
    assert call(lab, tmp_path, "remove")["changed"] is False
    left = lab.run(HOST, ["sh", "-c", "ip netns list; ip -o link | grep -e linuxnet.bridge -e docker0 -e br-usernet;"
                          " iptables-save | grep LINUXNET || true"]).stdout
    assert left.strip() == "", left


def test_bad_input_fails_before_any_change(lab, tmp_path):
    empty = host_state(lab)
    bad = call(lab, tmp_path, "converge", endpoints=[*ENDPOINTS, {"name": "c9", "network": "bridge", "ports": ["99999:80"]}])
    assert bad.get("error") == "ValidationError", bad
    assert "99999" in bad["msg"], bad
    assert host_state(lab) == empty


def test_teardown_removes_the_veth_of_a_namespace_a_process_keeps_alive(lab, tmp_path):
    """A process left in an endpoint (a web server) keeps the kernel namespace, and with it the veth
    pair, alive after ``ip netns delete``: the veth step deletes what did not go with its namespace,
    and check mode predicts that delete (it looks for processes in the namespaces it would delete)."""
    assert "error" not in call(lab, tmp_path, "converge")
    # bounded: the listener ends by itself, and is killed by its pid below
    keeper = lab.run(HOST, ["sh", "-c", "ip netns exec c1 sleep 120 >/dev/null 2>&1 & echo $!"]).stdout.strip()
    try:
        predicted = call(lab, tmp_path, "remove", check_mode=True)
        removed = call(lab, tmp_path, "remove")
        assert "error" not in removed, removed
        assert len(removed["commands"]["veth"]) == 1, removed["commands"]  # c1's pair; the others went with their namespace
        assert removed["commands"] == predicted["commands"]  # check mode saw the process in c1
        left = lab.run(HOST, ["sh", "-c", "ip netns list; ip -o link | grep linuxnet.bridge || true"]).stdout
        assert left.strip() == "", left
        assert call(lab, tmp_path, "remove")["changed"] is False
    finally:
        lab.run(HOST, ["kill", keeper], check=False)


def shape(lab) -> str:
    """What a run builds, without what a rebuild renumbers (link indexes, MACs, counters)."""
    script = ("ip -o link | cut -d' ' -f2 | sort; ip netns list | cut -d' ' -f1 | sort;"
              " iptables-save | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'")
    return lab.run(HOST, ["sh", "-c", script]).stdout


def test_a_converge_and_a_teardown_started_together_take_turns(lab, tmp_path):
    """Each writing run holds the host's link lock from its first read to its end and takes it before the
    iptables lock: runs started at the same instant never interleave or wait on each other forever."""
    assert call(lab, tmp_path, "converge")["changed"] is True
    converged = shape(lab)
    assert call(lab, tmp_path, "remove")["changed"] is True
    removed = shape(lab)
    assert call(lab, tmp_path, "converge")["changed"] is True
    for pair in (("remove", "converge"), ("converge", "converge"), ("converge", "remove")):
        dirs = [tmp_path / f"run{i}" for i in range(2)]
        for d in dirs:
            d.mkdir(exist_ok=True)
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda job: call(lab, job[0], job[1]), zip(dirs, pair)))
        assert all("error" not in r for r in results), results
        # whichever got the lock last decides the end state; the other ran whole before it
        assert shape(lab) in (converged, removed), (pair, results)
        again = call(lab, tmp_path, "converge")
        assert "error" not in again, again
        assert shape(lab) == converged
        assert call(lab, tmp_path, "converge")["changed"] is False
    assert call(lab, tmp_path, "remove")["changed"] is True
    assert shape(lab) == removed


def firewall_processes(result: dict) -> dict[str, int]:
    """How often a run read the tables (one iptables-save for all; -t TABLE for one alone), wrote
    (restore) each table, and listed flows."""
    counts: dict[str, int] = {}
    for line in result["processes"]:
        tool, *args = line.split()
        if tool.endswith("-save") or tool.endswith("-restore") or tool == "conntrack":
            key = " ".join([tool.replace("-nft", "").replace("-legacy", "")] + args[:2])
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_a_run_reads_each_table_once_and_restores_it_once(lab, tmp_path):
    """Firewall and port_mapping share one read of each table and one restore per table (still one
    transaction per table); the no-change re-run only reads; a teardown restores each table once.
    The result is the same ruleset as check mode predicts, and the re-run finds nothing to do."""
    predicted = call(lab, tmp_path, "converge", check_mode=True)
    applied = call(lab, tmp_path, "converge")
    assert "error" not in applied, applied
    assert applied["commands"] == predicted["commands"]
    # (the flow listing runs only when the host's conntrack table is not empty; links coming up may
    # already have made entries (IPv6 link-local traffic), so it is left out of the count)
    # one iptables-save reads every table (iptables-nft: a table the host does not have yet is read as
    # -t would print it, its built-in chains empty)
    assert {k: n for k, n in firewall_processes(applied).items() if k != "conntrack -L -p"} == {
        "iptables-save": 1,
        "iptables-restore -w --noflush": 3,  # filter, nat, raw: each with the lines of both steps
    }, applied["processes"]
    assert firewall_processes(applied).get("conntrack -L -p", 0) <= 1, applied["processes"]
    # the other backend is looked at once per run (leftovers of a switch), not once per step
    assert applied["nft"] == ["nft -a list table ip linuxnet"], applied["nft"]
    assert any("conntrack -D" in c for c in applied["commands"]["port_mapping"])  # 9000/udp: the cleanup is said
    again = call(lab, tmp_path, "converge")
    assert again["changed"] is False
    assert firewall_processes(again) == {"iptables-save": 1}
    assert again["nft"] == ["nft -a list table ip linuxnet"], again["nft"]
    predicted = call(lab, tmp_path, "remove", check_mode=True)
    removed = call(lab, tmp_path, "remove")
    assert removed["commands"] == predicted["commands"]
    # (the bridges being up made conntrack entries by now: the cleanup lists the UDP flows once)
    assert {k: n for k, n in firewall_processes(removed).items() if k != "conntrack -L -p"} == {
        "iptables-save": 1, "iptables-restore -w --noflush": 3,
    }, removed["processes"]
    assert call(lab, tmp_path, "remove")["changed"] is False
    left = lab.run(HOST, ["sh", "-c", "iptables-save | grep LINUXNET || true"]).stdout
    assert left.strip() == "", left


# Two dual-stack networks: a published port on one, reached from the other over IPv4 and IPv6.
DUAL = [{"name": "dual", "subnet": "172.22.0.0/16", "subnet6": "fd00:22::/64"},
        {"name": "dual2", "subnet": "172.23.0.0/16", "subnet6": "fd00:23::/64"}]
DUAL_ENDPOINTS = [{"name": "s1", "network": "dual", "ports": ["8081:80", "9001:9001/udp"]}, {"name": "c1", "network": "dual2"}]
# a change of both steps: dual2 without ICC, another port of s1's
DUAL_CHANGED = [DUAL[0], dict(DUAL[1], icc=False)]
DUAL_ENDPOINTS_CHANGED = [dict(DUAL_ENDPOINTS[0], ports=["8081:80", "8082:80"]), DUAL_ENDPOINTS[1]]
# what one write per table looks like: each table of each family once; nftables: one nft -f for both
ONE_WRITE = {
    "iptables": ["iptables-restore filter", "iptables-restore nat", "iptables-restore raw",
                 "ip6tables-restore filter", "ip6tables-restore nat", "ip6tables-restore raw"],
    "nftables": ["nft -f"],
}
LISTS = ["nft -a list table ip linuxnet", "nft -a list table ip6 linuxnet"]


def published_reached(lab, tmp_path: Path, ports=(8081,)) -> None:
    """From c1 (dual2) to the host's addresses on dual2 at s1's published ports, over IPv4 and IPv6
    (DNAT to s1, forwarded between the bridges); s1's address itself stays closed to c1 (isolation)."""
    probe = Probe6(lab, Path(tempfile.mkdtemp(dir=tmp_path)))  # (a directory of its own: its ready files)
    try:
        probe.serve(HOST, "s1", 80)
        targets = [(address, port) for port in ports for address in ("172.23.0.1", "fd00:23::1")]
        seen = probe.peers(HOST, "c1", targets + [("172.22.0.2", 80), ("fd00:22::2", 80)],
                           [REACH_TIMEOUT] * len(targets) + [BLOCKED_TIMEOUT] * 2)
        assert "-" not in seen[:len(targets)] and seen[len(targets):] == ["-", "-"], dict(zip(targets, seen))
    finally:
        probe.traffic.stop()


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_dual_stack_runs_write_each_table_once_in_either_backend(lab, tmp_path, backend):
    """firewall and port_mapping join their writes in every family and backend: one ip6tables-restore per
    table as one iptables-restore, one ``nft -f`` for both steps and both families; check mode predicts
    each step's commands exactly; the re-run writes nothing; packets reach the published ports over IPv4
    and IPv6. The other backend is read once per family (what a switch would leave there)."""
    opts = {"firewall_backend": backend}
    for networks, endpoints in ((DUAL, DUAL_ENDPOINTS), (DUAL_CHANGED, DUAL_ENDPOINTS_CHANGED)):
        predicted = call(lab, tmp_path, "converge", check_mode=True, networks=networks, endpoints=endpoints, **opts)
        applied = call(lab, tmp_path, "converge", networks=networks, endpoints=endpoints, **opts)
        assert "error" not in applied, applied
        assert applied["commands"] == predicted["commands"]
        assert applied["commands"]["firewall"] and applied["commands"]["port_mapping"]
        assert any("fd00:22::2" in c for c in applied["commands"]["port_mapping"]), applied["commands"]["port_mapping"]
        assert sorted(applied["writes"]) == sorted(ONE_WRITE[backend]), applied["writes"]
        # every table of each family read once, in one save per family (with nftables: what a switch
        # from iptables would leave)
        assert {k: n for k, n in firewall_processes(applied).items() if "-save" in k} == {"iptables-save": 1, "ip6tables-save": 1}
        if backend == "nftables":  # our two tables, each read once; nothing of ours in iptables to remove
            assert sorted(applied["nft"]) == LISTS + ["nft -f /dev/stdin"], applied["nft"]
        else:
            assert sorted(applied["nft"]) == LISTS, applied["nft"]
        again = call(lab, tmp_path, "converge", networks=networks, endpoints=endpoints, **opts)
        assert again["changed"] is False and again["writes"] == [], again
        published_reached(lab, tmp_path, (8081, 8082) if endpoints is DUAL_ENDPOINTS_CHANGED else (8081,))
    predicted = call(lab, tmp_path, "remove", check_mode=True, **opts)
    removed = call(lab, tmp_path, "remove", **opts)
    assert removed["commands"] == predicted["commands"]
    assert sorted(removed["writes"]) == sorted(ONE_WRITE[backend]), removed["writes"]
    assert call(lab, tmp_path, "remove", **opts)["changed"] is False
    left = lab.run(HOST, ["sh", "-c", "iptables-save; ip6tables-save; nft list ruleset"]).stdout
    assert "LINUXNET" not in left and "linuxnet" not in left, left


def test_a_backend_switch_writes_each_backend_once(lab, tmp_path):
    """iptables -> nftables -> iptables on a dual-stack deployment: the chosen backend gets one
    transaction with both steps' lines, the other one write per table that removes what is ours there;
    check mode predicts it; packets still reach the published port; nothing is left behind."""
    assert "error" not in call(lab, tmp_path, "converge", networks=DUAL, endpoints=DUAL_ENDPOINTS)
    for backend, cleanup in (("nftables", ONE_WRITE["iptables"]), ("iptables", ONE_WRITE["nftables"])):
        predicted = call(lab, tmp_path, "converge", check_mode=True, networks=DUAL, endpoints=DUAL_ENDPOINTS, firewall_backend=backend)
        applied = call(lab, tmp_path, "converge", networks=DUAL, endpoints=DUAL_ENDPOINTS, firewall_backend=backend)
        assert "error" not in applied, applied
        assert applied["commands"] == predicted["commands"]
        assert sorted(applied["writes"]) == sorted(ONE_WRITE[backend] + cleanup), applied["writes"]
        again = call(lab, tmp_path, "converge", networks=DUAL, endpoints=DUAL_ENDPOINTS, firewall_backend=backend)
        assert again["changed"] is False and again["writes"] == [], again
        # (iptables gives the FORWARD policies it set to DROP back: a DROP there would be final)
        published_reached(lab, tmp_path)
        other = "nft list tables" if backend == "iptables" else "iptables-save; ip6tables-save"
        left = lab.run(HOST, ["sh", "-c", other]).stdout
        assert "LINUXNET" not in left and "linuxnet" not in left, left
    assert call(lab, tmp_path, "remove")["changed"] is True
