#!/usr/bin/python
# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: veth
short_description: Manage veth pairs that attach namespaces to bridges
version_added: 0.1.0
description:
  - Creates veth pairs (the "cable" of a container), moves the peer end into a namespace, attaches
    the host end to a bridge, and configures the peer's addresses, MAC, MTU and default route.
  - Changing an attribute of an existing pair updates it in place; only a changed O(config[].peer) or
    O(config[].peer_netns) recreates the pair, and RV(commands) says so.
  - The host end of a pair the collection creates carries an alias that records ownership and
    where the peer lives.
author:
  - linuxnet.bridge developers (@linuxnet)
extends_documentation_fragment:
  - linuxnet.bridge.resource
options:
  config:
    description: The veth pairs.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the host end (at most 15 bytes).
        type: str
        required: true
      peer:
        description: Name of the other end. Defaults to C(eth0) when O(config[].peer_netns) is set.
        type: str
      peer_netns:
        description:
          - Named network namespace the peer end lives in. Required unless O(config[].peer) is
            given and both ends stay on the host.
        type: str
      master:
        description: Bridge the host end joins. It must exist (checked before any change).
        type: str
      addresses:
        description: IPv4 addresses (CIDR) of the peer end.
        type: list
        elements: str
      gateway:
        description: Default route of the peer namespace. Left alone when omitted, in every state (several pairs may share one namespace).
        type: str
      mtu:
        description: MTU of both ends.
        type: int
      mac:
        description:
          - MAC address of the peer end. V(docker) applies Docker's rule, C(02:42) followed by the
            four bytes of the first IPv4 address.
        type: str
      hairpin:
        description: Hairpin mode of the host end's bridge port (needed for hairpin NAT).
        type: bool
notes:
  - In check mode a missing O(config[].master) bridge or O(config[].peer_netns) namespace is a
    warning instead of an error, because an earlier task of the same play would create it.
seealso:
  - module: linuxnet.bridge.bridge
  - module: linuxnet.bridge.netns
"""

EXAMPLES = r"""
- name: Attach the namespace web to docker0 like a Docker container
  linuxnet.bridge.veth:
    config:
      - name: veth-web
        peer_netns: web
        master: docker0
        addresses: [172.17.0.5/16]
        gateway: 172.17.0.1
        mac: docker
        hairpin: true
"""

RETURN = r"""
before:
  description: veth pairs before the run.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
after:
  description: veth pairs after the run; in check mode, the prediction.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
commands:
  description: Operations done (in check mode, that would be done) as C(ip) command lines.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: str
  sample: ["ip link add veth-web type veth peer name eth0 netns web", "ip link set veth-web master docker0"]
gathered:
  description: Live veth pairs in the shape of O(config).
  returned: when state is gathered
  type: list
  elements: dict
rendered:
  description: Commands that build O(config) on an empty host.
  returned: when state is rendered
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import require_pyroute2
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import ITEM_OPTIONS, VethResource


def main() -> None:
    module = AnsibleModule(argument_spec=_engine.config_argument_spec(ITEM_OPTIONS), supports_check_mode=True)
    _engine.run(module, VethResource(module), requires=(require_pyroute2,))


if __name__ == "__main__":
    main()
