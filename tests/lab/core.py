"""Namespace-sandboxed lab hosts for testing the collection without touching the machine.

A *lab* consists of

* one **fabric** process living in its own network namespace. It holds the bridge
  ``lan0`` that plays the role of the lab LAN switch;
* N **lab hosts**. Each is a long-lived ``sleep infinity`` process started by
  ``unshare --net --mount --uts --propagation private`` and therefore owns a network,
  mount and UTS namespace of its own. Inside that mount namespace the setup script
  mounts

  - a private tmpfs on ``/run`` (so ``/run/netns`` is private and starts empty),
  - a private *overlay* over ``/etc`` (lower: the real ``/etc``, upper: a tmpfs under
    the private ``/run``). Writes to ``/etc`` inside a lab host never reach the
    machine, and ``/etc/netns`` can be created without creating it on the machine,
  - a tmpfs on ``/etc/netns``,
  - a fresh sysfs on ``/sys`` so that ``/sys/class/net`` only shows the host's links.

  The host name is set to the lab host name, ``lo`` is brought up and a veth pair
  connects the host (``ens160``) to the fabric bridge (``p-<name>``).

Nothing is ever created in the machine's own network namespace: every ``ip`` command
that creates or changes a link runs through ``nsenter -t <sandbox pid> -n``.

Every process of a lab carries the environment variable ``LAB_MARKER=<unique id>``.
The marker is written to ``state.json`` *before* any process is started, so
:func:`destroy_state_dir` can find and kill all processes of a lab even if the
creating process crashed before it recorded their pids (it scans ``/proc/*/environ``).
Processes that were started inside a lab host later (e.g. daemons launched by a role)
do not carry the marker; they are found because they share a lab network or mount
namespace, or because their mount table carries the lab's *mount tag*
(:func:`lab_mount_tag`): every mount a lab host makes has a source named after the tag, and
a mount namespace copied from a lab host's (``ip netns exec``, ``unshare -m``,
``systemd-nspawn``) keeps those mounts, so ``/proc/PID/mountinfo`` shows the tag even when
the process's network namespace was unnamed (``ip netns del``) and its mount namespace is
its own. Killing all processes that hold a namespace makes the kernel release the
namespace and every mount inside it; no mount is ever made in the machine's own
mount namespace, so there is nothing else to unmount.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

from tests.lab import machine, vm
from tests.lab.proc import NotReady, wait_ready
from tests.lab.images import SUITES, Image, VmImage, ensure_image, ensure_vm_image

__all__ = [
    "LAB_NETWORK",
    "LAB_TAG_RE",
    "Lab",
    "LabError",
    "destroy_state_dir",
    "find_lab_processes",
    "lab_mount_tag",
    "mount_tags",
    "validate_host_name",
]

#: The lab LAN. Every lab host address must be inside it.
LAB_NETWORK = ipaddress.IPv4Network("172.16.211.0/24")
#: The fabric's own address on the lab LAN: SSH to booted machines starts from here.
FABRIC_ADDRESS = ipaddress.IPv4Address("172.16.211.254")
#: Name of the LAN port inside each lab host.
LAN_PORT = "ens160"
#: Name of the bridge inside the fabric namespace.
BRIDGE = "lan0"
STATE_FILE = "state.json"
INVENTORY_FILE = "inventory.yml"
MARKER_ENV = "LAB_MARKER"
ROLE_ENV = "LAB_ROLE"
STATE_VERSION = 1
_NAME_RE = re.compile(r"^[a-z0-9_-]{1,63}$")
_MARKER_RE = re.compile(r"^tests\.lab-([0-9a-f]{32})$")
#: Matches the mount tag of any lab (see :func:`lab_mount_tag`) inside a mountinfo line.
LAB_TAG_RE = re.compile(r"lab-[0-9a-f]{32}(?![0-9a-f])")
_IFNAMSIZ = 15

# Shell run as the first process inside a new lab host's namespaces. It must never be
# run in the machine's namespaces: it is only ever exec'ed by `unshare`.
_HOST_SETUP = r"""
set -eu
[ "$(readlink /proc/self/ns/net)" != "$LAB_OUTER_NETNS" ] || { echo "refusing: not in a new netns" >&2; exit 97; }
[ "$(readlink /proc/self/ns/mnt)" != "$LAB_OUTER_MNTNS" ] || { echo "refusing: not in a new mntns" >&2; exit 97; }
case "$LAB_MOUNT_TAG" in lab-????????????????????????????????) ;; *) echo "refusing: bad LAB_MOUNT_TAG" >&2; exit 97;; esac
mount -n -t tmpfs -o mode=0755,size=64m "$LAB_MOUNT_TAG-run" /run
mkdir -p /run/netns /run/lock /run/.lab/etc-upper /run/.lab/etc-work && chmod 1777 /run/lock
mount -n -t overlay -o lowerdir=/etc,upperdir=/run/.lab/etc-upper,workdir=/run/.lab/etc-work "$LAB_MOUNT_TAG-etc" /etc
mkdir -p /etc/netns
mount -n -t tmpfs -o mode=0755,size=4m "$LAB_MOUNT_TAG-etc-netns" /etc/netns
mount -n -t sysfs "$LAB_MOUNT_TAG-sys" /sys
hostname "$LAB_HOSTNAME"
printf '%s\n' "$LAB_HOSTNAME" > /etc/hostname
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$LAB_HOSTNAME" > /etc/hosts
ip link set lo up
echo READY
exec sleep infinity </dev/null >/dev/null 2>&1
"""

_FABRIC_SETUP = r"""
set -eu
[ "$(readlink /proc/self/ns/net)" != "$LAB_OUTER_NETNS" ] || { echo "refusing: not in a new netns" >&2; exit 97; }
hostname lab-fabric
ip link set lo up
ip link add lan0 type bridge
ip addr add "$LAB_FABRIC_ADDRESS/$LAB_PREFIXLEN" dev lan0
ip link set lan0 up
echo READY
exec sleep infinity </dev/null >/dev/null 2>&1
"""


class LabError(RuntimeError):
    """Raised when a lab cannot be created, found or used."""


def validate_host_name(name: str) -> str:
    """Return *name* if it is a valid lab host name (``[a-z0-9_-]``, 1..63 chars)."""
    if not _NAME_RE.match(name):
        raise LabError(f"invalid lab host name {name!r}: use 1-63 characters of [a-z0-9_-]")
    return name


def _port_name(name: str) -> str:
    return f"p-{name}".encode()[:_IFNAMSIZ].decode()


def _validate_hosts(hosts: Mapping[str, str]) -> dict[str, str]:
    if not hosts:
        raise LabError("a lab needs at least one host")
    seen_addr: dict[str, str] = {}
    seen_port: dict[str, str] = {}
    out: dict[str, str] = {}
    for name, addr in hosts.items():
        validate_host_name(name)
        try:
            ip = ipaddress.IPv4Address(addr)
        except ValueError as exc:
            raise LabError(f"host {name}: invalid address {addr!r}") from exc
        if ip not in LAB_NETWORK or ip in (LAB_NETWORK.network_address, LAB_NETWORK.broadcast_address):
            raise LabError(f"host {name}: {addr} is not a usable address of {LAB_NETWORK}")
        if ip == FABRIC_ADDRESS:
            raise LabError(f"host {name}: {addr} is the lab fabric's own address")
        if str(ip) in seen_addr:
            raise LabError(f"hosts {seen_addr[str(ip)]} and {name} share address {ip}")
        port = _port_name(name)
        if port in seen_port:
            raise LabError(f"hosts {seen_port[port]} and {name} map to the same port name {port}")
        seen_addr[str(ip)] = name
        seen_port[port] = name
        out[name] = str(ip)
    return out


def _validate_groups(groups: Mapping[str, Iterable[str]] | None, hosts: Mapping[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for group, members in (groups or {}).items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", group) or group in ("all", "ungrouped"):
            raise LabError(f"invalid group name {group!r}")
        members = list(members)
        for m in members:
            if m not in hosts:
                raise LabError(f"group {group}: unknown host {m!r}")
        out[group] = members
    return out


def _validate_machines(machines: Mapping[str, str] | None, hosts: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, suite in (machines or {}).items():
        if name not in hosts:
            raise LabError(f"machine {name!r} is not a host of the lab (give it with --host too)")
        if suite not in SUITES:
            raise LabError(f"machine {name}: unknown suite {suite!r} (use {', '.join(SUITES)})")
        out[name] = suite
    return out


def _validate_vms(vms: Mapping[str, str] | None, hosts: Mapping[str, str], machines: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    taps: dict[str, str] = {}
    for name, suite in (vms or {}).items():
        if name not in hosts:
            raise LabError(f"VM {name!r} is not a host of the lab (give it with --host too)")
        if name in machines:
            raise LabError(f"host {name!r} cannot be both a machine and a VM")
        if suite not in SUITES:
            raise LabError(f"VM {name}: unknown suite {suite!r} (use {', '.join(SUITES)})")
        tap = vm.tap_name(name)
        if tap in taps:
            raise LabError(f"VMs {taps[tap]} and {name} map to the same tap name {tap}")
        taps[tap] = name
        out[name] = suite
    return out


# --------------------------------------------------------------------------- /proc helpers


def _read_environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _has_marker(pid: int, marker: str) -> bool:
    return f"{MARKER_ENV}={marker}".encode() in _read_environ(pid).split(b"\0")


def _cmdline(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().split(b"\0")[:-1]
    except OSError:
        return []


def _ns(pid: int | str, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _alive(pid: int) -> bool:
    """True if *pid* exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _marker_pids(marker: str) -> list[int]:
    me = os.getpid()
    return [p for p in _all_pids() if p != me and _has_marker(p, marker) and _alive(p)]


