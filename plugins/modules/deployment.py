#!/usr/bin/python
# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: deployment
short_description: Converge or remove a whole bridge-network deployment in one module run
version_added: 0.1.0
description:
  - Turns networks and endpoints (the variables of the role
    R(linuxnet.bridge.bridge_network,ansible_collections.linuxnet.bridge.bridge_network_role)) into
    the C(config) of the modules M(linuxnet.bridge.netns), M(linuxnet.bridge.bridge),
    M(linuxnet.bridge.veth), M(linuxnet.bridge.firewall) and M(linuxnet.bridge.port_mapping), keeping
    the addresses of existing endpoints, and applies them in that order in one process, as those
    modules would with O(ignore:state=overridden), each step reading the host after the previous one
    changed it. RV(commands) are theirs, and so are the ownership rules - objects the collection did
    not create are never changed or removed.
  - With O(state=absent), removes everything the collection created (the five modules with
    O(ignore:state=deleted)), in this order - published ports and firewall rules, then the endpoint
    namespaces (their veth pairs go with them, in one batch of the kernel), the remaining veths and the
    bridges.
  - Every step's input is checked before anything changes. When something is to change, first checks
    that the kernel can create a bridge, a veth pair and a nat table of the firewall backend (in a
    throw-away network namespace) and fails with a clear message if not.
  - A run that finds the host as described only reads (one netlink dump per namespace read, one
    C(iptables-save) per table).
  - With O(persist), the same run also installs (V(true)) or removes (V(false)) the boot-time restore
    and the endpoint services, exactly as M(linuxnet.bridge.persist) does, on the plan it converged -
    so a role run is one module run. With O(state=absent) they are removed before the teardown
    (services stop while their namespaces still exist).
extends_documentation_fragment:
  - linuxnet.bridge.deployment
  - linuxnet.bridge.iptables
attributes:  # support: the doc fragment linuxnet.bridge.deployment, but for diff_mode
  check_mode:
    description: Predicts exactly what a run would do, step by step, as if the earlier steps had run; warns as
      the run would (not about a namespace, bridge or address that an earlier step creates).
  diff_mode:
    support: full
    description: One diff per step that changes something, in the shape of the step module's C(config).
  idempotent:
    description: A second run with the same input changes nothing and writes nothing.
