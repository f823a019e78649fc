"""Debian root filesystems for booted lab machines, built from Debian packages and cached.

An image is a directory tree made by ``mmdebstrap`` (root mode) for one Debian suite, plus a
local package repository next to it that holds what the image lacks and the role installs
(``iptables``, ``nftables``, ``conntrack``, ``python3-apt`` and their dependencies, for that suite;
bookworm's also ``netavark``, for the benchmark), and
``python3-pyroute2``, which the role no longer installs: offered, so molecule/matrix and machine
show that the role leaves it out. Machines boot the tree read-only under a per-machine overlay and see the repository
read-only at :data:`REPO_MOUNT`; their apt sources name only that repository, so a machine never
reaches a registry.

Images are cached outside the checkout (``$LINUXNET_LAB_CACHE`` or ``/var/cache/linuxnet-lab``)
under a key made of the suite, the package lists and this file's build recipe: a changed recipe
builds a new image, a missing one is built again. A build writes to a temporary directory and
renames it into place, so an interrupted build leaves no half image behind (the leftover
temporary directory is removed by the next build).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Image", "SUITES", "VmImage", "ensure_image", "ensure_vm_image", "image_cache_dir"]

#: Suites a machine can run, with the Debian release they are.
SUITES = {"bullseye": "11", "bookworm": "12", "trixie": "13"}
#: Where a machine sees its package repository (bind-mounted read-only).
REPO_MOUNT = "/srv/linuxnet-repo"
#: uid of the unprivileged login user ``ansible`` in every image.
ANSIBLE_UID = 1000

MIRROR = "http://deb.debian.org/debian"
# A managed host as users have it: systemd, sshd, the distro's python3, sudo; no pyroute2, no
# iptables and no nftables (the role installs those from the local repository).
BASE_PACKAGES = (
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "python3",
    "sudo",
    "iproute2",
    "iputils-ping",
    "procps",
    "kmod",
    "ca-certificates",
)
# Offered by the local repository only (python3-pyroute2: a package the role must not install).
REPO_PACKAGES = ("python3-pyroute2", "iptables", "nftables", "conntrack", "python3-apt")
# Offered by the local repository of one suite only: netavark for the benchmark's netavark-ssh
# peer (tests/bench; bullseye has no netavark package). Suites without an entry keep their key.
SUITE_REPO_PACKAGES = {"bookworm": ("netavark",)}


def repo_packages(suite: str) -> tuple[str, ...]:
    """What the local repository of *suite* offers (with dependencies), none of it installed."""
    return REPO_PACKAGES + SUITE_REPO_PACKAGES.get(suite, ())


_DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
)
# Run on the build host with the new root as $1; apt-get with mmdebstrap's APT_CONFIG works on
# the new root (mmdebstrap hands that config to hooks as MMDEBSTRAP_APT_CONFIG).
_CUSTOMIZE = r"""
set -eu
root="$1"
repo="$root/../repo"
mkdir -p "$repo/partial"
APT_CONFIG="$MMDEBSTRAP_APT_CONFIG" apt-get -q -y --no-install-recommends -o Dir::Cache::Archives="$repo/" \
    --download-only install {repo_packages} >/dev/null
