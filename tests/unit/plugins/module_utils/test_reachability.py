"""``_reachability``: the checks verify.yml runs (``reachability``, ``listener``) and their report
(``matrix``, ``mismatches``) (pure; no root, no kernel).

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_reachability.py -q``
"""

from __future__ import annotations

from ansible_collections.linuxnet.bridge.plugins.module_utils._reachability import listener, matrix, mismatches, reachability

from .fixtures.topology import (
    REACH_ENDPOINTS,
    REACH_NETWORKS,
    SEED_ENDPOINTS,
    SEED_NETWORKS,
    plan,
)

# --------------------------------------------------------------------------------- reachability


def checks_by_pair(checks) -> dict[tuple[str, str], dict]:
    return {(c["source"], c["target"]): c for c in checks if c["source"] != "probe"}


def test_reachability_between_endpoints():
    p = plan(REACH_NETWORKS, REACH_ENDPOINTS)
    pairs = checks_by_pair(reachability(p))
    bridged = ["b1", "b2", "u1", "u2", "k1", "p1"]  # none and host mode take no part
    assert set(pairs) == {(a, b) for a in bridged for b in bridged if a != b}
    assert all(c["kind"] == "icmp" and c["port"] is None for c in pairs.values())

    def outcome(a, b):
        return pairs[(a, b)]["expect"], pairs[(a, b)]["why"], pairs[(a, b)]["address"]

    assert outcome("b1", "b2") == (True, "same network bridge", "172.17.0.3")
    assert outcome("u1", "u2") == (False, "same network usernet with icc off", "172.18.0.3")
    assert outcome("b1", "u1") == (False, "different networks (isolation)", "172.18.0.2")
    assert outcome("u1", "b1") == (False, "different networks (isolation)", "172.17.0.2")
    assert outcome("k1", "p1") == (True, "same network privnet", "10.40.0.3")  # internal: inside traffic is fine
    assert outcome("p1", "k1") == (True, "same network privnet", "10.40.0.2")
    assert outcome("b1", "k1") == (False, "different networks (isolation)", "10.30.0.2")


def test_reachability_egress_to_the_probe():
    p = plan(REACH_NETWORKS, REACH_ENDPOINTS)
    egress = {c["source"]: (c["expect"], c["why"]) for c in reachability(p, "172.16.211.1") if c["target"] == "probe"}
    assert egress == {
        "b1": (True, "egress through masquerade"), "b2": (True, "egress through masquerade"),
        "u1": (True, "egress through masquerade"), "u2": (True, "egress through masquerade"),
        "k1": (True, "egress through masquerade"),  # backnet is not internal
        "p1": (False, "internal network: no egress"),
    }
    assert all(c["address"] == "172.16.211.1" for c in reachability(p, "172.16.211.1") if c["target"] == "probe")
    assert not [c for c in reachability(p) if c["target"] == "probe"]  # no probe host, no egress checks


def test_reachability_of_published_ports():
    p = plan(REACH_NETWORKS, REACH_ENDPOINTS)
    published = [c for c in reachability(p, "172.16.211.1", "172.16.211.128") if c["source"] == "probe"]
    assert [(c["target"], c["kind"], c["address"], c["port"], c["container_port"], c["expect"]) for c in published] == [
        ("b2", "tcp", "172.16.211.128", 81, 80, True),
        ("u2", "tcp", "172.16.211.128", 8080, 80, True),  # no host_ip: the host's address
        ("u2", "udp", "172.16.211.128", 5353, 53, True),
        # 127.0.0.1:9000 is not reachable from the LAN: no check
        ("u2", "tcp", "172.16.211.128", 8443, 443, True),  # 0.0.0.0 = every address of the host
        ("k1", "tcp", "172.16.211.128", 7000, 7000, True),  # a range: its first port
    ]
    assert [c["why"] for c in published][:2] == ["published 172.16.211.128:81:80", "published 8080:80"]
    assert listener(published[2]) == {"netns": "u2", "kind": "udp", "port": 53}
    assert listener(published[4]) == {"netns": "k1", "kind": "tcp", "port": 7000}
    # without the host's address only ports published on an explicit address can be checked
    assert [c["port"] for c in reachability(p, "172.16.211.1") if c["source"] == "probe"] == [81]


