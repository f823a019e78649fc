#!/usr/bin/python
# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: persist
short_description: Boot-time restore of a bridge-network deployment and services in its endpoints (systemd)
version_added: 0.1.0
description:
  - Saves the deployment of O(networks) and O(endpoints) as the host has it now (the plan, with the
    addresses endpoints were given) to C(/etc/linuxnet-bridge/state.json), installs the collection's
    engine as one zip application C(/usr/lib/linuxnet-bridge/linuxnet-bridge.pyz) and the oneshot unit
    C(linuxnet-bridge.service), which rebuilds namespaces, bridges, veths, addresses, routes,
    C(/etc/netns) files, firewall rules and sysctls at boot without Ansible. The unit runs the same
    engine as the role, so on a converged host it changes nothing.
  - Writes the forwarding sysctls to C(/etc/sysctl.d/90-linuxnet-bridge.conf) and C(br_netfilter) to
    C(/etc/modules-load.d/linuxnet-bridge.conf).
  - An endpoint with C(service.command) gets a unit C(linuxnet-endpoint-<endpoint>.service) running the
    command in the endpoint's network namespace, with the endpoint's C(/etc/netns) files over
    C(/etc/hosts) and C(/etc/resolv.conf) as C(ip netns exec) does; an endpoint with C(service.unit)
    gets a drop-in that moves that existing unit into its namespace. Both require the restore unit.
  - Before it changes a unit file or drop-in it records what it owes systemd (the C(daemon-reload) and the
    units to restart, try-restart or stop) in C(/run/linuxnet/persist-pending.json), and removes the record
    after its last C(systemctl) step. A run that finds a record (the one before was killed in between, so
    the old command may still run) pays it even when the files are as wanted, and reports changed. A record
    that cannot be read is taken as owing everything (reload, restart every endpoint service and drop-in
    unit of ours), with a warning naming the file.
  - With O(state=absent), stops and removes the endpoint services, the drop-ins, the unit and every
    file above. Only files the collection wrote (fixed paths, or marked in their first line) are touched.
  - Run it after the deployment has converged, so the saved plan is what the host has. The role does
    not call it; M(linuxnet.bridge.deployment) with O(linuxnet.bridge.deployment#module:persist) does the
    same in its converge run.
  - On a host not booted with systemd nothing is installed (a warning says so); endpoint services are
    refused there.
extends_documentation_fragment:
  - linuxnet.bridge.deployment
  - linuxnet.bridge.iptables
attributes:  # support: the doc fragment linuxnet.bridge.deployment, but for diff_mode
  check_mode:
    description: Reports the files it would write or remove and the C(systemctl) commands it would run.
  diff_mode:
    support: full
    description: One diff per file written or removed (the zip application by size and digest).
  idempotent:
    description: A second run with the same input writes nothing and runs no C(systemctl) command that changes anything.
options:
  endpoints:  # type and default: the doc fragment linuxnet.bridge.deployment
    description:
      - Endpoints, as O(linuxnet.bridge.bridge_network#role:main:linuxnet_endpoints) of the role,
        including their C(service).
  state:
    description:
      - V(present) installs or updates the boot-time restore and the endpoint services.
      - V(absent) removes them (O(networks) and O(endpoints) are ignored).
    type: str
    choices: [present, absent]
    default: present
requirements:
  - systemd >= 242 (C(NetworkNamespacePath=))
notes:
  - The unit runs the Python interpreter this module ran with.
seealso:
  - module: linuxnet.bridge.deployment
    description: Converges the deployment this module saves.
"""

EXAMPLES = r"""
- name: Rebuild the deployment at boot, and run a web server in endpoint web
  linuxnet.bridge.persist:
    networks: [{name: bridge, subnet: 172.17.0.0/16}]
    endpoints:
      - name: web
        network: bridge
        ports: ["81:80"]
        service:
          command: python3 -m http.server 80
          restart: always

- name: Remove the boot-time restore and the endpoint services
  linuxnet.bridge.persist:
    state: absent
"""

RETURN = r"""
written:
  description: Files written (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/linuxnet-bridge/state.json]
removed:
  description: Files removed (or that would be).
  returned: always
  type: list
  elements: str
  sample: [/etc/systemd/system/linuxnet-endpoint-old.service]
commands:
  description: The C(systemctl) command lines run (or that would be).
  returned: always
  type: list
  elements: str
  sample: [systemctl daemon-reload, systemctl enable --no-reload --now linuxnet-endpoint-web.service]
services:
  description: The units running in endpoints, by endpoint.
  returned: always
  type: dict
  sample: {web: linuxnet-endpoint-web.service}
installed:
  description: Whether the host runs systemd, so the boot-time restore can be installed.
  returned: always
  type: bool
  sample: true
"""

from ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport import compile_once

compile_once()  # first: the module_utils imported below come from the AnsiballZ zip, compiled once each

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine, _persist
# _restore is not called here: importing it makes AnsiballZ ship it in the zip application.
from ansible_collections.linuxnet.bridge.plugins.module_utils import _restore  # noqa: F401  pylint: disable=unused-import
from ansible_collections.linuxnet.bridge.plugins.module_utils._deployment import DEPLOYMENT_OPTIONS, ReadOnlyModule
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import MODULE_OPTIONS, chain_prefix
from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import plan_deployment
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import VethResource


def live_plan(module: AnsibleModule, networks: list, endpoints: list) -> dict:
    """The plan as the host has it: addresses of existing endpoints kept, as the role's converge did."""
    veths = VethResource(ReadOnlyModule(module, {"config": None, "state": "gathered"}))
    try:
        live = veths.gather([], "gathered")
        return plan_deployment(networks, endpoints, _engine.listing(live, veths))
    finally:
        veths.close()


def main() -> None:
    module = _engine.privileged_module({
        **DEPLOYMENT_OPTIONS,
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        **MODULE_OPTIONS,
    })
    p = module.params
    try:
        chain_prefix(p["chain_prefix"])  # saved for the boot-time restore, which would refuse it
        services = _persist.checked_services(p["state"], p["endpoints"])
        plan = None
        if p["state"] == "present" and _persist.systemd_running():
            plan = live_plan(module, p["networks"], p["endpoints"])
        options = {key: p[key] for key in MODULE_OPTIONS}  # chain_prefix, iptables_variant, ...: as converged
        result = _persist.apply(module, p["state"], plan, services, options)
    except (ValidationError, ApplyError, OSError) as exc:
        module.fail_json(msg=str(exc))
    diff = result.pop("diff")
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
