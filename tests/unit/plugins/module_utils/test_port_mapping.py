"""linuxnet.bridge.port_mapping without a kernel: rendering, minimal-diff planning, validation.

* The rendered per-port rules for the reference scenario (``chain_prefix: DOCKER``: c1 172.17.0.2
  ``-p 172.16.211.128:81:80`` on docker0, c2 172.18.0.2 ``-p 8080:80/udp`` on br-xxx) are exactly
  the DNAT, forward ACCEPT and hairpin MASQUERADE rules dockerd creates with the userland proxy
  off (``../shared/reference/anchors-rulesets.md`` §1.4.3), and together with the firewall's
  rules they are the whole §1.4.3 ruleset. A port range costs exactly three rules.
* ``plan()`` against handmade live rulesets: nothing when equal, only owned rules touched
  (Docker's own DNAT rules and a user's POSTROUTING rules stay), deleted/overridden remove exactly
  the mapping's rules, conflicts are refused before anything changes.
* Bad input (ports, ranges, protocols, ``publish`` strings Docker would reject, overlapping host
  addresses) is refused by ``normalize()`` naming the item and field.

The small ``iptables-restore --noflush`` model and the "same effect" order check are in
``fixtures/iptables_model.py``. Run: ``.venv/bin/python -m pytest tests/unit -q`` (no root needed).
"""

from __future__ import annotations

import copy
import re
from typing import NamedTuple

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _port_mapping as pm
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

from .fixtures import firewall as fwr
from .fixtures.firewall import FakeModule
from .fixtures.iptables_model import Kernel, assert_like_docker, kernel_chains, reference_chains
from .fixtures.rulesets import DOCKER_12, PORTS_143, REF_143, REFERENCE_DOC, SCENARIO_143, USER_RULES, additions

BR = {"bridge": "docker0", "container_ip": "172.17.0.2"}


def resource(prefix: str = "LINUXNET", check_mode: bool = False) -> pm.PortMappingResource:
    return pm.PortMappingResource(FakeModule(check_mode=check_mode, chain_prefix=prefix))


def normalize(config: list[dict]) -> list[dict]:
    return resource().normalize(config, "merged")


def rendered(config: list[dict], prefix: str = "DOCKER") -> list[str]:
    res = resource(prefix)
    return res.render(res.normalize(config, "rendered"))


def rules_of(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("-")]


class Run(NamedTuple):
    commands: list[str]  # the module's ``commands``
    lines: dict[str, list[str]]  # restore lines by table
    known: dict  # the state file after the run
    warnings: list[str]


def converge(kernel: Kernel, known: dict, config: list[dict], state: str = "merged", prefix: str = "LINUXNET",
             check_mode: bool = False, apply: bool = True) -> Run:
    """One port_mapping run against ``kernel`` (plan, then the restores it would make)."""
    res = resource(prefix, check_mode)
    desired = res.normalize(config, state)
    res.live = kernel.live()
    res.known = copy.deepcopy(known)
    ops = res.plan(desired, res.from_live({}, res.adapter.parse), state)[0]
    lines: dict[str, list[str]] = {}
    for op in ops:
        assert op.action in ("restore", pm.CONNTRACK)
        if op.action == "restore":
            lines.setdefault(op.args["table"], []).append(op.args["line"])
    if apply and not check_mode:
        for table, body in lines.items():
            kernel.restore(f"*{table}\n" + "".join(f"{line}\n" for line in body) + "COMMIT\n")
    return Run([op.command for op in ops], lines, copy.deepcopy(res.final), res.warnings)


NETWORKS = [
    {"name": "bridge", "bridge": "docker0", "subnet": "172.17.0.0/16"},
    {"name": "usernet", "bridge": "br-xxx", "subnet": "172.18.0.0/16"},
]


def host_with_firewall(foreign: str = "", prefix: str = "LINUXNET") -> Kernel:
    kernel = Kernel(foreign) if foreign else Kernel()
    fwr.converge(kernel, {}, NETWORKS, prefix=prefix)
    return kernel


# ============================================================================== reference scenario


def test_rendered_per_port_rules_are_dockers_143():
    ref = reference_chains(REF_143)
    kernel = Kernel()
    kernel.restore("*filter\n:DOCKER - [0:0]\nCOMMIT\n*nat\n:DOCKER - [0:0]\nCOMMIT\n")
    kernel.restore("\n".join(rendered(PORTS_143)) + "\n")
    assert sorted(kernel.rules("filter", "DOCKER")) == sorted(ref["filter"]["DOCKER"])
    assert sorted(kernel.rules("nat", "DOCKER")) == sorted(ref["nat"]["DOCKER"])
    hairpins = [r for r in ref["nat"]["POSTROUTING"] if "/32 -d " in r]
    assert sorted(kernel.rules("nat", "POSTROUTING")) == sorted(hairpins)
    # and nothing anywhere else
    assert not [c for t in ("filter", "nat") for c, r in kernel.tables[t]["chains"].items() if r and c not in ("DOCKER", "POSTROUTING")]


