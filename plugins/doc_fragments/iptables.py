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
      - Prefix of the chain names, 1-10 characters of C(A-Z0-9_-), starting with a letter. The default coexists with a real
        dockerd on the same host; V(DOCKER) gives Docker's own chain names. The firewall and
        port_mapping modules must use the same prefix.
      - Refused, whatever the backend, as it also names the nftables table (in lower case), are the names of other
        tools' tables (C(FILTER), C(NAT), C(RAW), C(MANGLE), C(SECURITY) of iptables-nft, C(FIREWALLD),
        C(KUBE-PROXY)) and words nft reads as keywords there (C(IP), C(TABLE), C(CHAIN), C(RULE), C(INET),
        C(FLUSH), C(SET), C(MAP) and more, as the error tells), besides iptables' built-in chains and targets.
    type: str
    default: LINUXNET
  firewall_backend:
    description:
      - V(iptables) keeps Docker's chains in the host's C(filter) and C(nat) tables (one
        C(iptables-restore --noflush) transaction per table).
      - V(nftables) puts the same ruleset in a table of the collection's own, C(ip <prefix>) with
        the chain prefix in lower case (C(ip linuxnet)), applied with one C(nft -f) transaction per
        run; no other table (firewalld's, Docker's C(docker-bridges), iptables-nft's C(ip filter) and
        C(ip nat), a user's) is read or written. Its base chains hook where Docker 29's
        C(docker-bridges) does (C(filter-FORWARD) forward/filter, C(nat-PREROUTING) prerouting/dstnat,
        C(nat-OUTPUT) output/-100, C(nat-POSTROUTING) postrouting/srcnat, C(raw-PREROUTING)
        prerouting/raw). The admins' hook is the regular chain C(filter-<PREFIX>-USER), jumped to
        first from C(filter-FORWARD); the collection creates it and never flushes it
        (C(nft add rule ip linuxnet filter-LINUXNET-USER ip saddr 192.0.2.7 drop)).
      - Every run also removes the collection's rules from the backend not chosen, and from every
        iptables variant not chosen (C(iptables-legacy) only where the network namespace has a legacy
        table loaded), so switching a host from one backend or variant to another leaves nothing behind (a C(<PREFIX>-USER) chain holding
        an admin's rules excepted, and a FORWARD policy of DROP set earlier in iptables stays).
        Switch the firewall and port_mapping modules together (the role does).
    type: str
    choices: [iptables, nftables]
    default: iptables
  iptables_variant:
    description:
      - iptables variant; V(auto) uses the one the host's C(iptables) command uses. Only used with
        O(firewall_backend=iptables); a run cleans up the other variant whatever this says.
      - The old name O(backend) is deprecated and will be removed in 0.3.0.
    type: str
    aliases: [backend]
    choices: [auto, iptables-nft, iptables-legacy]
    default: auto
attributes:
  action_group:
    description: Use C(group/linuxnet.bridge.firewall) in C(module_defaults) to set O(chain_prefix),
      O(firewall_backend) and O(iptables_variant) once for every module that takes them.
    support: full
    membership: [linuxnet.bridge.firewall]
requirements:
  - iptables (iptables-save and iptables-restore) on the managed host, or nftables (C(nft)) with
    O(firewall_backend=nftables)
"""
