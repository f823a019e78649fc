#!/usr/bin/env bash
# Prepare this machine for `make lab` / `make test`: checks, system packages, the venv.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(uname -s)" != "Linux" ]; then
    echo "linuxnet.bridge needs Linux: its lab builds network namespaces, bridges and iptables rules, which only a Linux kernel has." >&2
    exit 1
fi
if [ "$(id -u)" != "0" ]; then
    echo "Run this as root (e.g. sudo make $*): the lab creates network namespaces and firewall rules, which needs root." >&2
    exit 1
fi

# System tools: iptables (nft and legacy), nftables, conntrack, ping, iproute2, nsenter/unshare.
need=()
command -v iptables-legacy-restore >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v conntrack >/dev/null || need+=(conntrack)  # port_mapping's UDP flow cleanup
command -v ping >/dev/null || need+=(iputils-ping)
command -v dot >/dev/null || need+=(graphviz)  # playbooks/diagram.yml's picture (tests/integration/test_diagram.py)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# Booted lab machines: Debian images (mmdebstrap, dpkg-scanpackages), systemd-nspawn, SSH.
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v ssh >/dev/null || need+=(openssh-client)
command -v nc >/dev/null || need+=(netcat-openbsd)
# Lab VMs (make test-vm): QEMU, qemu-img for the qcow2 disks, mkfs.ext4 for the image.
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if [ "${LINUXNET_BENCH:-0}" = "1" ]; then command -v netavark >/dev/null || [ -x /usr/lib/podman/netavark ] || need+=(netavark); fi
if [ ${#need[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "Missing system packages (${need[*]}) and no apt-get to install them: install them by hand." >&2
        exit 1
    fi
    echo "Installing system packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The controller venv, rebuilt only when the requirements change.
stamp=.venv/.requirements.sha256
want=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Creating .venv from requirements*.txt"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
    echo "$want" > "$stamp"
fi

# Make the checkout usable by FQCN (linuxnet.bridge.*) without installing it.
mkdir -p .collections/ansible_collections/linuxnet
ln -sfn ../../.. .collections/ansible_collections/linuxnet/bridge
