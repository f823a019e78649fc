"""The order of a link's address requests (``_links.address_steps``) and the kernel's result
(``_links.kernel_after``), pure: IPv4 secondaries survive a ``replaced`` that deletes their primary,
whatever ``promote_secondaries`` says; and the peer end of the collection's host-only veth pair
(``_veth.host_end_of``). Against a real kernel: tests/integration/test_links_secondaries.py and
test_links_peer_end.py.

Run: ``.venv/bin/python -m pytest tests/unit -q``
"""

from __future__ import annotations

import itertools
import random

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import IPV6_ROUTER, BridgeResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._links import (
    address_ops,
    address_steps,
    kernel_after,
    kernel_order,
    primaries,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import VethResource, host_end_of

from .fixtures.netlink import plan, veth_current
from .test_bridge import br_current

# As gathered: 10.1.0.1 the primary of 10.1.0.0/24 (.2 and .3 its secondaries), 10.2.0.1 another primary
HAVE = ["10.1.0.1/24", "10.2.0.1/24", "10.1.0.2/24", "10.1.0.3/24", "fd00:1::1/64"]
WANT = ["10.1.0.2/24", "10.1.0.4/24", "10.2.0.1/24", "fd00:1::1/64"]  # .1 and .3 go, .2 stays, .4 comes


def test_primaries_are_the_first_of_each_prefix():
    assert primaries(HAVE) == {"10.1.0.1/24", "10.2.0.1/24"}
    assert primaries(["10.1.0.1/24", "10.1.0.1/16", "10.1.0.9/16"]) == {"10.1.0.1/24", "10.1.0.1/16"}  # same IP, other prefix


def test_a_kept_secondary_of_a_deleted_primary_is_deleted_first_and_added_again():
    commands = [op.command for op in address_ops("br1", None, HAVE, WANT, True)]
    assert commands == [
        "ip addr del 10.1.0.2/24 dev br1  # added again: deleting primary 10.1.0.1/24 deletes it",
        "ip addr del 10.1.0.3/24 dev br1",
        "ip addr del 10.1.0.1/24 dev br1",
        "ip addr add 10.1.0.2/24 dev br1",
        "ip addr add 10.1.0.4/24 dev br1",
    ]
    for promote in (False, True):
        assert kernel_after(HAVE, address_steps(HAVE, WANT, True), promote, strict=True) == \
            ["10.2.0.1/24", "10.1.0.2/24", "10.1.0.4/24", "fd00:1::1/64"]
    assert kernel_order(HAVE, WANT, True) == ["10.2.0.1/24", "10.1.0.2/24", "10.1.0.4/24", "fd00:1::1/64"]


def test_the_old_order_is_refused_by_the_model():
    """Deleting in the gathered order (the primary first) loses .2 and then fails on .3 (EADDRNOTAVAIL)
    with promote_secondaries=0, as the kernel did; with =1 the kept .2 is promoted, then added twice."""
    old = [(a, False, "") for a in HAVE if a not in WANT] + [(a, True, "") for a in WANT if a not in HAVE]
    with pytest.raises(ValueError, match="deleting 10.1.0.3/24: the link lacks it"):
        kernel_after(HAVE, old, promote=False, strict=True)
    assert kernel_after(HAVE, old[:1], promote=False) == ["10.2.0.1/24", "fd00:1::1/64"]  # .2 and .3 went with .1
    assert kernel_after(HAVE, old[:1], promote=True) == ["10.2.0.1/24", "10.1.0.2/24", "10.1.0.3/24", "fd00:1::1/64"]


def test_merged_and_unrelated_prefixes_need_no_second_request():
    assert address_steps(HAVE, ["10.1.0.9/24"], False) == [("10.1.0.9/24", True, "")]
    # a secondary that goes leaves its primary and siblings alone
    assert address_steps(HAVE, [a for a in HAVE if a != "10.1.0.3/24"], True) == [("10.1.0.3/24", False, "")]
    # the primary goes with all its secondaries: secondaries first, nothing added again
    assert address_steps(HAVE, ["10.2.0.1/24"], True) == [
        ("10.1.0.2/24", False, ""), ("10.1.0.3/24", False, ""), ("fd00:1::1/64", False, ""), ("10.1.0.1/24", False, "")]
    assert address_steps(HAVE, None, True) == []
    assert address_steps([], ["10.1.0.1/24", "10.1.0.1/24"], True) == [("10.1.0.1/24", True, "")]  # given twice: added once


POOL = ["10.1.0.1/24", "10.1.0.2/24", "10.1.0.3/24", "10.1.0.1/16", "10.2.0.1/24", "fd00:1::1/64", "fd00:1::2/64"]


def _cases(count: int = 800):
    """(have, want): ``have`` as a kernel holds it after adding a random sequence from POOL, ``want``
    a random selection in random order (seeded: the same cases every run)."""
    rng = random.Random(24)
    for _case in range(count):
        have = kernel_after([], [(a, True, "") for a in rng.sample(POOL, rng.randint(0, len(POOL)))], strict=True)
        yield have, rng.sample(POOL, rng.randint(0, len(POOL)))


@pytest.mark.parametrize("exact", [True, False])
def test_every_plan_is_valid_the_same_under_both_settings_and_idempotent(exact):
    for have, want in _cases():
        steps = address_steps(have, want, exact)
        result = kernel_after(have, steps, promote=False, strict=True)  # raises on a request the kernel refuses
        assert kernel_after(have, steps, promote=True, strict=True) == result, (have, want, steps)
        expected = set(want) | (set() if exact else set(have))
        assert sorted(result) == sorted(expected), (have, want, steps, result)
        assert kernel_order(have, want, exact) == result
        assert address_steps(result, want, exact) == [], (have, want, result)  # the next run: nothing to do
        # every delete before every add; an address deleted only to be added again is a kept one
        deletes = list(itertools.takewhile(lambda step: not step[1], steps))
        assert all(add for _a, add, _why in steps[len(deletes):]), steps
        assert all(a in want and a in have and (a, True, "") in steps for a, _add, why in deletes if why), steps


def test_resources_plan_and_predict_it():
    """bridge and veth (its peer end) plan the same requests, and ``after`` is the kernel's order."""
    config = [{"name": "br1", "addresses": WANT}]
    commands, after = plan(BridgeResource, config, {"br1": br_current("br1", addresses=HAVE) | {"_ipv6": IPV6_ROUTER}}, "replaced")
    assert commands[0] == "ip addr del 10.1.0.2/24 dev br1  # added again: deleting primary 10.1.0.1/24 deletes it"
    assert after["br1"]["addresses"] == ["10.2.0.1/24", "10.1.0.2/24", "10.1.0.4/24", "fd00:1::1/64"]
    config = [{"name": "v1", "peer_netns": "c1", "addresses": WANT}]
    current = {"v1": veth_current("v1", peer_netns="c1", addresses=HAVE) | {"ipv6": True, "_accept_ra": 0}}
    commands, after = plan(VethResource, config, current, "overridden")
    assert [c for c in commands if " addr " in c] == [c.replace("ip addr", "ip -n c1 addr").replace("dev br1", "dev eth0")
                                                      for c in (op.command for op in address_ops("br1", None, HAVE, WANT, True))]
    assert after["v1"]["addresses"] == ["10.2.0.1/24", "10.1.0.2/24", "10.1.0.4/24", "fd00:1::1/64"]


def _veth(name: str, index: int, peer_index: int, alias: str | None = None, netnsid: int | None = None) -> dict:
    return {"name": name, "index": index, "link": peer_index, "kind": "veth", "alias": alias, "link_netnsid": netnsid}


def test_the_peer_end_of_our_host_pair_names_its_host_end():
    ours = {"va": _veth("va", 5, 6, "linuxnet.bridge veth peer=vb"), "vb": _veth("vb", 6, 5)}
    assert host_end_of(ours["vb"], ours) == "va"
    hand_made = {"vx": _veth("vx", 7, 8), "vy": _veth("vy", 8, 7)}
    assert host_end_of(hand_made["vy"], hand_made) is None
    into_netns = {"vc": _veth("vc", 9, 2, "linuxnet.bridge veth peer=vb netns=c1"), "vb": _veth("vb", 10, 2, netnsid=0)}
    assert host_end_of(into_netns["vb"], into_netns) is None  # not its peer: vb of the host is someone else's
    other_pair = {"va": _veth("va", 5, 11, "linuxnet.bridge veth peer=vb"), "vb": _veth("vb", 6, 12)}
    assert host_end_of(other_pair["vb"], other_pair) is None  # va's recorded vb is another link now
