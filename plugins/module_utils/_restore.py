# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The boot-time restore: ``python3 /usr/lib/linuxnet-bridge/linuxnet-bridge.pyz --state FILE [--check]``.

Runs ``_deployment.converge`` (the engine the role runs) on the saved plan with a small stand-in
for AnsibleModule, so a host rebuilds its last converged deployment at boot without Ansible. On a
converged host it changes nothing. Prints one JSON line (changed, commands) for the journal; exit
status 1 with the reason on stderr when the state cannot be read or a step fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from typing import Any

from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError
from ansible_collections.linuxnet.bridge.plugins.module_utils._persist import STATE_FILE, load_state
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError
from ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport import keep_compiled


class Failed(Exception):
    """What fail_json would have reported."""


class HostModule:
    """What the engine uses of an AnsibleModule, outside Ansible: params, check mode, commands, warnings."""

    _name = "linuxnet-bridge"
    _diff = False

    def __init__(self, check_mode: bool) -> None:
        self.params: dict[str, Any] = {}
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def run_command(self, argv: list[str], check_rc: bool = False, data: str | bytes | None = None,
                    binary_data: bool = False, **_options: Any) -> tuple[int, str, str]:
        if isinstance(data, str):
            # As AnsibleModule.run_command: text input ends with a newline unless binary_data.
            data = (data if binary_data else data + "\n").encode()
        proc = subprocess.run(argv, input=data, capture_output=True, check=False)
        out, err = (stream.decode("utf-8", "surrogateescape") for stream in (proc.stdout, proc.stderr))
        if check_rc and proc.returncode != 0:
            raise Failed(f"{' '.join(argv)} failed ({proc.returncode}): {err.strip()}")
        return proc.returncode, out, err

    def get_bin_path(self, name: str, required: bool = False, opt_dirs: list[str] | None = None) -> str | None:
        path = shutil.which(name, path=os.environ.get("PATH", os.defpath) + ":/usr/local/sbin:/usr/sbin:/sbin")
        if path is None and required:
            raise Failed(f"{name} not found")
        return path

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        sys.stderr.write(f"linuxnet-bridge: warning: {msg}\n")

    def fail_json(self, msg: str = "failed", **_result: Any) -> None:
        raise Failed(msg)


def restore(state_path: str, check_mode: bool) -> dict:
    """Converge the host to the state saved at ``state_path``; the engine's result without the plan."""
    with open(state_path, encoding="utf-8") as handle:
        state = load_state(handle.read(), state_path)
    module = HostModule(check_mode)
    result = _deployment.converge(module, None, None, plan=state["plan"], **state["options"])
    return {
        "changed": bool(result["changed"]),
        "check_mode": check_mode,
        "commands": {step: cmds for step, cmds in result["commands"].items() if cmds},
        "warnings": module.warnings,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="linuxnet-bridge", description="Rebuild the deployment linuxnet.bridge last converged.")
    parser.add_argument("--state", default=STATE_FILE, help=f"saved state (default {STATE_FILE})")
    parser.add_argument("--check", action="store_true", help="report what would change, change nothing")
    args = parser.parse_args(argv)
    if not args.check:
        keep_compiled()  # (--check writes nothing, not even the bytecode cache)
    try:
        result = restore(args.state, args.check)
    except (OSError, ImportError, ValidationError, ApplyError, Failed) as exc:
        sys.stderr.write(f"linuxnet-bridge: {exc}\n")
        raise SystemExit(1) from None
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
