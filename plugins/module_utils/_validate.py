# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Input validation shared by every module.

Names given by users end up in kernel objects, file paths and iptables-restore text, so each
validator is strict: what passes here cannot inject a rule, a command or a path component.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import string

IFNAMSIZ = 15  # bytes, without the trailing NUL
_IFNAME_FORBIDDEN = set("/:" + string.whitespace)
# Always used with fullmatch(): `$` also matches before a trailing newline, so "evil\n" would
# pass a match() and reach a file or restore text as a line of its own.
# No leading '-': every name also reaches argv and rule text, where it would read as an option
# ("ip netns exec -x", "-i -j" in iptables-save output). A namespace has no leading '.' either:
# /run/netns/.x is hidden, and listing the namespaces (as `ip netns list` does) skips it.
_NETNS_NAME = re.compile(r"[A-Za-z0-9_@+][A-Za-z0-9_.@+-]{0,63}")
_LABEL = re.compile(r"[A-Za-z0-9_.@+][A-Za-z0-9_.@+-]{0,63}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this network": never a bridge's subnet
# resolv.conf "options": glibc's are a word with an optional ":<number>" (ndots:5, edns0, trust-ad).
_DNS_OPTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:[0-9]{1,5})?")
_MTU = re.compile(r"[0-9]{1,6}")
# Ansible's boolean() words: a quoted "no" (a role variable, an extra var) is a string, not false
_BOOLEANS = {**dict.fromkeys(("yes", "on", "true", "1", "y", "t"), True), **dict.fromkeys(("no", "off", "false", "0", "n", "f"), False)}
# Names the kernel refuses for a new link (they are the /proc/sys/net/ipv4/conf/ entries of all links).
_RESERVED_IFNAMES = ("all", "default")
_LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")
IPV6_SHORTEST_ADDRESS_PREFIX = 48  # an IPv6 interface address's prefix route must not swallow more


class ValidationError(ValueError):
    """Bad user input; the message names the item and field."""


# A run names each endpoint's address in the plan and in several resources (topology, veth,
# port_mapping, hosts files): each distinct text is parsed once. Pure (ipaddress objects are
# values), bounded; a text that does not parse raises each time and is not kept.
ADDRESS_CACHE = 1 << 13


