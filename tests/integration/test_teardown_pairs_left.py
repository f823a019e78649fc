"""A teardown (``_deployment.remove()``) against a real kernel: the veth pairs of the namespaces it deletes.

A teardown waits for the kernel to destroy those pairs after its bridge step (the bridges' deletes and
the kernel's cleanup of the namespaces overlap), and deletes the pairs still there then: a namespace
kept alive by a bind mount (no process in it, so nobody could tell before) keeps its pair.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_teardown_pairs_left.py -q``
"""

from __future__ import annotations

import os

import pytest

from tests.integration.test_deployment import ADDR, HOST, call  # its topology: c1, c2, u1 on two networks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

KEEP = "/run/linuxnet-test-keep-c1"  # inside the lab host's private /run


@pytest.fixture
def lab(lab_factory):
    return lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]})


def ours(lab) -> str:
    """The links of the collection and the named namespaces left in the lab host."""
    return lab.run(HOST, ["sh", "-c", "ip netns list; ip -o link | grep -e linuxnet.bridge -e br- || true"]).stdout.strip()


def test_the_pairs_of_deleted_namespaces_go_with_them_and_a_teardown_deletes_those_left(lab, tmp_path):
    assert "error" not in call(lab, tmp_path, "converge")
    predicted = call(lab, tmp_path, "remove", check_mode=True)
    removed = call(lab, tmp_path, "remove")
    assert removed["commands"] == predicted["commands"]
    assert list(removed["commands"]) == ["port_mapping", "firewall", "netns", "veth", "bridge"]
    assert removed["commands"]["veth"] == [] and len(removed["commands"]["bridge"]) == 2
    assert ours(lab) == ""  # gone when the run ends, not some time after

    assert "error" not in call(lab, tmp_path, "converge")
    c1_pair = lab.run(HOST, ["sh", "-c", "ip -o link | grep 'netns=c1' | cut -d' ' -f2 | cut -d@ -f1"]).stdout.strip()
    assert c1_pair, "no veth of c1"
    # c1 kept alive by a bind mount of its name: no process in it, so its pair outlives `ip netns delete`
    lab.run(HOST, ["sh", "-c", f"touch {KEEP} && mount --bind /run/netns/c1 {KEEP}"])
    try:
        removed = call(lab, tmp_path, "remove")
        assert "error" not in removed, removed
        assert list(removed["commands"]) == ["port_mapping", "firewall", "netns", "veth", "bridge"]
        assert removed["commands"]["veth"] == [f"ip link del {c1_pair}"], removed["commands"]
        assert ours(lab) == ""
        assert call(lab, tmp_path, "remove")["changed"] is False
    finally:
        lab.run(HOST, ["sh", "-c", f"umount {KEEP}; rm -f {KEEP}"], check=False)