def test_firewall_plus_port_mapping_is_the_whole_143_ruleset():
    kernel = fwr.build(SCENARIO_143, PORTS_143)
    assert_like_docker(kernel_chains(kernel), reference_chains(REF_143), extra=additions(SCENARIO_143))


def test_publish_and_explicit_fields_render_the_same():
    fields = [
        {**BR, "host_ip": "172.16.211.128", "host_port": 81, "container_port": 80},
        {"bridge": "br-xxx", "container_ip": "172.18.0.2", "host_port": "8080", "container_port": "80", "protocol": "udp"},
    ]
    assert rendered(fields) == rendered(PORTS_143)


def test_a_port_range_is_three_rules():
    lines = rendered([{**BR, "publish": "20000-20999:30000-30999/udp"}])
    assert rules_of(lines) == [
        "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p udp -m udp --dport 30000:30999 -j ACCEPT",
        # "/20000": host port 20000+i goes to 30000+i (a bare DNAT port range would send every
        # host port to one free port of the range, i.e. 30000)
        "-A DOCKER -p udp -m udp --dport 20000:20999 -j DNAT --to-destination 172.17.0.2:30000-30999/20000",
        "-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p udp -m udp --dport 30000:30999 -j MASQUERADE",
        # gateway_mode nat (Docker 28.0's filterDirectAccess): not reachable by routing to the container
        "-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -p udp -m udp --dport 30000:30999 -j DROP",
    ]
    # Docker's identical-range form (-p 20000-20999:20000-20999): the kernel keeps the port as is
    lines = rules_of(rendered([{**BR, "publish": "20000-20999:20000-20999"}]))
    assert len(lines) == 4
    assert "-A DOCKER -p tcp -m tcp --dport 20000:20999 -j DNAT --to-destination 172.17.0.2:20000-20999" in lines
    # one port to one port needs no base
    assert "-A DOCKER -p tcp -m tcp --dport 81 -j DNAT --to-destination 172.17.0.2:80" in rules_of(rendered([{**BR, "publish": "81:80"}]))


def test_localhost_and_sctp():
    lines = rendered([
        {**BR, "publish": "127.0.0.1:8080:80/udp"},
        {"bridge": "br-xxx", "container_ip": "172.18.0.2", "container_port": "9000", "protocol": "sctp"},
    ])
    assert "-A DOCKER -d 127.0.0.1/32 -p udp -m udp --dport 8080 -j DNAT --to-destination 172.17.0.2:80" in lines
    assert "-A DOCKER -p sctp -m sctp --dport 9000 -j DNAT --to-destination 172.18.0.2:9000" in lines
    assert "-A DOCKER -d 172.18.0.2/32 ! -i br-xxx -o br-xxx -p sctp -m sctp --dport 9000 -j ACCEPT" in lines


def test_two_host_ports_for_one_container_port_share_accept_and_hairpin():
    lines = rules_of(rendered([{**BR, "publish": "81:80"}, {**BR, "publish": "127.0.0.1:8081:80"}]))
    assert len([line for line in lines if "DNAT" in line]) == 2
    assert len([line for line in lines if line.endswith("-j ACCEPT")]) == 1
    assert len([line for line in lines if "POSTROUTING" in line]) == 1


def test_rendered_order_does_not_depend_on_config_order():
    config = [{**BR, "publish": "81:80"}, {"bridge": "br-xxx", "container_ip": "172.18.0.2", "publish": "8080:80/udp"},
              {**BR, "publish": "9000-9010:9000-9010"}]
    assert rendered(config) == rendered(list(reversed(config)))


# ============================================================================== planning


MAPPINGS = [
    {**BR, "publish": "172.16.211.128:81:80"},
    {"bridge": "br-xxx", "container_ip": "172.18.0.2", "publish": "8080:80/udp"},
    {**BR, "publish": "20000-20999:30000-30999"},
]