def test_published_ports_with_sources_expect_the_probe_only_when_allowed():
    endpoints = [{"name": "w", "network": "bridge", "ports": [
        {"publish": "81:80", "sources": ["172.16.211.0/24"]}, {"publish": "82:80", "sources": ["192.0.2.0/24"]}]}]
    published = [c for c in reachability(plan(REACH_NETWORKS[:1], endpoints), "172.16.211.1", "172.16.211.128")
                 if c["source"] == "probe"]
    assert [(c["port"], c["expect"], c["why"]) for c in published] == [
        (81, True, "published 81:80 to 172.16.211.0/24"),
        (82, False, "published 82:80 to 192.0.2.0/24, not the probe"),
    ]


def test_published_ports_of_a_dual_stack_endpoint_are_checked_in_both_families():
    """Docker 27+ makes one mapping per family for ``-p`` on a dual-stack endpoint: each is checked in
    its family (IPv6 on ``host_address6``, from ``probe_address6``); without an IPv6 host address the
    IPv6 mappings published without one are left out (never checked on the IPv4 address)."""
    networks = [{"name": "dual", "subnet": "172.20.0.0/16", "subnet6": "fd00:20::/64"}]
    endpoints = [{"name": "w", "network": "dual", "ports": [
        "8080:80", "[::]:8081:80", "[2001:db8:ff::128]:8082:80/udp", "[2001:db8:ff::7]:8083:80",
        {"publish": "8084:80", "sources": ["2001:db8:ff::1", "192.0.2.0/24"]}]}]
    p = plan(networks, endpoints)
    published = [c for c in reachability(p, "172.16.211.1", "172.16.211.128", "2001:db8:ff::1", "2001:db8:ff::128")
                 if c["source"] == "probe"]
    assert [(c["target"], c["kind"], c["address"], c["port"], c["container_port"], c["expect"]) for c in published] == [
        ("w", "tcp", "172.16.211.128", 8080, 80, True),
        ("w", "tcp", "2001:db8:ff::128", 8080, 80, True),  # the IPv6 mapping of the same -p
        ("w", "tcp", "2001:db8:ff::128", 8081, 80, True),  # [::]: every IPv6 address of the host
        ("w", "udp", "2001:db8:ff::128", 8082, 80, True),
        ("w", "tcp", "2001:db8:ff::7", 8083, 80, True),  # an address named: checked on it ([::1] is refused by the plan)
        ("w", "tcp", "172.16.211.128", 8084, 80, False),  # sources per family: the IPv4 list leaves out the probe
        ("w", "tcp", "2001:db8:ff::128", 8084, 80, True),
    ]
    assert published[1]["why"] == "published 8080:80 over IPv6"
    assert listener(published[1]) == {"netns": "w", "kind": "tcp", "port": 80}  # the endpoint's netns, never the host's
    # without IPv6 addresses for the host and the probe: the IPv4 checks and the explicit IPv6 addresses only
    v4 = [c for c in reachability(p, "172.16.211.1", "172.16.211.128") if c["source"] == "probe"]
    assert [(c["address"], c["port"], c["expect"]) for c in v4] == [
        ("172.16.211.128", 8080, True), ("2001:db8:ff::128", 8082, True), ("2001:db8:ff::7", 8083, True),
        ("172.16.211.128", 8084, False)]
    assert all(c["target"] == "w" for c in v4)