def lab_mount_tag(marker: str) -> str:
    """The mount tag of the lab with *marker*: ``lab-`` and 32 hex digits.

    For the usual marker ``tests.lab-<hex>`` the digits are the marker's own; any other
    marker is hashed. Every mount a lab makes carries the tag in its source (``<tag>-run``,
    ``<tag>-etc``, ...) or in a path (for example a bind mount or overlay whose directories
    are named after it). **Any process whose mountinfo contains the lab's tag belongs to the
    lab** and is killed by :func:`destroy_state_dir`, whatever its network, mount or pid
    namespace.
    """
    m = _MARKER_RE.match(marker)
    suffix = m.group(1) if m else hashlib.sha256(marker.encode()).hexdigest()[:32]
    return f"lab-{suffix}"


def _read_mountinfo(pid: int | str) -> str:
    try:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def mount_tags(pid: int | str) -> set[str]:
    """Lab mount tags (any lab's) present in the mount table of process *pid*."""
    return set(LAB_TAG_RE.findall(_read_mountinfo(pid)))


def _has_mount_tag(pid: int, tag: str) -> bool:
    return tag in _read_mountinfo(pid)


def _named_netns(pid: int) -> set[str]:
    """Network namespaces named inside a lab host (its private /run/netns), as ``net:[inode]``.

    A server started there with ``ip netns exec`` shares neither the lab host's network nor its
    mount namespace, so only this finds it.
    """
    found: set[str] = set()
    root = f"/proc/{pid}/root/run/netns"
    try:
        names = os.listdir(root)
    except OSError:
        return found
    for name in names:
        try:
            found.add(f"net:[{os.stat(os.path.join(root, name)).st_ino}]")
        except OSError:
            continue
    return found