def test_plan_is_empty_when_equal_and_touches_only_port_rules():
    kernel = host_with_firewall(USER_RULES)
    firewall_rules = {c: kernel.rules("filter", c) for c in ("FORWARD", "INPUT", "LINUXNET-ISOLATION-STAGE-1")}
    commands, lines, known = converge(kernel, {}, MAPPINGS)[:3]
    assert set(lines) == {"filter", "nat", "raw"}
    assert lines["filter"][0] == ":LINUXNET - [0:0]" and lines["nat"][0] == ":LINUXNET - [0:0]"
    assert all(line.startswith(("-A LINUXNET ", "-A POSTROUTING ", ":LINUXNET ")) for t in ("filter", "nat") for line in lines[t]), lines
    assert lines["raw"] == [  # the networks are in gateway_mode nat: Docker 28.0's raw rules
        "-A PREROUTING -d 172.18.0.2/32 ! -i br-xxx -p udp -m udp --dport 80 -j DROP",
        "-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -p tcp -m tcp --dport 80 -j DROP",
        "-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -p tcp -m tcp --dport 30000:30999 -j DROP",
    ]
    assert {c: kernel.rules("filter", c) for c in firewall_rules} == firewall_rules
    restores = kernel.restores
    for state in ("merged", "replaced", "overridden"):
        assert converge(kernel, known, MAPPINGS, state=state)[0] == [], state
    assert kernel.restores == restores
    # the state file (known) alone, without config: still nothing to do
    assert converge(kernel, known, [], state="merged")[0] == []


def test_check_mode_predicts_the_same_commands_and_writes_nothing():
    kernel = host_with_firewall()
    saved = kernel.save()
    predicted = converge(kernel, {}, MAPPINGS, check_mode=True).commands
    assert kernel.save() == saved
    real = converge(kernel, {}, MAPPINGS).commands
    assert predicted == real and real


def test_deleted_and_overridden_remove_exactly_the_mappings_rules():
    kernel = host_with_firewall(USER_RULES)
    known = converge(kernel, {}, MAPPINGS).known
    # deleted by identity (host address, host port, protocol): container side may be left out
    known = converge(kernel, known, [{**BR, "host_ip": "172.16.211.128", "container_port": 80, "host_port": 81}], state="deleted").known
    assert "172.16.211.128:81/tcp" not in known and len(known) == 2
    everything = [r for t in kernel.tables.values() for rules in t["chains"].values() for r in rules]
    assert not [r for r in everything if "--dport 81 " in r or "--dport 80 -j" in r and "172.17.0.2" in r], everything
    # overridden without the UDP mapping: its rules are gone too, the range stays
    known = converge(kernel, known, [MAPPINGS[2]], state="overridden").known
    assert list(known) == ["0.0.0.0:20000-20999/tcp"]
    assert len([r for r in kernel.rules("nat", "POSTROUTING") if "/32 -d " in r]) == 1
    assert len(kernel.rules("nat", "LINUXNET")) == 1 and len(kernel.rules("filter", "LINUXNET")) == 1
    # deleted without config: every owned mapping; the chains stay (they are the firewall's)
    known = converge(kernel, known, [], state="deleted").known
    assert known == {} and kernel.rules("nat", "LINUXNET") == [] and kernel.rules("filter", "LINUXNET") == []
    assert "LINUXNET" in kernel.chain_names("nat") and "LINUXNET" in kernel.chain_names("filter")
    assert not [r for r in kernel.rules("nat", "POSTROUTING") if "/32 -d " in r]
    # the user's nat rules never moved
    user = Kernel(USER_RULES)
    assert [r for r in kernel.rules("nat", "POSTROUTING") if "lnx" not in r and "LINUXNET" not in r and "MASQUERADE" in r
            and "10.99." in r] == user.rules("nat", "POSTROUTING")
    assert kernel.rules("nat", "PREROUTING")[-1] == user.rules("nat", "PREROUTING")[0]


def test_removing_one_of_two_host_ports_keeps_the_shared_rules():
    kernel = host_with_firewall()
    config = [{**BR, "publish": "81:80"}, {**BR, "publish": "127.0.0.1:8081:80"}]
    known = converge(kernel, {}, config).known
    converge(kernel, known, [config[1]], state="overridden")
    assert kernel.rules("filter", "LINUXNET") == ["-d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"]
    assert kernel.rules("nat", "LINUXNET") == ["-d 127.0.0.1/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.17.0.2:80"]
    assert "-s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE" in kernel.rules("nat", "POSTROUTING")


def test_dockers_own_port_rules_are_foreign():
    """A real dockerd's DOCKER chains and its hairpin rules stay while LINUXNET mappings come and go."""
    kernel = host_with_firewall(DOCKER_12)
    docker = {(t, c): kernel.rules(t, c) for t in ("filter", "nat") for c in ("DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1")
              if c in kernel.chain_names(t)}
    docker_post = [r for r in kernel.rules("nat", "POSTROUTING") if "172.17." in r or "172.18." in r]
    theirs = [{"bridge": "lnx0", "container_ip": "10.40.0.2", "publish": "81:80"}]
    for config, state in ((theirs, "merged"), ([], "deleted")):
        known = {} if state == "merged" else {"0.0.0.0:81/tcp": {**theirs[0], "container_port": "80", "host_port": "81", "protocol": "tcp"}}
        converge(kernel, known, config, state=state)
        assert {k: kernel.rules(*k) for k in docker} == docker
        assert [r for r in kernel.rules("nat", "POSTROUTING") if "172.17." in r or "172.18." in r] == docker_post


