# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The deployment input of the modules deployment, deployment_info and persist (the role's variables).
    DOCUMENTATION = r"""
author:
  - linuxnet.bridge developers (@linuxnet)
options:
  networks:
    description: Bridge networks, as O(linuxnet.bridge.bridge_network#role:main:linuxnet_networks) of the role.
    type: list
    elements: dict
    default: []
  endpoints:
    description: Endpoints, as O(linuxnet.bridge.bridge_network#role:main:linuxnet_endpoints) of the role.
    type: list
    elements: dict
    default: []
attributes:  # each module adds the descriptions (Ansible merges an attribute's keys)
  check_mode:
    support: full
  idempotent:
    support: full
requirements:
  - Python >= 3.9 on the managed host, root
"""
