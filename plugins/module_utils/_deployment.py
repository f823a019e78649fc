# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""A whole deployment checked against the live host in one read-only pass.

The role calls five resource modules; each Ansible task costs about a second of fixed overhead
(worker fork, module build, transfer, interpreter start) whatever it finds. This pass plans the
deployment from the inventory (stable addresses need the live veths) and asks every resource,
through the shared engine and in check mode, what it would change. When nothing would, the role
skips the five module tasks and a no-change run costs one module run.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine, _ownership
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError, Foreseen
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import ITEM_OPTIONS as BRIDGE_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import BridgeResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import ITEM_OPTIONS as FIREWALL_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import Table
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import (
    MODULE_OPTIONS,
    FirewallResource,
    other_adapters,
    route_localnet_path,
    select_adapter,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import ITEM_OPTIONS as NETNS_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import MODULE_OPTIONS as NETNS_MODULE_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import Netlink, namespaces_in_use
from ansible_collections.linuxnet.bridge.plugins.module_utils._ownership import parse_alias
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import NetnsResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import ITEM_OPTIONS as PORT_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import PortMappingResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import plan_deployment
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import ITEM_OPTIONS as VETH_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import VethResource

# The role's steps in the order it runs them: (module, resource, item options, module options).
# The plan has each module's config under the module's name; the role's task files follow this
# order (absent.yml in reverse). The modules taking MODULE_OPTIONS, with deployment_info, are the
# action group linuxnet.bridge.firewall (meta/runtime.yml) through which the role sets them.
STEPS: tuple[tuple[str, type, dict, dict | None], ...] = (
    ("netns", NetnsResource, NETNS_OPTIONS, NETNS_MODULE_OPTIONS),
    ("bridge", BridgeResource, BRIDGE_OPTIONS, None),
    ("veth", VethResource, VETH_OPTIONS, None),
    ("firewall", FirewallResource, FIREWALL_OPTIONS, MODULE_OPTIONS),
    ("port_mapping", PortMappingResource, PORT_OPTIONS, MODULE_OPTIONS),
)
# The deployment input of the modules deployment, deployment_info and persist (doc fragment
# linuxnet.bridge.deployment): the role's linuxnet_networks and linuxnet_endpoints.
DEPLOYMENT_OPTIONS = {
    "networks": {"type": "list", "elements": "dict", "default": []},
    "endpoints": {"type": "list", "elements": "dict", "default": []},
}

# Creating a bridge and a veth pair and a nat table (the firewall backend's: iptables' nat table read,
# an nftables chain on the nat hook made) in a throw-away namespace proves the kernel has what
# Docker-style networking needs. Only run when something is to be built.
_PROBE_LINKS = "ip link add lnx-probe0 type bridge && ip link add lnx-probe1 type veth peer name lnx-probe2"
_PROBE_NAT = {
    "iptables": "iptables -t nat -S >/dev/null",
    "nftables": "nft 'add table ip lnx-probe; add chain ip lnx-probe p { type nat hook prerouting priority -100; }'",
}


def kernel_probe_argv(firewall_backend: str = "iptables") -> list[str]:
    """The probe's command: a shell in a new, empty network namespace (gone when it exits)."""
    return ["unshare", "--net", "sh", "-c", f"{_PROBE_LINKS} && {_PROBE_NAT[firewall_backend]}"]


class SharedNetlink(Netlink):
    """One set of sockets and cached dumps for every resource of the pass or run."""

    #: fd of the host's link lock when a writing run holds it from start to end (see run_lock)
    run_lock: int | None = None

    def close(self) -> None:
        """Resources close what they use; the pass releases the sockets once, at its end."""

    def release(self) -> None:
        super().close()


def run_lock(module: Any) -> int | None:
    """A writing run takes the host's link lock once, before it reads anything, and holds it to the
    end (None in check mode, which writes nothing). So what it read stays true until one of its own
    steps writes (one dump per namespace, not one per step), and every run takes the host lock
    before the iptables lock (SharedTables): a converge and a teardown never wait on each other
    in opposite orders."""
    if module.check_mode:
        return None
    try:
        return _ownership.host_lock()
    except OSError as exc:
        raise ApplyError(str(exc)) from None


class SavedOnce:
    """A firewall adapter that reads the live ruleset once for every resource of the pass (nothing writes)."""

    def __init__(self, adapter: Any, group: list | None = None) -> None:
        self._adapter = adapter
        self._saved: dict = {}
        #: the shared adapters of the pass or run (SharedFirewall), this one among them
        self._group = group if group is not None else [self]

    def save(self, tables: tuple[str, ...] = ("filter", "nat")) -> dict:
        missing = tuple(table for table in tables if table not in self._saved)
        if missing:
            # one read serves every step and table: nft lists every table of ours at once, one
            # iptables-save prints filter, nat and raw together (read_together of each adapter)
            together = tuple(t for t in getattr(self._adapter, "read_together", ()) if t not in self._saved and t not in missing)
            self._saved.update(self._adapter.save(missing + together))
        return {table: _copy_table(self._saved[table]) for table in tables}  # each resource plans on its own copy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


def _copy_table(table: Any) -> Any:
    """A copy of a saved table that shares no list or dict with it: an iptables Table is chain
    policies and rule strings, copied in two levels (a deep copy of a ruleset at N=1000 cost 0.2 s
    per resource); other tables (nftables' handles) are copied deeply."""
    if table.__class__ is not Table:  # (a subclass may hold more)
        return copy.deepcopy(table)
    return Table(chains=dict(table.chains), rules={chain: list(rules) for chain, rules in table.rules.items()})


class ReadOnlyModule:
    """The module as one resource sees it: that resource's own validated params, check mode on."""

    check_mode = True

    def __init__(self, module: Any, params: dict) -> None:
        self._module = module
        self.params = params

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


class StepModule(ReadOnlyModule):
    """The module as one step of :func:`converge` sees it: the step's params, the run's check mode."""

    def __init__(self, module: Any, params: dict, check_mode: bool) -> None:
        super().__init__(module, params)
        self.check_mode = check_mode


class SharedTables(SavedOnce):
    """A firewall adapter of a converge: one save until a step writes, one lock for the whole run."""

    def unlock(self) -> None:
        """Steps release nothing: the lock is held from the first step that takes it to the end."""

    def release(self) -> None:
        self._adapter.unlock()

    def apply(self, operations: list) -> None:
        if operations:  # the next step reads what this one wrote, in every table the write reaches
            for shared in self._group:  # (one `nft -f` writes both families' tables)
                if getattr(shared, "action", None) == self.action:
                    shared._saved = {}
        self._adapter.apply(operations)

    def foresee(self, operations: list) -> None:
        """The saved ruleset becomes what applying this adapter's ``operations`` would make it, so the
        next step plans against it as it would read it after they are applied."""
        self._adapter.foresee(self._saved, operations)


class SharedFirewall:
    """The firewall adapters of a pass or run, one per backend and address family (the chosen
    backend's and the others', whose leftovers a run removes), each read once until a write; the
    firewall steps use these instead of their own. ``shared``: SavedOnce (a read-only pass) or
    SharedTables (a converge, which also joins two steps' writes: :meth:`foreseeable`)."""

    def __init__(self, module: Any, params: dict, shared: type = SharedTables) -> None:
        group: list = []

        def share(adapter: Any) -> Any:
            group.append(shared(adapter, group))
            return group[-1]

        self.adapter = share(select_adapter(module, params))
        self.adapter6 = share(select_adapter(module, params, family="ipv6"))
        self.others = [share(adapter) for adapter in other_adapters(module, params)]
        self.others6 = [share(adapter) for adapter in other_adapters(module, params, family="ipv6")]
        self.adapters = group
        #: Operation.action of the rule writes (one transaction each: a restore per table, or one nft -f)
        self.actions = frozenset(getattr(adapter, "action", "restore") for adapter in group)

    def attach(self, resource: Any) -> None:
        resource.adapter, resource.adapter6 = self.adapter, self.adapter6
        resource.others, resource.others6 = list(self.others), list(self.others6)

    def serves(self, resource: Any) -> bool:
        return getattr(resource, "adapter", None) is self.adapter

    def foreseeable(self, operations: list) -> bool:
        """Can the adapters tell what every rule write of ``operations`` does (so a later step can plan on it)?"""
        return all(any(adapter.foresees(op) for adapter in self.adapters) for op in operations if op.action in self.actions)

    def foresee(self, operations: list) -> None:
        for adapter in self.adapters:
            adapter.foresee(operations)

    def release(self) -> None:
        self.adapter.release()


class ContractModule:
    """An object with only the interface of the converge contract (params, check_mode, run_command(argv,
    check_rc, data), warn, fail_json) given what the resources also use of an AnsibleModule."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self._diff = bool(getattr(module, "_diff", False))
        self._name = getattr(module, "_name", "linuxnet.bridge.deployment")

    def run_command(self, argv: list[str], check_rc: bool = False, data: str | None = None, **_options: Any):
        return self._module.run_command(argv, check_rc=check_rc, data=data)

    def get_bin_path(self, name: str) -> str | None:
        path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
        return shutil.which(name, path=path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def as_module(module: Any) -> Any:
    """``module`` if it is an AnsibleModule (or has what the resources use), else it wrapped in ContractModule."""
    return module if hasattr(module, "get_bin_path") else ContractModule(module)


class StepFailed(ApplyError):
    """A step of :func:`converge` failed; ``commands`` holds what the steps before it did."""

    def __init__(self, message: str, commands: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.commands = commands


def module_params(module_name: str, item_options: dict, module_options: dict | None, params: dict) -> dict:
    """``params`` checked against the argument spec of ``module_name``, with its defaults filled in."""
    result = ArgumentSpecValidator(_engine.config_argument_spec(item_options, module_options)).validate(params)
    if result.error_messages:
        raise ValidationError(f"{module_name}: " + "; ".join(result.error_messages))
    return result.validated_parameters


def step_params(name: str, plan: dict | None, state: str, chain_prefix: str, iptables_variant: str,
                firewall_backend: str = "iptables", planned: bool = False) -> dict:
    """The validated params of step ``name``'s module for ``plan`` (None: no config, as for ``deleted``).

    ``planned``: ``plan`` is plan_deployment's answer in this process (from validated input, in the
    shape of the argument spec: tests/unit/plugins/module_utils/test_deployment_params.py), so only the
    module options are checked here; each resource's normalize validates the items as always. Checking
    every item against the spec again cost about 0.1 s per run at N=100. A plan from elsewhere (the
    boot-time restore's state file, a caller's ``plan``) is checked in full."""
    _name, _resource_class, item_options, module_options = next(step for step in STEPS if step[0] == name)
    params: dict[str, Any] = {"config": plan[name] if plan is not None else [], "state": state}
    if module_options is MODULE_OPTIONS:
        params.update(chain_prefix=chain_prefix, iptables_variant=iptables_variant, firewall_backend=firewall_backend)
    elif module_options is NETNS_MODULE_OPTIONS and plan is not None:
        params["host_groups"] = plan["host_groups"]
    if not planned or plan is None:
        return module_params(name, item_options, module_options, params)
    lists = {key: params[key] for key in ("config", "host_groups") if key in params}
    checked = module_params(name, item_options, module_options, {**params, **{key: [] for key in lists}})
    checked.update(lists)
    return checked


def pending_changes(module: Any, networks: list[dict], endpoints: list[dict], chain_prefix: str, iptables_variant: str,
                    firewall_backend: str = "iptables") -> dict:
    """Plan the deployment and report, per module, the commands its run would apply now."""
    module = as_module(module)
    netlink = SharedNetlink()
    try:
        return _pending_changes(module, netlink, networks, endpoints, chain_prefix, iptables_variant, firewall_backend)
    finally:
        netlink.release()


def _resource(resource_class: type, module: Any, netlink: SharedNetlink) -> Any:
    resource = resource_class(module)
    if hasattr(resource, "netlink"):
        resource.netlink = netlink
    return resource


def _pending_changes(module: Any, netlink: SharedNetlink, networks: list[dict], endpoints: list[dict],
                     chain_prefix: str, iptables_variant: str, firewall_backend: str = "iptables") -> dict:
    view = ReadOnlyModule(module, {"config": None, "state": "gathered"})
    veths = _resource(VethResource, view, netlink)
    live_veths = veths.gather([], "gathered")
    plan = plan_deployment(networks, endpoints, _engine.listing(live_veths, veths))

    commands: dict[str, list[str]] = {}
    firewall = {"iptables_variant": iptables_variant, "firewall_backend": firewall_backend, "chain_prefix": chain_prefix}
    shared = SharedFirewall(ReadOnlyModule(module, {}), firewall, SavedOnce)
    for name, resource_class, item_options, module_options in STEPS:
        params = step_params(name, plan, "overridden", chain_prefix, iptables_variant, firewall_backend, planned=True)
        before = None
        if name == "veth":
            # A gather for a config differs from a plain one only in also reading the peers of
            # foreign pairs the config names; the role's pairs are its own, so the first one serves.
            resource = veths
            view.params = resource.params = params
            if all(live_veths[item["name"]]["_owned"] for item in plan["veth"] if item["name"] in live_veths):
                before = live_veths
        else:
            resource = _resource(resource_class, ReadOnlyModule(module, params), netlink)
            if module_options is MODULE_OPTIONS:
                shared.attach(resource)
        try:
            commands[name] = [op.command for op in _engine.predict(resource, "overridden", before)]
        except ValidationError as exc:  # named after its step, as the deployment module names it
            raise ValidationError(f"{name}: {exc}") from None
        finally:
            resource.close()
    return {
        "plan": plan,
        "commands": commands,
        "pending": [name for name, *_rest in STEPS if commands[name]],
    }


class KernelUnfit(ApplyError):
    """The kernel probe failed: raised before the first change, so the run changed nothing."""


def kernel_probe(module: Any, firewall_backend: str = "iptables") -> None:
    """Raise KernelUnfit unless the kernel can build what the deployment needs (run before the first change)."""
    argv = kernel_probe_argv(firewall_backend)
    unshare = module.get_bin_path(argv[0])
    if not unshare:  # (AnsibleModule.run_command would fail with "Error executing command.")
        raise KernelUnfit("This host cannot run Docker-style bridge networking: its kernel check needs unshare "
                          "(util-linux), which is not found on the managed host")
    rc, _out, err = module.run_command([unshare, *argv[1:]])
    if rc != 0:
        nat = "reading the iptables nat table" if firewall_backend == "iptables" else "making an nftables nat chain"
        raise KernelUnfit(
            f"This host cannot run Docker-style bridge networking: creating a bridge, a veth pair and {nat}"
            f" in a throw-away namespace failed ({err.strip()}). The kernel needs bridge, veth, netns and"
            " netfilter (nat) support."
        )


def converge(module: Any, networks: list[dict] | None, endpoints: list[dict] | None, *, plan: dict | None = None,
             chain_prefix: str = "LINUXNET", iptables_variant: str = "auto", firewall_backend: str = "iptables") -> dict:
    """Bring the host to the deployment in one process: netns -> bridge -> veth -> firewall -> port_mapping
    (STEPS order), each step gathered after the previous one applied, state overridden, honouring
    module.check_mode. Either networks+endpoints (planned with plan_deployment against live veths, as
    pending_changes does) or an already computed ``plan`` (the dict pending_changes returns under "plan").
    Returns {"changed": bool, "commands": {step: [command, ...]}, "plan": plan} (and "diff", a list of
    per-step diffs, when the module runs in diff mode). Raises ApplyError / ValidationError (never fail_json).
    """
    module = as_module(module)
    netlink = SharedNetlink()
    firewall = SharedFirewall(module, {"iptables_variant": iptables_variant, "firewall_backend": firewall_backend,
                                       "chain_prefix": chain_prefix})
    netlink.run_lock = run_lock(module)
    try:
        veths = None
        port_fields: list[str] | None = None  # the inventory's field of each port_mapping item
        if plan is None:
            veths = _resource(VethResource, StepModule(module, {"config": None, "state": "gathered"}, True), netlink)
            live = veths.gather([], "gathered")
            port_fields = []
            plan = plan_deployment(networks or [], endpoints or [], _engine.listing(live, veths), port_fields=port_fields)
            # The first gather serves the veth step when nothing before it changes the host.
            veths.before = live  # type: ignore[attr-defined]
        result = _run_steps(module, netlink, firewall, STEPS, plan, "overridden", chain_prefix, iptables_variant, veths,
                            firewall_backend=firewall_backend, planned=veths is not None, port_fields=port_fields)
        result["plan"] = plan
        return result
    finally:
        firewall.release()
        netlink.release()
        if netlink.run_lock is not None:
            os.close(netlink.run_lock)


# Teardown order: published ports and firewall first (no traffic reaches a half-removed endpoint),
# then the endpoint namespaces, whose veth ends go with them in one kernel batch (cleanup_net)
# instead of one RTNL delete and RCU wait per veth, then the veths left and the bridges. The kernel
# destroys those pairs while the bridges are deleted: the run waits for them after the bridge step.
TEARDOWN_ORDER = ("port_mapping", "firewall", "netns", "veth", "bridge")


def remove(module: Any, *, chain_prefix: str = "LINUXNET", iptables_variant: str = "auto", firewall_backend: str = "iptables") -> dict:
    """Remove everything the collection created (each module with ``state: deleted``) in one process.

    Returns {"changed": bool, "commands": {step: [command, ...]}} like :func:`converge`; the
    commands of ``veth`` leave out the pairs that went with their namespace.
    """
    module = as_module(module)
    netlink = SharedNetlink()
    firewall = SharedFirewall(module, {"iptables_variant": iptables_variant, "firewall_backend": firewall_backend,
                                       "chain_prefix": chain_prefix})
    steps = tuple(next(step for step in STEPS if step[0] == name) for name in TEARDOWN_ORDER)
    netlink.run_lock = run_lock(module)
    try:
        return _run_steps(module, netlink, firewall, steps, None, "deleted", chain_prefix, iptables_variant, None,
                          firewall_backend=firewall_backend)
    finally:
        firewall.release()
        netlink.release()
        if netlink.run_lock is not None:
            os.close(netlink.run_lock)


def _run_steps(module: Any, netlink: SharedNetlink, firewall: SharedFirewall, steps: tuple, plan: dict | None, state: str,
               chain_prefix: str, iptables_variant: str, veths: Any, firewall_backend: str = "iptables",
               planned: bool = False, port_fields: list[str] | None = None) -> dict:
    check_mode = bool(module.check_mode)
    # Every step's input is validated, and what no earlier step can fix is refused, before anything changes.
    # Each step's references count what the steps before it leave (they run first; a check-mode run
    # applies nothing, yet the real run would find it), so a check-mode run warns as the real one would.
    prepared = []
    foreseen = Foreseen()
    for name, resource_class, _item_options, module_options in steps:
        params = step_params(name, plan, state, chain_prefix, iptables_variant, firewall_backend, planned=planned)
        view = StepModule(module, params, True)
        resource = veths if name == "veth" and veths is not None else _resource(resource_class, view, netlink)
        resource.module, resource.params = view, params
        if module_options is MODULE_OPTIONS:
            firewall.attach(resource)
        if name == "port_mapping" and port_fields is not None and len(port_fields) == len(params["config"] or []):
            resource.fields = port_fields  # its warnings name the inventory's ports, as the plan's conflicts do
        try:
            desired = resource.normalize(params["config"] or [], state)
            resource.check_references(desired, state, foreseen)
            resource.foresee(desired, state, foreseen)
        except ValidationError as exc:
            raise ValidationError(f"{name}: {exc}") from None
        checked = list(resource.warnings)  # reported with the step (again if it checks again)
        resource.warnings.clear()
        prepared.append((name, resource, desired, checked))

    commands: dict[str, list[str]] = {}
    diffs: list[dict] = []
    changed = applied = probed = False
    gone_namespaces: set[str] = set()  # deleted by the netns step: their veth pairs go with them
    new_bridges: set[str] = set()  # created by the bridge step
    bridges: dict[str, list[str]] | None = None  # the host's bridges and addresses as the bridge step left them
    # (name, resource, operations) of a firewall step whose rule writes join the next step's: one
    # transaction per table (or one nft -f) for both
    joined: tuple[str, Any, list] | None = None
    # a teardown's veth step and its items: the pairs going with their namespaces are waited for after the
    # bridge step, whose deletes overlap the kernel's (see _delete_pairs_left)
    veth_step: tuple[Any, list] | None = None
    try:
        for step, (name, resource, desired, checked) in enumerate(prepared):
            resource.module = StepModule(module, resource.params, check_mode)
            if name == "port_mapping" and bridges is not None:
                resource.bridges = bridges  # the veth step changed no bridge: no second dump of the links
            if name == "netns" and state == "deleted" and not getattr(module, "_diff", False):
                resource.read_files = False  # deleted with the namespace: nobody sees them (no diff)
            _hold_run_lock(netlink, resource)
            try:
                if applied:  # an earlier step changed what the first check read
                    resource.check_references(desired, state)
                else:
                    resource.warnings.extend(checked)
                before = None if applied else getattr(resource, "before", None)
                # A gather for a config differs from a plain one only in also reading the peers of
                # foreign pairs the config names; the role's pairs are its own, so the first one serves.
                if before is not None and not all(before[d["name"]]["_owned"] for d in desired if d["name"] in before):
                    before = None
                if name == "veth" and gone_namespaces and not check_mode:
                    # The kernel destroys a deleted namespace's veths asynchronously, and not at all while
                    # a process still lives in the namespace: wait a little, read again, delete what is left
                    # (a teardown waits after its bridge step: nothing it does needs them gone before).
                    if state == "deleted":
                        veth_step = (resource, desired)
                    else:
                        _await_pairs_gone(netlink, gone_namespaces)
                    before = None
                while True:
                    reused = before is not None
                    if not reused:
                        before = resource.gather(desired, state)
                    if name == "veth" and gone_namespaces and (check_mode or veth_step is not None):
                        before = _without_pairs_in(before, gone_namespaces, netlink)
                    if name == "firewall" and check_mode:
                        _foresee_bridges(resource, new_bridges)
                    operations, expected = resource.plan(desired, before, state)
                    if not (reused and operations and not check_mode):
                        break
                    before = None  # a writer plans on what it read under the host's lock (its gather takes it)
            except ValidationError as exc:
                raise ValidationError(f"{name}: {exc}") from None
            commands[name] = [op.command for op in operations]
            if check_mode and firewall.serves(resource):
                firewall.foresee(operations)
            deleted = {op.args["name"] for op in operations if op.action == "netns_delete"}
            gone_namespaces |= deleted - namespaces_in_use(deleted)  # a process keeps the others (and their veths)
            new_bridges |= {op.args["name"] for op in operations if op.action == "bridge_add" and not op.args["netns"]}
            if name == "bridge" and not check_mode:
                bridges = {item["name"]: list(item["addresses"]) for item in expected.values() if not item["netns"]}
            held = False  # this step's rule writes wait for the next step's
            if operations:
                changed = True
                if not check_mode:
                    if not probed and state != "deleted":
                        kernel_probe(module, firewall_backend)
                        probed = True
                    applied = True
                    if joined is None and _joins_next(resource, operations, prepared[step + 1:], firewall):
                        # the next step plans on the ruleset as this one's writes would leave it
                        firewall.foresee(operations)
                        joined, held = (name, resource, operations), True
                    elif joined is None:
                        resource.apply(operations)
                    if hasattr(resource, "hold_lock"):
                        # links and namespaces changed (a deleted namespace takes its veth ends with it):
                        # the next step reads them again
                        netlink.invalidate()
            if joined is not None and not held:  # one transaction per table for both steps (this one may add nothing)
                pending, joined = joined, None
                for warning in _apply_joined(pending, resource if operations else None, operations, firewall.actions):
                    module.warn(warning)
                pending[1].persist()
            if not check_mode and not held:
                resource.persist()
            if operations and getattr(module, "_diff", False):
                diffs.append({
                    "before_header": name,
                    "after_header": name,
                    "before": json.dumps(_engine.listing(before, resource), indent=2, sort_keys=True) + "\n",
                    "after": json.dumps(_engine.listing(expected, resource), indent=2, sort_keys=True) + "\n",
                })
            for warning in resource.warnings:
                module.warn(warning)
            resource.close()  # releases what the step holds (the host's link lock); shared sockets stay
        if veth_step is not None:
            name = "veth"
            commands["veth"] += _delete_pairs_left(netlink, gone_namespaces, *veth_step, state)
    except Exception as exc:  # whatever stops a step, writes held for it are not dropped
        if isinstance(exc, KernelUnfit):
            raise  # before the first change: no step did anything (no commands, not changed)
        worded = isinstance(exc, (ApplyError, ValidationError))  # a failure a step words (else an OSError or a bug)
        if not worded and not applied:
            raise  # nothing changed yet: as it is (the module reports an OSError)
        if isinstance(exc, ValidationError):
            message = str(exc)  # it names its step
        elif worded:
            message = f"{name}: {exc}"
        else:  # an OSError while reading, or a bug: its kind named, no step worded it
            message = f"{name}: {type(exc).__name__}: {exc}"
        if joined is not None:  # the next step failed before the joined write: the held step's writes go alone
            reported = len(joined[1].warnings)
            try:
                joined[1].apply(joined[2])
                joined[1].persist()
                message += f" ({joined[0]}'s writes, held to join the {name} step's, were applied alone)"
            except Exception as held_exc:  # reported with the failure that led here
                message += f"; and then {joined[0]}, whose writes were held for the {name} step: {held_exc}"
            for warning in joined[1].warnings[reported:]:
                module.warn(warning)
        if isinstance(exc, ValidationError) and not applied:
            raise exc from None
        # earlier steps changed the host: a failed run that reports them (changed, commands), not bad input
        raise StepFailed(message, commands) from (None if worded else exc)
    finally:
        for _name, resource, _desired, _checked in prepared:
            resource.close()
    result: dict[str, Any] = {"changed": changed, "commands": commands}
    if diffs:
        result["diff"] = diffs
    return result


def _joins_next(resource: Any, operations: list, later: list, firewall: SharedFirewall) -> bool:
    """Whether this firewall step's writes can wait for the next step's, so that both go in one
    transaction (one restore per table and family, one ``nft -f``): the next step is a firewall step
    too, and the adapters can foresee every rule write of this one (the next step plans on the
    ruleset as they would leave it). A backend switch joins too: each backend's writes, both steps'
    lines in step order, the chosen backend's first."""
    if not later or not firewall.serves(later[0][1]) or not firewall.serves(resource):
        return False
    return firewall.foreseeable(operations)