options:
  state:
    description:
      - V(present) makes the host exactly the deployment of O(networks) and O(endpoints), removing what
        the collection created and they no longer list.
      - V(absent) removes everything the collection created (O(networks) and O(endpoints) are ignored).
    type: str
    choices: [present, absent]
    default: present
  return_plan:
    description:
      - V(always) returns RV(plan) on every run.
      - V(on_change) returns it only when something changed (or would, in check mode); a run that finds
        the host as described then returns a few hundred bytes instead of the whole plan (the role uses this).
    type: str
    choices: [always, on_change]
    default: always
  persist:
    description:
      - V(true) installs or updates the boot-time restore of the converged deployment and the endpoint
        services (C(service) of O(endpoints)) after the converge, as M(linuxnet.bridge.persist) with
        O(linuxnet.bridge.persist#module:state=present); refused with O(state=absent).
      - V(false) removes them (before the teardown with O(state=absent)); with O(state=present), endpoints
        with a C(service) are then refused.
      - Unset leaves them as they are (C(service) of O(endpoints) is then only checked, not installed).
      - The role sets it from O(linuxnet.bridge.bridge_network#role:main:linuxnet_persist).
    type: bool
  on_missing_commands:
    description:
      - What a run with O(state=present) does when the managed host lacks a command it needs (C(iptables),
        C(iptables-save) and C(iptables-restore) of the variant, C(ip6tables) ones with an IPv6 subnet, C(nft)
        with the nftables backend, C(ip) for the kernel check below), checked before anything changes.
      - V(fail) fails, naming the commands and their packages.
      - V(skip) changes nothing and returns them in RV(missing_commands) with RV(skipped=true), so that a
        play can install them and run again (the role does when
        O(linuxnet.bridge.bridge_network#role:main:linuxnet_install_packages) is true).
      - C(conntrack) is optional either way (a warning when a changed UDP mapping needs it); it is listed in
        RV(missing_commands) too.
    type: str
    choices: [fail, skip]
    default: fail
    version_added: 0.2.0
requirements:
  - With O(persist), systemd >= 242 for endpoint services (on a host without systemd nothing is installed, with a warning).
notes:
  - The five modules stay available for direct use; this module shares their code.
seealso:
  - module: linuxnet.bridge.deployment_info
    description: The same plan and comparison, read-only.
"""

EXAMPLES = r"""
- name: Networks and endpoints of this host
  linuxnet.bridge.deployment:
    networks:
      - name: backend
        subnet: 172.18.0.0/16
    endpoints:
      - name: web
        networks: [backend]
        ports: ["8080:80"]

- name: Remove everything linuxnet.bridge created on this host
  linuxnet.bridge.deployment:
    state: absent
"""

RETURN = r"""
commands:
  description: For each step (module name), the commands it applied (in check mode, would apply), in the order run.
  returned: always
  type: dict
  sample:
    netns: ["ip netns add web", "ip -n web link set lo up"]
    bridge: []
    veth: ["ip link add veth1a2b3c4 type veth peer name eth0 netns web"]
    firewall: []
    port_mapping: ["iptables -t nat -A LINUXNET -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:80"]
changed_steps:
  description: The steps that changed something (in check mode, would), in the order run.
  returned: always
  type: list
  elements: str
  sample: [netns, veth, port_mapping]
plan:
  description:
    - The C(config) of each module under the module's name, the netns module's C(host_groups), the
      C(warnings) about ignored input, and the resolved C(networks) and C(endpoints), as
      M(linuxnet.bridge.deployment_info) returns it (its RV(linuxnet.bridge.deployment_info#module:plan)
      shows a whole one).
  returned: when O(state=present), unless O(return_plan=on_change) and nothing changed
  type: dict
  sample:
    bridge: [{name: br-backend, addresses: [172.18.0.1/16]}]
    port_mapping: [{publish: "8080:80", bridge: br-backend, container_ip: 172.18.0.2, network: backend}]
    endpoints: [{name: web, mode: bridge, networks: {backend: 172.18.0.2}}]
    warnings: []
ignored:
  description: What of the input is ignored and why (the C(warnings) of RV(plan)); each is also a warning of the run.
  returned: when O(state=present)
  type: list
  elements: str
  sample: ["linuxnet_endpoints[0].ports: ignored, endpoint db is only on internal networks"]
missing_commands:
  description:
    - The commands the run needs that the managed host lacks (see O(on_missing_commands)); empty when it has them all.
  returned: when O(state=present)
  type: list
  elements: str
  sample: [conntrack]
skipped:
  description: With O(on_missing_commands=skip), true when a required command is missing and the run changed nothing.
  returned: when a required command is missing and O(on_missing_commands=skip)
  type: bool
  sample: true
persist:
  description:
    - What the boot-time restore part did (would do, in check mode), as M(linuxnet.bridge.persist) returns it -
      C(installed), C(changed), C(written), C(removed), C(commands) (C(systemctl) command lines) and C(services).
  returned: when O(persist) is set
  type: dict
  sample: {installed: true, changed: false, written: [], removed: [], commands: [], services: {web: linuxnet-endpoint-web.service}}
"""

from ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport import compile_once

compile_once()  # first: the module_utils imported below come from the AnsiballZ zip, compiled once each

from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment, _engine, _persist
from ansible_collections.linuxnet.bridge.plugins.module_utils._deployment import DEPLOYMENT_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import MODULE_OPTIONS, chain_prefix, missing_message, needed_commands
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError


def missing_commands(module, tables: dict) -> list[str]:
    """The commands the run needs that the host lacks; a required one fails the run (or, with
    on_missing_commands=skip, ends it with nothing changed)."""
    ipv6 = any(isinstance(net, dict) and net.get("subnet6") not in (None, "") for net in module.params["networks"])
    required, optional = needed_commands(tables, ipv6)
    lacking = [name for name in required if not module.get_bin_path(name)]
    missing = lacking + [name for name in optional if not module.get_bin_path(name)]
    if lacking and module.params["on_missing_commands"] == "skip":
        module.exit_json(changed=False, skipped=True, missing_commands=missing, commands={}, changed_steps=[],
                         msg=f"nothing done: {missing_message(lacking)}")
    if lacking:
        module.fail_json(msg=missing_message(lacking), missing_commands=missing, commands={})
    return missing


def main() -> None:
    module = _engine.privileged_module({
        **DEPLOYMENT_OPTIONS,
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        "return_plan": {"type": "str", "default": "always", "choices": ["always", "on_change"]},
        "persist": {"type": "bool"},
        "on_missing_commands": {"type": "str", "default": "fail", "choices": ["fail", "skip"]},
        **MODULE_OPTIONS,
    })
    p = module.params
    tables = {key: p[key] for key in MODULE_OPTIONS}  # chain_prefix, iptables_variant, firewall_backend
    result: dict = {"commands": {}}
    missing = None
    try:
        chain_prefix(p["chain_prefix"])  # state=absent changes persist's files before any step checks it
        persist = _persist.requested(p["state"], p["persist"], p["endpoints"])
        services = _persist.checked_services(persist, p["endpoints"]) if persist else {}  # before anything changes
        if p["state"] == "present":  # before anything changes (the firewall step runs after the links are made)
            missing = missing_commands(module, tables)
        saved = None
        if p["state"] == "absent":
            if persist:  # endpoint services stop while their namespaces still exist
                saved = _persist.apply(module, persist, None, services, tables)
            result = _deployment.remove(module, **tables)
        else:
            result = _deployment.converge(module, p["networks"], p["endpoints"], **tables)
            if persist:  # the plan just converged is what the host has (what the restore rebuilds)
                saved = _persist.apply(module, persist, result["plan"], services, tables)
    except ValidationError as exc:
        module.fail_json(msg=str(exc))
    except (ApplyError, OSError) as exc:
        done = getattr(exc, "commands", result["commands"])  # the steps before the failed one, and its own
        module.fail_json(msg=str(exc), changed=not module.check_mode and any(done.values()), commands=done)
    if missing is not None:
        result["missing_commands"] = missing
    result["changed_steps"] = [step for step, commands in result["commands"].items() if commands]
    if saved is not None:
        diff = saved.pop("diff")
        if module._diff and diff:
            result["diff"] = result.get("diff", []) + diff
        result["changed"] = result["changed"] or saved["changed"]
        result["persist"] = saved
    if "plan" in result:
        result["ignored"] = result["plan"]["warnings"]
        for warning in result["ignored"]:
            module.warn(warning)
        if p["return_plan"] == "on_change" and not result["changed"]:
            del result["plan"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