def test_missing_chains_refused_unless_check_mode():
    kernel = Kernel(USER_RULES)
    saved = kernel.save()
    with pytest.raises(ValidationError) as info:
        converge(kernel, {}, MAPPINGS)
    assert "run linuxnet.bridge.firewall" in str(info.value) and "LINUXNET" in str(info.value)
    assert kernel.save() == saved
    warnings = converge(kernel, {}, MAPPINGS, check_mode=True).warnings
    assert warnings and "missing" in warnings[0]
    # deleted on such a host is fine and writes nothing
    assert converge(kernel, {}, [], state="deleted")[0] == []


def test_conflict_with_mappings_managed_earlier_changes_nothing():
    kernel = host_with_firewall()
    known = converge(kernel, {}, MAPPINGS).known
    saved = kernel.save()
    with pytest.raises(ValidationError) as info:
        converge(kernel, known, [{"bridge": "br-xxx", "container_ip": "172.18.0.3", "publish": "81:80"}])
    message = str(info.value)
    assert "managed earlier" in message and "0.0.0.0:81/tcp" in message and "172.16.211.128:81/tcp" in message, message
    assert kernel.save() == saved
    # overridden replaces them, so the same mapping is fine there
    converge(kernel, known, [{"bridge": "br-xxx", "container_ip": "172.18.0.3", "publish": "81:80"}], state="overridden")
    assert kernel.rules("nat", "LINUXNET") == ["-p tcp -m tcp --dport 81 -j DNAT --to-destination 172.18.0.3:80"]


def test_gathered_rebuilds_the_mappings():
    kernel = host_with_firewall()
    config = MAPPINGS + [{**BR, "publish": "127.0.0.1:8081:80", "network": "bridge"}]
    known = converge(kernel, {}, config).known
    found = pm.parse_mappings(kernel.rules("nat", "LINUXNET"), kernel.rules("filter", "LINUXNET"), known, resource().adapter.parse)
    res = resource()
    assert {k: res.public(v) for k, v in found.items()} == {pm.mapping_key(i): res.public(i) for i in normalize(config)}
    gathered = [res.public(found[k]) for k in sorted(found)]
    for state in ("merged", "overridden"):
        assert converge(kernel, known, gathered, state=state)[0] == [], state


# ============================================================================== validation


def refused(config: list[dict]) -> str:
    with pytest.raises(ValidationError) as info:
        normalize(config)
    return str(info.value)


def field_of(message: str) -> str:
    return message.split(": ", 1)[0]


PUBLISH_FORMS = {
    "81:80": ("81", "80", None, "tcp"),
    "127.0.0.1:8080:80/udp": ("8080", "80", "127.0.0.1", "udp"),
    "20000-20999:20000-20999": ("20000-20999", "20000-20999", None, "tcp"),
    "0.0.0.0:80:8080/sctp": ("80", "8080", None, "sctp"),
    "172.16.211.128:81:80/tcp": ("81", "80", "172.16.211.128", "tcp"),
}


@pytest.mark.parametrize("publish", PUBLISH_FORMS, ids=PUBLISH_FORMS.keys())
def test_publish_forms_docker_accepts(publish):
    item = normalize([{**BR, "publish": publish}])[0]
    assert (item["host_port"], item["container_port"], item["host_ip"], item["protocol"]) == PUBLISH_FORMS[publish]


BAD_PUBLISH = {
    "container port only": "80",
    "random host port on v6 any": "::80",
    "random host port on an address": "127.0.0.1::80",
    "words": "a:b",
    "empty host port": ":80:80",
    "extra slash": "80:80/tcp/x",
    "unknown protocol": "80:80/icmp",
    "bad address": "300.1.1.1:80:80",
    "port 0": "0:80",
    "port 65536": "65536:80",
    "container port 70000": "80:70000",
    "reversed range": "90-80:90-80",
    "ranges of different length": "8000-8010:9000-9005",
    "host range to one port": "8000-8010:80",
    "newline": "81:80\n-A INPUT -j ACCEPT",
    "space": "81:80 -j ACCEPT",
}


@pytest.mark.parametrize("publish", BAD_PUBLISH.values(), ids=BAD_PUBLISH.keys())
def test_bad_publish_is_refused_naming_the_item(publish):
    message = refused([{**BR, "publish": "9000:9000"}, {**BR, "publish": publish}])
    assert message.startswith("config[1] (bridge=docker0)."), message
    assert field_of(message).rsplit(".", 1)[1] in ("publish", "host_port", "container_port", "protocol", "host_ip"), message


