# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Traffic probes for verify.yml, run on managed hosts and on the probe host.

    linuxnet_probe.py run BASE64_JSON      checks whose source is an endpoint namespace (or "probe")
    linuxnet_probe.py listen BASE64_JSON   start short-lived TCP/UDP listeners in namespaces
    linuxnet_probe.py stop BASE64_JSON     stop them (list of pids)

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
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 2.0


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


def serve(kind: str, port: int, seconds: int) -> None:
    """Listen (TCP accept / UDP echo) for a while; tell the parent we are ready on stdout."""
    family_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, family_type)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("0.0.0.0", port))
    except OSError:
        print("busy", flush=True)  # a real service already listens there: it answers instead
        return
    if kind == "tcp":
        sock.listen(16)
    print("ready", flush=True)
    sys.stdout.close()
    signal.alarm(seconds)
    while True:
        if kind == "tcp":
            conn, _peer = sock.accept()
            conn.close()
        else:
            data, peer = sock.recvfrom(256)
            sock.sendto(data, peer)


def listen(items: list[dict]) -> list[int]:
    pids = []
    for item in items:
        argv = in_netns(item["netns"], [sys.executable, os.path.abspath(__file__), "serve", item["kind"], str(item["port"]), "120"])
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        line = proc.stdout.readline().decode().strip() if proc.stdout else ""
        if line == "ready":
            pids.append(proc.pid)
    return pids


def main() -> int:
    verb = sys.argv[1]
    if verb == "connect":
        return connect(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    if verb == "serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    data = json.loads(base64.b64decode(sys.argv[2]))
    if verb == "run":
        with ThreadPoolExecutor(max_workers=16) as pool:
            observed = list(pool.map(probe, data))
        print(json.dumps([dict(check, observed=seen) for check, seen in zip(data, observed)]))
    elif verb == "listen":
        print(json.dumps(listen(data)))
    elif verb == "stop":
        for pid in data:
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
        print(json.dumps(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
