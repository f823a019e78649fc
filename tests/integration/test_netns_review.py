"""A review of the netns resource, against a real kernel inside a lab host (the pure parts:
tests/unit/plugins/module_utils/test_netns.py).

* A namespace the collection did not create (``ip netns add web``, with an admin's
  ``/etc/netns/web`` files) is never adopted: the netns module (merged, replaced, overridden, check
  mode too) and the deployment module fail with an error naming the field before anything changes;
  ``deleted`` leaves it alone with a warning. A namespace whose create was killed right after the
  kernel made it (marked first) is still adopted by the next run.
* A resolver file that is not UTF-8 (a Latin-1 ``resolv.conf`` of a foreign namespace) fails no run:
  ``gathered`` shows it with U+FFFD, the other namespaces and the deployment converge; one of ours
  with bad bytes or ``\\r\\n`` is rewritten once, then the run reports no change.

The modules run straight from ``plugins/modules`` inside the lab host with a JSON args file, as
Ansible runs them. Run (root): ``.venv/bin/python -m pytest tests/integration/test_netns_review.py -q``
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.integration.helpers import ADDR, HOST, sh
from tests.integration.helpers_process import ok, refused, run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

FOREIGN = "a network namespace of that name exists that linuxnet.bridge did not create"
DEPLOYMENT = {"networks": [{"name": "n1", "subnet": "10.99.0.0/24"}], "endpoints": [{"name": "web", "network": "n1"}],
              "persist": False}
INFO = {k: val for k, val in DEPLOYMENT.items() if k != "persist"}  # deployment_info's arguments
# The process dies right after the kernel made the namespace (marked before, as the product does):
# nothing the run does next (lo up, the files, its result) happens.
KILL_NETNS_ADD = r'''
import os
from ansible_collections.linuxnet.bridge.plugins.module_utils import _links
made = _links.create_namespace
def killed(name):
    made(name)
    os._exit(137)
_links.create_namespace = killed
'''


def snapshot(lab) -> dict[str, Any]:
    """Everything a run could change about namespaces: names, marks, files (bytes), web's links and routes."""
    return {
        "netns": sh(lab, "ip netns list").stdout,
        "marks": sh(lab, "ls -A /run/linuxnet/netns 2>/dev/null || true").stdout,
        "files": sh(lab, "cd /etc/netns && find . | sort | while read -r f; do echo \"$f\"; "
                         "[ -f \"$f\" ] && od -c \"$f\"; done").stdout,
        "web": sh(lab, "ip -n web -d addr show; ip -n web route show; ip -n web -6 route show").stdout,
        "host": sh(lab, "ip -br link show").stdout,
    }


@pytest.fixture
def lab(lab_factory, tmp_path):
    tmp_path.chmod(0o755)
    return lab_factory({HOST: ADDR})


def test_a_hand_made_namespace_is_refused_and_untouched_a_killed_create_is_adopted(lab, tmp_path):
    sh(lab, "ip netns add web && mkdir -p /etc/netns/web && "
            "printf 'nameserver 192.0.2.1  # the admin\\047s\\n' > /etc/netns/web/resolv.conf && "
            "printf '192.0.2.9 db  # the admin\\047s\\n' > /etc/netns/web/hosts")
    before = snapshot(lab)
    msg = f"config[0] (name=web).name: {FOREIGN}"
    wanted = {"config": [{"name": "web", "resolv_conf": "nameserver 192.0.2.53\n"}]}
    for state in ("merged", "replaced", "overridden"):
        for check in (True, False):
            refused(run_module(lab, tmp_path, "netns", {**wanted, "state": state}, check=check), msg)
    # the second item is the foreign one: nothing of the first is made either
    refused(run_module(lab, tmp_path, "netns", {"config": [{"name": "mine"}, {"name": "web"}], "state": "merged"}),
            f"config[1] (name=web).name: {FOREIGN}")
    # the deployment (the role's module): the step's name first, nothing changed by any step
    for check in (True, False):
        refused(run_module(lab, tmp_path, "deployment", DEPLOYMENT, check=check), f"netns: {msg}")
    info = run_module(lab, tmp_path, "deployment_info", INFO)
    assert info is not None and info.get("failed") and info["msg"].endswith(f"netns: {msg}"), info
    assert snapshot(lab) == before
    # teardown and deleted leave it alone
    ok(run_module(lab, tmp_path, "deployment", {"state": "absent", "persist": False}))
    result = ok(run_module(lab, tmp_path, "netns", {"config": [{"name": "web"}], "state": "deleted"}))
    assert result["commands"] == [] and "was not created by linuxnet.bridge" in json.dumps(result.get("warnings")), result
    assert snapshot(lab) == before

    # a namespace made by a run killed right after the kernel made it: the next run adopts it
    mine = {"config": [{"name": "k1", "resolv_conf": "nameserver 192.0.2.53\n"}], "state": "merged"}
    assert run_module(lab, tmp_path, "netns", mine, setup=KILL_NETNS_ADD) is None
    assert "k1" in sh(lab, "ip netns list").stdout.split() and sh(lab, "test -e /etc/netns/k1", check=False).returncode
    inode = sh(lab, "stat -L -c %i /run/netns/k1").stdout
    result = ok(run_module(lab, tmp_path, "netns", mine))
    assert result["commands"] == ["printf '%s' 'nameserver 192.0.2.53\n' > /etc/netns/k1/resolv.conf"], result
    assert sh(lab, "stat -L -c %i /run/netns/k1").stdout == inode  # adopted, not made again
    assert ok(run_module(lab, tmp_path, "netns", mine))["commands"] == []
    result = ok(run_module(lab, tmp_path, "netns", {"state": "deleted"}))
    assert result["commands"] == ["rm -rf /etc/netns/k1", "ip netns delete k1"], result
    assert snapshot(lab) == before


