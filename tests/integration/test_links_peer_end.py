"""The peer end of a host-only veth pair the collection made, named as a veth ``name``: refused
with an error that says so (and which name to give instead), naming the field, before anything
changes, in check mode too and whatever the state (``deleted`` would otherwise leave it alone with
a warning that the collection did not create it). A hand-made pair keeps the foreign-veth error.
``gathered`` lists the pair once, as its host end, so its list round-trips into ``merged``.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_links_peer_end.py -q``
"""

from __future__ import annotations

import os

import pytest

from tests.integration.helpers import ADDR, HOST, sh
from tests.integration.helpers_process import ok, refused, run_module
from tests.integration.helpers_links import FOREIGN_VETH, links

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

PEER_END = "config[1] (name=vb).name: vb is the peer end of veth va that linuxnet.bridge created; name va instead"


@pytest.fixture
def lab(lab_factory, tmp_path):
    tmp_path.chmod(0o755)
    return lab_factory({HOST: ADDR})


def test_naming_the_peer_end_of_our_host_pair_says_so(lab, tmp_path):
    ok(run_module(lab, tmp_path, "veth", {"config": [{"name": "va", "peer": "vb", "mtu": 1400}], "state": "merged"}))
    sh(lab, "ip link add vx type veth peer name vy")  # someone else's pair
    before = links(lab)
    va = {"name": "va", "peer": "vb", "mtu": 1400}
    for state in ("merged", "replaced", "overridden", "deleted"):
        for check in (True, False):
            args = {"config": [va, {"name": "vb", "peer": "va", "mtu": 1300}], "state": state}
            refused(run_module(lab, tmp_path, "veth", args, check=check), PEER_END)
    assert links(lab) == before
    # the other end of a hand-made pair is foreign, as before
    foreign = {"config": [{"name": "vy", "peer": "vx"}], "state": "merged"}
    refused(run_module(lab, tmp_path, "veth", foreign), FOREIGN_VETH.replace("va", "vy"))
    # the host end is still the way to change and delete the pair
    assert ok(run_module(lab, tmp_path, "veth", {"config": [va], "state": "merged"}))["commands"] == []
    ok(run_module(lab, tmp_path, "veth", {"config": [va], "state": "deleted"}))
    names = [link["ifname"] for link in links(lab)]
    assert "va" not in names and "vb" not in names and "vx" in names, names


def test_gathered_lists_our_host_pair_once_and_round_trips(lab, tmp_path):
    """``gathered`` lists the pair as its host end (peer vb), not vb as a veth of its own: its list is
    valid config again (merged with it changes nothing), as a resource module's gathered should be."""
    ok(run_module(lab, tmp_path, "veth", {"config": [{"name": "va", "peer": "vb", "mtu": 1400}], "state": "merged"}))
    gathered = ok(run_module(lab, tmp_path, "veth", {"state": "gathered"}))["gathered"]
    names = [item["name"] for item in gathered]
    assert "va" in names and "vb" not in names, gathered
    assert next(item for item in gathered if item["name"] == "va")["peer"] == "vb"
    mine = [item for item in gathered if item["name"] == "va"]
    again = ok(run_module(lab, tmp_path, "veth", {"config": mine, "state": "merged"}))
    assert not again["changed"] and again["commands"] == [], again
