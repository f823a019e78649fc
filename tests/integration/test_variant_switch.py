"""A switch away from iptables-legacy (to the nftables backend, or to the iptables-nft variant) removes
the legacy rules of ours, so that they no longer drop published ports, in a lab host with real packets.

The legacy ruleset is the one the firewall and port_mapping modules made with ``iptables_variant:
iptables-legacy`` (network ``a``, lnx-a 10.51.0.0/24, gateway_mode nat: its ``! -i lnx-a -o lnx-a -j
DROP``). The switch publishes 8080:80 of endpoint ``a1`` (10.51.0.2) with the new backend, in a
configuration that no longer names the legacy variant: the run still finds and removes the legacy
rules (every iptables variant other than the chosen one is cleaned), ``outside`` reaches the published
port, and a second run changes nothing.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_variant_switch.py -q``
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.integration import helpers
from tests.lab.playbook import run_playbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

HOST, OUTSIDE, ADDR = helpers.HOST, helpers.OUTSIDE, helpers.ADDR
NETWORKS = [{"name": "a", "bridge": "lnx-a", "subnet": "10.51.0.0/24"}]
MAPPINGS = [{"bridge": "lnx-a", "container_ip": "10.51.0.2", "publish": "8080:80", "network": "a"}]
LEGACY = {"firewall_backend": "iptables", "iptables_variant": "iptables-legacy"}
TARGETS = {"nftables": ({"firewall_backend": "nftables"}, {"nft"}),
           "iptables-nft": ({"firewall_backend": "iptables", "iptables_variant": "iptables-nft"}, {"iptables-nft-save"})}


def tasks(tag: str, options: dict[str, str]) -> list[dict[str, Any]]:
    return [helpers.fw_task(f"fw-{tag}", NETWORKS, state="overridden", **options),
            {"name": f"pm-{tag}", "linuxnet.bridge.port_mapping": {"state": "overridden", "config": MAPPINGS, **options}}]


@pytest.mark.parametrize("target", list(TARGETS))
def test_switch_from_legacy_removes_its_rules_and_the_port_answers(target, lab_factory, tmp_path):
    options, places = TARGETS[target]
    lab = lab_factory(helpers.HOSTS)
    helpers.make_endpoints(lab, {"lnx-a": "10.51.0.1/24"}, {"a1": ("lnx-a", "10.51.0.2")})
    traffic = helpers.Traffic(lab, tmp_path)
    try:
        traffic.start(HOST, "a1", tcp=(80,), udp=())
        published = {(None, "tcp", ADDR, 8080): True}
        first = helpers.run(run_playbook, lab, tasks("legacy", LEGACY)[0])  # the network only: nothing published yet
        assert helpers.res(first, "fw-legacy")["changed"] is True
        assert set(helpers.leftovers(lab)) == {"iptables-legacy-save"}
        traffic.expect(OUTSIDE, {(None, "tcp", ADDR, 8080): False})

        switched = helpers.run(run_playbook, lab, *tasks("switch", options), *tasks("again", options))
        assert helpers.res(switched, "fw-switch")["changed"] is True
        traffic.expect(OUTSIDE, published)  # (a legacy rule left, `! -i lnx-a -o lnx-a -j DROP`, dropped it)
        assert "iptables-legacy-save" not in helpers.leftovers(lab), f"legacy rules left: {helpers.leftovers(lab)}"
        assert set(helpers.leftovers(lab)) == places
        for name in ("fw-again", "pm-again"):
            assert helpers.res(switched, name)["changed"] is False and helpers.res(switched, name)["commands"] == [], name
        # the legacy variant's FORWARD policy, which the first run set to DROP (forwarding was off), is given back
        assert ":FORWARD ACCEPT" in helpers.sh(lab, "iptables-legacy-save -t filter").stdout

        down = helpers.run(run_playbook, lab, {"name": "pm-down", "linuxnet.bridge.port_mapping": {"state": "deleted", **options}},
                           helpers.fw_task("fw-down", state="deleted", **options))
        assert helpers.res(down, "fw-down")["changed"] is True
        assert helpers.leftovers(lab) == {}, "teardown left rules of ours"
    finally:
        traffic.stop()
