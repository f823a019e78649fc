# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Options of the modules that change iptables rules.
    DOCUMENTATION = r"""
options:
  chain_prefix:
    description:
      - Prefix of the chain names, 1-10 characters of C(A-Z0-9_-). The default coexists with a real
        dockerd on the same host; V(DOCKER) gives Docker's own chain names. The firewall and
        port_mapping modules must use the same prefix.
    type: str
    default: LINUXNET
  iptables_variant:
    description:
      - iptables variant; V(auto) uses the one the host's C(iptables) command uses.
      - The old name O(backend) is deprecated and will be removed in 0.3.0.
    type: str
    aliases: [backend]
    choices: [auto, iptables-nft, iptables-legacy]
    default: auto
attributes:
  action_group:
    description: Use C(group/linuxnet.bridge.firewall) in C(module_defaults) to set O(chain_prefix) and
      O(iptables_variant) once for every module that takes them.
    support: full
    membership: [linuxnet.bridge.firewall]
requirements:
  - iptables (iptables-save and iptables-restore) on the managed host
"""