@pytest.mark.parametrize("port,field", [(0, "container_port"), (65536, "container_port"), ("-1", "container_port"),
                                        ("8080x", "container_port"), ("", "container_port")])
def test_bad_container_port(port, field):
    assert field_of(refused([{**BR, "container_port": port}])) == f"config[0] (bridge=docker0).{field}"


@pytest.mark.parametrize("host_port", [0, 65536, "99999", "80-70", "8000-8001", "x"])
def test_bad_host_port(host_port):
    message = refused([{**BR, "container_port": 80, "host_port": host_port}])
    assert field_of(message) == "config[0] (bridge=docker0).host_port", message


def test_reversed_and_unequal_ranges_say_so():
    assert "reversed" in refused([{**BR, "container_port": "90-80"}])
    assert "differ in length" in refused([{**BR, "container_port": "8000-8010", "host_port": "9000-9001"}])


@pytest.mark.parametrize("proto", ["icmp", "TCP", "all", "tcp "])
def test_unknown_protocol(proto):
    assert field_of(refused([{**BR, "container_port": 80, "protocol": proto}])) == "config[0] (bridge=docker0).protocol"


def test_publish_and_fields_are_exclusive():
    assert "either publish or host_port" in refused([{**BR, "publish": "81:80", "host_port": 81}])
    assert field_of(refused([{**BR, "publish": "81:80/udp", "protocol": "tcp"}])) == "config[0] (bridge=docker0).protocol"


@pytest.mark.parametrize("key,value", [("container_ip", "172.17.0.300"), ("container_ip", "fe80::2"), ("host_ip", "::"),
                                       ("host_ip", "localhost"), ("bridge", "dock er0"), ("bridge", "a" * 16),
                                       ("network", "a b"), ("network", "a'b"), ("network", "a\nb")])
def test_bad_fields(key, value):
    message = refused([{**BR, "container_port": 80, key: value}])
    assert field_of(message).endswith(f".{key}"), message


CONFLICTS = {
    "any vs specific address": ("80:80", "172.16.211.128:80:81"),
    "specific vs any address": ("172.16.211.128:80:81", "0.0.0.0:80:80"),
    "same address": ("127.0.0.1:80:80", "127.0.0.1:80:81"),
    "overlapping ranges": ("8000-8010:8000-8010", "8010-8011:9000-9001"),
    "range covers a port": ("8000-8010:8000-8010", "8005:80"),
    "same mapping twice": ("81:80", "81:80"),
}


@pytest.mark.parametrize("first,second", CONFLICTS.values(), ids=CONFLICTS.keys())
def test_conflicting_host_ports_are_refused(first, second):
    message = refused([{**BR, "publish": first}, {"bridge": "br-xxx", "container_ip": "172.18.0.2", "publish": second}])
    assert "conflicts with" in message and "same protocol and host port" in message, message
    a, b = normalize([{**BR, "publish": first}])[0], normalize([{**BR, "publish": second}])[0]
    assert pm.mapping_key(a) in message and pm.mapping_key(b) in message, message


NO_CONFLICT = {
    "other protocol": ("80:80", "80:80/udp"),
    "two specific addresses": ("172.16.211.128:80:80", "127.0.0.1:80:80"),
    "adjacent ranges": ("8000-8010:8000-8010", "8011-8020:8011-8020"),
    "same container port, other host port": ("81:80", "82:80"),
}


@pytest.mark.parametrize("first,second", NO_CONFLICT.values(), ids=NO_CONFLICT.keys())
def test_no_conflict(first, second):
    assert len(normalize([{**BR, "publish": first}, {**BR, "publish": second}])) == 2


def test_restore_text_can_not_be_injected():
    """Everything that ends up in restore text is re-formatted from parsed values."""
    item = normalize([{**BR, "container_port": " 80 ", "host_port": "081"}])[0]
    assert (item["container_port"], item["host_port"]) == ("80", "81")
    for line in rendered([{**BR, "container_port": " 80 ", "host_port": "081"}]):
        assert re.fullmatch(r"[*:A-Za-z0-9 ./!,_-]+(\[0:0\])?", line), line


# ============================================================================== direct routing (gateway_mode)


