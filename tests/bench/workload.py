"""The benchmark workload of issue 7, and its translation into every peer's input.

For *n* endpoints: 4 bridge networks, the endpoints spread round-robin over them, 3 published
ports per endpoint (two tcp, one udp), plus one extra endpoint ``eprange`` that publishes a
1000-port range (tcp 30000-30999). Every address is explicit, so that all peers build the same
thing: the same bridges, namespaces, addresses and published ports.

Pure (no I/O besides returning text): the peers in :mod:`tests.bench.peers` write it to files.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

NETWORKS = 4
PORTS_PER_ENDPOINT = 3
HOST_PORT_BASE = 20000
RANGE_FIRST = 30000
RANGE_SIZE = 1000
RANGE_ENDPOINT = "eprange"
CHAIN_PREFIX = "LINUXNET"
REPO_ROOT = Path(__file__).resolve().parents[2]
# (container port, protocol) of the three published ports of every endpoint
ENDPOINT_PORTS = ((80, "tcp"), (443, "tcp"), (53, "udp"))


@dataclass(frozen=True)
class Network:
    index: int
    name: str
    bridge: str
    subnet: str
    gateway: str

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    @property
    def gateway_cidr(self) -> str:
        return f"{self.gateway}/{self.prefixlen}"


@dataclass(frozen=True)
class Port:
    host_port: int
    container_port: int
    protocol: str
    count: int = 1  # > 1: a range host_port..host_port+count-1

    @property
    def publish(self) -> str:
        """Docker ``-p`` syntax (what linuxnet users write)."""
        if self.count == 1:
            text = f"{self.host_port}:{self.container_port}"
        else:
            text = (f"{self.host_port}-{self.host_port + self.count - 1}:"
                    f"{self.container_port}-{self.container_port + self.count - 1}")
        return text if self.protocol == "tcp" else f"{text}/{self.protocol}"

    def iptables_range(self, first: int) -> str:
        return str(first) if self.count == 1 else f"{first}:{first + self.count - 1}"


@dataclass(frozen=True)
class Endpoint:
    index: int
    name: str
    network: Network
    address: str
    ports: tuple[Port, ...] = ()

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.network.prefixlen}"

    @property
    def veth(self) -> str:
        """Host end, named as linuxnet names it (``veth`` + 7 hex of sha256(endpoint/network))."""
        return "veth" + hashlib.sha256(f"{self.name}/{self.network.name}".encode()).hexdigest()[:7]

    @property
    def mac(self) -> str:
        """Docker's MAC for the address (02:42 + the 4 address bytes), as linuxnet sets it."""
        return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(self.address).packed)


@dataclass
class Workload:
    n: int
    range_ports: bool = True
    networks: list[Network] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"N={self.n}" + ("" if self.range_ports else " without the port range")

    @property
    def ports(self) -> list[tuple[Endpoint, Port]]:
        return [(ep, p) for ep in self.endpoints for p in ep.ports]

    def summary(self) -> dict:
        mappings = self.ports
        return {
            "n": self.n,
            "networks": len(self.networks),
            "endpoints": len(self.endpoints),
            "mappings": len(mappings),
            "host_ports": sum(p.count for _name, p in mappings),
            "range_ports": self.range_ports,
        }


def build(n: int, range_ports: bool = True) -> Workload:
    """The workload for *n* endpoints (+ ``eprange``); without ``range_ports`` eprange publishes nothing."""
    if n < 1 or n > 4 * 250 * 250:
        raise ValueError(f"n={n}: use 1..250000")
    nets = [
        Network(i, f"net{i}", f"br-net{i}", f"10.{100 + i}.0.0/16", f"10.{100 + i}.0.1")
        for i in range(NETWORKS)
    ]
    eps = []
    for j in range(n):
        net = nets[j % NETWORKS]
        k = j // NETWORKS
        address = f"10.{100 + net.index}.{k // 250}.{k % 250 + 2}"
        ports = tuple(
            Port(HOST_PORT_BASE + PORTS_PER_ENDPOINT * j + m, cport, proto)
            for m, (cport, proto) in enumerate(ENDPOINT_PORTS)
        )
        eps.append(Endpoint(j, f"ep{j:04d}", net, address, ports))
    rng = (Port(RANGE_FIRST, RANGE_FIRST, "tcp", RANGE_SIZE),) if range_ports else ()
    eps.append(Endpoint(n, RANGE_ENDPOINT, nets[0], "10.100.255.2", rng))
    return Workload(n, range_ports, nets, eps)


