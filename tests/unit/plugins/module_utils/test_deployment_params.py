"""A plan made by ``plan_deployment`` in the deployment's own process is in the shape of the modules'
argument specs: checking its items against the spec again (``step_params(..., planned=True)`` skips
it) changes nothing any resource sees. For several deployments, each step's ``normalize`` gives the
same items from the fully validated params as from the planned ones, and the full check accepts them."""

from __future__ import annotations

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment as d
from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import plan_deployment

from .fixtures.deployment import FakeStep, RunModule

README = (
    [{"name": "bridge", "subnet": "172.17.0.0/16"}, {"name": "frontend", "subnet": "172.18.0.0/16"},
     {"name": "backend", "subnet": "172.19.0.0/16", "internal": True}],
    [{"name": "proxy", "networks": ["frontend", "backend"], "ports": ["80:8080", "443:8443"]},
     {"name": "app", "networks": [{"name": "backend", "address": "172.19.0.10"}]}],
)
MIXED = (
    [{"name": "bridge", "subnet": "172.17.0.0/16", "icc": False},
     {"name": "dual", "subnet": "172.20.0.0/24", "subnet6": "fd00:20::/64", "gateway_mode": "nat-unprotected"},
     {"name": "routed", "subnet": "172.21.0.0/24", "masquerade": False, "mtu": 1400}],
    [{"name": "c1", "network": "bridge", "ports": ["127.0.0.1:8081:80", "9000:9000/udp",
                                                   {"publish": "7000-7002:8000-8002", "sources": ["192.0.2.0/24"]}]},
     {"name": "c2", "networks": ["dual", "bridge"], "dns": {"nameservers": ["192.0.2.53"], "search": ["example.net"]},
      "ports": ["[::]:8443:443"]},
     {"name": "c3", "networks": [{"name": "routed", "address": "172.21.0.9"}]}],  # mtu is a network's
)


class Module:
    check_mode, _diff = True, False

    def __init__(self, params: dict) -> None:
        self.params = params


def deployments():
    """The README's example, a mixed one, and twelve endpoints over three networks (as the benchmark's)."""
    nets = [{"name": f"n{k}", "subnet": f"10.{40 + k}.0.0/24"} for k in range(3)]
    eps = [{"name": f"e{i}", "networks": [f"n{i % 3}"] + ([f"n{(i + 1) % 3}"] if i % 4 == 0 else []),
            "ports": [f"{20000 + i}:80", f"{21000 + i}:53/udp"] if i % 2 else []} for i in range(12)]
    return {"readme": README, "mixed": MIXED, "twelve": (nets, eps)}


@pytest.mark.parametrize("which", ["readme", "mixed", "twelve"])
def test_planned_params_normalize_as_the_validated_ones(which):
    networks, endpoints = deployments()[which]
    plan = plan_deployment(networks, endpoints)
    for name, resource_class, _item_options, _module_options in d.STEPS:
        full = d.step_params(name, plan, "overridden", "LINUXNET", "auto", "iptables")  # raises if the plan were off-spec
        planned = d.step_params(name, plan, "overridden", "LINUXNET", "auto", "iptables", planned=True)
        assert set(planned) == set(full), name
        assert {k: val for k, val in planned.items() if k not in ("config", "host_groups")} == \
               {k: val for k, val in full.items() if k not in ("config", "host_groups")}, name
        normalized = [resource_class(Module(params)).normalize(params["config"], "overridden") for params in (full, planned)]
        assert normalized[0] == normalized[1], name
        assert normalized[0], name  # each step has items in these deployments


def test_planned_params_still_check_the_module_options():
    plan = plan_deployment(*README)
    with pytest.raises(d.ValidationError, match="firewall_backend"):
        d.step_params("firewall", plan, "overridden", "LINUXNET", "auto", "pf", planned=True)


class Step:
    """A firewall step as _apply_joined uses it: intend (its state file's intent), apply (rules, then its own
    other operations), apply_other."""

    def __init__(self, name: str, calls: list) -> None:
        self.name, self.calls, self.warnings = name, calls, []

    def intend(self):
        self.calls.append((self.name, "intend", []))

    def apply(self, operations):
        self.calls.append((self.name, "apply", [op.command for op in operations]))

    def apply_other(self, operations):
        self.calls.append((self.name, "apply_other", [op.command for op in operations]))
        self.warnings += [f"{self.name}: {op.command} not run" for op in operations if op.action == "conntrack"]


def test_a_held_steps_lines_go_in_the_next_steps_restore_and_its_other_operations_after_it():
    from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import Operation

    calls: list = []
    first, later = Step("port_mapping", calls), Step("firewall", calls)
    first.warnings.append("reported with its step")
    held = [Operation("iptables -t nat -F LINUXNET", "restore", {"table": "nat", "line": ":LINUXNET - [0:0]"}),
            Operation("conntrack -D -p udp --orig-port-dst 9000", "conntrack", {})]
    own = [Operation("iptables -t nat -X LINUXNET", "restore", {"table": "nat", "line": "-X LINUXNET"})]
    rules = frozenset({"restore", "restore6", "nft"})  # the adapters' actions (SharedFirewall.actions)
    warnings = d._apply_joined(("port_mapping", first, held), later, own, rules)
    # the held step's state file claims its rules before the transaction that writes them (the applying step intends its own)
    assert calls == [("port_mapping", "intend", []),
                     ("firewall", "apply", ["iptables -t nat -F LINUXNET", "iptables -t nat -X LINUXNET"]),
                     ("port_mapping", "apply_other", ["conntrack -D -p udp --orig-port-dst 9000"])]
    assert warnings == ["port_mapping: conntrack -D -p udp --orig-port-dst 9000 not run"]  # the held step's new ones
    calls.clear()
    assert d._apply_joined(("firewall", later, own), None, [], rules) == []  # the next step added nothing
    assert calls == [("firewall", "intend", []), ("firewall", "apply", ["iptables -t nat -X LINUXNET"]),
                     ("firewall", "apply_other", [])]


class NoChange(FakeStep):
    def plan(self, desired, before, state):
        return [], {}


class Refusing(FakeStep):
    """Input that fits no longer once an earlier step changed the host (found by its plan)."""

    def plan(self, desired, before, state):
        raise d.ValidationError("addresses[0]: overlaps the host's route")


class NoFirewall:
    actions: frozenset = frozenset()

    def serves(self, resource):
        return False


@pytest.mark.parametrize("first", [FakeStep, NoChange])
def test_a_validation_error_after_a_step_changed_the_host_is_a_failed_step_that_reports_the_changes(first):
    """Bad input found before anything changed stays a ValidationError (nothing changed); found after
    an earlier step applied, it is a StepFailed with that step's commands, so the module reports
    changed and what was run rather than a clean refusal."""
    steps = tuple((name, first if name == "netns" else Refusing, item_options, module_options)
                  for name, _cls, item_options, module_options in d.STEPS if name in ("netns", "bridge"))
    kind = d.StepFailed if first is FakeStep else d.ValidationError
    with pytest.raises(kind) as info:
        d._run_steps(RunModule(), d.SharedNetlink(), NoFirewall(), steps, None, "deleted", "LINUXNET", "auto", None)
    assert str(info.value) == "bridge: addresses[0]: overlaps the host's route"
    if first is FakeStep:
        assert info.value.commands == {"netns": ["change by FakeStep"]}