def test_raw_drop_is_dockers_28_rule_and_follows_the_networks_gateway_mode():
    """gateway_mode nat: Docker 28.0's raw rule per published port (filterDirectAccess); a network in
    nat-unprotected gets none, and switching the network removes (or brings back) exactly those."""
    doc = REFERENCE_DOC.read_text(encoding="utf-8") if REFERENCE_DOC.exists() else ""
    docker_28 = "-A PREROUTING -d 192.0.2.2/32 ! -i bridge1 -p tcp -m tcp --dport 80 -j DROP"
    assert not doc or docker_28 in doc
    ours = rules_of(rendered([{"bridge": "bridge1", "container_ip": "192.0.2.2", "publish": "8080:80"}]))
    assert docker_28 in ours
    kernel = host_with_firewall()
    known = converge(kernel, {}, MAPPINGS).known
    assert len(kernel.rules("raw", "PREROUTING")) == 3
    # the firewall switches docker0 to nat-unprotected: the next port_mapping run drops its raw rules only
    fwr.converge(kernel, {}, [dict(NETWORKS[0], gateway_mode="nat-unprotected"), NETWORKS[1]])
    run_ = converge(kernel, known, MAPPINGS)
    assert set(run_.lines) == {"raw"}
    assert kernel.rules("raw", "PREROUTING") == ["-d 172.18.0.2/32 ! -i br-xxx -p udp -m udp --dport 80 -j DROP"]
    assert converge(kernel, known, MAPPINGS).commands == []
    fwr.converge(kernel, {}, NETWORKS)
    assert set(converge(kernel, known, MAPPINGS).lines) == {"raw"}
    assert len(kernel.rules("raw", "PREROUTING")) == 3
    # deleted: nothing of ours is left in raw
    converge(kernel, known, [], state="deleted")
    assert kernel.rules("raw", "PREROUTING") == []


def test_a_port_published_on_loopback_gets_dockers_28_raw_drop_in_any_gateway_mode():
    """filterPortMappedOnLoopback: packets to a 127.x host address that did not come in on lo are
    dropped in raw PREROUTING (a neighbour routing 127.0.0.1 to the host is DNATed before the kernel
    would drop the martian); its text is not read as a direct_drop for a bridge called lo; a changed
    host port takes the old rule away; nat-unprotected networks keep it (Docker adds it there too)."""
    doc = REFERENCE_DOC.read_text(encoding="utf-8") if REFERENCE_DOC.exists() else ""
    docker_28 = "-A PREROUTING -d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 8080 -j DROP"
    assert not doc or docker_28 in doc
    local = {"bridge": "bridge1", "container_ip": "192.0.2.2", "publish": "127.0.0.1:8080:80"}
    lines = rules_of(rendered([local, {"bridge": "bridge1", "container_ip": "192.0.2.2", "publish": "8081:80"}]))
    assert docker_28 in lines and sum("! -i lo" in line for line in lines) == 1
    assert pm.parse_rule(docker_28.removeprefix("-A PREROUTING ")).kind == "loopback_drop"
    kernel = host_with_firewall()
    mapping = {**BR, "publish": "127.0.0.1:8080:80"}
    known = converge(kernel, {}, [mapping]).known
    assert kernel.rules("raw", "PREROUTING") == [
        "-d 172.17.0.2/32 ! -i docker0 -p tcp -m tcp --dport 80 -j DROP", docker_28.removeprefix("-A PREROUTING ")]
    assert converge(kernel, known, [mapping]).commands == []
    moved = {**BR, "publish": "127.0.0.1:9090:80"}
    known = converge(kernel, known, [moved], state="overridden").known
    assert [rule for rule in kernel.rules("raw", "PREROUTING") if "! -i lo" in rule] == [
        "-d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 9090 -j DROP"]
    fwr.converge(kernel, {}, [dict(NETWORKS[0], gateway_mode="nat-unprotected"), NETWORKS[1]])
    known = converge(kernel, known, [moved]).known
    assert kernel.rules("raw", "PREROUTING") == ["-d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 9090 -j DROP"]
    converge(kernel, known, [], state="deleted")
    assert kernel.rules("raw", "PREROUTING") == []


# ============================================================================== sources (beyond Docker)

LAN, ADMIN = "192.0.2.0/24", "198.51.100.7/32"


def test_sources_limit_the_dnat_and_the_accept_and_keep_one_raw_drop():
    lines = rendered([{**BR, "publish": "8080:80", "sources": ["198.51.100.7", LAN, LAN]}], prefix="LINUXNET")
    assert [r for r in rules_of(lines) if "8080" in r or "ACCEPT" in r or "DROP" in r] == [
        # sorted, duplicates merged, an address is a /32
        "-A LINUXNET -s 192.0.2.0/24 -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
        "-A LINUXNET -s 198.51.100.7/32 -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
        "-A LINUXNET -s 192.0.2.0/24 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
        "-A LINUXNET -s 198.51.100.7/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
        # direct routing to the container stays closed for every source, allowed ones too
        "-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -p tcp -m tcp --dport 80 -j DROP",
    ]
    assert normalize([{**BR, "publish": "8080:80", "sources": ["198.51.100.7", LAN, LAN]}])[0]["sources"] == [LAN, ADMIN]