@functools.lru_cache(maxsize=ADDRESS_CACHE)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@functools.lru_cache(maxsize=ADDRESS_CACHE)
def _interface(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(text)


def address(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``ipaddress.ip_address(value)``, a text parsed once per process (other values, such as an int
    that equals another type's key, are never looked up)."""
    return _address(value) if isinstance(value, str) else ipaddress.ip_address(value)


def interface(value: object) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """``ipaddress.ip_interface(value)``, a text parsed once per process."""
    return _interface(value) if isinstance(value, str) else ipaddress.ip_interface(value)


def where(index: int, item: dict | None, field: str) -> str:
    """Human pointer to an input field, e.g. ``config[2] (name=web).mtu``."""
    label = ""
    if isinstance(item, dict):
        for key in ("name", "bridge", "publish"):
            if item.get(key) not in (None, ""):
                label = f" ({key}={item[key]!s:.40})"
                break
    return f"config[{index}]{label}.{field}"


def interface_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field}: an interface name is required")
    encoded = value.encode("utf-8", "surrogateescape")
    if len(encoded) > IFNAMSIZ:
        raise ValidationError(f"{field}: interface name {value!r} is longer than {IFNAMSIZ} bytes")
    if value in (".", "..") or any(ch in _IFNAME_FORBIDDEN for ch in value) or not value.isprintable():
        raise ValidationError(
            f"{field}: interface name {value!r} must not contain '/', ':', whitespace or non-printable characters"
        )
    if not all(ch in string.ascii_letters + string.digits + "_.-@+" for ch in value):
        # Anything else would need quoting in iptables-restore text and `ip` command lines.
        raise ValidationError(f"{field}: interface name {value!r} may only use letters, digits and '_.-@+'")
    if value.startswith("-"):
        # argv and rule text would read it as an option ("-i -j", "ip link set -x")
        raise ValidationError(f"{field}: interface name {value!r} must not start with '-'")
    if value.endswith("+"):
        # iptables reads a trailing '+' as a wildcard: "-o br+" matches every interface named br...
        raise ValidationError(f"{field}: interface name {value!r} must not end with '+' (an iptables wildcard)")
    if value in _RESERVED_IFNAMES:
        raise ValidationError(f"{field}: interface name {value!r} is reserved by the kernel (net.ipv4.conf.{value})")
    if value == "lo":  # every namespace has it: a new link of that name fails midway ("File exists"), rules would match it
        raise ValidationError(f"{field}: interface name 'lo' is every namespace's loopback")
    return value


def netns_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field}: a namespace name is required")
    if value in (".", "..") or not _NETNS_NAME.fullmatch(value):
        raise ValidationError(
            f"{field}: namespace name {value!r} must be 1-64 characters of letters, digits and '_.@+-', "
            "not starting with '-' or '.'"
        )
    return value


def label(value: object, field: str, what: str = "name") -> str:
    """A name used in messages, state files and comments (network names, mapping labels)."""
    if not isinstance(value, str) or value in (".", "..") or not _LABEL.fullmatch(value):
        raise ValidationError(f"{field}: {what} {value!r} must be 1-64 characters of letters, digits and '_.@+-', "
                              "not starting with '-'")
    return value


def cidr(value: object, field: str) -> str:
    """An interface address with prefix, e.g. ``172.17.0.1/16`` or ``fd00:1::1/64`` (host bits allowed)."""
    if not isinstance(value, str) or "/" not in value:
        raise ValidationError(f"{field}: {value!r} is not an address in CIDR form such as 172.17.0.1/16")
    if "%" in value:
        # ip_interface() takes "fd00::1%<anything>/64"; whether str() keeps the zone depends on the Python version
        raise ValidationError(f"{field}: {value!r} is not a valid CIDR address (no %zone)")
    try:
        iface = interface(value)
    except ValueError as exc:
        raise ValidationError(f"{field}: {value!r} is not a valid CIDR address ({exc})") from None
    if iface.version == 6:
        return _cidr6(iface, value, field)
    if iface.network.prefixlen < 8:
        # the kernel adds a prefix route with every address: /0../7 would take over the host's routing
        raise ValidationError(f"{field}: {value!r} has a prefix length shorter than /8")
    ip = iface.ip
    if ip.is_multicast or ip.is_loopback or ip in _THIS_NETWORK or ip == _LIMITED_BROADCAST:
        raise ValidationError(f"{field}: {value!r} is a multicast, loopback, broadcast or 0.0.0.0/8 address, not an interface address")
    return f"{iface.ip}/{iface.network.prefixlen}"


def _cidr6(iface: ipaddress.IPv6Interface, value: str, field: str) -> str:
    if iface.network.prefixlen < IPV6_SHORTEST_ADDRESS_PREFIX:
        # the prefix route would take over a large part of the host's IPv6 routing
        raise ValidationError(f"{field}: {value!r} has a prefix length shorter than /{IPV6_SHORTEST_ADDRESS_PREFIX}")
    if _ipv6_special(iface.ip):
        # link-local addresses are the kernel's (one per interface, made by itself)
        raise ValidationError(
            f"{field}: {value!r} is a link-local, multicast, loopback, unspecified or reserved address, not an interface address")
    return f"{iface.ip}/{iface.network.prefixlen}"


def _ipv6_special(ip) -> bool:
    return bool(ip.is_link_local or ip.is_multicast or ip.is_loopback or ip.is_unspecified or ip.is_reserved
                or ip.is_site_local or ip.ipv4_mapped)


# Per family: what a subnet looks like, the message for the other family, the prefix range, and
# which ranges are no bridge's. IPv4: /0../7 would swallow the host's own routes, /31 and /32 leave
# no room for a gateway and an endpoint. IPv6: shorter than /64 takes more than one LAN's worth of
# the host's routing; /121 and longer leave fewer than 128 addresses (the firewall uses the same range).
_SUBNETS = {
    4: ("a subnet in CIDR form such as 172.18.0.0/16", "only IPv4 subnets are supported so far, got {value!r}", (8, 30),
        lambda net: net.is_loopback or net.is_multicast or net.is_link_local or net.is_reserved
        or net.overlaps(_THIS_NETWORK), "a loopback, multicast, link-local or reserved range"),
    6: ("an IPv6 subnet in CIDR form such as fd00:1::/64", "{value!r} is not an IPv6 subnet", (64, 120),
        lambda net: _ipv6_special(net.network_address) or _ipv6_special(net.broadcast_address),
        "a link-local, multicast, loopback or reserved range"),
}


def _subnet(value: object, field: str, version: int) -> str:
    """A subnet of one address family (``_SUBNETS``); host bits must be zero."""
    example, other_family, (shortest, longest), special, special_text = _SUBNETS[version]
    if not isinstance(value, str) or "/" not in value:
        raise ValidationError(f"{field}: {value!r} is not {example}")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValidationError(f"{field}: {value!r} is not a valid subnet ({exc})") from None
    if getattr(net.network_address, "scope_id", None) is not None:  # str() would carry it, newlines too
        raise ValidationError(f"{field}: {value!r} is not a valid subnet (no %zone)")
    if net.version != version:
        raise ValidationError(f"{field}: " + other_family.format(value=value))
    if not shortest <= net.prefixlen <= longest:
        raise ValidationError(f"{field}: {value!r} has a prefix length outside /{shortest}../{longest}")
    if special(net):
        raise ValidationError(f"{field}: {value!r} is {special_text}")
    return str(net)


def network(value: object, field: str) -> str:
    """A subnet such as ``172.18.0.0/16``, /8../30."""
    return _subnet(value, field, 4)


def network6(value: object, field: str) -> str:
    """An IPv6 subnet such as ``fd00:1::/64``, /64../120."""
    return _subnet(value, field, 6)


def ip_address(value: object, field: str, version: int | None = 4) -> str:
    try:
        addr = address(str(value))
    except ValueError:
        raise ValidationError(f"{field}: {value!r} is not a valid IP address") from None
    if getattr(addr, "scope_id", None) is not None:
        # Python 3.9+ takes "fe80::1%<anything>", newlines included, and str() gives it back whole:
        # it would reach hosts files and restore text as lines of their own.
        raise ValidationError(f"{field}: {value!r} is not a valid IP address (no %zone)")
    if version and addr.version != version:
        raise ValidationError(f"{field}: {value!r} is not an IPv{version} address")
    return str(addr)


def unicast(value: object, field: str, version: int | None = 4) -> str:
    """An address a packet can be sent from or to (an SNAT source, a DNAT target, a gateway): not
    0.0.0.0/8, ::, loopback, multicast or 255.255.255.255, which no rule or route of ours can mean
    (the kernel refuses a multicast gateway only when the route is added, after the links)."""
    text = ip_address(value, field, version)
    addr = address(text)
    if addr.is_multicast or addr.is_loopback or addr.is_unspecified or (
            addr.version == 4 and (addr in _THIS_NETWORK or addr == _LIMITED_BROADCAST)):
        raise ValidationError(f"{field}: {text!r} is a multicast, loopback, broadcast, unspecified or 0.0.0.0/8 address")
    return text


def mac(value: object, field: str, allow_docker: bool = False) -> str:
    if allow_docker and value == "docker":
        return "docker"
    text = str(value).strip().lower().replace("-", ":")
    if not _MAC.fullmatch(text):
        raise ValidationError(f"{field}: {value!r} is not a MAC address such as 02:42:ac:11:00:02")
    if int(text[:2], 16) & 1:
        raise ValidationError(f"{field}: {value!r} is a multicast MAC address")
    if text == "00:00:00:00:00:00":
        raise ValidationError(f"{field}: {value!r} is the all-zero MAC address, which the kernel refuses")
    return text


def mtu(value: object, field: str) -> int:
    # int() would take 1500.7 (as 1500), True, " 1500\n" and non-ASCII digits: only an int or its digits
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _MTU.fullmatch(value):
        number = int(value)
    else:
        raise ValidationError(f"{field}: {value!r} is not an integer MTU")
    if not 68 <= number <= 65535:
        raise ValidationError(f"{field}: MTU {number} is outside 68..65535")
    return number


def file_text(value: object, field: str, limit: int = 65536) -> str:
    if not isinstance(value, str):  # str() would write "['a']" or "5" as the file
        raise ValidationError(f"{field}: the file's text must be a string, not {type(value).__name__}")
    text = value
    if "\x00" in text or len(text) > limit:
        raise ValidationError(f"{field}: text must not contain NUL bytes or exceed {limit} characters")
    if "\r" in text:
        # The file is read back in text mode, which turns "\r\n" into "\n": it would differ on every run.
        raise ValidationError(f"{field}: text must not contain carriage returns (\\r); use \\n line ends")
    return text if text.endswith("\n") or not text else text + "\n"


def hostname(value: object, field: str) -> str:
    # a number is a name ("5"), as in a hosts file; None is not the name "None"
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not _HOSTNAME.fullmatch(text):
        raise ValidationError(f"{field}: {value!r} is not a valid host name")
    return text


def dns_option(value: object, field: str) -> str:
    """One resolv.conf option such as ``ndots:5`` or ``edns0``."""
    if not isinstance(value, str) or not _DNS_OPTION.fullmatch(value):
        raise ValidationError(f"{field}: {value!r} is not a resolver option such as ndots:5 or edns0")
    return value


def as_list(value: object, field: str) -> list:
    """A list given as such: iterating a string would take each of its characters as an item."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(f"{field}: must be a list, not {type(value).__name__} ({value!r:.60})")
    return value


def boolean(value: object, field: str, default: bool) -> bool:
    """A yes/no option as Ansible reads one; bool("false") would be True."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    key = value.strip().lower() if isinstance(value, str) else None
    if key not in _BOOLEANS:
        raise ValidationError(f"{field}: {value!r} is not a boolean (true or false)")
    return _BOOLEANS[key]


def mapping(value: object, field: str) -> dict:
    if not isinstance(value, dict):
        raise ValidationError(f"{field}: must be a mapping, not {type(value).__name__} ({value!r:.60})")
    return value


def known_keys(value: dict, known: tuple[str, ...], field: str) -> dict:
    """A mapping without keys nothing reads: a misspelt ``internl: true`` would build an open network."""
    unknown = sorted(str(key) for key in value if key not in known)
    if unknown:
        raise ValidationError(f"{field}.{unknown[0]}: unknown key (known: {', '.join(known)})")
    return value


def unique(items: list[dict], key, what: str) -> None:
    seen: dict = {}
    for index, item in enumerate(items):
        k = key(item)
        if k in seen:
            raise ValidationError(f"config[{index}]: duplicate {what} {k!r} (also config[{seen[k]}])")
        seen[k] = index
