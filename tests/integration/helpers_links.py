"""Helpers shared by the integration tests of the link modules (netns, bridge, veth) and the role.

* Reading the lab host ``linuxnet1`` (``HOST``): ``sh``, ``ipj`` (``ip -j``, optionally ``-n NS``),
  ``netns_names``, ``links`` (every link with its addresses); ``FOREIGN_VETH``/``FOREIGN_BRIDGE``, the
  refusal of a link the collection did not create.
* Link-module tasks (``task``, ``apply_tasks``: netns, bridge, veth in creation order).
* ``snapshot``: what the link modules could change inside the lab host; ``assert_same`` compares two
  snapshots and names what changed.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.integration.helpers import HOST


def sh(lab, script: str, check: bool = True) -> subprocess.CompletedProcess:
    return lab.run(HOST, ["sh", "-c", script], check=check)


def ipj(lab, *args: str, netns: str | None = None) -> list:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["-j", *args]
    out = lab.run(HOST, argv).stdout
    return json.loads(out) if out.strip() else []


def netns_names(lab) -> list[str]:
    return sorted(n["name"] for n in ipj(lab, "netns", "list"))


#: the refusals of a veth pair or a bridge of that name the collection did not create (config[0])
FOREIGN_VETH = "config[0] (name=va).name: a veth of that name exists that linuxnet.bridge did not create"
FOREIGN_BRIDGE = "config[0] (name=br-n1).name: a bridge of that name exists that linuxnet.bridge did not create"


def links(lab, netns: str | None = None) -> list[dict]:
    """Every link (name, index, alias, master, addresses) of the host or ``netns``."""
    return [{k: link.get(k) for k in ("ifname", "ifindex", "ifalias", "master", "operstate", "address")}
            | {"addr": [(a["local"], a["prefixlen"], a.get("broadcast")) for a in link.get("addr_info", [])]}
            for link in ipj(lab, "-d", "addr", "show", netns=netns)]


def task(name: str, module: str, state: str = "merged", config: Any = None, **extra: Any) -> dict:
    args: dict[str, Any] = {"state": state}
    if config is not None:
        args["config"] = config
    return {"name": name, f"linuxnet.bridge.{module}": args, **extra}


def apply_tasks(ns=None, br=None, veth=None, state="merged") -> list[dict]:
    """netns, bridge, veth tasks in creation order (only those given)."""
    out = []
    for module, config in (("netns", ns), ("bridge", br), ("veth", veth)):
        if config is not None:
            out.append(task(module, module, state, config))
    return out


def snapshot(lab) -> dict[str, Any]:
    """What the modules could change inside the lab host (read-only, stable fields only)."""
    snap: dict[str, Any] = {"netns": netns_names(lab)}
    for ns in [None] + snap["netns"]:
        links = []
        for entry in ipj(lab, "-d", "link", "show", netns=ns):
            info = entry.get("linkinfo", {})
            links.append(json.dumps({
                "name": entry["ifname"], "mtu": entry.get("mtu"), "mac": entry.get("address"),
                "master": entry.get("master"), "up": "UP" in entry.get("flags", []), "alias": entry.get("ifalias"),
                "kind": info.get("info_kind"), "hairpin": info.get("info_slave_data", {}).get("hairpin"),
                "stp": info.get("info_data", {}).get("stp_state"),
            }, sort_keys=True))
        snap[f"links@{ns}"] = sorted(links)
        snap[f"addrs@{ns}"] = sorted(
            f"{e['ifname']} {a['local']}/{a['prefixlen']}" for e in ipj(lab, "-4", "addr", "show", netns=ns)
            for a in e.get("addr_info", []))
        # (not the "linkdown" flag: an STP bridge has no carrier until a port forwards, 30 s after it
        # joined, whatever a module does; a command a module runs is checked by the tests themselves)
        snap[f"routes@{ns}"] = sorted(
            json.dumps({**r, "flags": [f for f in r.get("flags", []) if f != "linkdown"]}, sort_keys=True)
            for r in ipj(lab, "-4", "route", "show", "table", "main", netns=ns))
    snap["files"] = sh(
        lab,
        # (not the bytecode cache: the first module run of a host fills it, whatever the module does)
        "find /etc/netns -mindepth 1 | sort; find /run/linuxnet -path /run/linuxnet/pycache -prune -o -type f -print 2>/dev/null | sort; "
        "for f in $(find /etc/netns -type f | sort); do echo \"== $f\"; cat \"$f\"; done",
    ).stdout.splitlines()
    return snap


def assert_same(before: dict, after: dict, what: str) -> None:
    changed = {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not changed, f"{what} changed the lab host:\n" + json.dumps(changed, indent=1)
