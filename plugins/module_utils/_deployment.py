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
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import ITEM_OPTIONS as BRIDGE_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import BridgeResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import ITEM_OPTIONS as FIREWALL_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import MODULE_OPTIONS, FirewallResource, select_adapter
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import ITEM_OPTIONS as NETNS_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import MODULE_OPTIONS as NETNS_MODULE_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import Netlink
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

# Creating a bridge and a veth pair and reading the nat table in a throw-away namespace proves
# the kernel has what Docker-style networking needs. Only run when something is to be built.
KERNEL_PROBE = [
    "unshare",
    "--net",
    "sh",
    "-c",
    "ip link add lnx-probe0 type bridge && ip link add lnx-probe1 type veth peer name lnx-probe2"
    " && iptables -t nat -S >/dev/null",
]


class SharedNetlink(Netlink):
    """One set of sockets and cached dumps for every resource of the pass (nothing writes)."""

    def close(self) -> None:
        """Resources close what they use; the pass releases the sockets once, at its end."""

    def release(self) -> None:
        super().close()


class SavedOnce:
    """A firewall adapter that reads the live ruleset once for every resource of the pass (nothing writes)."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter
        self._saved: dict | None = None

    def save(self) -> dict:
        if self._saved is None:
            self._saved = self._adapter.save()
        return copy.deepcopy(self._saved)  # each resource plans on its own copy

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


class ReadOnlyModule:
    """The module as one resource sees it: that resource's own validated params, check mode on."""

    check_mode = True

    def __init__(self, module: Any, params: dict) -> None:
        self._module = module
        self.params = params

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def module_params(module_name: str, item_options: dict, module_options: dict | None, params: dict) -> dict:
    """``params`` checked against the argument spec of ``module_name``, with its defaults filled in."""
    result = ArgumentSpecValidator(_engine.config_argument_spec(item_options, module_options)).validate(params)
    if result.error_messages:
        raise ValidationError(f"{module_name}: " + "; ".join(result.error_messages))
    return result.validated_parameters


def pending_changes(module: Any, networks: list[dict], endpoints: list[dict], chain_prefix: str, iptables_variant: str) -> dict:
    """Plan the deployment and report, per module, the commands its run would apply now."""
    netlink = SharedNetlink()
    try:
        return _pending_changes(module, netlink, networks, endpoints, chain_prefix, iptables_variant)
    finally:
        netlink.release()


def _resource(resource_class: type, module: Any, netlink: SharedNetlink) -> Any:
    resource = resource_class(module)
    if hasattr(resource, "netlink"):
        resource.netlink = netlink
    return resource


def _pending_changes(module: Any, netlink: SharedNetlink, networks: list[dict], endpoints: list[dict],
                     chain_prefix: str, iptables_variant: str) -> dict:
    view = ReadOnlyModule(module, {"config": None, "state": "gathered"})
    veths = _resource(VethResource, view, netlink)
    live_veths = veths.gather([], "gathered")
    plan = plan_deployment(networks, endpoints, _engine.listing(live_veths, veths))

    commands: dict[str, list[str]] = {}
    iptables = SavedOnce(select_adapter(ReadOnlyModule(module, {}), {"iptables_variant": iptables_variant}))
    for name, resource_class, item_options, module_options in STEPS:
        params: dict[str, Any] = {"config": plan[name], "state": "overridden"}
        if module_options is MODULE_OPTIONS:
            params.update(chain_prefix=chain_prefix, iptables_variant=iptables_variant)
        elif module_options is NETNS_MODULE_OPTIONS:
            params["host_groups"] = plan["host_groups"]
        params = module_params(name, item_options, module_options, params)
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
                resource.adapter = iptables
        try:
            commands[name] = [op.command for op in _engine.predict(resource, "overridden", before)]
        finally:
            resource.close()
    return {
        "plan": plan,
        "commands": commands,
        "pending": [name for name, *_rest in STEPS if commands[name]],
    }
