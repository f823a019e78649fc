"""Review of the firewall backends: a switch cleans every iptables variant not chosen (without a
process where nothing can be there), chain prefixes that would name another tool's nft table or an
nft keyword are refused, and odd input (an nft map, the state file) is an error, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _firewall as fw
from ansible_collections.linuxnet.bridge.plugins.module_utils import _iptables as ipt
from ansible_collections.linuxnet.bridge.plugins.module_utils import _nftables as nft
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import PortMappingResource

from .fixtures.firewall import FakeModule, build

NETS = [{"name": "a", "bridge": "lnx-a", "subnet": "10.51.0.0/24"}]


class Host(FakeModule):
    """A module whose binaries are files of ``bin_dir`` and whose commands answer from ``outputs``
    (by the command line, else by the binary's name); every command run is recorded."""

    def __init__(self, bin_dir, outputs: dict[str, str] | None = None, **params) -> None:
        super().__init__(check_mode=True, **params)
        self.bin_dir, self.outputs, self.ran, self.stdin = str(bin_dir), outputs or {}, [], []

    def get_bin_path(self, name):
        path = os.path.join(self.bin_dir, name)
        return path if os.path.exists(path) else None

    def run_command(self, argv, data=None, **_kw):
        line = " ".join([os.path.basename(argv[0])] + list(argv[1:]))
        self.ran.append(line)
        if data is not None:
            self.stdin.append((os.path.basename(argv[0]), data))
        if line.startswith("nft -a list table"):
            return 1, "", "Error: No such file or directory"
        return 0, self.outputs.get(line, self.outputs.get(os.path.basename(argv[0]), "")), ""


def binaries(path, nft_multi: tuple[str, ...] = ("iptables", "ip6tables")) -> None:
    """Debian's layout: each variant's names link to its xtables-*-multi; ``nft_multi``: the plain names the nft one has."""
    for multi in ("xtables-nft-multi", "xtables-legacy-multi", "nft"):
        (path / multi).write_text("")
    for command in ("iptables", "ip6tables"):
        for variant in ("nft", "legacy"):
            for tool in ("", "-save", "-restore"):
                os.symlink(f"xtables-{variant}-multi", path / f"{command}-{variant}{tool}")
        for tool in ("", "-save", "-restore"):
            os.symlink("xtables-nft-multi" if command in nft_multi else "xtables-legacy-multi", path / f"{command}{tool}")


@pytest.fixture
def host(tmp_path, monkeypatch):
    """Binaries, no legacy table loaded (the /proc/net files are ours to write), the state files in tmp_path."""
    (tmp_path / "bin").mkdir()
    binaries(tmp_path / "bin")
    names = {family: tmp_path / f"{family}_tables_names" for family in ("ipv4", "ipv6")}
    monkeypatch.setattr(ipt, "LEGACY_TABLES", {family: str(path) for family, path in names.items()})
    monkeypatch.setattr(fw, "RUN_DIR", str(tmp_path / "run"))
    return tmp_path


# ============================================================================== 1. every variant not chosen


@pytest.mark.parametrize("params, expected", [
    ({}, [("nftables", None, "nft"), ("iptables", "iptables-nft", "restore-nft"), ("iptables", "iptables-legacy", "restore-legacy")]),
    ({"iptables_variant": "iptables-nft"}, [("nftables", None, "nft"), ("iptables", "iptables-legacy", "restore-legacy")]),
    ({"iptables_variant": "iptables-legacy"}, [("nftables", None, "nft"), ("iptables", "iptables-nft", "restore-nft")]),
    # the nftables backend: both variants, whatever iptables_variant says (it is no backend of this run)
    ({"firewall_backend": "nftables", "iptables_variant": "iptables-legacy"},
     [("iptables", "iptables-nft", "restore"), ("iptables", "iptables-legacy", "restore-legacy")]),
])
def test_other_adapters_are_every_backend_and_variant_not_chosen(params, expected):
    others = fw.other_adapters(None, params)
    assert [(a.backend, getattr(a, "variant", None), a.action) for a in others] == expected
    others6 = fw.other_adapters(None, params, family="ipv6")
    assert [a.action for a in others6] == [action.replace("restore", "restore6") for _b, _v, action in expected]
    # each iptables adapter's writes are its own transactions (TablesResource.apply routes them by action;
    # one nft -f writes both families)
    chosen = [fw.select_adapter(None, params), fw.select_adapter(None, params, family="ipv6")]
    actions = [a.action for a in chosen + others + others6 if a.backend == "iptables"]
    assert len(actions) == len(set(actions))


def test_no_legacy_table_loaded_is_nothing_to_clean_and_runs_nothing(host):
    module = Host(host / "bin", firewall_backend="nftables")
    legacy = fw.other_adapters(module, module.params)[1]
    assert legacy.variant == "iptables-legacy"
    assert all(not table.chains for table in legacy.save(("filter", "nat", "raw")).values())
    (host / "ipv4_tables_names").write_text("")  # x_tables loaded, no table in this namespace
    assert all(not table.chains for table in legacy.save(("filter", "nat", "raw")).values())
    assert module.ran == []


def test_legacy_is_read_only_in_the_tables_loaded_there(host):
    """Reading a table iptables-legacy does not have loaded would load it: only the loaded ones are read."""
    (host / "ipv4_tables_names").write_text("filter\n")
    module = Host(host / "bin", {"iptables-legacy-save": "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                                 ":OUTPUT ACCEPT [0:0]\n:LINUXNET - [0:0]\nCOMMIT\n"}, firewall_backend="nftables")
    live = fw.other_adapters(module, module.params)[1].save(("filter", "nat", "raw"))
    assert module.ran == ["iptables-legacy-save -t filter"]
    assert "LINUXNET" in live["filter"].chains and live["nat"] == ipt.empty_table("nat") and live["raw"] == ipt.empty_table("raw")


@pytest.mark.parametrize("nft_multi, skipped", [(("iptables", "ip6tables"), "iptables-nft"), ((), "iptables-legacy")])
def test_auto_skips_the_variant_it_uses_without_running_anything(host, nft_multi, skipped):
    """iptables_variant auto: the variant the plain iptables is (the same xtables-*-multi) is the chosen one's."""
    shutil.rmtree(host / "bin")
    (host / "bin").mkdir()
    binaries(host / "bin", nft_multi)
    (host / "ipv4_tables_names").write_text("filter\nnat\n")
    module = Host(host / "bin")
    others = {a.variant: a for a in fw.other_adapters(module, module.params) if a.backend == "iptables"}
    assert all(not table.chains for table in others[skipped].save(("filter", "nat")).values())
    assert module.ran == []
    other = next(a for variant, a in others.items() if variant != skipped)
    assert all(table.chains for table in other.save(("filter", "nat")).values())  # (the other variant is read)
    assert module.ran and all(line.startswith(other.variant) for line in module.ran)


def test_a_switch_from_legacy_removes_its_rules_with_iptables_legacy_restore(host):
    """nftables chosen, our rules in iptables-legacy (the state file names the network): the plan removes
    them there, shown as iptables-legacy commands, and apply sends them to iptables-legacy-restore."""
    (host / "ipv4_tables_names").write_text("filter\nnat\n")
    legacy = build(NETS, prefix="LINUXNET").save()  # as iptables-legacy-save prints it
    module = Host(host / "bin", {"iptables-legacy-save": legacy, "iptables-nft-save": ""}, firewall_backend="nftables")
    os.makedirs(host / "run" / "firewall")
    (host / "run" / "firewall" / "LINUXNET.json").write_text(json.dumps({"items": {"a": dict(NETS[0], icc=True, internal=False, masquerade=True)}}))
    res = fw.FirewallResource(module)
    desired = res.normalize([], "overridden")
    res.gather(desired, "overridden")
    ops = res.plan(desired, {}, "overridden")[0]
    legacy_ops = [op for op in ops if op.action == "restore-legacy"]
    assert legacy_ops and all(op.command.startswith("iptables-legacy -t ") for op in legacy_ops)
    assert "iptables-legacy -t filter -D FORWARD ! -i lnx-a -o lnx-a -j DROP" in [op.command for op in legacy_ops]
    assert not [op for op in ops if op.action == "restore"]  # iptables-nft has nothing of ours
    module.ran.clear()
    res.apply(ops)
    assert {tool for tool, _data in module.stdin} == {"iptables-legacy-restore"}  # (nothing of ours in nft)
    assert [line for line in module.ran if "restore" in line] == ["iptables-legacy-restore -w --noflush"] * 2  # filter, nat


# ============================================================================== 2. chain_prefix -> nft table


RESERVED = ["FILTER", "NAT", "RAW", "MANGLE", "SECURITY", "FIREWALLD", "KUBE-PROXY", "IP", "IP6", "TABLE", "CHAIN", "RULE",
            "INET", "FLUSH", "COUNTER", "SET", "MAP"]


@pytest.mark.parametrize("prefix", RESERVED)
def test_a_prefix_naming_another_tools_table_or_an_nft_keyword_is_refused(prefix):
    with pytest.raises(fw.v.ValidationError, match=f"^chain_prefix: '{prefix}' would name the nft table ip {prefix.lower()}"):
        fw.chain_prefix(prefix)
    with pytest.raises(fw.v.ValidationError, match="^chain_prefix: "):
        assert nft.Nftables(None, table=prefix.lower()).table
    res = fw.FirewallResource(FakeModule(chain_prefix=prefix, firewall_backend="nftables"))
    with pytest.raises(fw.v.ValidationError, match="^chain_prefix: "):
        res.normalize(NETS, "merged")


@pytest.mark.parametrize("prefix", ["LINUXNET", "DOCKER", "FILTERS", "NAT1", "IPV6", "LAB_NET", "KUBE"])
def test_other_prefixes_are_taken(prefix):
    assert fw.chain_prefix(prefix) == prefix and nft.Nftables(None, table=prefix).table == prefix.lower()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"), reason="nft -c in a namespace of its own")
def test_nft_reads_the_refused_keywords_as_keywords_and_our_names_as_names():
    """The documented list is what nft's parser does (checked with nft -c, in a network namespace of its own)."""
    def parses(name: str) -> bool:
        script = f"add table ip {name}\nadd chain ip {name} filter-X\nadd rule ip {name} filter-X jump filter-X\n"
        return subprocess.run(["unshare", "-n", "nft", "-c", "-f", "-"], input=script, text=True, capture_output=True, check=False).returncode == 0
    assert parses("linuxnet") and parses("docker") and parses("filters")
    assert not any(parses(word) for word in ("ip", "table", "chain", "rule", "inet", "flush", "counter", "set", "map"))


# ============================================================================== 3. odd input: no traceback


@pytest.mark.parametrize("portmap", ["8000", "8000 : ", "8000 : 80, 8001", " : 80"])
def test_a_map_pair_that_is_not_a_b_is_no_rule_of_ours(portmap):
    spec = f"tcp dport 8000-8001 dnat to 10.0.0.2:tcp dport map {{ {portmap} }}"
    assert nft.parse_rule(spec) is None
    text = f"table ip linuxnet {{\n chain nat-LINUXNET {{\n  {spec}\n }}\n}}\n"
    assert PortMappingResource(FakeModule()).parsed(text) == {}


def test_a_good_map_still_parses():
    assert nft.parse_rule("tcp dport 8000-8001 dnat to 10.0.0.2:tcp dport map { 8000 : 80, 8001 : 81 }") is not None


STATE_FILES = {
    "items a list": '{"items": [1]}',
    "an item no object": '{"items": {"a": 1}}',
    "an item without bridge": '{"items": {"x": {"name": "x", "subnet": "10.0.0.0/24"}}}',
    "a bridge no text": '{"items": {"x": {"name": "x", "bridge": 5, "subnet": "10.0.0.0/24"}}}',
    "no items": '{"forward_drop_set": []}',
    "not an object": "[]",
    "not JSON": "{",
    "a bad record": '{"items": {}, "forward_drop_set": "ipv4"}',
}


@pytest.mark.parametrize("text", list(STATE_FILES.values()), ids=list(STATE_FILES))
def test_a_state_file_of_another_shape_is_an_error_naming_it(host, text):
    os.makedirs(host / "run" / "firewall")
    path = host / "run" / "firewall" / "LINUXNET.json"
    path.write_text(text)
    with pytest.raises(ApplyError, match=f"^the state file {path} .*: fix or remove it"):
        fw.read_state(str(path), fw.STATE_KEYS["firewall"])
    res = fw.FirewallResource(Host(host / "bin", iptables_variant="iptables-nft"))
    res.prefix = "LINUXNET"
    with pytest.raises(ApplyError, match=str(path)):
        res.gather(res.normalize([], "merged"), "merged")


def test_no_state_file_is_nothing_owned_and_a_good_one_is_read(tmp_path):
    path = tmp_path / "LINUXNET.json"
    assert fw.read_state(str(path), ("bridge",)) == ({}, {})
    path.write_text(json.dumps({"items": {"a": NETS[0]}, "forward_drop_set": ["ipv4"]}))
    assert fw.read_state(str(path), fw.STATE_KEYS["firewall"]) == ({"a": NETS[0]}, {"forward_drop_set": ["ipv4"]})


def test_the_forward_drop_record_stays_with_the_chosen_variant_and_moves_back_with_a_switch():
    """iptables-legacy chosen, forwarding off: it sets FORWARD DROP and records it; the iptables-nft
    adapter (a variant not chosen, its policy ACCEPT) must not take the record. A later switch to
    iptables-nft gives the legacy DROP back (ACCEPT) and drops the record."""
    from .fixtures.iptables_model import Kernel

    legacy, other = Kernel(), Kernel()

    def run(variant: str, records: dict, known: dict, sysctls: dict) -> fw.FirewallResource:
        res = fw.FirewallResource(FakeModule(iptables_variant=variant))
        desired = res.normalize(NETS, "overridden")
        res.known, res.records, res.sysctls, res.bridges_present = dict(known), dict(records), sysctls, set()
        kernels = {"iptables-legacy": legacy, "iptables-nft": other}
        res.live = kernels[variant].live()
        cleanup = next(a for a in res.others if a.backend == "iptables")
        res.others_live = [(cleanup, kernels[cleanup.variant].live())]
        ops = res.plan(desired, {}, "overridden")[0]
        for kernel, action in ((kernels[variant], "restore"), (kernels[cleanup.variant], cleanup.action)):
            lines: dict[str, list[str]] = {}
            for op in ops:
                if op.action == action:
                    lines.setdefault(op.args["table"], []).append(op.args["line"])
            for table, body in lines.items():
                kernel.restore(f"*{table}\n" + "".join(f"{line}\n" for line in body) + "COMMIT\n")
        return res

    first = run("iptables-legacy", {}, {}, {fw.IP_FORWARD: "0", fw.BRIDGE_NF: "1"})
    assert first.final_records.get(fw.FORWARD_DROP_RECORD) == ["ipv4"]
    assert legacy.live()["filter"].chains["FORWARD"] == "DROP" and other.live()["filter"].chains["FORWARD"] == "ACCEPT"
    switched = run("iptables-nft", first.final_records, first.final, {fw.IP_FORWARD: "1", fw.BRIDGE_NF: "1"})
    assert legacy.live()["filter"].chains["FORWARD"] == "ACCEPT" and fw.FORWARD_DROP_RECORD not in switched.final_records
    assert not any("LINUXNET" in line for line in legacy.save().splitlines())
    assert any("LINUXNET" in line for line in other.save().splitlines())
