# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Traffic probes for verify.yml, run on managed hosts and on the probe host.

    linuxnet_probe.py run BASE64_JSON|@FILE  checks whose source is an endpoint namespace (or "probe")
    linuxnet_probe.py listen BASE64_JSON   start short-lived TCP/UDP listeners in namespaces
    linuxnet_probe.py stop BASE64_JSON     stop them (pids, or transient unit names on systemd hosts)

Prints one JSON document. Each check is {source, kind: icmp|tcp|udp|http, address, port} and
optionally "timeout" (seconds) and "reply": true (a TCP check then counts only when the listener
answers); the result adds "observed": true when the packet made it (ping reply, TCP connect, UDP
echo, any HTTP response), "reply" (what came back) and "error". The listeners answer with the
peer address and port they saw ("172.16.0.1 80"), so a check can tell who arrived (masquerade).
Dual-stack: an address with a colon is probed over IPv6, and the listeners take both families
(one IPv6 socket that also accepts IPv4; IPv4 only where the kernel has no IPv6).
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
import urllib.request
from concurrent.futures import ThreadPoolExecutor

TIMEOUT = 2.0
#: Listeners stop by themselves after this many seconds, whatever happens to the run.
LISTEN_SECONDS = 120


def in_netns(netns: str | None, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns] + argv if netns and netns != "probe" else argv


def probe(check: dict) -> dict:
    """{observed, reply, error} of one check."""
    source = check["source"]
    if check["kind"] == "icmp":
        patient = check.get("patient", False)
        argv = in_netns(source, ["ping", "-c", "1", "-W", "3" if patient else "1", "-q", check["address"]])
        for _attempt in range(3 if patient else 2):
            if subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0:
                return {"observed": True, "reply": "", "error": ""}
        return {"observed": False, "reply": "", "error": ""}
    argv = in_netns(source, [sys.executable, os.path.abspath(__file__), "connect", check["kind"], check["address"], str(check["port"]),
                             str(check.get("timeout", TIMEOUT) * (2 if check.get("patient") else 1))] + (["reply"] if check.get("reply") else []))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=15)
    except subprocess.TimeoutExpired:
        return {"observed": False, "reply": "", "error": "timeout"}
    return {"observed": proc.returncode == 0, "reply": proc.stdout.strip(), "error": proc.stderr.strip()[-300:]}


def connect(kind: str, address: str, port: int, timeout: float = TIMEOUT, reply: bool = False) -> int:
    """0 when the packet made it; prints what came back (the listener's peer report, or the HTTP reply)."""
    token = f"linuxnet-probe-{time.time_ns()}"
    try:
        if kind == "http":
            host = f"[{address}]" if ":" in address else address
            with urllib.request.urlopen(f"http://{host}:{port}/?{token}", timeout=timeout) as resp:
                print(token, resp.status, resp.read(200).decode(errors="replace").strip())
                return 0
        family_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, family_type) as sock:
            sock.settimeout(timeout)
            if kind == "tcp":
                sock.connect((address, port))
                if not reply:
                    return 0
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    data += chunk
                print(data.decode(errors="replace").strip())
                return 0 if data else 1
            for _attempt in range(3):
                sock.sendto(token.encode(), (address, port))
                try:
                    data, _peer = sock.recvfrom(2048)
                except socket.timeout:
                    continue
                if data.startswith(token.encode()):
                    print(data[len(token):].decode(errors="replace").strip())
                    return 0
    except Exception as exc:  # refused, unreachable, timed out, HTTP error: not observed
        print(type(exc).__name__, exc, file=sys.stderr)
        return 1
    print("no answer", file=sys.stderr)
    return 1


def serve(kind: str, port: int, seconds: int, ready_file: str | None = None) -> None:
    """Listen (TCP accept / UDP echo) for a while; tell the parent we are ready (stdout or a file)."""
    family_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    try:
        sock = socket.socket(socket.AF_INET6, family_type)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 arrives as ::ffff:a.b.c.d
        bind = ("::", port)
    except OSError:  # a kernel without IPv6
        sock, bind = socket.socket(socket.AF_INET, family_type), ("0.0.0.0", port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(bind)
    except OSError:
        _tell(ready_file, "busy")  # a real service already listens there: it answers instead
        return
    if kind == "tcp":
        sock.listen(16)
    _tell(ready_file, "ready")
    signal.alarm(seconds)
    while True:
        if kind == "tcp":
            conn, peer = sock.accept()
            try:
                conn.sendall(f"{_unmapped(peer[0])} {port}\n".encode())
            except OSError:
                pass
            conn.close()
        else:
            data, peer = sock.recvfrom(2048)
            sock.sendto(data + f" {_unmapped(peer[0])} {port}".encode(), peer)


def _unmapped(address: str) -> str:
    """An IPv4 peer of a dual-stack socket as itself (::ffff:172.16.0.1 -> 172.16.0.1)."""
    return address[7:] if address.startswith("::ffff:") and "." in address else address


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


def load_argument(arg: str):
    """The JSON argument: base64 on the command line, or ``@PATH`` of a file holding plain JSON.

    A file has no size limit; one command-line argument stops at 128 KiB (a few hundred checks).
    """
    if arg.startswith("@"):
        with open(arg[1:], encoding="utf-8") as fh:
            return json.load(fh)
    return json.loads(base64.b64decode(arg))


def main() -> int:
    verb = sys.argv[1]
    if verb == "connect":
        timeout = float(sys.argv[5]) if len(sys.argv) > 5 else TIMEOUT
        return connect(sys.argv[2], sys.argv[3], int(sys.argv[4]), timeout, sys.argv[6:7] == ["reply"])
    if verb == "serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else None)
        return 0
    data = load_argument(sys.argv[2])
    if verb == "run":
        with ThreadPoolExecutor(max_workers=16) as pool:
            outcomes = list(pool.map(probe, data))
        # A packet that should have made it but did not gets a second, patient try with fewer
        # probes at once: hundreds of parallel probes on a loaded host can miss a one-second
        # timeout. A packet that got through where it should not is never retried.
        missed = [i for i, (check, out) in enumerate(zip(data, outcomes)) if check.get("expect") and not out["observed"]]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for i, outcome in zip(missed, pool.map(probe, [dict(data[i], patient=True) for i in missed])):
                outcomes[i] = outcome
        print(json.dumps([dict(check, **outcome) for check, outcome in zip(data, outcomes)]))
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