# --------------------------------------------------------------------------- linuxnet (the role)


def linuxnet_vars(wl: Workload) -> dict:
    """Inventory variables of the role ``linuxnet.bridge.bridge_network``."""
    # linuxnet_install_packages keeps the role's default (true): where every command is there (the lab,
    # or the SSH machine after the peer's untimed apt-get install) it costs the role one skipped include
    return {
        "linuxnet_chain_prefix": CHAIN_PREFIX,
        "linuxnet_networks": [{"name": net.name, "bridge": net.bridge, "subnet": net.subnet} for net in wl.networks],
        "linuxnet_endpoints": [
            {
                "name": ep.name,
                "networks": [{"name": ep.network.name, "address": ep.address}],
                **({"ports": [p.publish for p in ep.ports]} if ep.ports else {}),
            }
            for ep in wl.endpoints
        ],
    }


# --------------------------------------------------------------------------- netavark


def _hex64(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def netavark_options(wl: Workload, ep: Endpoint) -> dict:
    """netavark 1.4 ``setup``/``teardown`` input (podman's NetworkOptions) for one endpoint."""
    net = ep.network
    return {
        "container_id": _hex64("container/" + ep.name),
        "container_name": ep.name,
        "port_mappings": [
            {"host_ip": "", "container_port": p.container_port, "host_port": p.host_port, "range": p.count,
             "protocol": p.protocol}
            for p in ep.ports
        ],
        "networks": {net.name: {"static_ips": [ep.address], "static_mac": ep.mac, "aliases": [ep.name],
                                "interface_name": "eth0"}},
        "network_info": {
            net.name: {
                "name": net.name,
                "id": _hex64("network/" + net.name),
                "driver": "bridge",
                "network_interface": net.bridge,
                "created": "2024-01-01T00:00:00Z",
                "subnets": [{"subnet": net.subnet, "gateway": net.gateway}],
                "ipv6_enabled": False,
                "internal": False,
                "dns_enabled": False,
                "ipam_options": {"driver": "host-local"},
            }
        },
    }


def netavark_inputs(wl: Workload) -> dict[str, str]:
    """endpoint name -> JSON text."""
    return {ep.name: json.dumps(netavark_options(wl, ep), indent=1) for ep in wl.endpoints}


# --------------------------------------------------------------------------- naive playbook


def naive_vars(wl: Workload) -> dict:
    """Variables of ``tests/bench/naive.yml``: one list item per object, one per iptables rule."""
    rules = []
    for net in wl.networks:
        br, sub = net.bridge, net.subnet
        rules += [
            {"table": "filter", "chain": "FORWARD", "out_interface": br, "ctstate": ["RELATED", "ESTABLISHED"], "jump": "ACCEPT"},
            {"table": "filter", "chain": "FORWARD", "in_interface": br, "out_interface": f"!{br}", "jump": "ACCEPT"},
            {"table": "filter", "chain": "FORWARD", "in_interface": br, "out_interface": br, "jump": "ACCEPT"},
            {"table": "nat", "chain": "POSTROUTING", "source": sub, "out_interface": f"!{br}", "jump": "MASQUERADE"},
        ]
    for ep, p in wl.ports:
        proto = p.protocol
        rules += [
            {"table": "nat", "chain": "PREROUTING", "protocol": proto, "destination_port": p.iptables_range(p.host_port),
             "jump": "DNAT",
             "to_destination": f"{ep.address}:{p.container_port}" + (f"-{p.container_port + p.count - 1}" if p.count > 1 else "")},
            {"table": "filter", "chain": "FORWARD", "destination": f"{ep.address}/32", "out_interface": ep.network.bridge,
             "protocol": proto, "destination_port": p.iptables_range(p.container_port), "jump": "ACCEPT"},
            {"table": "nat", "chain": "POSTROUTING", "source": f"{ep.address}/32", "destination": f"{ep.address}/32",
             "protocol": proto, "destination_port": p.iptables_range(p.container_port), "jump": "MASQUERADE"},
        ]
    return {
        "bench_networks": [{"bridge": n.bridge, "cidr": n.gateway_cidr} for n in wl.networks],
        "bench_endpoints": [
            {"name": ep.name, "veth": ep.veth, "bridge": ep.network.bridge, "cidr": ep.cidr, "gateway": ep.network.gateway,
             "mac": ep.mac}
            for ep in wl.endpoints
        ],
        "bench_rules": rules,
    }


# --------------------------------------------------------------------------- floor


def _collection_import():
    """The collection's pure renderers (same rules as the role), importable from the checkout."""
    root = REPO_ROOT / ".collections"
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from ansible_collections.linuxnet.bridge.plugins.module_utils import _firewall, _port_mapping

    return _firewall, _port_mapping


def floor_rules(wl: Workload) -> str:
    """``iptables-restore --noflush`` input that creates exactly the rules the role creates.

    Rendered by the collection's own pure renderers (``state: rendered``), so the floor has the
    same ruleset as linuxnet by construction.
    """
    fw, pm = _collection_import()
    firewall = fw.FirewallResource(None)
    nets = firewall.normalize(
        [{"name": n.name, "bridge": n.bridge, "subnet": n.subnet} for n in wl.networks], "rendered")
    ports = pm.PortMappingResource(None)
    items = ports.normalize(
        [{"publish": p.publish, "bridge": ep.network.bridge, "container_ip": ep.address, "network": ep.network.name}
         for ep, p in wl.ports], "rendered")
    lines = firewall.render(nets) + ports.render(items)
    return "".join(line + "\n" for line in lines)


def floor_rules_teardown(restore_text: str) -> str:
    """The inverse of :func:`floor_rules`: delete our rules in built-in chains, then our chains."""
    builtin = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}
    out: list[str] = []
    table = None
    body: dict[str, list[str]] = {}
    order: list[str] = []
    for line in restore_text.splitlines():
        if line.startswith("*"):
            table = line[1:]
            if table not in body:
                body[table] = []
                order.append(table)
        elif line.startswith(("-A ", "-I ")) and table:
            chain, spec = line[3:].split(" ", 1)
            if line.startswith("-I ") and spec.split(" ", 1)[0].isdigit():
                spec = spec.split(" ", 1)[1]
            if chain in builtin:
                body[table].append(f"-D {chain} {spec}")
        elif line.startswith(":") and table:
            chain = line[1:].split()[0]
            if chain not in builtin:
                flush = f"-F {chain}"
                if flush not in body[table]:
                    body[table].append(flush)
    for table in order:
        deletes = [ln for ln in body[table] if ln.startswith("-D ")]
        flushes = [ln for ln in body[table] if ln.startswith("-F ")]
        drops = ["-X " + ln[3:] for ln in flushes]
        out.append(f"*{table}\n" + "".join(ln + "\n" for ln in deletes + flushes + drops) + "COMMIT\n")
    return "".join(out)