rm -rf "$repo/partial" "$repo/lock"
# apt: only the local repository (no machine reaches a registry).
rm -f "$root/etc/apt/sources.list" "$root"/etc/apt/sources.list.d/*
echo 'deb [trusted=yes] file:{repo_mount} ./' > "$root/etc/apt/sources.list.d/linuxnet-lab.list"
# The login user of the lab: key-only SSH, passwordless sudo.
chroot "$root" useradd --create-home --uid {uid} --shell /bin/bash ansible
printf 'ansible ALL=(ALL) NOPASSWD:ALL\n' > "$root/etc/sudoers.d/ansible"
chmod 0440 "$root/etc/sudoers.d/ansible"
printf 'PasswordAuthentication no\nUseDNS no\n' > "$root/etc/ssh/sshd_config.d/lab.conf"
# Network: systemd-networkd configures host0 from a per-machine file in the overlay.
chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
# Quiet, quick boots: nothing that wakes up to download or scrub.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    fstrim.timer man-db.timer systemd-networkd-wait-online.service getty@tty1.service \
    console-getty.service >/dev/null 2>&1
: > "$root/etc/machine-id"
"""

# VM variant (``ensure_vm_image``): the same rootfs plus a kernel, an initramfs and udev, made
# into an ext4 disk (``mkfs.ext4 -d``, no mount) and converted to qcow2; the kernel and initrd are
# copied out next to it (QEMU boots them with -kernel/-initrd, no bootloader). The local
# repository is copied into the disk at REPO_MOUNT (a VM has no bind mount).
VM_PACKAGES = ("linux-image-cloud-amd64", "initramfs-tools", "udev")
VM_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_rng", "ext4", "crc32c_generic")
VM_DISK_SIZE = "3G"
# Before the other packages: a small initramfs from the start (conf.d is no conffile).
_VM_ESSENTIAL = r"""
set -eu
mkdir -p "$1/etc/initramfs-tools/conf.d"
printf 'MODULES=list\nCOMPRESS=gzip\n' > "$1/etc/initramfs-tools/conf.d/linuxnet-lab"
"""
# After the base customize hook: per-VM settings come from the kernel command line
# (lab.address=ADDR/PREFIX, lab.sshkey=TYPE,BASE64, systemd.hostname=NAME), read at every boot by
# linuxnet-lab-vm.service before networkd and sshd start.
_VM_CUSTOMIZE = r"""
set -eu
root="$1"
printf '%s\n' {modules} >> "$root/etc/initramfs-tools/modules"
printf '/dev/vda / ext4 rw,noatime 0 0\n' > "$root/etc/fstab"
# The LAN NIC is host0, as in an nspawn machine.
printf '[Match]\nDriver=virtio_net\n\n[Link]\nName=host0\n' > "$root/etc/systemd/network/10-lab-lan.link"
rm -f "$root"/etc/ssh/ssh_host_rsa_key* "$root"/etc/ssh/ssh_host_ecdsa_key*
cat > "$root/usr/local/sbin/linuxnet-lab-vm-config" <<'SCRIPT'
#!/bin/sh
# Written by tests.lab: per-VM settings from the kernel command line.
set -eu
addr= key= name=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        lab.address=*) addr=${arg#lab.address=} ;;
        lab.sshkey=*) key=${arg#lab.sshkey=} ;;
        systemd.hostname=*) name=${arg#systemd.hostname=} ;;
    esac
done
if [ -n "$name" ]; then
    printf '%s\n' "$name" > /etc/hostname
    printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$name" > /etc/hosts
fi
if [ -n "$addr" ]; then
    mkdir -p /run/systemd/network
    printf '[Match]\nName=host0\n\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' "$addr" \
        > /run/systemd/network/10-lab.network
fi
if [ -n "$key" ]; then
    install -d -o ansible -g ansible -m 0700 /home/ansible/.ssh
    printf '%s %s linuxnet-lab\n' "${key%%,*}" "${key#*,}" > /home/ansible/.ssh/authorized_keys
    chown ansible:ansible /home/ansible/.ssh/authorized_keys
    chmod 0600 /home/ansible/.ssh/authorized_keys
fi
SCRIPT
chmod 0755 "$root/usr/local/sbin/linuxnet-lab-vm-config"
cat > "$root/etc/systemd/system/linuxnet-lab-vm.service" <<'UNIT'
[Unit]
Description=linuxnet lab: per-VM settings from the kernel command line
DefaultDependencies=no
After=local-fs.target
Before=systemd-networkd.service network-pre.target ssh.service sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/linuxnet-lab-vm-config

[Install]
WantedBy=sysinit.target
UNIT
chroot "$root" systemctl enable linuxnet-lab-vm.service >/dev/null 2>&1
chroot "$root" systemctl mask serial-getty@ttyS0.service >/dev/null 2>&1
chroot "$root" update-initramfs -u -k all >/dev/null
"""


@dataclass(frozen=True)
class Image:
    """A built image: ``rootfs`` (the tree machines boot) and ``repo`` (the local repository)."""

    suite: str
    path: Path

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def repo(self) -> Path:
        return self.path / "repo"


@dataclass(frozen=True)
class VmImage:
    """A built VM image: a qcow2 disk (the base of per-VM overlays), its kernel and initrd."""

    suite: str
    path: Path

    @property
    def disk(self) -> Path:
        return self.path / "disk.qcow2"

    @property
    def kernel(self) -> Path:
        return self.path / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.path / "initrd.img"


def image_cache_dir() -> Path:
    return Path(os.environ.get("LINUXNET_LAB_CACHE", "/var/cache/linuxnet-lab")) / "images"


def _recipe(suite: str, vm: bool = False) -> str:
    parts = [suite, MIRROR, " ".join(BASE_PACKAGES), " ".join(repo_packages(suite)), " ".join(_DPKG_EXCLUDES), _CUSTOMIZE]
    if vm:
        parts += [" ".join(VM_PACKAGES), " ".join(VM_MODULES), VM_DISK_SIZE, _VM_ESSENTIAL, _VM_CUSTOMIZE, _VM_FINISH]
    return "\n".join(parts)


def image_key(suite: str, vm: bool = False) -> str:
    kind = f"{suite}-vm" if vm else suite
    return f"{kind}-{hashlib.sha256(_recipe(suite, vm).encode()).hexdigest()[:12]}"


def ensure_image(suite: str, log: Path | None = None) -> Image:
    """Return the image for *suite*, building it first when the cache lacks it.

    Concurrent callers wait for one build (a lock file per key).
    """
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}: use one of {', '.join(SUITES)}")
    cache = image_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = image_key(suite)
    final = cache / key
    with open(cache / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / "repo" / "Packages").is_file():
            _build(suite, final, log)
    return Image(suite=suite, path=final)


def ensure_vm_image(suite: str, log: Path | None = None) -> VmImage:
    """Return the VM image for *suite* (qcow2 disk, kernel, initrd), building it when missing."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}: use one of {', '.join(SUITES)}")
    cache = image_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = image_key(suite, vm=True)
    final = cache / key
    image = VmImage(suite=suite, path=final)
    with open(cache / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all(p.is_file() for p in (image.disk, image.kernel, image.initrd)):
            _build(suite, final, log, vm=True)
    return image


# The VM disk from the built tree: kernel and initrd out, repository in, ext4 made from the
# directory (mkfs.ext4 -d: nothing is mounted), converted to qcow2; the tree is removed.
_VM_FINISH = r"""
set -eu
cd "$1"
kver=$(ls rootfs/lib/modules | sort -V | tail -n 1)
cp "rootfs/boot/vmlinuz-$kver" vmlinuz
cp "rootfs/boot/initrd.img-$kver" initrd.img
mkdir -p "rootfs$2"
cp -a repo/. "rootfs$2/"
truncate -s "$3" disk.raw
mkfs.ext4 -q -F -L linuxnet-root -E lazy_itable_init=0 -d rootfs disk.raw
qemu-img convert -O qcow2 disk.raw disk.qcow2
rm -f disk.raw
rm -rf rootfs repo
"""


def _build(suite: str, final: Path, log: Path | None, vm: bool = False) -> None:
    tools = ("mmdebstrap", "dpkg-scanpackages") + (("mkfs.ext4", "qemu-img") if vm else ())
    for tool in tools:
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: install mmdebstrap and dpkg-dev (make deps does)")
    tmp = final.with_name(f".{final.name}.build")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)
    (tmp / "rootfs").mkdir(parents=True)
    customize = _CUSTOMIZE.format(
        repo_packages=" ".join(repo_packages(suite)), repo_mount=REPO_MOUNT, uid=ANSIBLE_UID
    )
    # In a private mount namespace: mmdebstrap mounts /proc, /sys and /dev into the new root,
    # which must never show up in the machine's own mount table.
    argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "mmdebstrap",
        "--mode=root",
        "--variant=apt",
        "--format=directory",
        "--skip=check/empty",
        f"--include={','.join(BASE_PACKAGES + (VM_PACKAGES if vm else ()))}",
        *(f"--dpkgopt={opt}" for opt in _DPKG_EXCLUDES),
        *([f"--essential-hook={_VM_ESSENTIAL}"] if vm else []),
        f"--customize-hook={customize}",
        *([f"--customize-hook={_VM_CUSTOMIZE.replace('{modules}', ' '.join(VM_MODULES))}"] if vm else []),
        suite,
        str(tmp / "rootfs"),
        MIRROR,
    ]
    started = time.monotonic()
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        res = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=1800, check=False)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"mmdebstrap {suite} failed (rc={res.returncode}); see {log or 'its output'}")
    packages = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."],
        cwd=tmp / "repo",
        capture_output=True,
        timeout=300,
        check=True,
    ).stdout
    (tmp / "repo" / "Packages").write_bytes(packages)
    if vm:
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            res = subprocess.run(
                ["sh", "-c", _VM_FINISH, "vm-finish", str(tmp), REPO_MOUNT, VM_DISK_SIZE],
                stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False,
            )  # fmt: skip
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        if res.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"VM disk for {suite} failed (rc={res.returncode}); see {log or 'its output'}")
    (tmp / "build-seconds").write_text(f"{time.monotonic() - started:.0f}\n")
    os.rename(tmp, final)
