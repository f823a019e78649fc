"""Review fixes of the planner (``_topology``): live addresses that a changed subnet makes unusable,
networks given to endpoints that have none, and port conflicts named by their input field.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_topology_review.py -q``
"""

from __future__ import annotations

from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import veth_name

from .fixtures.topology import addresses, plan, rejected

NET16 = {"name": "n1", "subnet": "172.30.0.0/16"}
NET24 = {"name": "n1", "subnet": "172.30.0.0/24"}


def _live(endpoint: str, network: str, cidr: str) -> list[dict]:
    return [{"name": veth_name(endpoint, network), "peer": "eth0", "peer_netns": endpoint, "master": "br-n1",
             "addresses": [cidr]}]


def test_a_live_address_that_became_the_broadcast_address_is_not_kept():
    """172.30.0.255 was a host address of 172.30.0.0/16; in 172.30.0.0/24 it is the broadcast address."""
    p = plan([NET24], [{"name": "a", "network": "n1"}], _live("a", "n1", "172.30.0.255/16"))
    assert addresses(p) == {"a": {"n1": "172.30.0.2"}}
    # still usable in the old subnet: kept
    p = plan([NET16], [{"name": "a", "network": "n1"}], _live("a", "n1", "172.30.0.255/16"))
    assert addresses(p) == {"a": {"n1": "172.30.0.255"}}


def test_a_port_published_twice_names_the_later_field_and_the_endpoint_it_clashes_with():
    """The review's repro: two endpoints both publish 8080:80; before, port_mapping failed without the field."""
    message = rejected([NET24], [{"name": "a", "network": "n1", "ports": ["8080:80"]},
                                 {"name": "b", "network": "n1", "ports": ["9090:90", {"host_port": 8080, "container_port": 81}]}])
    assert message == ("linuxnet_endpoints[1].ports[1]: publishes 0.0.0.0:8080/tcp -> 172.30.0.3, which conflicts with "
                       "linuxnet_endpoints[0].ports[0] of endpoint a (0.0.0.0:8080/tcp -> 172.30.0.2): same protocol and "
                       "host port on overlapping host addresses"), message
    # an address inside a range, and an explicit host address under the wildcard
    message = rejected([NET24], [{"name": "a", "network": "n1", "ports": ["127.0.0.1:8000-8010:8000-8010/udp"]},
                                 {"name": "b", "network": "n1", "ports": ["8005:80/udp"]}])
    assert message.startswith("linuxnet_endpoints[1].ports[0]: publishes 0.0.0.0:8005/udp -> 172.30.0.3, which conflicts "
                              "with linuxnet_endpoints[0].ports[0] of endpoint a"), message


def test_ports_that_do_not_clash_are_planned():
    """Other protocol, other host address, other family: no conflict (as in port_mapping)."""
    dual = dict(NET24, subnet6="fd00:30::/64")
    p = plan([dual], [{"name": "a", "network": "n1", "ports": ["8080:80", "127.0.0.1:9090:90"]},
                      {"name": "b", "network": "n1", "ports": ["8080:80/udp", "192.0.2.7:9090:90", "[::]:8081:80"]},
                      {"name": "c", "network": "n1", "ports": ["0.0.0.0:8081:80"]}])
    assert len(p["port_mapping"]) == 2 + 1 + 2 + 1 + 1 + 1  # no host address: both families


def test_a_live_ipv6_address_at_the_end_of_its_subnet_is_kept():
    """IPv6 has no broadcast address: the last address of a subnet6 is usable (as explicit address6 accepts it)."""
    dual = dict(NET24, subnet6="fd00:30::/120")
    live = _live("a", "n1", "172.30.0.9/24")
    live[0]["addresses"].append("fd00:30::ff/120")
    p = plan([dual], [{"name": "a", "network": "n1"}], live)
    assert addresses(p) == {"a": {"n1": "172.30.0.9"}} and p["endpoints"][0]["networks6"] == {"n1": "fd00:30::ff"}
