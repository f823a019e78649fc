"""Debian root filesystems for booted lab machines, built from Debian packages and cached.

An image is a directory tree made by ``mmdebstrap`` (root mode) for one Debian suite, plus a
local package repository next to it that holds what the image lacks and the role installs
(``python3-pyroute2``, ``iptables``, ``nftables``, ``python3-apt`` and their dependencies, for
that suite). Machines boot the tree read-only under a per-machine overlay and see the repository
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

__all__ = ["Image", "SUITES", "ensure_image", "image_cache_dir"]

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
# Offered by the local repository only.
REPO_PACKAGES = ("python3-pyroute2", "iptables", "nftables", "python3-apt")
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


def image_cache_dir() -> Path:
    return Path(os.environ.get("LINUXNET_LAB_CACHE", "/var/cache/linuxnet-lab")) / "images"


def _recipe(suite: str) -> str:
    return "\n".join(
        [suite, MIRROR, " ".join(BASE_PACKAGES), " ".join(REPO_PACKAGES), " ".join(_DPKG_EXCLUDES), _CUSTOMIZE]
    )


def image_key(suite: str) -> str:
    return f"{suite}-{hashlib.sha256(_recipe(suite).encode()).hexdigest()[:12]}"


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


def _build(suite: str, final: Path, log: Path | None) -> None:
    for tool in ("mmdebstrap", "dpkg-scanpackages"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: install mmdebstrap and dpkg-dev (make deps does)")
    tmp = final.with_name(f".{final.name}.build")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)
    (tmp / "rootfs").mkdir(parents=True)
    customize = _CUSTOMIZE.format(
        repo_packages=" ".join(REPO_PACKAGES), repo_mount=REPO_MOUNT, uid=ANSIBLE_UID
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
        f"--include={','.join(BASE_PACKAGES)}",
        *(f"--dpkgopt={opt}" for opt in _DPKG_EXCLUDES),
        f"--customize-hook={customize}",
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
    (tmp / "build-seconds").write_text(f"{time.monotonic() - started:.0f}\n")
    os.rename(tmp, final)
