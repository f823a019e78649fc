"""Helpers shared by the integration tests of the role (``playbooks/site.yml`` in a lab host).

* ``site``: site.yml on the lab host with the topology as extra vars; ``converge`` (the result of
  the role's one ``linuxnet.bridge.deployment`` run), ``changed`` (the host's changed count).
* ``snapshot``/``settled_snapshot``: everything the role could change inside the lab host (links,
  addresses, routes of every namespace, ``iptables`` without counters, /etc/netns, ip_forward).
* ``ping`` and ``disable_ipv6``: real packets from an endpoint, an endpoint's IPv6 switch.
* ``managed_python``: a managed-host Python (Debian 11, 12, 13's) in a venv without pyroute2.
* ``DUAL_STACK_NETWORKS``/``DUAL_STACK_ENDPOINTS``: the dual-stack topology of the issue 14 tests.
* ``run_deployment``: ``_deployment`` called in the lab host outside Ansible, as the boot-time restore
  calls it (the converge contract's module: params, check_mode, run_command, warn, fail_json).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from tests.integration.helpers import HOST, REPO
from tests.integration.helpers_links import ipj, netns_names, sh

SITE = REPO / "playbooks" / "site.yml"
VERIFY = REPO / "playbooks" / "verify.yml"
#: the lab of the role tests: the managed host in linuxnet_hosts, the probe host in linuxnet_probes
GROUPS = {"linuxnet_hosts": [HOST], "linuxnet_probes": ["outside"]}
ROLE = "linuxnet.bridge.bridge_network : "  # prefix of the role's task names in the results
CONVERGE = ROLE + "Converge networks and endpoints"  # linuxnet.bridge.deployment, one module run


def site(run_playbook, lab, networks=None, endpoints=None, ok: bool = True, check: bool = False, **extra: Any):
    """playbooks/site.yml on the lab host with the topology as extra vars."""
    extra_vars = {"linuxnet_install_packages": False, **extra}
    if networks is not None:
        extra_vars["linuxnet_networks"] = networks
    if endpoints is not None:
        extra_vars["linuxnet_endpoints"] = endpoints
    result = run_playbook(lab.inventory_path, SITE, extra_vars=extra_vars, check=check)
    if ok:
        result.assert_ok()
        failed = [t for t in result.tasks if t.failed]
        assert not failed, f"task {failed[0].task} failed: {json.dumps(failed[0].result, indent=1)[:3000]}"
    return result


def converge(result) -> dict:
    return result.task(CONVERGE, HOST).result


def changed(result) -> int:
    return result.stats[HOST]["changed"]


def iptables(lab) -> list[str]:
    """iptables-save (the variant the role's backend auto picks), without comments and counters."""
    text = sh(lab, "iptables-save").stdout
    # an empty raw table (left by port_mapping's raw rules for gateway_mode nat) holds no one's rules
    text = re.sub(r"\*raw\n(?::\S+ ACCEPT \[\d+:\d+\]\n)*COMMIT\n", "", text)
    lines = text.splitlines()
    return [line.split(" [", 1)[0] if line.startswith(":") else line for line in lines if not line.startswith("#")]


def snapshot(lab) -> dict[str, Any]:
    """Everything the role could change inside the lab host (read-only, stable fields only)."""
    snap: dict[str, Any] = {"netns": netns_names(lab), "iptables": iptables(lab)}
    for ns in [None] + snap["netns"]:
        snap[f"links@{ns}"] = sorted(
            json.dumps({"name": e["ifname"], "mtu": e.get("mtu"), "mac": e.get("address"), "master": e.get("master"),
                        "flags": sorted(e.get("flags", [])), "alias": e.get("ifalias"),
                        "kind": e.get("linkinfo", {}).get("info_kind")}, sort_keys=True)
            for e in ipj(lab, "-d", "link", "show", netns=ns))
        snap[f"addrs@{ns}"] = sorted(
            f"{e['ifname']} {a['local']}/{a['prefixlen']}" for e in ipj(lab, "-4", "addr", "show", netns=ns)
            for a in e.get("addr_info", []))
        snap[f"routes@{ns}"] = sorted(json.dumps(r, sort_keys=True) for r in ipj(lab, "-4", "route", "show", "table", "all", netns=ns))
    snap["files"] = sh(
        lab, "find /etc/netns -mindepth 1 | sort; for f in $(find /etc/netns -type f | sort); do echo \"== $f\"; cat \"$f\"; done",
    ).stdout.splitlines()
    snap["ip_forward"] = sh(lab, "cat /proc/sys/net/ipv4/ip_forward").stdout.strip()
    return snap


def settled_snapshot(lab) -> dict[str, Any]:
    """A snapshot after the kernel has settled (carrier flags of fresh links change for a moment)."""
    last = snapshot(lab)
    for _attempt in range(10):
        time.sleep(0.3)
        now = snapshot(lab)
        if now == last:
            return now
        last = now
    return last


def ping(lab, netns: str, target: str, six: bool = False, tries: int = 3) -> bool:
    flag = "-6" if six else "-4"
    script = f"for i in $(seq {tries}); do ip netns exec {netns} ping {flag} -n -c1 -W1 {target} && exit 0; sleep 0.5; done; exit 1"
    return sh(lab, script, check=False).returncode == 0


def disable_ipv6(lab, netns: str, ifname: str = "eth0") -> str:
    return sh(lab, f"ip netns exec {netns} cat /proc/sys/net/ipv6/conf/{ifname}/disable_ipv6").stdout.strip()


# ------------------------------------------------------------------------------ managed-host Python

CACHE = REPO / ".cache" / "managed-python"

# The managed host's Python (Debian 11, 12, 13) and the pyroute2 installed beside it (None: none at all)
MANAGED_PYTHONS = {
    "3.9": None,  # Debian 11 bullseye
    "3.11": None,  # Debian 12 bookworm
    "3.13": None,  # Debian 13 trixie
    "3.9-pyroute2-0.5.14": "0.5.14",  # Debian 11 with its python3-pyroute2 still installed: ignored
}


def base_python(wanted: str) -> str:
    """Python ``wanted`` (``3.9``) if installed here, else the controller's."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(f"{pyenv_root}/versions/{wanted}.*/bin/python{wanted}"), reverse=True)
    candidates.append(shutil.which(f"python{wanted}") or "")
    for candidate in filter(None, candidates):
        # a pyenv shim for a version that is not selected exits non-zero
        if subprocess.run([candidate, "-c", "import venv"], capture_output=True, check=False).returncode == 0:
            return candidate
    return sys.executable


def managed_python(host: str) -> Path:
    """``.cache/managed-python/<host>/bin/python``: a venv with no pyroute2, or exactly MANAGED_PYTHONS[host] (made once)."""
    root = CACHE / host
    python = root / "bin" / "python"
    base = base_python(host.split("-")[0])
    pyroute2 = MANAGED_PYTHONS.get(host)
    stamp = root / ".made-with"
    made_with = f"{base} pyroute2=={pyroute2}"
    if python.exists() and stamp.exists() and stamp.read_text() == made_with:
        return python
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run([base, "-m", "venv", str(root)], check=True, capture_output=True)
    if pyroute2:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"pyroute2=={pyroute2}"],
                       check=True, capture_output=True)
    stamp.write_text(made_with)
    return python


# ------------------------------------------------------------------------------ dual-stack topology

DUAL_STACK_NETWORKS = [
    {"name": "dual", "subnet": "172.20.0.0/16", "subnet6": "fd00:20::/64"},
    {"name": "v4only", "subnet": "172.21.0.0/16"},
]
DUAL_STACK_ENDPOINTS = [
    {"name": "d1", "network": "dual"},
    {"name": "d2", "network": "dual"},
    {"name": "m1", "networks": ["v4only", "dual"]},  # IPv4 routes through eth0, IPv6 through eth1
    {"name": "v1", "network": "v4only"},
]


# ------------------------------------------------------------------------------ the converge contract

# Runs inside the lab host: argv[1] is a JSON request, stdout the JSON answer (``result`` as the
# body left it, or the error), with the warnings, the processes run and the ruleset writes.
DEPLOYMENT_SCRIPT = """
import json, subprocess, sys
sys.path.insert(0, %(collections)r)
from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment, _topology

class Shim:  # the contract's module: params, check_mode, run_command, warn, fail_json
    def __init__(self, check_mode):
        self.params, self.check_mode, self.warnings, self.processes = {}, check_mode, [], []
        self.writes, self.nft = [], []  # each ruleset write (restore: tool and table; nft -f), each nft run
    def run_command(self, argv, check_rc=False, data=None):
        tool = argv[0].rsplit("/", 1)[-1]
        self.processes.append(" ".join([tool] + argv[1:3]))
        if tool.endswith("-restore"):
            self.writes.append(tool.replace("-nft", "").replace("-legacy", "") + " " + data.split("\\n", 1)[0].lstrip("*"))
        if tool == "nft":
            self.nft.append(" ".join(["nft"] + argv[1:]))
            if argv[1] == "-f":
                self.writes.append("nft -f")
        done = subprocess.run(argv, input=data, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    def warn(self, msg):
        self.warnings.append(msg)
    def fail_json(self, **kw):
        raise AssertionError(kw)

request = json.loads(sys.argv[1])
module = Shim(request["check_mode"])
try:
%(body)s
except Exception as exc:
    result = {"error": type(exc).__name__, "msg": str(exc), "commands": getattr(exc, "commands", None)}
result["warnings"] = module.warnings
result["processes"] = module.processes
result["writes"], result["nft"] = module.writes, module.nft
print(json.dumps(result))
"""


def run_deployment(lab, tmp_path: Path, body: str, request: dict, timeout: int = 120) -> dict:
    """``body`` (Python that sets ``result`` from ``request`` and ``module``, a Shim in check mode when
    ``request["check_mode"]``; ``_deployment`` and ``_topology`` imported) run in the lab host."""
    script = tmp_path / "deployment.py"
    script.write_text(DEPLOYMENT_SCRIPT % {"collections": str(REPO / ".collections"),
                                           "body": textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")})
    done = lab.run(HOST, [sys.executable, str(script), json.dumps(request)], timeout=timeout)
    return json.loads(done.stdout)
