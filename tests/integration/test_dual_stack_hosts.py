"""Dual-stack names through the role (issue 14), against a real kernel in a lab host.

Endpoints with IPv6 find their peers' names in ``/etc/netns/<endpoint>/hosts`` with both families,
one line per family, under Docker's standard lines; ``ip netns exec`` bind-mounts the file, so the
resolver inside the namespace (``getent``, ``ping``) sees it. An IPv6-only network is refused
before anything changes.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_dual_stack_hosts.py -q``
"""

from __future__ import annotations

import os

import pytest

from tests.integration.helpers import ADDR, HOST, run
from tests.integration.helpers_links import assert_same, sh
from tests.integration.helpers_role import DUAL_STACK_ENDPOINTS as ENDPOINTS
from tests.integration.helpers_role import DUAL_STACK_NETWORKS as NETWORKS
from tests.integration.helpers_role import ROLE, changed, converge, settled_snapshot, site

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

STANDARD = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
            "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


@pytest.fixture
def lab(lab_factory):
    return lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]})


def resolve(lab, netns: str, name: str, family: int) -> list[str]:
    """The addresses the namespace's resolver gives for ``name`` in one family (``getent
    ahostsv6`` adds IPv4-mapped ones when a name has no IPv6 line: those do not count)."""
    out = sh(lab, f"timeout 15 ip netns exec {netns} getent ahostsv{family} {name}", check=False).stdout
    found = [line.split()[0] for line in out.splitlines() if line.strip()]
    return sorted({a for a in found if not a.startswith("::ffff:")})


def name_ping(lab, netns: str, name: str, six: bool) -> str:
    """Ping ``name`` (resolved in the namespace) once; the address that answered, or ''."""
    script = (f"for i in 1 2 3; do ip netns exec {netns} ping {'-6' if six else '-4'} -n -c1 -W1 {name} && exit 0;"
              " sleep 0.5; done; exit 1")
    out = sh(lab, script, check=False)
    return out.stdout.split("(", 1)[1].split(")", 1)[0] if out.returncode == 0 else ""


def test_dual_stack_endpoints_resolve_peers_in_both_families(lab, run_playbook):
    site(run_playbook, lab, NETWORKS, ENDPOINTS)

    # the file: our header (Docker's standard lines), own name per family, then each peer per family
    assert sh(lab, "cat /etc/netns/d1/hosts").stdout == (
        "# managed by linuxnet.bridge\n" + STANDARD + "172.20.0.2\td1\nfd00:20::2\td1\n"
        "172.20.0.3\td2\nfd00:20::3\td2\n172.20.0.4\tm1\nfd00:20::4\tm1\n")
    # the IPv4-only endpoint keeps IPv4 lines only
    assert sh(lab, "cat /etc/netns/v1/hosts").stdout == (
        "# managed by linuxnet.bridge\n" + STANDARD + "172.21.0.3\tv1\n172.21.0.2\tm1\n")

    # the resolver inside the namespaces (ip netns exec mounts the file over /etc/hosts)
    assert resolve(lab, "d1", "d2", 6) == ["fd00:20::3"] and resolve(lab, "d1", "d2", 4) == ["172.20.0.3"]
    assert resolve(lab, "d1", "d1", 6) == ["fd00:20::2"]
    assert resolve(lab, "m1", "d1", 6) == ["fd00:20::2"] and resolve(lab, "m1", "v1", 4) == ["172.21.0.3"]
    assert resolve(lab, "m1", "v1", 6) == [], "v1 has no IPv6 address: no IPv6 line for it"
    assert resolve(lab, "v1", "m1", 4) == ["172.21.0.2"] and resolve(lab, "v1", "m1", 6) == []
    assert resolve(lab, "d1", "ip6-allrouters", 6) == ["ff02::2"]

    # real packets to names: IPv6 and IPv4 to the same peer
    assert name_ping(lab, "d1", "d2", six=True) == "fd00:20::3"
    assert name_ping(lab, "d2", "m1", six=True) == "fd00:20::4"
    assert name_ping(lab, "d1", "d2", six=False) == "172.20.0.3"

    again = site(run_playbook, lab, NETWORKS, ENDPOINTS)
    assert changed(again) == 0 and converge(again)["changed_steps"] == []

    # a file with an older header (the 0.x one, without Docker's four IPv6 lines) is rewritten once
    old = ("# managed by linuxnet.bridge\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
           "172.20.0.3\td2\nfd00:20::3\td2\n")
    sh(lab, f"printf '{old}' > /etc/netns/d2/hosts")
    predicted = converge(site(run_playbook, lab, NETWORKS, ENDPOINTS, check=True))
    assert predicted["changed_steps"] == ["netns"], predicted["commands"]
    repaired = converge(site(run_playbook, lab, NETWORKS, ENDPOINTS))
    assert repaired["commands"] == predicted["commands"] and len(repaired["commands"]["netns"]) == 1
    assert sh(lab, "cat /etc/netns/d2/hosts").stdout.startswith("# managed by linuxnet.bridge\n" + STANDARD)
    assert resolve(lab, "d2", "d1", 6) == ["fd00:20::2"]
    assert changed(site(run_playbook, lab, NETWORKS, ENDPOINTS)) == 0

    site(run_playbook, lab, linuxnet_state="absent")
    assert not sh(lab, "ls /etc/netns 2>/dev/null || true").stdout.strip()


def test_ipv6_only_network_is_refused_before_anything_changes(lab, run_playbook):
    """A network with subnet6 but no subnet: the role's argument check names the field; the module
    run that plans (for callers of linuxnet.bridge.deployment) says why; nothing changes."""
    before = settled_snapshot(lab)
    only6 = [{"name": "only6", "subnet6": "fd00:30::/64"}]
    result = site(run_playbook, lab, only6, [{"name": "o1", "network": "only6"}], ok=False)
    failed = [t for t in result.tasks if t.failed]
    assert len(failed) == 1 and failed[0].task.startswith(ROLE + "Validating arguments"), [t.task for t in failed]
    assert "missing required arguments: subnet" in failed[0].result["msg"], failed[0].result["msg"]
    assert_same(before, settled_snapshot(lab), "argument_specs refusal")

    task = {"name": "direct", "linuxnet.bridge.deployment": {"networks": only6, "endpoints": [{"name": "o1", "network": "only6"}]}}
    direct = run(run_playbook, lab, task, ok=False).task("direct", HOST).result
    assert direct.get("failed") and not direct.get("changed")
    assert direct["msg"].startswith("linuxnet_networks[0].subnet: required; IPv6-only networks (subnet6 'fd00:30::/64' "
                                    "without subnet) are not supported"), direct["msg"]
    assert_same(before, settled_snapshot(lab), "plan refusal")