def _apply_joined(joined: tuple[str, Any, list], resource: Any, operations: list, actions: frozenset) -> list[str]:
    """The held step's rule writes (``actions``) and ``resource``'s in one transaction per table and
    backend (in step order, as the later step planned them), then each step's other operations
    (sysctls, conntrack) after the rules are committed. Returns the warnings the held step's
    operations gave (its own were reported)."""
    name, first, held = joined
    rules = [op for op in held if op.action in actions]
    first.intend()  # its state file claims what the transaction may write (the resource applying it intends its own)
    try:
        (resource or first).apply(rules + operations)
    except ApplyError as exc:
        if exc.unchanged:  # nothing of the transaction is left: the held step's intent goes too
            first.withdraw()
        if resource is None:
            raise
        raise ApplyError(f"{exc} (the transaction had the {name} step's lines too)") from None
    reported = len(first.warnings)
    first.apply_other([op for op in held if op.action not in actions])
    return first.warnings[reported:]


def _foresee_bridges(resource: Any, new_bridges: set[str]) -> None:
    """Check mode: the firewall sees the bridges the bridge step would have created (route_localnet is off
    on a new bridge), as it does after a real bridge step."""
    for bridge in new_bridges:
        path = route_localnet_path(bridge)
        if bridge not in resource.bridges_present:
            resource.bridges_present.add(bridge)
            resource.sysctls[path] = "0"