def find_lab_processes(marker: str) -> list[int]:
    """All live pids of the lab with *marker*.

    A process belongs to the lab if it carries the marker in its environment, if its mount
    table contains the lab's mount tag (:func:`lab_mount_tag`; found whatever its network,
    mount or pid namespace: ``ip netns exec`` after ``ip netns del``, ``unshare -m``, a
    booted ``systemd-nspawn`` machine), or if it shares a network or mount namespace with a
    process found so far (or a netns still named in a lab host's ``/run/netns``).

    Never included (except by marker): processes in our own network or mount namespace,
    pid 1 and ourselves.
    """
    me = os.getpid()
    own_net, own_mnt = _ns("self", "net"), _ns("self", "mnt")
    tag = lab_mount_tag(marker)
    marked = _marker_pids(marker)
    namespaces: set[str] = set()
    for pid in marked:
        for kind in ("net", "mnt"):
            ns = _ns(pid, kind)
            if ns is not None and ns not in (own_net, own_mnt):
                namespaces.add(ns)
        namespaces.update(ns for ns in _named_netns(pid) if ns != own_net)
    found = set(marked)
    candidates: dict[int, tuple[str, str]] = {}
    for pid in _all_pids():
        if pid in (me, 1) or pid in found:
            continue
        net, mnt = _ns(pid, "net"), _ns(pid, "mnt")
        if net is None or mnt is None or net == own_net or mnt == own_mnt:
            continue  # gone, unreadable, or in our own namespaces: never ours to kill
        candidates[pid] = (net, mnt)
    for pid, (net, mnt) in candidates.items():
        if _has_mount_tag(pid, tag):
            found.add(pid)
            namespaces.update((net, mnt))
    # Processes sharing a namespace with what was found (a daemon in a lab host's netns, or
    # in the netns of a tagged process after it lost its mounts), until nothing new turns up.
    changed = True
    while changed:
        changed = False
        for pid, (net, mnt) in candidates.items():
            if pid not in found and (net in namespaces or mnt in namespaces):
                found.add(pid)
                namespaces.update((net, mnt))
                changed = True
    return sorted(p for p in found if _alive(p))


