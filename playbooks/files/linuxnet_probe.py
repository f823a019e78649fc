# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Traffic probes for verify.yml, run on managed hosts and on the probe host.

    linuxnet_probe.py run BASE64_JSON      checks whose source is an endpoint namespace (or "probe")
    linuxnet_probe.py listen BASE64_JSON   start short-lived TCP/UDP listeners in namespaces
    linuxnet_probe.py stop BASE64_JSON     stop them (pids, or transient unit names on systemd hosts)

Prints one JSON document. Each check is {source, kind: icmp|tcp|udp, address, port}; the result
adds "observed": true when the packet made it (ping reply, TCP connect, UDP echo).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 2.0
#: Listeners stop by themselves after this many seconds, whatever happens to the run.
LISTEN_SECONDS = 120


def in_netns(netns: str | None, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns] + argv if netns and netns != "probe" else argv


def probe(check: dict) -> bool:
    source = check["source"]
    if check["kind"] == "icmp":
        argv = in_netns(source, ["ping", "-c", "1", "-W", "1", "-q", check["address"]])
        for _attempt in range(2):
            if subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0:
                return True
        return False
    argv = in_netns(source, [sys.executable, os.path.abspath(__file__), "connect", check["kind"], check["address"], str(check["port"])])
    return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0


def connect(kind: str, address: str, port: int) -> int:
    family_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, family_type) as sock:
        sock.settimeout(TIMEOUT)
        try:
            if kind == "tcp":
                sock.connect((address, port))
                return 0
            for _attempt in range(3):
                sock.sendto(b"linuxnet-probe", (address, port))
                try:
                    data, _peer = sock.recvfrom(256)
                    return 0 if data == b"linuxnet-probe" else 1
                except socket.timeout:
                    continue
        except OSError:
            return 1
    return 1


def serve(kind: str, port: int, seconds: int, ready_file: str | None = None) -> None:
    """Listen (TCP accept / UDP echo) for a while; tell the parent we are ready (stdout or a file)."""
    family_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, family_type)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("0.0.0.0", port))
    except OSError:
        _tell(ready_file, "busy")  # a real service already listens there: it answers instead
        return
    if kind == "tcp":
        sock.listen(16)
    _tell(ready_file, "ready")
    signal.alarm(seconds)
    while True:
        if kind == "tcp":
            conn, _peer = sock.accept()
            conn.close()
        else:
            data, peer = sock.recvfrom(256)
            sock.sendto(data, peer)


def _systemd_runs_host() -> bool:
    return os.path.isdir("/run/systemd/system") and any(
        os.access(os.path.join(d, "systemd-run"), os.X_OK) for d in os.environ.get("PATH", "/usr/bin:/bin").split(":")
    )


def _tell(ready_file: str | None, state: str) -> None:
    if ready_file is None:
        print(state, flush=True)
        sys.stdout.close()
        return
    with open(ready_file + ".tmp", "w") as fh:
        fh.write(state)
    os.rename(ready_file + ".tmp", ready_file)


def listen(items: list[dict]) -> list:
    """Start the listeners; return what `stop` needs (pids, or unit names on a systemd host)."""
    if _systemd_runs_host():
        return listen_units(items)
    pids = []
    for item in items:
        argv = in_netns(item["netns"], [sys.executable, os.path.abspath(__file__), "serve", item["kind"], str(item["port"]), str(LISTEN_SECONDS)])
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        line = proc.stdout.readline().decode().strip() if proc.stdout else ""
        if line == "ready":
            pids.append(proc.pid)
    return pids


def listen_units(items: list[dict]) -> list[str]:
    """Listeners as transient units: a process an SSH session leaves behind dies with the session."""
    units = []
    for item in items:
        unit = f"linuxnet-probe-{item['netns']}-{item['kind']}-{item['port']}-{os.getpid()}"
        ready = f"/run/{unit}.ready"
        argv = ["systemd-run", "--quiet", "--collect", f"--unit={unit}", "-p", f"NetworkNamespacePath=/run/netns/{item['netns']}",
                sys.executable, os.path.abspath(__file__), "serve", item["kind"], str(item["port"]), str(LISTEN_SECONDS), ready]
        if subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode != 0:
            continue
        units.append(unit)  # stopped by `stop` even if it never got ready
        for _attempt in range(100):
            try:
                with open(ready) as fh:
                    state = fh.read().strip()
            except FileNotFoundError:
                time.sleep(0.05)
                continue
            os.unlink(ready)
            if state != "ready":  # busy: a real service answers on that port; nothing to stop
                units.pop()
            break
    return units


def main() -> int:
    verb = sys.argv[1]
    if verb == "connect":
        return connect(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    if verb == "serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else None)
        return 0
    data = json.loads(base64.b64decode(sys.argv[2]))
    if verb == "run":
        with ThreadPoolExecutor(max_workers=16) as pool:
            observed = list(pool.map(probe, data))
        print(json.dumps([dict(check, observed=seen) for check, seen in zip(data, observed)]))
    elif verb == "listen":
        print(json.dumps(listen(data)))
    elif verb == "stop":
        for item in data:
            if isinstance(item, str):  # a transient unit (only ever one of ours: see listen_units)
                subprocess.run(["systemctl", "stop", item], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
                continue
            try:
                os.killpg(item, signal.SIGTERM)
            except OSError:
                pass
        print(json.dumps(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
