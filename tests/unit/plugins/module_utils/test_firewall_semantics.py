# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The states as the doc fragment linuxnet.bridge.resource describes them, for firewall and port_mapping:
options left out with merged/replaced are not changed, merged adds to lists, deleted warns about items
that are not ours; and the localnet guard in INPUT is deleted only where the collection put it."""

from __future__ import annotations

import copy

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils import _firewall as fw
from ansible_collections.linuxnet.bridge.plugins.module_utils import _port_mapping as pm
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

from .fixtures.firewall import FakeModule
from .fixtures.iptables_model import Kernel
from .fixtures.rulesets import GUARD

INTERNAL = {"name": "back", "bridge": "br-back", "subnet": "10.30.0.0/24", "internal": True, "icc": False,
            "masquerade": False, "gateway_mode": "nat-unprotected"}
BARE = {"name": "back", "bridge": "br-back", "subnet": "10.30.0.0/24"}


def _apply(kernel: Kernel, ops: list) -> list[str]:
    """Write the restore lines of ``ops`` to ``kernel``, one payload per table; their commands."""
    lines: dict[str, list[str]] = {}
    for op in ops:
        if op.action == "restore":
            lines.setdefault(op.args["table"], []).append(op.args["line"])
    for table, body in lines.items():
        kernel.restore(f"*{table}\n" + "".join(f"{line}\n" for line in body) + "COMMIT\n")
    return [op.command for op in ops]


def run_fw(kernel: Kernel, known: dict, records: dict, config: list[dict], state: str, prefix: str = "LINUXNET",
           elsewhere: bool = False) -> tuple[list[str], fw.FirewallResource]:
    """One firewall run against ``kernel`` with the state file ``known``/``records`` (applied)."""
    res = fw.FirewallResource(FakeModule(chain_prefix=prefix))
    desired = res.normalize(config, state)
    res.live, res.known, res.records = kernel.live(), copy.deepcopy(known), dict(records)
    res.sysctls, res.bridges_present, res.guard_elsewhere = {fw.IP_FORWARD: "1", fw.BRIDGE_NF: "1"}, set(), elsewhere
    return _apply(kernel, res.plan(desired, res.from_live(res.known, res.adapter.parse), state)[0]), res


def records_of(res: fw.FirewallResource) -> dict:
    return res.records if res.final_records is None else res.final_records


# ============================================================================== firewall: options left out


def test_omitted_options_reach_normalize_as_none():
    """No default in the argument spec: Ansible would fill it in, and merged could not tell it from a given value."""
    spec = _engine.config_argument_spec(fw.ITEM_OPTIONS, fw.MODULE_OPTIONS)
    item = ArgumentSpecValidator(spec).validate({"config": [BARE]}).validated_parameters["config"][0]
    assert [item[key] for key in fw.OMITTABLE] == [None] * len(fw.OMITTABLE)
    assert fw.GATEWAY_MODES == tuple(fw.ITEM_OPTIONS["gateway_mode"]["choices"])
    assert pm.PROTOCOLS == tuple(pm.ITEM_OPTIONS["protocol"]["choices"])


@pytest.mark.parametrize("state", ["merged", "replaced"])
def test_an_internal_network_stays_internal_when_merged_or_replaced_leave_its_options_out(state):
    kernel = Kernel()
    _commands, first = run_fw(kernel, {}, {}, [INTERNAL], "overridden")
    saved = kernel.save()
    commands, again = run_fw(kernel, first.final, records_of(first), [BARE], state)
    assert commands == [] and kernel.save() == saved
    assert again.final == first.final == {"back": {**INTERNAL, "snat_source": None}}


def test_replaced_changes_only_the_given_option():
    kernel = Kernel()
    _commands, first = run_fw(kernel, {}, {}, [INTERNAL], "overridden")
    commands, res = run_fw(kernel, first.final, records_of(first), [{**BARE, "icc": True}], "replaced")
    assert res.final["back"] == {**INTERNAL, "icc": True, "snat_source": None}
    assert any(c.endswith("-i br-back -o br-back -j ACCEPT") for c in commands), commands
    assert not [c for c in commands if "ISOLATION-STAGE-1 !" in c or "POSTROUTING" in c], "still internal, no NAT"


def test_a_new_network_and_overridden_take_the_defaults():
    """overridden is the whole list (the deployment's steps give it so): left out means the default."""
    kernel = Kernel()
    _commands, res = run_fw(kernel, {}, {}, [BARE], "merged")
    assert res.final["back"] == {**BARE, "icc": True, "internal": False, "masquerade": True, "snat_source": None,
                                 "gateway_mode": "nat"}
    _commands, first = run_fw(kernel, res.final, records_of(res), [INTERNAL], "merged")
    _commands, again = run_fw(kernel, first.final, records_of(first), [BARE], "overridden")
    assert again.final == res.final


def test_subnet6_and_masquerade6_left_out_keep_the_networks():
    dual = {**BARE, "subnet6": "fd00:30::/64", "masquerade": True, "masquerade6": False}
    res = fw.FirewallResource(FakeModule())
    res.known = {"back": res.normalize([dual], "overridden")[0]}
    item = res.complete(res.normalize([{**BARE, "masquerade": False}], "merged"), {}, "merged")[0]
    assert (item["subnet6"], item["masquerade"], item["masquerade6"]) == ("fd00:30::/64", False, False)
    # given empty: IPv4-only (and snat_source "": MASQUERADE)
    item = res.complete(res.normalize([{**BARE, "subnet6": "", "snat_source": ""}], "merged"), {}, "merged")[0]
    assert "subnet6" not in item and "masquerade6" not in item and item["snat_source"] is None
    # masquerade6 alone: the network's subnet6 counts; a network without one is refused, naming the field
    assert res.complete(res.normalize([{**BARE, "masquerade6": True}], "merged"), {}, "merged")[0]["masquerade6"] is True
    res.known = {}
    with pytest.raises(ValidationError, match=r"config\[0\] \(name=back\)\.masquerade6: needs subnet6"):
        res.complete(res.normalize([{**BARE, "masquerade6": True}], "merged"), {}, "merged")


def test_deleted_warns_about_a_network_that_is_not_ours():
    kernel = Kernel()
    commands, res = run_fw(kernel, {}, {}, [BARE], "deleted")
    assert commands == []
    assert res.warnings == ["network back was not created by linuxnet.bridge: left alone "
                            "(state=deleted removes only what the collection created)"]


# ============================================================================== firewall: the localnet guard


def test_an_admins_guard_survives_deleted_on_a_host_the_collection_never_managed():
    kernel = Kernel(f"*filter\n-A INPUT {GUARD}\nCOMMIT\n")
    commands, res = run_fw(kernel, {}, {}, [], "deleted")
    assert commands == [] and kernel.live()["filter"].chain_rules("INPUT") == [GUARD]
    commands, res = run_fw(kernel, {}, {}, [], "overridden")
    assert commands == [] and kernel.live()["filter"].chain_rules("INPUT") == [GUARD]


def test_an_admins_guard_is_used_while_we_have_networks_and_stays_after():
    kernel = Kernel(f"*filter\n-A INPUT {GUARD}\nCOMMIT\n")
    _commands, res = run_fw(kernel, {}, {}, [BARE], "merged")
    assert kernel.live()["filter"].chain_rules("INPUT") == [GUARD]  # not a second copy
    assert records_of(res)[fw.GUARD_RECORD] is False
    _commands, gone = run_fw(kernel, res.final, records_of(res), [], "deleted")
    assert gone.final == {} and kernel.live()["filter"].chain_rules("INPUT") == [GUARD]
    assert fw.GUARD_RECORD not in records_of(gone)


def test_the_guard_we_inserted_goes_with_our_last_network():
    kernel = Kernel()
    _commands, res = run_fw(kernel, {}, {}, [BARE], "merged")
    assert kernel.live()["filter"].chain_rules("INPUT") == [GUARD] and records_of(res)[fw.GUARD_RECORD] is True
    commands, gone = run_fw(kernel, res.final, records_of(res), [], "deleted")
    assert f"iptables -t filter -D INPUT {GUARD}" in commands
    assert kernel.live()["filter"].chain_rules("INPUT") == [] and fw.GUARD_RECORD not in records_of(gone)


def test_two_prefixes_converge_the_guard_stays_while_the_other_has_networks():
    kernel = Kernel()
    _commands, a = run_fw(kernel, {}, {}, [BARE], "merged", prefix="ALPHA")
    other = {**BARE, "name": "b2", "bridge": "br-b2", "subnet": "10.31.0.0/24"}
    _commands, b = run_fw(kernel, {}, {}, [other], "merged", prefix="BETA", elsewhere=True)
    # ALPHA's networks go; BETA still has networks: the guard stays, and both runs are idempotent
    commands, a2 = run_fw(kernel, a.final, records_of(a), [], "overridden", prefix="ALPHA", elsewhere=True)
    assert not [c for c in commands if " INPUT " in c] and kernel.live()["filter"].chain_rules("INPUT") == [GUARD]
    for _round in range(2):
        commands, b = run_fw(kernel, b.final, records_of(b), [other], "merged", prefix="BETA", elsewhere=False)
        assert commands == []
        commands, a2 = run_fw(kernel, a2.final, records_of(a2), [], "overridden", prefix="ALPHA", elsewhere=True)
        assert commands == []
    # BETA's go too: ALPHA inserted the guard, and the last one out (ALPHA, BETA having none) deletes it
    _commands, b = run_fw(kernel, b.final, records_of(b), [], "deleted", prefix="BETA", elsewhere=False)
    assert kernel.live()["filter"].chain_rules("INPUT") == [GUARD], "BETA did not insert it"
    commands, a2 = run_fw(kernel, a2.final, records_of(a2), [], "deleted", prefix="ALPHA", elsewhere=False)
    assert kernel.live()["filter"].chain_rules("INPUT") == []


def test_other_prefixes_with_networks_reads_their_state_files(tmp_path, monkeypatch):
    monkeypatch.setattr(fw, "RUN_DIR", str(tmp_path))
    (tmp_path / "firewall").mkdir()
    (tmp_path / "firewall" / "ALPHA.json").write_text('{"items": {"a": {}}}')
    (tmp_path / "firewall" / "BETA.json").write_text('{"items": {}}')
    (tmp_path / "firewall" / "GAMMA.json").write_text("not json")
    assert fw.other_prefixes_with_networks("LINUXNET") == ["ALPHA"]
    assert fw.other_prefixes_with_networks("ALPHA") == []


# ============================================================================== port_mapping


PORT = {"bridge": "br-back", "container_ip": "10.30.0.2", "publish": "8080:80"}


def run_pm(kernel: Kernel, known: dict, config: list[dict], state: str) -> tuple[list[str], pm.PortMappingResource]:
    res = pm.PortMappingResource(FakeModule(check_mode=False))
    desired = res.normalize(config, state)
    res.live, res.known = kernel.live(), copy.deepcopy(known)
    return _apply(kernel, res.plan(desired, res.from_live(res.known, res.adapter.parse), state)[0]), res


def networked() -> Kernel:
    kernel = Kernel()
    run_fw(kernel, {}, {}, [{**BARE, "gateway_mode": "nat"}], "merged")
    return kernel


@pytest.mark.parametrize("state", ["merged", "replaced"])
def test_sources_left_out_stay_enforced(state):
    kernel = networked()
    _commands, first = run_pm(kernel, {}, [{**PORT, "sources": ["192.0.2.0/24"], "network": "back"}], "merged")
    saved = kernel.save()
    commands, again = run_pm(kernel, first.final, [PORT], state)
    assert commands == [] and kernel.save() == saved
    assert again.final == first.final and again.final["0.0.0.0:8080/tcp"]["sources"] == ["192.0.2.0/24"]
    assert again.final["0.0.0.0:8080/tcp"]["network"] == "back"
    ours = [line for line in saved.splitlines() if line.startswith("-A LINUXNET ")]
    assert len(ours) == 2 and all(line.startswith("-A LINUXNET -s 192.0.2.0/24 ") for line in ours), ours


def test_merged_adds_sources_replaced_makes_them_exact_overridden_takes_the_default():
    kernel = networked()
    _commands, first = run_pm(kernel, {}, [{**PORT, "sources": ["192.0.2.0/24"]}], "merged")
    _commands, merged = run_pm(kernel, first.final, [{**PORT, "sources": ["198.51.100.7"]}], "merged")
    assert merged.final["0.0.0.0:8080/tcp"]["sources"] == ["192.0.2.0/24", "198.51.100.7/32"]
    _commands, replaced = run_pm(kernel, merged.final, [{**PORT, "sources": ["198.51.100.7"]}], "replaced")
    assert replaced.final["0.0.0.0:8080/tcp"]["sources"] == ["198.51.100.7/32"]
    assert "192.0.2.0/24" not in kernel.save()
    _commands, overridden = run_pm(kernel, replaced.final, [PORT], "overridden")
    assert "sources" not in overridden.final["0.0.0.0:8080/tcp"] and "-s 198.51.100.7" not in kernel.save()


def test_port_mapping_deleted_warns_about_a_mapping_that_is_not_ours():
    kernel = networked()
    commands, res = run_pm(kernel, {}, [PORT], "deleted")
    assert commands == []
    assert res.warnings == ["port mapping 0.0.0.0:8080/tcp was not created by linuxnet.bridge: left alone "
                            "(state=deleted removes only what the collection created)"]
