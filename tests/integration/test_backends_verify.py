"""The seed topology plus a dual-stack network, on all three firewall backends (issue 14, "Done when").

For each backend (iptables with ``linuxnet_iptables_variant`` iptables-nft, iptables-legacy, and
``linuxnet_firewall_backend: nftables``) a fresh lab (``linuxnet1`` with the probe host ``outside``)
is converged with ``playbooks/site.yml`` from ``tests/lab/playbooks/vars/topology.yml`` (the seed
topology of ``make lab``) plus one dual-stack network with two endpoints, then:

* ``playbooks/verify.yml`` passes with real packets (IPv4 pairs, IPv6 pairs on the dual-stack
  network, egress to the probe, the published ports from the probe, d1's ``8090:80`` over IPv4 and
  IPv6: the lab LAN carries IPv6 and both hosts tell verify their ``linuxnet_host_address6``);
* our rules sit in the chosen backend only (IPv4 and IPv6), nothing in the other two;
* a second run of site.yml reports changed=0;
* ``linuxnet_state: absent`` leaves nothing of ours: no LINUXNET chain or rule in
  ``iptables-save``/``ip6tables-save`` of either variant, no ``ip linuxnet``/``ip6 linuxnet`` table.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_backends_verify.py -q``
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.helpers import ADDR, ADDR6, HOST, HOSTS, OUTSIDE, lan_ipv6_inventory, sh
from tests.lab.core import Lab

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "playbooks" / "site.yml"
VERIFY = REPO / "playbooks" / "verify.yml"
SEED = REPO / "tests" / "lab" / "playbooks" / "vars" / "topology.yml"
GROUPS = {"linuxnet_hosts": [HOST], "linuxnet_probes": [OUTSIDE]}

DUAL_NETWORK = {"name": "dualnet", "bridge": "br-dualnet", "subnet": "172.19.0.0/16", "subnet6": "fd00:19::/64"}
DUAL_ENDPOINTS = [{"name": "d1", "network": "dualnet", "ports": ["8090:80"]}, {"name": "d2", "network": "dualnet"}]

BACKENDS = {
    "iptables-nft": {"linuxnet_firewall_backend": "iptables", "linuxnet_iptables_variant": "iptables-nft"},
    "iptables-legacy": {"linuxnet_firewall_backend": "iptables", "linuxnet_iptables_variant": "iptables-legacy"},
    "nftables": {"linuxnet_firewall_backend": "nftables"},
}
SAVES = ("iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save")
OUR_TABLES = ("ip linuxnet", "ip6 linuxnet")


def topology() -> dict[str, Any]:
    """The seed topology as a namespace lab host runs it (no packages, no systemd service) plus dualnet."""
    seed = yaml.safe_load(SEED.read_text())
    endpoints = [{k: v for k, v in ep.items() if k != "service"} for ep in seed["linuxnet_endpoints"]]
    return {
        "linuxnet_install_packages": False,
        "linuxnet_networks": [*seed["linuxnet_networks"], DUAL_NETWORK],
        "linuxnet_endpoints": [*endpoints, *DUAL_ENDPOINTS],
    }


def iptables_ours(lab: Lab) -> dict[str, list[str]]:
    """Our chains and rules in each of the four iptables-save views (IPv4/IPv6 x nft/legacy)."""
    out = {}
    for save in SAVES:
        text = sh(lab, f"{save} 2>/dev/null || true").stdout
        out[save] = [line for line in text.splitlines() if "LINUXNET" in line]
    return out


def nft_tables(lab: Lab) -> list[str]:
    """Our nftables tables that exist (iptables-nft's own tables are ``ip filter`` etc., not these)."""
    listed = sh(lab, "nft list tables").stdout.splitlines()
    return [t for t in OUR_TABLES if f"table {t}" in listed]


def run(run_playbook, lab: Lab, book: Path, extra_vars: dict[str, Any]):
    result = run_playbook(lab.inventory_path, book, extra_vars=extra_vars)
    assert result.rc == 0, result.stdout[-4000:] + result.stderr[-3000:]
    return result


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_seed_plus_dual_stack_passes_verify_is_idempotent_and_tears_down(backend, lab_factory, run_playbook, tmp_path):
    lab = lab_factory(HOSTS, groups=GROUPS)
    extra = {**topology(), **BACKENDS[backend]}

    with_ipv6 = lan_ipv6_inventory(lab, tmp_path)
    run(run_playbook, lab, SITE, extra)
    verified = run_playbook(with_ipv6, VERIFY, extra_vars=extra)
    assert verified.rc == 0, verified.stdout[-4000:] + verified.stderr[-3000:]
    results = verified.task("Compare expected with observed", HOST).result["ansible_facts"]["__results"]
    six = [r for r in results if ":" in str(r["address"]) and r["source"] != "probe"]
    # the dual-stack pair both ways over IPv6, reached; the published port from the probe, reached
    assert sorted((r["source"], r["target"], bool(r["observed"])) for r in six) == [("d1", "d2", True), ("d2", "d1", True)], six
    published = {(r["address"], r["port"]): bool(r["observed"]) for r in results if r["source"] == "probe" and r["port"] == 8090}
    assert published == {(ADDR, 8090): True, (ADDR6, 8090): True}, published  # -p 8090:80 over both families
    assert any(r["source"] == "probe" and r["observed"] for r in results), results
    # isolation is really exercised: dualnet endpoints must not reach the seed networks (and do not)
    assert any(r["source"] == "d1" and r["target"] == "c3" and not r["expect"] and not r["observed"] for r in results)
    assert "checks, all as expected" in verified.task("Every check matches the expectation", HOST).result["msg"]

    # the rules live in the chosen backend, for both families, and nowhere else
    found = iptables_ours(lab)
    if backend == "nftables":
        assert nft_tables(lab) == list(OUR_TABLES)
        assert found == {save: [] for save in SAVES}
    else:
        assert nft_tables(lab) == []
        for save in SAVES:
            assert bool(found[save]) == save.endswith(f"{backend.split('-')[1]}-save"), (save, found[save][:5])

    again = run(run_playbook, lab, SITE, extra)
    assert again.stats[HOST]["changed"] == 0, [t.name for t in again.changed_tasks]

    run(run_playbook, lab, SITE, {**extra, "linuxnet_state": "absent"})
    assert iptables_ours(lab) == {save: [] for save in SAVES}
    assert nft_tables(lab) == []
    assert "br-dualnet" not in sh(lab, "ip -o link show").stdout
    assert sh(lab, "ip netns list").stdout.strip() == ""