def _hold_run_lock(netlink: SharedNetlink, resource: Any) -> None:
    """Let a link step's gather hold the run's host lock instead of taking it again (which would drop
    what the run read under it): a dup of the fd, so closing it releases nothing."""
    if netlink.run_lock is not None and getattr(resource, "_lock", False) is None:
        resource._lock = os.dup(netlink.run_lock)


def _await_pairs_gone(netlink: SharedNetlink, namespaces: set[str], timeout: float = 3.0) -> None:
    """Wait, bounded, for the kernel to destroy the veths of deleted namespaces (cleanup_net runs
    asynchronously); pairs kept alive by a process in their namespace stay, and the veth step deletes them."""
    deadline = time.monotonic() + timeout
    pause = 0.005  # the kernel takes some 20-40 ms: looked at often at first, then every 20 ms
    while True:
        netlink.invalidate(None)
        left = [link for link in netlink.links(None).values() if _peer_netns(link) in namespaces]
        if not left or time.monotonic() > deadline:
            return
        time.sleep(pause)
        pause = min(2 * pause, 0.02)


def _delete_pairs_left(netlink: SharedNetlink, namespaces: set[str], resource: Any, desired: list, state: str) -> list[str]:
    """The end of a teardown's veth step, after the steps that followed it: wait for the kernel to destroy
    the pairs of the namespaces deleted (:func:`_await_pairs_gone`), then delete those still there, as
    the step would have; their commands."""
    _await_pairs_gone(netlink, namespaces)
    if not any(_peer_netns(link) in namespaces for link in netlink.links(None).values()):
        return []
    _hold_run_lock(netlink, resource)  # as the step held it (closed by resource.close)
    reported = len(resource.warnings)
    try:
        left = {name: item for name, item in resource.gather(desired, state).items()
                if _peer_netns(netlink.link(name)) in namespaces}
        operations, _expected = resource.plan(desired, left, state)
        if operations:
            resource.apply(operations)
        resource.persist()
        for warning in resource.warnings[reported:]:
            resource.module.warn(warning)
        return [op.command for op in operations]
    finally:
        resource.close()


def _without_pairs_in(veths: dict, namespaces: set[str], netlink: SharedNetlink) -> dict:
    """The gathered veths less those whose peer lived in a namespace just deleted: the kernel destroys
    them with it, but asynchronously, so some may still be listed (their peer no longer readable)."""
    links = netlink.links(None)
    return {name: item for name, item in veths.items() if _peer_netns(links.get(name)) not in namespaces}


def _peer_netns(link: dict | None) -> str | None:
    """The namespace a host veth end's alias records for its peer; None: not the collection's, or not listed."""
    recorded = parse_alias(link["alias"]) if link else None
    return recorded["peer_netns"] if recorded else None
