"""Lab virtual machines: the Debian image booted by QEMU (own kernel) inside a lab's fabric.

A VM is a real host with its own kernel: systemd, sshd, the distro's ``python3``, the login user
``ansible`` with passwordless sudo, exactly as a booted nspawn machine (:mod:`tests.lab.machine`),
reached the same way (SSH through the ProxyCommand into the fabric network namespace).

Layout of one VM (all under ``<state dir>/vms/<name>/``)::

    disk.qcow2     qcow2 overlay on the cached image's disk: what the VM writes survives reboots
    console.log    the guest's serial console (ttyS0)

The disk, kernel and initrd come from :func:`tests.lab.images.ensure_vm_image` (cached). QEMU
runs **inside the lab's fabric network namespace** (``nsenter --net=/proc/<fabric>/ns/net``); its
only NIC is a tap device that the lab creates inside the fabric namespace and enslaves to the
lab LAN bridge, so the VM sees the lab LAN and nothing else (no user-mode networking). QEMU
carries the lab marker in its environment (``destroy`` finds it like any lab process); the
supervisor ``sh`` exec's ``nsenter`` which exec's QEMU, so the recorded pid is QEMU's.

Per-VM settings reach the guest on the kernel command line: ``systemd.hostname=NAME``,
``lab.address=ADDR/PREFIX`` and ``lab.sshkey=TYPE,BASE64``; a unit of the image
(``linuxnet-lab-vm.service``) writes ``/etc/hostname``, a systemd-networkd file for ``host0``
and ``~ansible/.ssh/authorized_keys`` from them at every boot. A guest reboot is a reset inside
the same QEMU process (kernel and initrd are loaded again), so ``ansible.builtin.reboot`` works;
a guest poweroff ends QEMU.

Speed: no usable KVM on this machine kind (see ``../shared/reference/real-hosts.md``): TCG with
``-cpu qemu64``, 1 vCPU, 512 MiB. Cold boot to SSH-ready is about a minute.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Mapping

from tests.lab.images import VmImage

__all__ = ["VmError", "VmPaths", "create_overlay", "kernel_cmdline", "mac_address", "spawn_vm", "tap_name"]

VMS_DIR = "vms"
#: Cold boot under TCG is ~45-60 s alone, several VMs at once share the CPU.
BOOT_TIMEOUT = 600.0
QEMU = "qemu-system-x86_64"
_IFNAMSIZ = 15


class VmError(RuntimeError):
    """A VM could not be prepared or started."""


class VmPaths:
    def __init__(self, state_dir: Path, name: str) -> None:
        self.base = state_dir / VMS_DIR / name
        self.disk = self.base / "disk.qcow2"
        self.console = self.base / "console.log"


def tap_name(name: str) -> str:
    """The VM's tap device on the fabric bridge (inside the fabric netns only)."""
    return f"t-{name}".encode()[:_IFNAMSIZ].decode()


def mac_address(address: str) -> str:
    """A locally administered MAC derived from the VM's lab address (unique on the lab LAN)."""
    last = [int(o) for o in address.split(".")]
    return "52:54:00:%02x:%02x:%02x" % (last[1] & 0xFF, last[2], last[3])


def kernel_cmdline(name: str, address: str, prefixlen: int, pubkey: str) -> str:
    ktype, _sep, rest = pubkey.strip().partition(" ")
    blob = rest.split()[0] if rest else ""
    if not ktype or not blob:
        raise VmError(f"VM {name}: unusable public key")
    return " ".join(
        [
            "root=/dev/vda",
            "rw",
            "console=ttyS0",
            "loglevel=4",
            f"systemd.hostname={name}",
            f"lab.address={address}/{prefixlen}",
            f"lab.sshkey={ktype},{blob}",
        ]
    )


def create_overlay(paths: VmPaths, image: VmImage) -> None:
    """The VM's own disk: a qcow2 overlay in the lab's state dir on the cached image's disk."""
    if shutil.which("qemu-img") is None:
        raise VmError("qemu-img is missing (make deps installs qemu-utils)")
    paths.base.mkdir(parents=True, exist_ok=True)
    paths.disk.unlink(missing_ok=True)
    res = subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image.disk), str(paths.disk)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        raise VmError(f"qemu-img create {paths.disk} failed: {res.stderr.strip()}")


# The supervisor: refuses unless the fabric pid still is this lab's, enters the fabric's network
# namespace (checked to be a different one than ours) and exec's QEMU. Output goes to console.log.
_SUPERVISOR = r"""
set -u
tr '\0' '\n' < "/proc/$LAB_FABRIC_PID/environ" 2>/dev/null | grep -qx "LAB_MARKER=$LAB_MARKER" \
    || { echo "refusing: the lab fabric is gone" >&2; exit 97; }
exec nsenter --net="/proc/$LAB_FABRIC_PID/ns/net" -- sh -c '
[ "$(readlink /proc/self/ns/net)" != "$LAB_OUTER_NETNS" ] || { echo "refusing: still in the outer netns" >&2; exit 97; }
exec "$@"' qemu "$@"
"""


def qemu_argv(name: str, paths: VmPaths, image: VmImage, tap: str, mac: str, cmdline: str) -> list[str]:
    return [
        QEMU,
        "-name", f"lab-{name}",
        "-nodefaults", "-no-user-config",
        "-machine", "pc",
        "-accel", "tcg,thread=multi,tb-size=256",
        "-cpu", "qemu64",
        "-smp", "1",
        "-m", "512",
        "-display", "none",
        "-monitor", "none",
        "-serial", f"file:{paths.console}",
        "-kernel", str(image.kernel),
        "-initrd", str(image.initrd),
        "-append", cmdline,
        "-drive", f"file={paths.disk},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
        "-netdev", f"tap,id=lan,ifname={tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=lan,mac={mac}",
        "-device", "virtio-rng-pci",
    ]  # fmt: skip


def spawn_vm(
    paths: VmPaths,
    name: str,
    image: VmImage,
    fabric_pid: int,
    tap: str,
    mac: str,
    cmdline: str,
    env: Mapping[str, str],
) -> subprocess.Popen[bytes]:
    """Start QEMU for VM *name* inside the fabric netns; return once it is running."""
    for tool in (QEMU, "nsenter"):
        if shutil.which(tool) is None:
            raise VmError(f"required tool {tool!r} not found (make deps installs qemu-system-x86)")
    log = open(paths.base / "qemu.log", "ab")
    try:
        proc = subprocess.Popen(
            ["sh", "-c", _SUPERVISOR, "lab-vm", *qemu_argv(name, paths, image, tap, mac, cmdline)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=dict(env),
            cwd="/",
            start_new_session=True,
        )
    finally:
        log.close()
    # sh -> nsenter -> sh -> qemu, all exec: wait until the pid is QEMU (or it failed).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = (paths.base / "qemu.log").read_text(errors="replace").strip()
            raise VmError(f"VM {name}: QEMU failed to start (rc={proc.returncode}): {err[-2000:]}")
        try:
            exe = os.readlink(f"/proc/{proc.pid}/exe")
        except OSError:
            exe = ""
        if os.path.basename(exe).startswith("qemu-system"):
            return proc
        time.sleep(0.05)
    return proc