def test_sources_round_trip_and_changes_touch_only_that_mapping():
    kernel = host_with_firewall()
    config = [{**BR, "publish": "127.0.0.1:8081:80"},
              {**BR, "publish": "172.16.211.128:81:80", "sources": [LAN, ADMIN]},
              {"bridge": "br-xxx", "container_ip": "172.18.0.2", "publish": "8080:80/udp", "sources": [LAN]}]
    known = converge(kernel, {}, config).known
    res = resource()
    res.live = kernel.live()
    gathered = [res.public(item) for item in res.from_live({}, res.adapter.parse).values()]
    assert sorted(g["host_port"] + str(g.get("sources")) for g in gathered) == [
        "8080['192.0.2.0/24']", "8081None", "81['192.0.2.0/24', '198.51.100.7/32']"]
    for state in ("merged", "overridden"):
        assert converge(kernel, known, gathered, state=state).commands == [], state
        assert converge(kernel, known, config, state=state).commands == [], state
    # one source less: only that source's DNAT and ACCEPT go (one chain rewrite each), no raw change
    narrowed = [config[0], {**config[1], "sources": [LAN]}, config[2]]
    run = converge(kernel, known, narrowed, state="overridden")
    assert set(run.lines) == {"filter", "nat"} and not [c for c in run.commands if "198.51.100.7" in c and " -A " in c]
    assert not [r for t in ("filter", "nat") for r in kernel.rules(t, "LINUXNET") if "198.51.100.7" in r]
    assert len([r for r in kernel.rules("filter", "LINUXNET") if "--dport 80 " in r and "172.17.0.2" in r]) == 2  # LAN, and any (8081)


BAD_SOURCES = {
    "not a list": "192.0.2.0/24",
    "empty list": [],
    "host bits": ["192.0.2.1/24"],
    "everyone": ["0.0.0.0/0"],
    "ipv6": ["2001:db8::/32"],
    "trailing newline": ["192.0.2.0/24\n"],
    "restore injection": ["192.0.2.0/24 -j ACCEPT"],
    "octet": ["192.0.2.300"],
    "prefix": ["192.0.2.0/33"],
    "a name": ["lan"],
    "a number": [3232235520],
}


@pytest.mark.parametrize("sources", BAD_SOURCES.values(), ids=BAD_SOURCES.keys())
def test_bad_sources_are_refused_naming_the_field(sources):
    message = refused([{**BR, "publish": "81:80"}, {**BR, "publish": "82:80", "sources": sources}])
    assert field_of(message).startswith("config[1] (bridge=docker0).sources"), message


# ============================================================================== UDP conntrack cleanup

UDP = {"bridge": "br-xxx", "container_ip": "172.18.0.2", "publish": "8080:80/udp"}


def test_udp_flows_are_cleaned_when_a_mapping_is_added_moved_narrowed_or_removed():
    kernel = host_with_firewall()
    tcp = {**BR, "publish": "81:80"}
    first = converge(kernel, {}, [UDP, tcp])
    assert [c for c in first.commands if c.startswith("conntrack")] == ["conntrack -D -p udp --orig-port-dst 8080"]
    again = converge(kernel, first.known, [UDP, tcp])
    assert again.commands == []
    # a new label only: no flow changes destination
    assert not [c for c in converge(kernel, first.known, [{**UDP, "network": "usernet"}, tcp], state="overridden").commands
                if "conntrack" in c]
    moved = converge(kernel, first.known, [{**UDP, "container_ip": "172.18.0.3"}, {**tcp, "container_ip": "172.17.0.3"}],
                     state="overridden")
    assert [c for c in moved.commands if c.startswith("conntrack")] == ["conntrack -D -p udp --orig-port-dst 8080"]
    assert moved.commands[-1].startswith("conntrack"), "the flows go after the new rules are in"
    narrowed = converge(kernel, moved.known, [{**UDP, "container_ip": "172.18.0.3", "sources": [LAN]}], state="merged")
    assert [c for c in narrowed.commands if c.startswith("conntrack")] == ["conntrack -D -p udp --orig-port-dst 8080"]
    removed = converge(kernel, narrowed.known, [], state="deleted")
    assert [c for c in removed.commands if c.startswith("conntrack")] == ["conntrack -D -p udp --orig-port-dst 8080"]


def test_udp_cleanup_of_an_address_and_a_range():
    kernel = host_with_firewall()
    config = [{**UDP, "publish": "127.0.0.1:5353:53/udp"}, {**UDP, "publish": "20000-20002:30000-30002/udp"}]
    run = converge(kernel, {}, config, check_mode=True)
    assert [c for c in run.commands if "conntrack -D" in c] == [
        "for p in $(seq 20000 20002); do conntrack -D -p udp --orig-port-dst $p; done",
        "conntrack -D --orig-dst 127.0.0.1 -p udp --orig-port-dst 5353",
    ]
    assert pm.conntrack_argvs("/usr/sbin/conntrack", {"host_ip": None, "ports": (20000, 20002)}) == [
        ["/usr/sbin/conntrack", "-D", "-p", "udp", "--orig-port-dst", str(p)] for p in (20000, 20001, 20002)]