# --------------------------------------------------------------------------- state file


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _load_state(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / STATE_FILE
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read {path}: {exc}") from exc


def _kill_and_wait(pids: Sequence[int], confirm: Callable[[], Iterable[int]] | None = None,
                   timeout: float = 10.0) -> list[int]:
    """SIGKILL *pids* and wait until they are gone; return the ones still alive.

    Pids are not trusted: each is pinned with a pidfd first, then *confirm* (a fresh scan) must
    still list it. A pid whose process died and was reused in between is therefore never
    signalled: the pidfd refers to the dead process, and the signal goes nowhere.
    """
    pinned: dict[int, int] = {}
    try:
        for pid in pids:
            try:
                pinned[pid] = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
        still = set(confirm()) if confirm is not None else set(pinned)
        targets = {pid: fd for pid, fd in pinned.items() if pid in still}
        for fd in targets.values():
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        remaining = dict(targets)
        poller = select.poll()
        for fd in remaining.values():
            poller.register(fd, select.POLLIN)
        while remaining:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _event in poller.poll(max(1, int(left * 1000))):  # readable = exited
                poller.unregister(fd)
                remaining = {p: f for p, f in remaining.items() if f != fd}
        return sorted(remaining)
    finally:
        for fd in pinned.values():
            os.close(fd)


def destroy_state_dir(state_dir: str | os.PathLike[str]) -> list[int]:
    """Destroy the lab recorded in *state_dir*; return the pids that were killed.

    Idempotent: a missing directory or state file is fine. Works for half-created
    labs (crashed ``create``) because processes are found by their marker.
    """
    sdir = Path(state_dir)
    state = _load_state(sdir) if sdir.is_dir() else None
    killed: list[int] = []
    if state is not None:
        marker = state.get("marker")
        if not isinstance(marker, str) or len(marker) < 16:
            raise LabError(f"{sdir / STATE_FILE}: no valid marker; refusing to guess what to kill")
        # Loop: a process may have been forked while we were scanning.
        for _attempt in range(5):
            pids = find_lab_processes(marker)
            if not pids:
                break
            left = _kill_and_wait(pids, confirm=lambda: find_lab_processes(marker))
            killed.extend(pids)
            if left:
                raise LabError(f"processes survived SIGKILL: {left}")
        else:
            raise LabError(f"lab processes keep appearing for marker {marker}")
    for name in (STATE_FILE, STATE_FILE + ".tmp", INVENTORY_FILE, *machine.STATE_FILES):
        try:
            (sdir / name).unlink()
        except FileNotFoundError:
            pass
    if state is not None:
        # Machines' overlays: their mounts died with the supervisors killed above.
        shutil.rmtree(sdir / machine.MACHINES_DIR, ignore_errors=True)
        shutil.rmtree(sdir / machine.CONTROL_DIR, ignore_errors=True)
        # VMs' qcow2 overlays and consoles (QEMU was killed above).
        shutil.rmtree(sdir / vm.VMS_DIR, ignore_errors=True)
        for log in sdir.glob("image-*.log"):
            log.unlink()
    if state is not None and state.get("created_state_dir"):
        try:
            sdir.rmdir()
        except OSError:
            pass  # not empty (someone else's files) or already gone
    return sorted(set(killed))


# --------------------------------------------------------------------------- the Lab


@dataclass
class Lab:
    """A running lab. Create with :meth:`create`, re-open with :meth:`load`.

    Usable as a context manager: the lab is destroyed on ``__exit__``.
    """

    state_dir: Path
    marker: str
    hosts: dict[str, str]
    groups: dict[str, list[str]]
    pids: dict[str, int]
    fabric_pid: int | None
    #: Hosts that are booted Debian machines (name -> suite); the others are namespace hosts.
    machines: dict[str, str] = field(default_factory=dict)
    #: Hosts that are QEMU virtual machines (name -> suite), see :mod:`tests.lab.vm`.
    vms: dict[str, str] = field(default_factory=dict)
    _popens: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    _state_extra: dict[str, Any] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- construction
    @classmethod
    def create(
        cls,
        state_dir: str | os.PathLike[str],
        hosts: Mapping[str, str],
        groups: Mapping[str, Iterable[str]] | None = None,
        python_interpreter: str | None = None,
        machines: Mapping[str, str] | None = None,
        vms: Mapping[str, str] | None = None,
    ) -> Lab:
        """Create a lab with *hosts* (name -> address) and *groups* (name -> members).

        Hosts named in *machines* (name -> Debian suite) are booted machines (see
        :mod:`tests.lab.machine`), the others namespace lab hosts. Machine images are built
        first when the cache lacks them (minutes), then all machines boot in parallel. Hosts
        named in *vms* (name -> suite) are QEMU virtual machines (:mod:`tests.lab.vm`).

        The state file is written before anything is started and updated after every
        step. On any error everything created so far is destroyed again.
        """
        host_addrs = _validate_hosts(hosts)
        group_map = _validate_groups(groups, host_addrs)
        machine_map = _validate_machines(machines, host_addrs)
        vm_map = _validate_vms(vms, host_addrs, machine_map)
        for tool in ("unshare", "nsenter", "ip", "sleep", "mount", "hostname"):
            if shutil.which(tool) is None:
                raise LabError(f"required tool {tool!r} not found in PATH")
        sdir = Path(state_dir).absolute()
        created_dir = not sdir.exists()
        sdir.mkdir(parents=True, exist_ok=True)
        old = _load_state(sdir)
        if old is not None:
            old_marker = old.get("marker")
            if isinstance(old_marker, str) and len(old_marker) >= 16 and _marker_pids(old_marker):
                raise LabError(f"a lab is already running in {sdir}; destroy it first")
            destroy_state_dir(sdir)  # stale leftovers of a dead lab
            sdir.mkdir(parents=True, exist_ok=True)
        lab = cls(
            state_dir=sdir,
            marker=f"tests.lab-{uuid.uuid4().hex}",
            hosts=host_addrs,
            groups=group_map,
            pids={},
            fabric_pid=None,
            machines=machine_map,
            vms=vm_map,
        )
        lab._state_extra = {
            "created_state_dir": created_dir,
            "python_interpreter": python_interpreter or sys.executable,
            "complete": False,
        }
        lab._save()
        try:
            try:
                images = {s: ensure_image(s, sdir / f"image-{s}.log") for s in set(machine_map.values())}
                vm_images = {s: ensure_vm_image(s, sdir / f"image-{s}-vm.log") for s in set(vm_map.values())}
            except RuntimeError as exc:
                raise LabError(f"cannot build a machine image: {exc}") from exc
            lab.fabric_pid = lab._spawn(
                "fabric",
                _FABRIC_SETUP,
                {"LAB_FABRIC_ADDRESS": str(FABRIC_ADDRESS), "LAB_PREFIXLEN": str(LAB_NETWORK.prefixlen)},
            )
            lab._save()
            for name, addr in host_addrs.items():
                if name in machine_map:
                    lab.pids[name] = lab._start_machine(name, addr, images[machine_map[name]])
                    lab._save()
                    continue
                if name in vm_map:
                    lab.pids[name] = lab._start_vm(name, addr, vm_images[vm_map[name]])
                    lab._save()
                    continue
                pid = lab._spawn(f"host:{name}", _HOST_SETUP, {"LAB_HOSTNAME": name})
                lab.pids[name] = pid
                lab._save()
                lab._wire(name, addr)
            lab._wait_machines()
            lab._state_extra["complete"] = True
            lab._save()
            lab.write_inventory()
        except BaseException:
            lab.destroy()
            raise
        return lab

    @classmethod
    def load(cls, state_dir: str | os.PathLike[str]) -> Lab:
        """Re-open the lab described by ``state_dir/state.json``."""
        sdir = Path(state_dir).absolute()
        state = _load_state(sdir)
        if state is None:
            raise LabError(f"no lab state in {sdir}")
        lab = cls(
            state_dir=sdir,
            marker=state["marker"],
            hosts=dict(state.get("hosts", {})),
            groups={k: list(v) for k, v in state.get("groups", {}).items()},
            pids={k: int(v) for k, v in state.get("pids", {}).items()},
            fabric_pid=state.get("fabric_pid"),
            machines=dict(state.get("machines", {})),
            vms=dict(state.get("vms", {})),
        )
        lab._state_extra = {
            k: state.get(k) for k in ("created_state_dir", "python_interpreter", "complete")
        }
        return lab

    # ---------------------------------------------------------------- internals
    def _save(self) -> None:
        data = {
            "version": STATE_VERSION,
            "marker": self.marker,
            "hosts": self.hosts,
            "groups": self.groups,
            "pids": self.pids,
            "fabric_pid": self.fabric_pid,
            "machines": self.machines,
            "vms": self.vms,
            "bridge": BRIDGE,
            "lan_port": LAN_PORT,
            "network": str(LAB_NETWORK),
            **self._state_extra,
        }
        _write_json_atomic(self.state_dir / STATE_FILE, data)

    def _process_env(self, role: str) -> dict[str, str]:
        """The environment of every process the lab starts: the marker that destroy finds it by,
        and the namespaces it was started from (setup scripts refuse to run in those)."""
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
            MARKER_ENV: self.marker,
            ROLE_ENV: role,
            "LAB_OUTER_NETNS": _ns("self", "net") or "",
            "LAB_OUTER_MNTNS": _ns("self", "mnt") or "",
        }

    def _spawn(self, role: str, script: str, extra_env: Mapping[str, str]) -> int:
        env = {**self._process_env(role), "LAB_MOUNT_TAG": lab_mount_tag(self.marker), **extra_env}
        argv = ["unshare", "--net", "--mount", "--uts", "--propagation", "private", "--", "sh", "-c", script]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd="/",
            start_new_session=True,
        )
        self._popens.append(proc)
        # unshare exec's sh which exec's sleep: the pid stays the same and is ours.
        try:
            wait_ready(proc, timeout=15)
        except NotReady as exc:
            raise LabError(f"{role}: sandbox setup failed: {exc}") from None
        pid = proc.pid
        # sh is exec'ing `sleep` right after READY (environ reads empty *during* exec):
        # wait until the exec is done so later marker checks cannot hit that window.
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            if _cmdline(pid) == [b"sleep", b"infinity"] and _has_marker(pid, self.marker):
                break
            time.sleep(0.005)
        if not _has_marker(pid, self.marker):
            raise LabError(f"{role}: pid {pid} does not carry the lab marker")
        if _ns(pid, "net") == _ns("self", "net"):
            raise LabError(f"{role}: pid {pid} is in the machine's network namespace")
        return pid

    def _nsenter_ip(self, pid: int, *args: str) -> None:
        """Run ``ip ARGS`` inside the network namespace of sandbox *pid* (never the machine's)."""
        self._check_ours(pid)
        res = subprocess.run(
            ["nsenter", "-t", str(pid), "-n", "--", "ip", *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if res.returncode != 0:
            raise LabError(f"ip {' '.join(args)} in sandbox {pid} failed: {res.stderr.strip()}")

    def _wire(self, name: str, addr: str) -> None:
        assert self.fabric_pid is not None
        port = _port_name(name)
        hpid = self.pids[name]
        self._check_ours(hpid)
        self._nsenter_ip(self.fabric_pid, "link", "add", port, "type", "veth", "peer", "name", LAN_PORT, "netns", str(hpid))
        self._nsenter_ip(self.fabric_pid, "link", "set", port, "master", BRIDGE, "up")
        self._nsenter_ip(hpid, "addr", "add", f"{addr}/{LAB_NETWORK.prefixlen}", "dev", LAN_PORT)
        self._nsenter_ip(hpid, "link", "set", LAN_PORT, "up")

    def _start_machine(self, name: str, addr: str, image: Image) -> int:
        """Prepare machine *name*'s overlay and start its supervisor (it boots in the background)."""
        assert self.fabric_pid is not None
        self._check_ours(self.fabric_pid)
        key = machine.ensure_ssh_key(self.state_dir)
        machine.write_proxy(self.state_dir, self.marker, self.fabric_pid)
        paths = machine.MachinePaths(self.state_dir, name)
        machine.prepare_machine(paths, name, addr, LAB_NETWORK.prefixlen, key.with_suffix(".pub").read_text())
        env = self._process_env(f"machine:{name}")
        tag = f"{lab_mount_tag(self.marker)}-machine-{name}"
        try:
            proc = machine.spawn_supervisor(paths, name, image, self.fabric_pid, BRIDGE, env, tag)
        except machine.MachineError as exc:
            raise LabError(str(exc)) from exc
        self._popens.append(proc)
        if not _has_marker(proc.pid, self.marker):
            raise LabError(f"machine {name}: supervisor {proc.pid} does not carry the lab marker")
        return proc.pid

    def _start_vm(self, name: str, addr: str, image: VmImage) -> int:
        """Create VM *name*'s overlay and tap, and start QEMU in the fabric netns (boots in the background)."""
        assert self.fabric_pid is not None
        self._check_ours(self.fabric_pid)
        key = machine.ensure_ssh_key(self.state_dir)
        machine.write_proxy(self.state_dir, self.marker, self.fabric_pid)
        paths = vm.VmPaths(self.state_dir, name)
        tap = vm.tap_name(name)
        try:
            vm.create_overlay(paths, image)
            cmdline = vm.kernel_cmdline(name, addr, LAB_NETWORK.prefixlen, key.with_suffix(".pub").read_text())
        except vm.VmError as exc:
            raise LabError(str(exc)) from exc
        # The tap exists only inside the fabric netns (and dies with it).
        self._nsenter_ip(self.fabric_pid, "tuntap", "add", "dev", tap, "mode", "tap")
        self._nsenter_ip(self.fabric_pid, "link", "set", tap, "master", BRIDGE, "up")
        env = {**self._process_env(f"vm:{name}"), "LAB_FABRIC_PID": str(self.fabric_pid)}
        try:
            proc = vm.spawn_vm(paths, name, image, self.fabric_pid, tap, vm.mac_address(addr), cmdline, env)
        except vm.VmError as exc:
            raise LabError(str(exc)) from exc
        self._popens.append(proc)
        if not _has_marker(proc.pid, self.marker):
            raise LabError(f"VM {name}: QEMU {proc.pid} does not carry the lab marker")
        if _ns(proc.pid, "net") != _ns(self.fabric_pid, "net"):
            raise LabError(f"VM {name}: QEMU {proc.pid} is not in the lab's fabric netns")
        return proc.pid

    def _wait_machines(self) -> None:
        popens = {p.pid: p for p in self._popens}
        for name in [*self.machines, *self.vms]:
            timeout = vm.BOOT_TIMEOUT if name in self.vms else machine.BOOT_TIMEOUT
            try:
                seconds = machine.wait_ssh(self.state_dir, name, self.hosts[name], popens[self.pids[name]], timeout)
            except machine.MachineError as exc:
                raise LabError(str(exc)) from exc
            self._state_extra.setdefault("boot_seconds", {})[name] = round(seconds, 1)

    def machine_init_pid(self, name: str) -> int:
        """Pid (as seen from here) of machine *name*'s PID 1, checked to be of this lab."""
        sup = self.pid(name)
        if not self._is_live(sup):
            raise LabError(f"machine {name} is not running")
        init = machine.init_pid(sup)
        if init is None or not _has_marker(init, self.marker):
            raise LabError(f"machine {name} has not booted (or is rebooting)")
        return init

    def _check_ours(self, pid: int) -> None:
        ok = False
        for _attempt in range(50):  # tolerate a transiently unreadable environ
            ok = _alive(pid) and _has_marker(pid, self.marker)
            if ok or not _alive(pid):
                break
            time.sleep(0.01)
        if not ok:
            raise LabError(f"pid {pid} is not a live process of lab {self.marker}")
        if _ns(pid, "net") == _ns("self", "net"):
            raise LabError(f"pid {pid} shares the machine's network namespace; refusing")

    # ---------------------------------------------------------------- public API
    @property
    def inventory_path(self) -> Path:
        """Path of the generated Ansible inventory."""
        return self.state_dir / INVENTORY_FILE

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def python_interpreter(self) -> str:
        return str(self._state_extra.get("python_interpreter") or sys.executable)

    def pid(self, name: str) -> int:
        """Pid of the process holding lab host *name*'s namespaces."""
        try:
            return self.pids[name]
        except KeyError:
            raise LabError(f"no lab host {name!r}") from None

    def address(self, name: str) -> str:
        return self.hosts[name]

    def _host_vars(self, name: str, addr: str) -> dict[str, Any]:
        if name in self.vms:
            return {
                **self._ssh_host_vars(addr, self.vms[name]),
                "lab_vm": True,
            }
        if name not in self.machines:
            return {
                "ansible_connection": "community.docker.nsenter",
                "ansible_nsenter_pid": self.pids[name],
                "ansible_python_interpreter": self.python_interpreter,
                "lab_address": addr,
                "linuxnet_host_address": addr,  # what playbooks/verify.yml reaches the host at
            }
        return self._ssh_host_vars(addr, self.machines[name])

    def _ssh_host_vars(self, addr: str, suite: str) -> dict[str, Any]:
        # A real host: SSH as an unprivileged user, become, the machine's own python3.
        return {
            "ansible_connection": "ssh",
            "ansible_host": addr,
            "ansible_user": "ansible",
            "ansible_become": True,
            "ansible_ssh_private_key_file": str(self.state_dir / machine.SSH_KEY),
            "ansible_ssh_common_args": shlex.join(machine.ssh_options(self.state_dir, with_key=False)),
            "ansible_ssh_pipelining": True,
            # Ansible shares one SSH master per address and user: every lab's machines have
            # the same addresses, so each lab keeps its masters in its own directory.
            "ansible_control_path_dir": str(self.state_dir / machine.CONTROL_DIR),
            "ansible_python_interpreter": "/usr/bin/python3",
            "lab_address": addr,
            "linuxnet_host_address": addr,
            "lab_machine": suite,
            "lab_machine_release": SUITES[suite],
        }

    def inventory(self) -> dict[str, Any]:
        """The inventory as a dict (what :meth:`write_inventory` writes as YAML)."""
        hosts = {name: self._host_vars(name, addr) for name, addr in self.hosts.items()}
        inv: dict[str, Any] = {
            "all": {
                "vars": {
                    "lab_network": str(LAB_NETWORK),
                    "lab_prefixlen": LAB_NETWORK.prefixlen,
                    "lab_lan_port": LAN_PORT,
                    "lab_state_dir": str(self.state_dir),
                },
                "hosts": hosts,
            }
        }
        if self.groups:
            inv["all"]["children"] = {g: {"hosts": {m: None for m in ms}} for g, ms in self.groups.items()}
        return inv

    def write_inventory(self) -> Path:
        text = "# Generated by `python -m tests.lab create`; removed by `destroy`.\n" + yaml.safe_dump(
            self.inventory(), sort_keys=False, default_flow_style=False
        )
        tmp = self.inventory_path.with_name(INVENTORY_FILE + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.inventory_path)
        return self.inventory_path

    def nsenter_argv(self, name: str, argv: Sequence[str]) -> list[str]:
        """argv that runs *argv* inside lab host *name* (net, mount, uts namespaces).

        On a machine: all namespaces and the root of its PID 1, as root. On a VM: SSH, as root.
        """
        if name in self.vms:
            self._check_ours(self.pid(name))
            return machine.ssh_argv(self.state_dir, self.hosts[name], argv)
        if name in self.machines:
            return ["nsenter", "-t", str(self.machine_init_pid(name)), "-a", "-r", "-w", "--", *argv]
        pid = self.pid(name)
        self._check_ours(pid)
        return ["nsenter", "-t", str(pid), "-n", "-m", "-u", "--", *argv]

    def run(
        self,
        name: str,
        argv: Sequence[str],
        check: bool = True,
        timeout: float | None = 30,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run *argv* inside lab host *name*; text mode, output captured."""
        return subprocess.run(
            self.nsenter_argv(name, argv),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            input=input,
        )

    def status(self) -> dict[str, dict[str, Any]]:
        """Per host (and ``_fabric``): pid, address and whether the process is alive."""
        out: dict[str, dict[str, Any]] = {}
        if self.fabric_pid is not None:
            out["_fabric"] = {"pid": self.fabric_pid, "address": "-", "alive": self._is_live(self.fabric_pid)}
        for name, addr in self.hosts.items():
            pid = self.pids.get(name)
            out[name] = {"pid": pid, "address": addr, "alive": pid is not None and self._is_live(pid)}
        return out

    def _is_live(self, pid: int) -> bool:
        return _alive(pid) and _has_marker(pid, self.marker)

    def processes(self) -> list[int]:
        """Live pids belonging to this lab (marker or shared namespace)."""
        return find_lab_processes(self.marker)

    def destroy(self) -> None:
        """Kill every process of the lab and remove the state/inventory files."""
        destroy_state_dir(self.state_dir)
        for p in self._popens:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._popens.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()
