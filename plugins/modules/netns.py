#!/usr/bin/python
# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: netns
short_description: Manage named network namespaces and their resolver files
version_added: 0.1.0
description:
  - Creates and removes named network namespaces (as C(ip netns add) does, under C(/run/netns)),
    brings their loopback up, and writes C(/etc/netns/<name>/resolv.conf) and C(hosts), which
    C(ip netns exec) mounts over the host's files.
  - All namespaces of one task are handled in one run; 200 namespaces cost one task.
  - A namespace the collection creates is marked (under C(/run/linuxnet/netns)) before it is made, so
    the next run adopts one whose creation was killed midway.
  - A namespace of a name in O(config) that the collection did not create (made by C(ip netns add), by
    another tool) is never adopted, and neither it nor its C(/etc/netns/<name>) files are touched.
    O(state=merged), O(state=replaced) and O(state=overridden) fail before anything changes, with an
    error naming the item's field; O(state=deleted) leaves it alone with a warning.
  - The resolver files of every namespace are read, those of other namespaces too; bytes that are not
    UTF-8 read as U+FFFD (and RV(gathered) shows them so). A configured file that is not UTF-8 (never
    one the collection wrote) is rewritten, and so is a C(resolv.conf) with C(\r\n) line ends (it is
    compared exactly).
extends_documentation_fragment:
  - linuxnet.bridge.resource
options:
  config:
    description: The namespaces.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Namespace name, 1-64 characters of letters, digits and C(_.@+-), not starting with C(-) or C(.) (a hidden name that listing the namespaces skips).
        type: str
        required: true
      resolv_conf:
        description: Content of C(/etc/netns/<name>/resolv.conf), with C(\n) line ends (a carriage return is refused).
          Left alone when omitted (removed with O(state=replaced) or O(state=overridden)).
        type: str
      hosts:
        description:
          - Entries of C(/etc/netns/<name>/hosts), after Docker's standard lines (C(127.0.0.1 localhost),
            C(::1 localhost ip6-localhost ip6-loopback), C(fe00::0 ip6-localnet), C(ff00::0 ip6-mcastprefix),
            C(ff02::1 ip6-allnodes), C(ff02::2 ip6-allrouters)), which are always written; a file whose
            standard lines differ is rewritten.
          - An address with a zone (C(fe80::1%eth0)) is refused.
        type: list
        elements: dict
        suboptions:
          ip:
            description: Address.
            type: str
            required: true
          names:
            description: Host names for the address.
            type: list
            elements: str
            required: true
      host_groups:
        description:
          - Names of O(host_groups) whose entries follow O(config[].hosts) in the file, in this
            order; an entry whose names are all listed already in its address family (IPv4 or
            IPv6) is left out, so a name keeps one line per family.
          - Giving O(config[].hosts) or O(config[].host_groups) makes the module manage the file.
        type: list
        elements: str
  host_groups:
    description:
      - Host entries shared by several namespaces (for example everyone on one network), sent
        once instead of once per namespace.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Group name, referenced by O(config[].host_groups).
        type: str
        required: true
      hosts:
        description: The entries, as in O(config[].hosts).
        type: list
        elements: dict
        required: true
        suboptions:
          ip:
            description: As O(config[].hosts[].ip).
            type: str
            required: true
          names:
            description: As O(config[].hosts[].names).
            type: list
            elements: str
            required: true
seealso:
  - module: linuxnet.bridge.veth
  - module: linuxnet.bridge.bridge
"""

EXAMPLES = r"""
- name: Two namespaces, one with DNS settings like a Docker container
  linuxnet.bridge.netns:
    config:
      - name: web
        resolv_conf: |
          nameserver 9.9.9.9
          search example.internal
        hosts:
          - ip: 172.18.0.3
            names: [db]
      - name: db

- name: Namespaces on one network that know each other by name, entries sent once
  linuxnet.bridge.netns:
    host_groups:
      - name: backend
        hosts:
          - {ip: 172.18.0.2, names: [web]}
          - {ip: 172.18.0.3, names: [db]}
    config:
      - name: web
        host_groups: [backend]
      - name: db
        host_groups: [backend]

- name: Remove every namespace this collection created, except web
  linuxnet.bridge.netns:
    state: overridden
    config:
      - name: web

- name: Show what exists
  linuxnet.bridge.netns:
    state: gathered
  register: namespaces

- name: The hosts entries of web become exactly these (list attributes are replaced)
  linuxnet.bridge.netns:
    state: replaced
    config:
      - name: web
        hosts:
          - ip: 172.18.0.3
            names: [db]

- name: Remove the namespace db (left alone, with a warning, if this collection did not create it)
  linuxnet.bridge.netns:
    state: deleted
    config:
      - name: db

- name: Show the commands that would create web, without touching the host
  linuxnet.bridge.netns:
    state: rendered
    config:
      - name: web
"""

RETURN = r"""
before:
  description: The namespaces (under C(/run/netns)) before the run, in the shape of RV(gathered).
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
  sample: []
after:
  description: Namespaces after the run; in check mode, the prediction.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
  sample: [{"name": "db"}]
commands:
  description: Operations done (in check mode, that would be done) as shell command lines.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: str
  sample: ["ip netns add db", "ip -n db link set lo up"]
gathered:
  description: Every named namespace (under C(/run/netns)) with its C(/etc/netns) files, in the shape of O(config).
  returned: when state is gathered
  type: list
  elements: dict
  sample:
    - {"name": "db", "hosts": [{"ip": "172.18.0.10", "names": ["db"]}]}
    - {"name": "web", "hosts": [{"ip": "172.17.0.2", "names": ["web"]}]}
rendered:
  description: Commands (C(ip netns), and C(printf) for the files) that build O(config) on an empty host.
  returned: when state is rendered
  type: list
  elements: str
  sample:
    - ip netns add db
    - ip -n db link set lo up
    - "printf '%s' '# managed by linuxnet.bridge\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
      ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n172.18.0.10\tdb\n' > /etc/netns/db/hosts"
"""

from ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport import compile_once

compile_once()  # first: the module_utils imported below come from the AnsiballZ zip, compiled once each

from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import ITEM_OPTIONS, MODULE_OPTIONS, NetnsResource


def main() -> None:
    _engine.main(NetnsResource, ITEM_OPTIONS, MODULE_OPTIONS)


if __name__ == "__main__":
    main()