def floor_ip_batches(wl: Workload) -> tuple[str, dict[str, str]]:
    """(host-side ``ip -batch`` text, {namespace: in-namespace ``ip -batch`` text}).

    iproute2's batch mode cannot switch namespaces per line (``-n`` is a global option only), so
    each namespace needs its own ``ip -n NS -batch``: the floor is 1 + N+1 ``ip`` processes.
    """
    host = []
    for net in wl.networks:
        host += [f"link add {net.bridge} type bridge", f"addr add {net.gateway_cidr} dev {net.bridge}",
                 f"link set {net.bridge} up"]
    for ep in wl.endpoints:
        host += [
            f"netns add {ep.name}",
            f"link add {ep.veth} type veth peer name eth0 address {ep.mac} netns {ep.name}",
            f"link set {ep.veth} master {ep.network.bridge}",
            f"link set dev {ep.veth} type bridge_slave hairpin on",
            f"link set {ep.veth} up",
        ]
    inside = {
        ep.name: "".join(
            line + "\n"
            for line in (
                "link set lo up",
                f"addr add {ep.cidr} dev eth0",
                "link set eth0 up",
                f"route add default via {ep.network.gateway}",
            )
        )
        for ep in wl.endpoints
    }
    return "".join(line + "\n" for line in host), inside


def floor_ip_teardown(wl: Workload) -> str:
    lines = [f"netns del {ep.name}" for ep in wl.endpoints] + [f"link del {net.bridge}" for net in wl.networks]
    return "".join(line + "\n" for line in lines)


SYSCTLS = ("net.ipv4.ip_forward=1",)


def floor_sysctls(wl: Workload) -> list[str]:
    return list(SYSCTLS) + [f"net.ipv4.conf.{net.bridge}.route_localnet=1" for net in wl.networks]
