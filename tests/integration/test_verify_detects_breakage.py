"""playbooks/verify.yml fails when the deployment is broken, naming the pair that broke, and
reports egress from a network without masquerade as not checked (never a mismatch).

The role converges a lab host; verify.yml passes; one endpoint's eth0 is set down by hand; verify.yml
then fails with MISMATCH lines for exactly the pairs that involve that endpoint.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_verify_detects_breakage.py -q``
"""

from __future__ import annotations

import os
import re

import pytest

from tests.integration.helpers import HOSTS
from tests.integration.helpers_role import GROUPS, SITE, VERIFY

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

TOPOLOGY = {
    "linuxnet_install_packages": False,
    "linuxnet_networks": [{"name": "front", "subnet": "172.18.0.0/24"},
                          {"name": "plain", "subnet": "172.19.0.0/24", "masquerade": False}],
    "linuxnet_endpoints": [{"name": "a", "network": "front"}, {"name": "b", "network": "front"},
                           {"name": "m", "network": "plain"}],
}
MATRIX = "Reachability matrix (expected vs observed)"


def mismatched_pairs(text: str) -> set[tuple[str, str]]:
    return set(re.findall(r"MISMATCH\s+(\S+) -> (\S+)\s", text))


def test_verify_fails_naming_the_pair_an_endpoint_down_breaks(lab_factory, run_playbook):
    lab = lab_factory(HOSTS, groups=GROUPS)
    res = run_playbook(lab.inventory_path, SITE, extra_vars=TOPOLOGY)
    assert res.rc == 0, res.stdout[-3000:] + res.stderr[-3000:]

    res = run_playbook(lab.inventory_path, VERIFY, extra_vars=TOPOLOGY)
    assert res.rc == 0, res.stdout[-3000:] + res.stderr[-3000:]
    matrix = res.task(MATRIX, "linuxnet1").result["msg"]
    assert not mismatched_pairs(matrix), matrix
    # masquerade off: the probe host has no route back to 172.19.0.0/24, so egress is not checked
    (egress,) = [line for line in matrix.splitlines() if re.match(r"\S+\s+m -> probe\s", line)]
    assert egress.startswith("skip") and "expected -" in egress and "masquerade off on plain" in egress, egress
    assert re.search(r"ok\s+a -> probe\s.*expected reach\s+observed reach", matrix), matrix

    lab.run("linuxnet1", ["ip", "-n", "a", "link", "set", "eth0", "down"])
    res = run_playbook(lab.inventory_path, VERIFY, extra_vars=TOPOLOGY)
    assert res.rc != 0, res.stdout[-3000:]
    failed = res.task("Every check matches the expectation", "linuxnet1")
    assert failed.failed, failed.result
    assert mismatched_pairs(failed.result["msg"]) == {("a", "b"), ("b", "a"), ("a", "probe")}, failed.result["msg"]
    assert re.search(r"MISMATCH\s+a -> b\s+172\.18\.0\.3 \(icmp\)\s+expected reach\s+observed blocked", failed.result["msg"])
