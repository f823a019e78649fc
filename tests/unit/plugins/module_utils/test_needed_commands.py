"""_firewall.needed_commands and missing_message: what a deployment run needs on the managed host."""

from __future__ import annotations

import pytest

from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import missing_message, needed_commands


@pytest.mark.parametrize(("params", "ipv6", "required"), [
    ({}, False, ["iptables", "iptables-save", "iptables-restore"]),
    ({"firewall_backend": "iptables", "iptables_variant": "auto"}, True,
     ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"]),
    ({"iptables_variant": "iptables-nft"}, False, ["iptables-nft-save", "iptables-nft-restore"]),
    ({"iptables_variant": "iptables-legacy"}, True,
     ["iptables-legacy-save", "iptables-legacy-restore", "ip6tables-legacy-save", "ip6tables-legacy-restore"]),
    ({"firewall_backend": "nftables", "iptables_variant": "iptables-legacy"}, True, ["nft"]),
])
def test_needed_commands(params, ipv6, required):
    assert needed_commands(params, ipv6) == (required + ["ip"], ["conntrack"])  # ip: the kernel probe


def test_missing_message_names_each_package_once():
    assert missing_message(["iptables", "iptables-save", "nft", "ip"]) == (
        "iptables, iptables-save, nft, ip not found on the managed host: install iptables, nftables and iproute2 (iproute on RHEL) "
        "(the role linuxnet.bridge.bridge_network does when linuxnet_install_packages is true)")
