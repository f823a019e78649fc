"""state: parsed: iptables-save or nft list ruleset text (running_config) -> config, offline, for
firewall and port_mapping."""

from __future__ import annotations

import importlib
import re

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils import _firewall as fw
from ansible_collections.linuxnet.bridge.plugins.module_utils import _nftables as nft
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import FirewallResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import PortMappingResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

from .fixtures.firewall import FakeModule, build, firewall
from .fixtures.nftables import MAPPINGS, NETWORKS, NftFakeModule, NftModel, fw_run, pm_run
from .fixtures.rulesets import PORTS_143, REF_143, SCENARIO_143


def ports(prefix: str = "DOCKER") -> PortMappingResource:
    return PortMappingResource(FakeModule(chain_prefix=prefix))


def test_dockers_own_ruleset_parses_into_networks():
    # Docker 20.10's iptables-save, verbatim: no state file, so networks are named after their bridges.
    parsed = _engine.listing(firewall("DOCKER").parsed(REF_143), firewall("DOCKER"))
    assert parsed == [
        {"name": "br-xxx", "bridge": "br-xxx", "subnet": "172.18.0.0/16", "icc": True, "internal": False,
         "masquerade": True, "gateway_mode": "nat-unprotected"},
        {"name": "docker0", "bridge": "docker0", "subnet": "172.17.0.0/16", "icc": False, "internal": False,
         "masquerade": True, "gateway_mode": "nat-unprotected"},
    ]


def test_dockers_own_ruleset_parses_into_port_mappings():
    res = ports()
    parsed = _engine.listing(res.parsed(REF_143), res)
    assert {(m["bridge"], m["container_ip"], m["container_port"], m["host_port"], m["protocol"], m.get("host_ip"))
            for m in parsed} == {("docker0", "172.17.0.2", "80", "81", "tcp", "172.16.211.128"),
                                 ("br-xxx", "172.18.0.2", "80", "8080", "udp", None)}


def test_parsed_is_what_gathered_reads_from_the_same_ruleset():
    kernel = build(SCENARIO_143, PORTS_143)
    for make in (lambda: firewall("DOCKER"), ports):
        live = make()
        live.prefix, live.live = "DOCKER", kernel.live()  # as normalize() and gather() leave them
        gathered = _engine.listing(live.from_live({}, live.adapter.parse), live)
        offline = make()
        assert _engine.listing(offline.parsed(kernel.save()), offline) == gathered != []


def test_parsed_uses_the_chain_prefix():
    assert firewall("LINUXNET").parsed(REF_143) == {}
    assert ports("LINUXNET").parsed(REF_143) == {}


@pytest.mark.parametrize("text", [None, "", "-A FORWARD -j DOCKER-USER\n", "*mangle\nCOMMIT\n"])
def test_running_config_that_is_not_iptables_save_text_is_refused(text):
    for res in (firewall("DOCKER"), ports()):
        with pytest.raises(ValidationError, match=r"^running_config: state=parsed needs the output of iptables-save"):
            res.parsed(text)


def test_parsed_is_offered_only_where_a_resource_implements_it():
    assert "parsed" not in _engine.config_argument_spec({})["state"]["choices"]
    spec = _engine.config_argument_spec({}, parsed=True)
    assert "parsed" in spec["state"]["choices"] and spec["running_config"] == {"type": "str"}
    with pytest.raises(ValidationError, match="state: parsed is not supported"):
        _engine.Resource(None).parsed("*filter\nCOMMIT\n")


class Exited(Exception):
    pass


class EngineModule(FakeModule):
    """What _engine.run needs of AnsibleModule: exit_json/fail_json that end the run."""

    def exit_json(self, **result):
        raise Exited(dict(result, failed=False))

    def fail_json(self, **result):
        raise Exited(dict(result, failed=True))


@pytest.mark.parametrize("make", [FirewallResource, PortMappingResource])
def test_engine_run_parsed_needs_no_host_and_changes_nothing(make, monkeypatch):
    def refuse(_module):
        raise AssertionError("state=parsed must not check the managed host")

    monkeypatch.setattr(_engine, "require_privilege", refuse)
    module = EngineModule(state="parsed", chain_prefix="DOCKER", running_config=REF_143)
    with pytest.raises(Exited) as exited:
        _engine.run(module, make(module))
    result = exited.value.args[0]
    assert result["failed"] is False and result["changed"] is False and len(result["parsed"]) == 2
    assert "before" not in result and "commands" not in result

    module = EngineModule(state="parsed", running_config="hello")
    with pytest.raises(Exited) as exited:
        _engine.run(module, make(module))
    assert exited.value.args[0]["failed"] is True and exited.value.args[0]["msg"].startswith("running_config:")


