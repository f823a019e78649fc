"""The state file's intent: written before a run's first rule write, it claims every rule the run may
leave, so a run killed between its restores and persist() leaves nothing the next run cannot remove
(the kills against a real kernel: tests/integration/test_kill_before_persist.py)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _firewall as fw

from .fixtures.firewall import FakeModule
from .fixtures.iptables_model import Kernel

OLD = {"name": "n1", "bridge": "lnx-n1", "subnet": "10.61.0.0/24"}
NEW = {"name": "n1", "bridge": "lnx-n1", "subnet": "10.62.0.0/24"}
ON = {fw.IP_FORWARD: "1", fw.BRIDGE_NF: "1"}


class Killed(BaseException):
    """The run's process dies here (nothing after it runs)."""


def resource(kernel: Kernel, path) -> fw.FirewallResource:
    res = fw.FirewallResource(FakeModule(iptables_variant="iptables-nft"))
    res.state_path = lambda: str(path)
    res.take_state(*fw.read_state(str(path), fw.STATE_KEYS["firewall"]))
    res.live, res.others_live, res.others_live6 = kernel.live(), [], []
    res.sysctls, res.bridges_present = dict(ON), set()
    return res


def run(kernel: Kernel, path, config: list[dict], state: str, tables_before_kill: int | None = None) -> fw.FirewallResource:
    """One firewall run: plan, then its restores (one per table) into ``kernel``; killed after
    ``tables_before_kill`` of them, or after the last (None: it finishes and persists)."""
    res = resource(kernel, path)
    ops = res.plan(res.normalize(config, state), {}, state)[0]
    lines: dict[str, list[str]] = {}
    for op in ops:
        if op.action == "restore":
            lines.setdefault(op.args["table"], []).append(op.args["line"])

    def restores(operations):
        for done, (table, body) in enumerate(lines.items()):
            if done == tables_before_kill:
                raise Killed
            kernel.restore(f"*{table}\n" + "".join(f"{line}\n" for line in body) + "COMMIT\n")
        if tables_before_kill is not None:  # after the last restore
            raise Killed

    res.adapter.apply = restores
    try:
        res.apply(ops)
    except Killed:
        return res
    res.persist()
    return res


def ours(kernel: Kernel) -> list[str]:
    return [line for line in kernel.save().splitlines() if "lnx-" in line or "LINUXNET" in line or "10.6" in line]


@pytest.mark.parametrize("tables_before_kill", [0, 1, 2])
def test_a_run_killed_after_a_restore_leaves_every_rule_claimed_and_teardown_removes_them(tmp_path, tables_before_kill):
    path = tmp_path / "LINUXNET.json"
    kernel = Kernel()
    run(kernel, path, [OLD], "merged")
    before = json.loads(path.read_text())
    # a replaced subnet and a new network, killed after none, one (filter) or both (filter, nat) of its restores
    run(kernel, path, [NEW, {"name": "n2", "bridge": "lnx-n2", "subnet": "10.63.0.0/24"}], "overridden", tables_before_kill)
    intent = json.loads(path.read_text())
    assert set(intent["items"]) == {"n1", "n2"} and intent["items"]["n1"]["subnet"] == "10.62.0.0/24"
    assert intent[fw.SUPERSEDED_RECORD] == [before["items"]["n1"]]  # the old rules stay claimed
    assert intent[fw.GUARD_RECORD] is True
    assert ours(kernel)
    run(kernel, path, [], "deleted")
    assert ours(kernel) == [] and json.loads(path.read_text()) == {"items": {}}


def test_a_converge_after_the_kill_drops_the_superseded_items_and_then_writes_nothing(tmp_path):
    path = tmp_path / "LINUXNET.json"
    kernel = Kernel()
    run(kernel, path, [OLD], "merged")
    run(kernel, path, [NEW], "replaced", tables_before_kill=0)  # (the new subnet is in nat only) nat has the old
    again = run(kernel, path, [NEW], "replaced")
    assert fw.SUPERSEDED_RECORD not in json.loads(path.read_text()) and again.written is not None
    assert not any("10.61.0.0" in line for line in kernel.save().splitlines())
    last = run(kernel, path, [NEW], "replaced")
    assert last.written is None  # nothing to change: no state file write


def test_a_run_that_adds_writes_its_state_file_once(tmp_path, monkeypatch):
    path = tmp_path / "LINUXNET.json"
    written: list[str] = []
    replace = fw.os.replace
    monkeypatch.setattr(fw.os, "replace", lambda src, dst: (written.append(dst), replace(src, dst)))
    kernel = Kernel()
    run(kernel, path, [OLD], "merged")
    assert written == [str(path)]  # the intent is the final state: persist() finds it written
