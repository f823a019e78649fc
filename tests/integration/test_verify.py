"""playbooks/verify.yml at a size where the checks no longer fit one command-line argument.

Linux caps one argument at 128 KiB; the checks of 40 endpoints on one network (1560 pairs) are
about twice that as base64. verify.yml hands them to the hosts as files, and
``linuxnet_verify_sample`` keeps an even sample of the endpoint pairs for large hosts.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_verify.py -q``
"""

from __future__ import annotations

import base64
import json
import os

import pytest

from tests.integration.helpers import HOSTS
from tests.integration.helpers_role import GROUPS, SITE, VERIFY

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

ARG_MAX_ONE = 128 * 1024  # MAX_ARG_STRLEN


def test_verify_checks_travel_as_files_and_can_be_sampled(lab_factory, run_playbook):
    lab = lab_factory(HOSTS, groups=GROUPS)
    topology = {
        "linuxnet_install_packages": False,
        "linuxnet_networks": [{"name": "front", "subnet": "172.18.0.0/16"}],
        "linuxnet_endpoints": [{"name": f"e{i:02d}", "network": "front"} for i in range(39)]
        + [{"name": "web", "network": "front", "ports": ["172.16.211.128:8080:80"]}],
    }
    res = run_playbook(lab.inventory_path, SITE, extra_vars=topology)
    assert res.rc == 0, res.stdout[-3000:] + res.stderr[-3000:]

    res = run_playbook(lab.inventory_path, VERIFY, extra_vars=topology)
    assert res.rc == 0, res.stdout[-3000:] + res.stderr[-3000:]
    checks = res.task("Choose the endpoint checks (all, or an even sample with linuxnet_verify_sample)", "linuxnet1")
    endpoint_checks = checks.result["ansible_facts"]["__endpoint_checks"]
    assert len(endpoint_checks) == 40 * 39 + 40  # every ordered pair, and every endpoint to the probe
    # As one base64 argument, as verify.yml passed them before, they would not fit.
    assert len(base64.b64encode(json.dumps(endpoint_checks).encode())) > ARG_MAX_ONE
    results = res.task("Compare expected with observed", "linuxnet1").result["ansible_facts"]["__results"]
    assert len(results) == len(endpoint_checks) + 1  # + the published port from the probe host
    assert all(bool(r["observed"]) == bool(r["expect"]) for r in results), [r for r in results if bool(r["observed"]) != bool(r["expect"])][:5]
    assert "checks, all as expected" in res.task("Every check matches the expectation", "linuxnet1").result["msg"]
    # No checks file is left on either host.
    for host in HOSTS:
        left = lab.run(host, ["sh", "-c", "ls /tmp/*.linuxnet-checks.json ~/.ansible/tmp/*.linuxnet-checks.json 2>/dev/null; true"])
        assert left.stdout.strip() == "", (host, left.stdout)

    res = run_playbook(lab.inventory_path, VERIFY, extra_vars={**topology, "linuxnet_verify_sample": 100})
    assert res.rc == 0, res.stdout[-3000:] + res.stderr[-3000:]
    sampled = res.task("Choose the endpoint checks (all, or an even sample with linuxnet_verify_sample)", "linuxnet1")
    sample = sampled.result["ansible_facts"]["__endpoint_checks"]
    assert 50 <= len(sample) <= 100
    assert len({c["source"] for c in sample}) > 20  # spread over the endpoints, not the first few
    results = res.task("Compare expected with observed", "linuxnet1").result["ansible_facts"]["__results"]
    assert len(results) == len(sample) + 1