def test_resolver_files_that_are_not_utf8_fail_no_run_and_ours_are_rewritten_once(lab, tmp_path):
    sh(lab, "ip netns add foreign && mkdir -p /etc/netns/foreign && "
            "printf '# caf\\351\\nnameserver 192.0.2.1\\n' > /etc/netns/foreign/resolv.conf")
    gathered = ok(run_module(lab, tmp_path, "netns", {"state": "gathered"}))["gathered"]
    assert gathered == [{"name": "foreign", "resolv_conf": "# caf\ufffd\nnameserver 192.0.2.1\n"}], gathered

    text = "nameserver 192.0.2.53\n"
    mine = {"config": [{"name": "mine", "resolv_conf": text}], "state": "merged"}
    write = f"printf '%s' '{text}' > /etc/netns/mine/resolv.conf"
    assert ok(run_module(lab, tmp_path, "netns", mine))["commands"] == ["ip netns add mine", "ip -n mine link set lo up", write]
    assert ok(run_module(lab, tmp_path, "netns", mine))["commands"] == []
    # ours with bad bytes, or with \r\n: rewritten once (check mode says so), then no change
    for bad in ("nameserver 192.0.2.53  # caf\\351\\n", "nameserver 192.0.2.53\\r\\n"):
        sh(lab, f"printf '{bad}' > /etc/netns/mine/resolv.conf")
        assert ok(run_module(lab, tmp_path, "netns", mine, check=True))["commands"] == [write]
        result = ok(run_module(lab, tmp_path, "netns", mine))
        assert result["changed"] and result["commands"] == [write], result
        assert sh(lab, "od -An -c /etc/netns/mine/resolv.conf").stdout.split()[-2:] == ["3", "\\n"]
        assert sh(lab, "cat /etc/netns/mine/resolv.conf").stdout == text
        again = ok(run_module(lab, tmp_path, "netns", mine))
        assert not again["changed"] and again["commands"] == [], again
    # the wanted text may even hold U+FFFD, as the bad bytes read: still rewritten
    sh(lab, "printf 'nameserver 192.0.2.53  # \\377\\n' > /etc/netns/mine/resolv.conf")
    odd = {"config": [{"name": "mine", "resolv_conf": "nameserver 192.0.2.53  # \ufffd\n"}], "state": "merged"}
    assert len(ok(run_module(lab, tmp_path, "netns", odd))["commands"]) == 1
    assert ok(run_module(lab, tmp_path, "netns", odd))["commands"] == []

    # the deployment and its read-only planner run next to the foreign namespace
    assert ok(run_module(lab, tmp_path, "deployment_info", INFO))["pending"]
    assert ok(run_module(lab, tmp_path, "deployment", DEPLOYMENT))["changed"]
    assert not ok(run_module(lab, tmp_path, "deployment", DEPLOYMENT))["changed"]
    ok(run_module(lab, tmp_path, "deployment", {"state": "absent", "persist": False}))
    ok(run_module(lab, tmp_path, "netns", {"state": "deleted"}))
    assert sh(lab, "ip netns list").stdout.split() == ["foreign"]
    assert sh(lab, "od -An -c /etc/netns/foreign/resolv.conf").stdout.split()[:4] == ["#", "c", "a", "f"]
