"""playbooks/verify.yml checks IPv6 published ports (issue 14) with real packets, through the product's
dual-stack prober (``playbooks/files/linuxnet_probe.py``: IPv6 TCP and UDP, listeners for both families).

``linuxnet1`` (172.16.211.128, 2001:db8:ff::128) runs the deployment; ``outside`` (172.16.211.1,
2001:db8:ff::1) is the probe host. Both tell verify.yml their IPv6 address as ``linuxnet_host_address6``.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_verify_ipv6_ports.py -q``
"""

from __future__ import annotations

import os

import pytest

from tests.integration.helpers import ADDR, ADDR6, HOST, OUT_ADDR, OUT_ADDR6, OUTSIDE, REPO, lan_ipv6_inventory
from tests.integration.helpers_role import site

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

NETWORKS = [{"name": "dual", "subnet": "172.20.0.0/16", "subnet6": "fd00:20::/64"}]
ENDPOINTS = [{"name": "web", "network": "dual", "ports": [
    "8080:7000",  # both families
    f"[{ADDR6}]:8081:7000",  # IPv6 only
    "8082:7000/udp",
    {"publish": "8084:7000", "sources": [OUT_ADDR6, "192.0.2.0/24"]},  # the probe host over IPv6 only
]}]


def test_verify_checks_ipv6_published_ports(lab_factory, run_playbook, tmp_path):
    lab = lab_factory({HOST: ADDR, OUTSIDE: OUT_ADDR}, groups={"linuxnet_hosts": [HOST], "linuxnet_probes": [OUTSIDE]})
    path = lan_ipv6_inventory(lab, tmp_path)
    site(run_playbook, lab, NETWORKS, ENDPOINTS)
    topology = {"linuxnet_install_packages": False, "linuxnet_networks": NETWORKS, "linuxnet_endpoints": ENDPOINTS}
    result = run_playbook(path, REPO / "playbooks" / "verify.yml", extra_vars=topology)
    results = result.task("Compare expected with observed", HOST).result["ansible_facts"]["__results"]
    published = {(r["kind"], r["address"], r["port"]): (r["expect"], bool(r["observed"]), r["target"])
                 for r in results if r["source"] == "probe"}
    assert published == {
        ("tcp", ADDR, 8080): (True, True, "web"),
        ("tcp", ADDR6, 8080): (True, True, "web"),  # the IPv6 mapping of the same -p, over IPv6
        ("tcp", ADDR6, 8081): (True, True, "web"),
        ("udp", ADDR, 8082): (True, True, "web"),
        ("udp", ADDR6, 8082): (True, True, "web"),
        ("tcp", ADDR, 8084): (False, False, "web"),  # sources per family: blocked over IPv4 ...
        ("tcp", ADDR6, 8084): (True, True, "web"),  # ... reached over IPv6
    }, published
    # the UDP listener echoed the peer it saw: the probe host's own IPv6 address (DNAT, no NAT66)
    replies = {(r["kind"], r["address"], r["port"]): r["reply"] for r in results if r["source"] == "probe"}
    assert replies[("udp", ADDR6, 8082)].split() == [OUT_ADDR6, "7000"], replies
    assert result.rc == 0, result.stdout[-3000:]
