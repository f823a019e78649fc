# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""What a deployment must and must not reach under Docker's model, and the matrix that compares
it with what real packets observed (``verify.yml``). Pure: runs on the controller in filter plugins.

A check is ``{source, target, kind: icmp|tcp|udp, address, port, expect, why}``; ``source`` and
``target`` are endpoint names or ``probe`` (a host outside the deployment); results add ``observed``.
``expect`` None: the outcome depends on something outside the host (a route back to a subnet that is
not masqueraded); the packet is sent, the matrix shows it as ``skip`` and it is never a mismatch.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import parse_publish


def reachability(plan: dict, probe_address: str | None = None, host_address: str | None = None,
                 probe_address6: str | None = None, host_address6: str | None = None) -> list[dict]:
    """Every check verify.yml runs, with the expected outcome derived from Docker's model. A published
    port is checked in its mapping's family: an IPv6 mapping (Docker 27+ makes one per family for a
    dual-stack endpoint) on its IPv6 host address or ``host_address6``, from ``probe_address6``."""
    nets = {n["name"]: n for n in plan["networks"]}
    eps = [e for e in plan["endpoints"] if e["mode"] == "bridge"]
    checks = []
    for a in eps:
        for b in eps:
            if a is b:
                continue
            checks.append(_pair(a, b, nets, "networks", ""))
            if a.get("networks6") and b.get("networks6"):  # both have IPv6
                checks.append(_pair(a, b, nets, "networks6", " over IPv6"))
        if probe_address:
            expect, why = _egress(a, nets)
            checks.append({"source": a["name"], "target": "probe", "kind": "icmp", "address": probe_address,
                           "port": None, "expect": expect, "why": why})
    for port in plan["port_mapping"]:
        parsed = parse_publish(port["publish"], "ports") if port.get("publish") else port
        host_port = str(parsed.get("host_port") or parsed.get("container_port")).split("-", maxsplit=1)[0]
        container_port = str(parsed.get("container_port")).split("-", maxsplit=1)[0]
        protocol = parsed.get("protocol") or "tcp"
        six = ":" in port["container_ip"]
        host_ip = parsed.get("host_ip") if parsed.get("host_ip") not in (None, "", "0.0.0.0", "::") else (
            host_address6 if six else host_address)
        endpoint = next((e["name"] for e in eps
                         if port["container_ip"] in (*e["networks"].values(), *e.get("networks6", {}).values())), None)
        # sources: the probe reaches the port only from an allowed network (of the mapping's family)
        probe = probe_address6 if six else probe_address
        allowed = not port.get("sources") or (probe is not None and any(
            ipaddress.ip_address(probe) in ipaddress.ip_network(s) for s in port["sources"]))
        why = f"published {port.get('publish') or host_port}" + (
            "" if not port.get("sources") else f" to {', '.join(port['sources'])}" + ("" if allowed else ", not the probe")) + (
            " over IPv6" if six else "")
        # (a port published on loopback only is not reachable from the probe: not checked)
        if host_ip and not ipaddress.ip_address(host_ip).is_loopback and endpoint:
            checks.append({"source": "probe", "target": endpoint, "kind": protocol, "address": host_ip,
                           "port": int(host_port), "container_port": int(container_port),
                           "expect": allowed, "why": why})
    return checks


def _egress(a: dict, nets: dict) -> tuple[bool | None, str]:
    """Whether endpoint a reaches the probe: its default route goes through its first non-internal
    network (as the planner routes it), and the reply finds its way back only through that
    network's masquerade (SNAT to snat_source is a form of it; gateway_mode nat-unprotected only drops
    the protection). Without masquerade the answer depends on a route back to the subnet outside
    the host: None, not checked."""
    routed = next((n for n in a["networks"] if not nets[n]["internal"]), None)
    if routed is None:
        return False, "internal network: no egress"
    if nets[routed].get("masquerade", True) is False:
        return None, f"masquerade off on {routed}: egress needs a route back to its subnet, not checked"
    return True, "egress through masquerade"


def _pair(a: dict, b: dict, nets: dict, key: str, over: str) -> dict:
    """The ping from endpoint a to b in one family (``key``: their networks or networks6 addresses):
    their first shared network under its ICC, else isolation (a packet that leaves its network
    must be dropped)."""
    shared = [n for n in a[key] if n in b[key]]
    if shared:
        net = shared[0]
        expect = nets[net]["icc"]
        why = f"same network {net}{over}" + ("" if expect else " with icc off")
    else:
        net, expect, why = next(iter(b[key])), False, f"different networks{over} (isolation)"
    return {"source": a["name"], "target": b["name"], "kind": "icmp", "address": b[key][net],
            "port": None, "expect": expect, "why": why}


def listener(check: dict) -> dict:
    """The listener a published-port check needs inside the target endpoint."""
    return {"netns": check["target"], "kind": check["kind"], "port": check.get("container_port") or check["port"]}


def describe(result: dict) -> str:
    """One line of the matrix; a check whose ``expect`` is None is shown (what it observed) as skip."""
    where = f"{result['address']}:{result['port']}/{result['kind']}" if result.get("port") else f"{result['address']} ({result['kind']})"
    expected = "-" if result["expect"] is None else "reach" if result["expect"] else "blocked"
    observed = "reach" if result.get("observed") else "blocked"
    verdict = "skip" if result["expect"] is None else "ok" if bool(result.get("observed")) == bool(result["expect"]) else "MISMATCH"
    return f"{verdict:8} {result['source']:>12} -> {str(result['target']):<12} {where:<28} expected {expected:<7} observed {observed:<7} ({result['why']})"


def matrix(results: list[dict]) -> list[str]:
    header = f"{'verdict':8} {'from':>12} -> {'to':<12} {'address':<28} expected/observed (why)"
    return [header] + [describe(r) for r in results]


def mismatches(results: list[dict]) -> list[dict]:
    return [dict(r, line=describe(r)) for r in results
            if r["expect"] is not None and bool(r.get("observed")) != bool(r["expect"])]