# ------------------------------------------------------------------------ nftables text


def nft_ruleset() -> tuple[str, list, list]:
    """``nft list ruleset`` of a host with our table (from the nftables backend's own scripts, as the
    model kernel of test_nftables lists it) between tables that are not ours, and what the backend
    gathers from that table live."""
    kernel = NftModel()
    fw_run(kernel, NETWORKS)
    _lines, pm = pm_run(kernel, MAPPINGS)
    res = fw.FirewallResource(NftFakeModule())
    res.prefix, (res.live, _other) = "LINUXNET", kernel.live()
    gathered = _engine.listing(res.from_live({}, res.adapter.parse), res)
    pm.live, _other = kernel.live()
    gathered_ports = _engine.listing(pm.from_live({}, pm.adapter.parse), pm)
    # Docker 29's table has chains named like ours (filter-FORWARD): only `table ip linuxnet` is read
    docker = ("table ip docker-bridges {\n\tchain filter-FORWARD {\n\t\ttype filter hook forward priority filter; policy accept;\n"
              '\t\toifname "docker0" ip daddr 172.17.0.2 tcp dport 80 accept\n\t}\n}\n')
    other = "table inet filter {\n\tset blocked {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.66 }\n\t}\n}\n"
    return docker + kernel.listing() + other, gathered, gathered_ports


def test_nft_ruleset_text_parses_into_what_the_nftables_backend_gathers():
    text, gathered, gathered_ports = nft_ruleset()
    assert {n["bridge"] for n in gathered} == {"lnx-front", "lnx-back", "lnx-int", "lnx-snat"}
    for make, expected in ((firewall, gathered), (ports, gathered_ports)):
        res = make("LINUXNET")  # firewall_backend: iptables (the default); the text says nftables
        assert _engine.listing(res.parsed(text), res) == expected != []
    # without handles (nft list ruleset without -a) and as nft list table ip linuxnet
    plain = "\n".join(re.sub(r"\s*# handle \d+$", "", line) for line in text.splitlines())
    assert _engine.listing(firewall("LINUXNET").parsed(plain), firewall("LINUXNET")) == gathered
    only = nft.table_text(text, "ip", "linuxnet")
    assert only.startswith("table ip linuxnet {") and "docker-bridges" not in only and "blocked" not in only
    assert _engine.listing(ports("LINUXNET").parsed(only), ports("LINUXNET")) == gathered_ports


def test_nft_text_without_our_table_or_json_is_refused():
    text, _gathered, _ports = nft_ruleset()
    for res in (firewall("DOCKER"), ports("DOCKER")):  # chain prefix DOCKER: table ip docker
        with pytest.raises(ValidationError, match=r"^running_config: the nft text has no table ip docker \(the chain prefix"):
            res.parsed(text)
    with pytest.raises(ValidationError, match=r"^running_config: state=parsed needs .* nft -j \(JSON\) is not read"):
        firewall("LINUXNET").parsed('{"nftables": [{"metainfo": {"json_schema_version": 1}}]}')
    assert nft.table_text("", "ip", "linuxnet") is None


def test_parsed_doc_fragment_adds_only_the_parsed_choice_and_running_config():
    """PARSED is merged into the resource fragment's state (Ansible merges an option's keys, the first
    fragment winning), so it holds the choices only: the state descriptions are written once."""
    import yaml
    from ansible_collections.linuxnet.bridge.plugins.doc_fragments.resource import ModuleDocFragment

    base, parsed = yaml.safe_load(ModuleDocFragment.DOCUMENTATION), yaml.safe_load(ModuleDocFragment.PARSED)
    assert parsed["options"].pop("running_config")["type"] == "str"
    assert parsed == {"options": {"state": {"choices": base["options"]["state"]["choices"] + ["parsed"]}}}
    for module in ("firewall", "port_mapping"):
        doc = importlib.import_module(f"ansible_collections.linuxnet.bridge.plugins.modules.{module}").DOCUMENTATION
        fragments = yaml.safe_load(doc)["extends_documentation_fragment"]
        assert fragments.index("linuxnet.bridge.resource.parsed") < fragments.index("linuxnet.bridge.resource")
