"""A backend switch gives back the iptables FORWARD policy the collection set to DROP (and only that one);
the IPv6 internal-network drops spare traffic that stays on the bridge (Docker's ip6tables rules)."""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _firewall as fw
from ansible_collections.linuxnet.bridge.plugins.module_utils import _iptables as ipt
from ansible_collections.linuxnet.bridge.plugins.module_utils import _nftables as nft
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import Rule

from .fixtures.firewall import FakeModule
from .fixtures.iptables_model import Kernel

NETS = [{"name": "a", "bridge": "lnx-a", "subnet": "10.41.0.0/24", "subnet6": "fd00:41::/64"},
        {"name": "i", "bridge": "lnx-i", "subnet": "10.42.0.0/24", "subnet6": "fd00:42::/64", "internal": True}]
OFF = {fw.IP_FORWARD: "0", fw.IP6_FORWARD: "0", fw.BRIDGE_NF: "1"}
ON = {fw.IP_FORWARD: "1", fw.IP6_FORWARD: "1", fw.BRIDGE_NF: "1", fw.BRIDGE_NF6: "1"}


class NoNftModule(FakeModule):
    def get_bin_path(self, name):
        return None


def run(kernels: tuple[Kernel, Kernel], backend: str, sysctls: dict, records: dict, known: dict | None = None,
        config: list[dict] | None = None, apply: bool = True) -> tuple[list[str], fw.FirewallResource]:
    """One firewall run (state overridden) with ``kernels`` as the iptables and ip6tables rulesets; with the
    nftables backend, those are the other backend's (our nft table starts empty)."""
    res = fw.FirewallResource(NoNftModule(firewall_backend=backend))
    desired = res.normalize(NETS if config is None else config, "overridden")
    res.ipv6, res.known, res.records = True, dict(known or {}), dict(records)
    res.sysctls, res.bridges_present = sysctls, set()
    if backend == "iptables":
        res.live, res.live6 = kernels[0].live(), kernels[1].live()
    else:
        res.live, res.live6 = {t: nft.empty_table(t) for t in res.tables}, {t: nft.empty_table(t) for t in res.tables}
        res.others_live, res.others_live6 = [(res.others[0], kernels[0].live())], [(res.others6[0], kernels[1].live())]
    ops = res.plan(desired, {}, "overridden")[0]
    if apply:
        for family, kernel in enumerate(kernels):
            lines: dict[str, list[str]] = {}
            for op in ops:
                if op.action == ("restore6" if family else "restore"):
                    lines.setdefault(op.args["table"], []).append(op.args["line"])
            for table, body in lines.items():
                kernel.restore(f"*{table}\n" + "".join(f"{line}\n" for line in body) + "COMMIT\n")
    return [op.command for op in ops], res


def test_switch_to_nftables_gives_back_the_forward_policy_the_iptables_backend_set():
    kernels = (Kernel(), Kernel())
    commands, res = run(kernels, "iptables", OFF, {})
    assert "iptables -t filter -P FORWARD DROP" in commands and "ip6tables -t filter -P FORWARD DROP" in commands
    # (and the localnet guard, which this run inserted into INPUT)
    assert res.final_records == {fw.FORWARD_DROP_RECORD: ["ipv4", "ipv6"], fw.GUARD_RECORD: True}
    # a second run (forwarding now on) keeps policy and record: nothing to write
    again, res2 = run(kernels, "iptables", ON, res.final_records, res.final)
    assert again == [] and res2.final_records == res.final_records
    # check mode predicts the switch's policy change (the commands are the same, nothing applied)
    predicted, _res = run(kernels, "nftables", ON, res.final_records, res.final, apply=False)
    assert kernels[0].live()["filter"].chains["FORWARD"] == "DROP"
    commands, res3 = run(kernels, "nftables", ON, res.final_records, res.final)
    assert commands == predicted
    assert "iptables -t filter -P FORWARD ACCEPT" in commands and "ip6tables -t filter -P FORWARD ACCEPT" in commands
    assert [k.live()["filter"].chains["FORWARD"] for k in kernels] == ["ACCEPT", "ACCEPT"]
    assert not any("LINUXNET" in line for k in kernels for line in k.save().splitlines())
    assert res3.final_records == {}, "the record goes with the policy"
    # switching back (nftables -> iptables with forwarding on) sets no DROP and records nothing
    back, res4 = run(kernels, "iptables", ON, {}, res3.final)
    assert not [c for c in back if " -P " in c] and res4.final_records == {fw.GUARD_RECORD: True}  # (the guard: inserted again)