class ToolModule(FakeModule):
    def __init__(self, binary: str | None, rc: int = 1, err: str = "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n"):
        super().__init__()
        self.binary, self.rc, self.err, self.calls = binary, rc, err, []

    def get_bin_path(self, name: str) -> str | None:
        return self.binary if name == "conntrack" else None

    def run_command(self, argv: list[str]):
        self.calls.append(argv)
        return self.rc, "", self.err


@pytest.fixture
def flows(tmp_path, monkeypatch):
    """The connection tracking table holds entries (nf_conntrack_count), so the cleanup lists them."""
    count = tmp_path / "nf_conntrack_count"
    count.write_text("3\n")
    monkeypatch.setattr(pm, "CONNTRACK_COUNT", str(count))
    return count


def test_conntrack_missing_or_failing_is_a_warning(flows):
    ops = pm.conntrack_ops({}, {"k": {"protocol": "udp", "host_ip": None, "host_port": "8080", "container_ip": "10.0.0.2",
                                      "container_port": "80"}})
    for module, warned in ((ToolModule(None), "conntrack not found"), (ToolModule("/usr/sbin/conntrack"), None),
                           (ToolModule("/usr/sbin/conntrack", err="Operation not permitted"), "failed: Operation not permitted")):
        res = pm.PortMappingResource(module)
        res.apply_other(ops)
        if warned is None:
            # the listing failed (rc 1 here): every port is deleted, as without it
            assert res.warnings == [] and module.calls == [["/usr/sbin/conntrack", "-L", "-p", "udp"],
                                                           ["/usr/sbin/conntrack", "-D", "-p", "udp", "--orig-port-dst", "8080"]]
        else:
            assert len(res.warnings) == 1 and warned in res.warnings[0], res.warnings


LISTING = ("udp      17 29 src=192.0.2.7 dst=10.0.0.1 sport=40001 dport=20002 [UNREPLIED] src=10.100.0.2 dst=192.0.2.7"
           " sport=53 dport=40001 mark=0 use=1\n"
           "udp      17 12 src=192.0.2.7 dst=10.0.0.1 sport=53 dport=40005 src=10.0.0.1 dst=192.0.2.7 sport=40005 dport=53"
           " mark=0 use=1\n")


def test_conntrack_deletes_only_ports_that_have_udp_flows(flows):
    """One listing, then a delete per host port that has a flow (the original direction's dport)."""
    assert pm.udp_flow_ports(LISTING) == {20002, 40005}
    ops = pm.conntrack_ops({}, {"k": {"protocol": "udp", "host_ip": None, "host_port": "20000-20003",
                                      "container_ip": "10.0.0.2", "container_port": "53"}})

    class Listing(ToolModule):
        def run_command(self, argv: list[str]):
            self.calls.append(argv)
            return (0, LISTING, "") if "-L" in argv else (0, "", "")

    module = Listing("/usr/sbin/conntrack")
    res = pm.PortMappingResource(module)
    res.apply_other(ops)
    assert res.warnings == []
    assert module.calls == [["/usr/sbin/conntrack", "-L", "-p", "udp"],
                            ["/usr/sbin/conntrack", "-D", "-p", "udp", "--orig-port-dst", "20002"]]


def test_no_conntrack_process_when_the_table_is_empty(flows, tmp_path, monkeypatch):
    """An empty connection tracking table (nf_conntrack_count 0: a first converge on a fresh host)
    has no flow to clean: no listing, no delete; the commands still say what the cleanup is."""
    ops = pm.conntrack_ops({}, {"k": {"protocol": "udp", "host_ip": None, "host_port": "8080", "container_ip": "10.0.0.2",
                                      "container_port": "80"}})
    assert [op.command for op in ops] == ["conntrack -D -p udp --orig-port-dst 8080"]
    flows.write_text("0\n")
    module = ToolModule("/usr/sbin/conntrack")
    res = pm.PortMappingResource(module)
    res.apply_other(ops)
    assert module.calls == [] and res.warnings == []
    # without the tool the warning stays, flows or not
    missing = pm.PortMappingResource(ToolModule(None))
    missing.apply_other(ops)
    assert len(missing.warnings) == 1 and "conntrack not found" in missing.warnings[0]
    # no such file (conntrack not loaded, or /proc/sys unreadable): listed as before
    monkeypatch.setattr(pm, "CONNTRACK_COUNT", str(tmp_path / "absent"))
    module = ToolModule("/usr/sbin/conntrack")
    pm.PortMappingResource(module).apply_other(ops)
    assert module.calls[0] == ["/usr/sbin/conntrack", "-L", "-p", "udp"]
