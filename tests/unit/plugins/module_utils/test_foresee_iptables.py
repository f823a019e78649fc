"""Two firewall steps joined into one ``iptables-restore`` per table and family, without a kernel.

The deployment module plans port_mapping on the ruleset as the iptables adapter foresees the
firewall step's restore lines (``Iptables.foresee``), for IPv4 and IPv6, and restores both steps'
lines of a table at once. Against ``iptables_model.Kernel`` (one per family): the later step plans
the same lines as when it reads the kernel after the earlier one (so check mode's ``commands`` are
the real run's), and the joined restores leave the same ruleset as the steps one at a time.
The nftables twin is in ``test_nftables.py``; real kernels in ``tests/integration/test_deployment.py``.
"""

from __future__ import annotations

import copy

from ansible_collections.linuxnet.bridge.plugins.module_utils import _firewall as fw
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import Operation
from ansible_collections.linuxnet.bridge.plugins.module_utils._iptables import payload
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import PortMappingResource

from .fixtures.firewall import FakeModule
from .fixtures.iptables_model import Kernel

NETWORKS = [
    {"name": "front", "bridge": "lnx-front", "subnet": "10.31.0.0/24", "subnet6": "fd00:31::/64"},
    {"name": "back", "bridge": "lnx-back", "subnet": "10.32.0.0/24", "icc": False},
]
MAPPINGS = [
    {"bridge": "lnx-front", "container_ip": "10.31.0.2", "publish": "8080:80"},
    {"bridge": "lnx-front", "container_ip": "fd00:31::2", "publish": "8080:80"},
    {"bridge": "lnx-back", "container_ip": "10.32.0.2", "publish": "9000:9000/udp"},
]
FAMILIES = {"restore": "ipv4", "restore6": "ipv6"}


def step(kind: str, config: list[dict], state: str, known: dict):
    res = fw.FirewallResource(FakeModule()) if kind == "firewall" else PortMappingResource(FakeModule())
    if kind == "firewall":
        res.sysctls = {fw.IP_FORWARD: "1", fw.BRIDGE_NF: "1", fw.IP6_FORWARD: "1", fw.BRIDGE_NF6: "1"}
        res.bridges_present = set()
    res.known = copy.deepcopy(known)
    return res, res.normalize(config, state)


def restore(kernels: dict[str, Kernel], ops: list[Operation]) -> None:
    """One restore per table and family, as ``Iptables.apply`` does."""
    for action, family in FAMILIES.items():
        tables: dict[str, list[str]] = {}
        for op in ops:
            if op.action == action:
                tables.setdefault(op.args["table"], []).append(op.args["line"])
        for table, lines in tables.items():
            kernels[family].restore(payload(table, lines))


def steps(kernels: dict[str, Kernel], runs: list[tuple], joined: bool) -> list[list[str]]:
    live = {family: kernel.live() for family, kernel in kernels.items()}
    commands, held = [], []
    for kind, config, state, known in runs:
        res, desired = step(kind, config, state, known)
        if not joined:
            live = {family: kernel.live() for family, kernel in kernels.items()}
        res.live, res.live6, res.ipv6 = copy.deepcopy(live["ipv4"]), copy.deepcopy(live["ipv6"]), True
        ops, final = res.plan(desired, {}, state)
        known.clear()
        known.update(res.final)
        commands.append([op.command for op in ops if op.action in FAMILIES])
        if joined:
            assert all(res.adapter.foresees(op) or res.adapter6.foresees(op) for op in ops if op.action in FAMILIES)
            res.adapter.foresee(live["ipv4"], ops)
            res.adapter6.foresee(live["ipv6"], ops)
            held += ops
        else:
            restore(kernels, ops)
    if joined:
        restore(kernels, held)
    return commands


def test_foreseen_steps_join_into_one_restore_per_table_and_family():
    alone = {"ipv4": Kernel(), "ipv6": Kernel()}
    together = {"ipv4": Kernel(), "ipv6": Kernel()}
    known = {"alone": ({}, {}), "together": ({}, {})}

    def runs(which: str, networks, mappings, state="overridden", order=("firewall", "port_mapping")):
        fw_known, pm_known = known[which]
        config = {"firewall": (networks, fw_known), "port_mapping": (mappings, pm_known)}
        return [(kind, config[kind][0], state, config[kind][1]) for kind in order]

    changed = [dict(NETWORKS[0], icc=False), dict(NETWORKS[1], subnet6="fd00:32::/64")]
    more = MAPPINGS[1:] + [{"bridge": "lnx-back", "container_ip": "fd00:32::3", "publish": "8443:443"}]
    for args, writes in (((NETWORKS, MAPPINGS), True), ((changed, more), True), ((changed, more), False),
                         (([], [], "deleted", ("port_mapping", "firewall")), True)):
        before = {family: kernel.restores for family, kernel in together.items()}
        commands = steps(alone, runs("alone", *args), joined=False)
        assert steps(together, runs("together", *args), joined=True) == commands
        assert {f: k.tables for f, k in together.items()} == {f: k.tables for f, k in alone.items()}
        assert all(commands) is writes and any(commands) is writes
        if writes:  # both steps write both families
            assert all(any(c.startswith(tool) for c in cmds) for cmds in commands for tool in ("iptables ", "ip6tables ")), commands
        # one restore per table and family that either step changed
        tables = {family: {c.split()[2] for c in commands[0] + commands[1] if c.startswith(("iptables " if family == "ipv4" else "ip6tables "))}
                  for family in together}
        assert {f: k.restores - before[f] for f, k in together.items()} == {f: len(t) for f, t in tables.items()}
    assert together["ipv4"].tables == Kernel().tables and together["ipv6"].tables == Kernel().tables