def test_a_forward_drop_someone_else_set_stays():
    kernels = (Kernel(), Kernel())
    for k in kernels:
        k.restore("*filter\n:FORWARD DROP [0:0]\nCOMMIT\n")
    _commands, res = run(kernels, "iptables", OFF, {})
    assert res.final_records == {fw.GUARD_RECORD: True}, "the DROP was there before: not ours"
    commands, _res = run(kernels, "nftables", ON, res.final_records, res.final)
    assert not [c for c in commands if " -P " in c]
    assert [k.live()["filter"].chains["FORWARD"] for k in kernels] == ["DROP", "DROP"]


def test_a_policy_changed_since_is_left_alone_and_forgotten():
    kernels = (Kernel(), Kernel())
    _commands, res = run(kernels, "iptables", OFF, {})
    kernels[1].restore("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n")  # the admin opened IPv6 forwarding meanwhile
    commands, res2 = run(kernels, "nftables", ON, res.final_records, res.final)
    assert "iptables -t filter -P FORWARD ACCEPT" in commands and not [c for c in commands if c.startswith("ip6tables") and " -P " in c]
    assert res2.final_records == {}


# anchors-rulesets.md / moby TestIptabler golden internal=true __ip6tables: the IPv6 drops carry ! -i/! -o br
DOCKER29_INTERNAL6 = ["! -s fd49:efd7:54aa::/64 ! -i br-dummy -o br-dummy -j DROP", "! -d fd49:efd7:54aa::/64 -i br-dummy ! -o br-dummy -j DROP"]


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_internal_drops_per_family(family):
    subnet = "fd49:efd7:54aa::/64" if family == "ipv6" else "172.20.0.0/16"
    rules = [Rule.of(kind, subnet=subnet, bridge="br-dummy") for kind in ("internal_in", "internal_out")]
    texts = [ipt.render_rule(r, family) for r in rules]
    nfts = [nft.render_rule(r, "filter", family) for r in rules]
    if family == "ipv6":
        assert texts == DOCKER29_INTERNAL6
        assert nfts == ['ip6 saddr != fd49:efd7:54aa::/64 iifname != "br-dummy" oifname "br-dummy" drop',
                        'ip6 daddr != fd49:efd7:54aa::/64 iifname "br-dummy" oifname != "br-dummy" drop']
    else:  # Docker's IPv4 rules, unchanged
        assert texts == ["! -s 172.20.0.0/16 -o br-dummy -j DROP", "! -d 172.20.0.0/16 -i br-dummy -j DROP"]
        assert nfts == ['ip saddr != 172.20.0.0/16 oifname "br-dummy" drop', 'ip daddr != 172.20.0.0/16 iifname "br-dummy" drop']
    assert [ipt.parse_rule(t, family) for t in texts] == rules and [nft.parse_rule(t, family) for t in nfts] == rules


def test_ipv6_internal_network_is_read_back():
    kernels = (Kernel(), Kernel())
    _commands, res = run(kernels, "iptables", ON, {})
    assert kernels[1].rules("filter", "LINUXNET-ISOLATION-STAGE-1")[:2] == [
        "! -s fd00:42::/64 ! -i lnx-i -o lnx-i -j DROP", "! -d fd00:42::/64 -i lnx-i ! -o lnx-i -j DROP"]
    found6 = fw.parse_networks(kernels[1].live(), "LINUXNET", res.final, lambda s: ipt.parse_rule(s, "ipv6"))
    assert found6["i"]["internal"] is True and found6["i"]["subnet"] == "fd00:42::/64"


def test_the_record_is_written_once_and_kept_by_runs_that_do_not_touch_it(tmp_path, monkeypatch):
    monkeypatch.setattr(fw, "RUN_DIR", str(tmp_path))
    kernels = (Kernel(), Kernel())
    _commands, res = run(kernels, "iptables", OFF, {})
    res.persist()
    state = json.loads(open(res.state_path(), encoding="utf-8").read())
    assert state[fw.FORWARD_DROP_RECORD] == ["ipv4", "ipv6"] and set(state["items"]) == {"a", "i"}
    # a run without plan() (as read: None) keeps the records; an unchanged run writes nothing
    again = fw.FirewallResource(NoNftModule())
    again.records, again.known, again.final = dict(res.final_records), dict(res.final), dict(res.final)
    os.remove(res.state_path())
    again.persist()
    assert not os.path.exists(res.state_path())
