"""Secondary IPv4 addresses through ``replaced``, against a real kernel inside a lab host.

The kernel lists the first address of a prefix (same subnet and length) as its primary and the
others as its secondaries; deleting the primary also deletes them when
``net.ipv4.conf.<if>.promote_secondaries`` is 0 (the default), or promotes one when it is 1. A
``replaced`` run that drops a primary but keeps one of its secondaries must leave the kernel with
exactly the configured addresses either way, report them in ``after`` (check mode predicting the
same commands and ``after``), and the next run has nothing to do.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_links_secondaries.py -q``
"""

from __future__ import annotations

import os

import pytest

from tests.integration.helpers import ADDR, HOST, sh
from tests.integration.helpers_process import ok, run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")


@pytest.fixture
def lab(lab_factory, tmp_path):
    tmp_path.chmod(0o755)
    return lab_factory({HOST: ADDR})


def kernel_addresses(lab, dev: str, netns: str | None = None) -> list[str]:
    """``ip -o addr`` of ``dev`` (global scope) in the kernel's order."""
    where = f"-n {netns} " if netns else ""
    out = sh(lab, f"ip {where}-o addr show dev {dev} scope global").stdout
    return [line.split()[3] for line in out.splitlines()]


# (state, addresses) in turn: 10.1.0.1 is the primary of 10.1.0.0/24, .2 and .3 its secondaries;
# the replaced step drops the primary and the secondary .3, keeps .2 and adds .4 of the same prefix
STEPS = [
    ("merged", ["10.1.0.1/24", "10.1.0.2/24", "10.1.0.3/24", "10.2.0.1/24", "fd00:1::1/64"]),
    ("replaced", ["10.1.0.2/24", "10.1.0.4/24", "10.2.0.1/24", "fd00:1::1/64"]),
]


@pytest.mark.parametrize("promote", [0, 1])
def test_replaced_keeps_the_wanted_secondaries_of_a_deleted_primary(lab, tmp_path, promote):
    sh(lab, f"ip netns add c1 && sysctl -qw net.ipv4.conf.default.promote_secondaries={promote} "
            f"&& ip netns exec c1 sysctl -qw net.ipv4.conf.default.promote_secondaries={promote}")
    for module, item, dev, netns in (("bridge", {"name": "br1"}, "br1", None),
                                     ("veth", {"name": "v1", "peer_netns": "c1"}, "eth0", "c1")):
        for state, addresses in STEPS:
            args = {"config": [{**item, "addresses": addresses}], "state": state}
            predicted = ok(run_module(lab, tmp_path, module, args, check=True))
            real = ok(run_module(lab, tmp_path, module, args))
            assert predicted["commands"] == real["commands"] and real["commands"], (predicted, real)
            kernel = kernel_addresses(lab, dev, netns)
            assert sorted(kernel) == sorted(addresses), (module, state, kernel, real["commands"])
            assert real["after"][0]["addresses"] == kernel, (real["after"], kernel)
            assert predicted["after"][0]["addresses"] == kernel, (predicted["after"], kernel)
            again = ok(run_module(lab, tmp_path, module, args))
            assert again["commands"] == [] and not again["changed"], again


def test_the_deployment_moves_a_gateway_past_a_secondary_address(lab, tmp_path):
    """Re-addressing a network whose bridge has a secondary address (added by hand): the address the
    config does not want goes first, then the old gateway; before, deleting the primary took the
    secondary with it and the run failed deleting it (Cannot assign requested address)."""
    network = {"name": "n1", "subnet": "10.61.0.0/24"}
    args = {"networks": [network], "endpoints": [{"name": "web", "network": "n1"}], "persist": False}
    try:
        ok(run_module(lab, tmp_path, "deployment", args))
        sh(lab, "ip addr add 10.61.0.77/24 dev br-n1")
        assert kernel_addresses(lab, "br-n1") == ["10.61.0.1/24", "10.61.0.77/24"]
        moved = {**args, "networks": [{**network, "gateway": "10.61.0.254"}]}
        predicted = ok(run_module(lab, tmp_path, "deployment", moved, check=True))
        real = ok(run_module(lab, tmp_path, "deployment", moved))
        assert predicted["commands"] == real["commands"], (predicted["commands"], real["commands"])
        assert real["commands"]["bridge"] == ["ip addr del 10.61.0.77/24 dev br-n1", "ip addr del 10.61.0.1/24 dev br-n1",
                                              "ip addr add 10.61.0.254/24 dev br-n1"], real["commands"]
        assert kernel_addresses(lab, "br-n1") == ["10.61.0.254/24"]
        assert not ok(run_module(lab, tmp_path, "deployment", moved))["changed"]
    finally:
        ok(run_module(lab, tmp_path, "deployment", {"state": "absent", "persist": False}))
