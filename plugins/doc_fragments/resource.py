# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Options and attributes shared by every resource module of the collection.
    DOCUMENTATION = r"""
author:
  - linuxnet.bridge developers (@linuxnet)
options:
  state:
    description:
      - C(merged) creates or updates the listed items and leaves every other item alone; list
        attributes such as C(addresses) are added to.
      - C(replaced) makes the listed items exactly as given (list attributes become exactly the
        given lists); scalar attributes that are left out are not changed.
      - C(overridden) is C(replaced) and, in addition, removes every item that the collection
        created and that is not listed. Items created by anything else are never removed.
      - C(deleted) removes the listed items that the collection created (a listed item created by
        anything else is left alone, with a warning); with no O(config), every item the collection
        created.
      - C(gathered) returns the live state in the shape of O(config) and changes nothing.
      - C(rendered) returns, without touching the host, the commands that build O(config) on an
        empty host.
    type: str
    choices: [merged, replaced, overridden, deleted, gathered, rendered]
    default: merged
attributes:
  check_mode:
    support: full
    description: Predicts exactly the changes a real run makes, in RV(commands), and changes nothing.
  diff_mode:
    support: full
    description: Shows the items before and after.
  idempotent:
    support: full
    description: A second run with the same input reports no change and writes nothing.
requirements:
  - Python >= 3.9 on the managed host, root
notes:
  - Ownership is recorded on the managed host so that O(state=overridden) and O(state=deleted)
    never remove objects created by someone else (Docker, libvirt, a user).
"""

    # state=parsed of the firewall resources, listed before linuxnet.bridge.resource: Ansible merges an
    # option of two fragments key by key, the earlier one winning, so state gets these choices and the
    # rest (description, type, default) from DOCUMENTATION. parsed itself is described at running_config.
    PARSED = r"""
options:
  state:
    choices: [merged, replaced, overridden, deleted, gathered, rendered, parsed]
  running_config:
    description:
      - The ruleset O(state=parsed) reads, without touching the host, and returns in the shape of
        O(config) (RV(parsed)). Without the host's ownership records, networks are named after their bridges.
      - The output of C(iptables-save) (or C(iptables-save -t filter) and C(-t nat)), for example from
        another host or a backup. Rules are read with the chains of O(chain_prefix).
      - Or the text of C(nft list ruleset) or C(nft list table ip linuxnet) of a host with
        C(firewall_backend=nftables). Only the tables C(ip) and C(ip6) named after O(chain_prefix)
        in lower case are read (C(linuxnet) for C(LINUXNET)), whatever C(firewall_backend) says.
        The JSON of C(nft -j) is not read.
    type: str
"""