def test_seed_topology_reachability():
    p = plan(SEED_NETWORKS, SEED_ENDPOINTS)
    checks = reachability(p, "172.16.211.1", "172.16.211.128")
    expected = {(c["source"], c["target"]): c["expect"] for c in checks}
    assert expected == {
        ("c1", "c2"): True, ("c1", "web"): True, ("c1", "c3"): False, ("c1", "probe"): True,
        ("c2", "c1"): True, ("c2", "web"): True, ("c2", "c3"): False, ("c2", "probe"): True,
        ("web", "c1"): True, ("web", "c2"): True, ("web", "c3"): False, ("web", "probe"): True,
        ("c3", "c1"): False, ("c3", "c2"): False, ("c3", "web"): False, ("c3", "probe"): True,
        ("probe", "web"): True,
    }


# --------------------------------------------------------------------------------- reports and pictures


def test_matrix_and_mismatches():
    p = plan(SEED_NETWORKS, SEED_ENDPOINTS)
    checks = reachability(p, "172.16.211.1", "172.16.211.128")
    results = [dict(c, observed=c["expect"]) for c in checks]
    results[0]["observed"] = not results[0]["expect"]  # c1 -> c2 blocked although expected
    results[-1]["observed"] = None  # the published port did not answer
    lines = matrix(results)
    assert len(lines) == len(results) + 1 and lines[0].split()[:2] == ["verdict", "from"]
    assert lines[1].startswith("MISMATCH") and "c1 -> c2" in lines[1] and "expected reach   observed blocked" in lines[1]
    assert "172.17.0.3 (icmp)" in lines[1] and "(same network bridge)" in lines[1]
    assert lines[-1].startswith("MISMATCH") and "172.16.211.128:81/tcp" in lines[-1]
    assert all(line.startswith("ok ") for line in lines[2:-1])
    assert [line for line in lines if "c3" in line and "c1" in line and "expected blocked observed blocked" in line]

    bad = mismatches(results)
    assert [(m["source"], m["target"]) for m in bad] == [("c1", "c2"), ("probe", "web")]
    assert [m["line"] for m in bad] == [lines[1], lines[-1]]
    assert mismatches([dict(c, observed=c["expect"]) for c in checks]) == []


def test_egress_of_a_network_without_masquerade_is_not_checked():
    """masquerade: false (the review's repro: verify.yml failed with "a -> probe expected reach observed
    blocked"): the reply needs a route back outside the host, so the cell is a skip, never a mismatch.
    The endpoint's first non-internal network decides (its default route), whatever comes after."""
    nets = [{"name": "plain", "subnet": "10.50.0.0/24", "masquerade": False},
            {"name": "unprotected", "subnet": "10.51.0.0/24", "gateway_mode": "nat-unprotected"},
            {"name": "snat", "subnet": "10.52.0.0/24", "snat_source": "192.0.2.10"},
            {"name": "priv", "subnet": "10.53.0.0/24", "internal": True}]
    eps = [{"name": "a", "network": "plain"}, {"name": "b", "networks": ["priv", "unprotected", "plain"]},
           {"name": "c", "network": "snat"}, {"name": "d", "networks": ["priv", "plain", "snat"]}, {"name": "e", "network": "priv"}]
    egress = {c["source"]: (c["expect"], c["why"]) for c in reachability(plan(nets, eps), "172.16.211.1") if c["target"] == "probe"}
    not_checked = (None, "masquerade off on plain: egress needs a route back to its subnet, not checked")
    assert egress == {"a": not_checked, "b": (True, "egress through masquerade"), "c": (True, "egress through masquerade"),
                      "d": not_checked, "e": (False, "internal network: no egress")}
    results = [dict(c, observed=observed) for c in reachability(plan(nets, eps[:1]), "172.16.211.1") for observed in (False, True)]
    assert mismatches(results) == []
    lines = matrix(results)[1:]
    assert [line.split()[0] for line in lines] == ["skip", "skip"], lines
    assert "expected -" in lines[0] and "observed blocked" in lines[0] and "observed reach" in lines[1]
    assert "(masquerade off on plain: egress needs a route back to its subnet, not checked)" in lines[0]
