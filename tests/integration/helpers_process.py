"""Helpers shared by the integration tests that run the modules as processes (as Ansible runs them on a
managed host: the file under ``plugins/modules`` as ``__main__``, the JSON arguments on stdin).

* ``start``: a shell script inside the lab host ``linuxnet1``, in a process group of its own;
  ``killed``: the same, SIGKILLed (its group only) after a while.
* ``LAUNCHER``: runs a module after a few lines of Python (a setup file) that change one thing of the run.
* ``run_module``: one module run that way (its JSON result; None when the setup killed it with exit
  code 137); ``ok`` and ``refused`` check such a result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.helpers import HOST, REPO


def start(lab, script: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / ".collections")}
    return subprocess.Popen(lab.nsenter_argv(HOST, ["sh", str(script)]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)


def killed(lab, script: Path, after: float) -> int:
    """Start ``script``; SIGKILL its process group (only it) ``after`` seconds later. Returns how many
    modules had finished."""
    proc = start(lab, script)
    time.sleep(after)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    out, _err = proc.communicate(timeout=30)
    return sum(1 for line in out.splitlines() if line.startswith("{"))


# Runs the module given after a few lines of Python (the launcher's setup, from a file) that change
# one thing of the run; then exactly as Ansible runs it: its file as __main__, the arguments on stdin.
LAUNCHER = r'''
import runpy, sys
SETUP, MODULE = sys.argv[1], sys.argv[2]
exec(compile(open(SETUP).read(), SETUP, "exec"))
sys.argv = [MODULE]
runpy.run_path(MODULE, run_name="__main__")
'''


def run_module(lab, tmp: Path, name: str, args: dict, setup: str = "", check: bool = False, diff: bool = False,
               timeout: float = 180) -> dict | None:
    """Run module ``name`` in the lab host with ``args`` (``setup``: Python run first, in its process);
    its JSON result (failed or not), None when ``setup`` ended the process with exit code 137."""
    tag = f"{name}-{len(list(tmp.glob('*.json')))}"
    path = tmp / f"{tag}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_module_name": f"linuxnet.bridge.{name}",
                                                        "_ansible_check_mode": check, "_ansible_diff": diff}}))
    (tmp / f"{tag}.setup.py").write_text(setup)
    (tmp / "launcher.py").write_text(LAUNCHER)
    script = tmp / f"{tag}.sh"
    script.write_text(f"exec {sys.executable} {tmp}/launcher.py {tmp}/{tag}.setup.py {REPO}/plugins/modules/{name}.py < {path}\n")
    proc = start(lab, script)
    out, err = proc.communicate(timeout=timeout)
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if not results:
        assert setup and proc.returncode == 137, f"{name} printed no result (rc {proc.returncode}): {err[-3000:]}"
        return None
    return results[0]


def ok(result: dict | None) -> dict:
    assert result is not None and not result.get("failed"), result
    return result


def refused(result: dict | None, msg: str) -> None:
    """Failed with exactly ``msg``, having changed nothing."""
    assert result is not None and result.get("failed") and result["msg"] == msg, result
    assert not result.get("changed") and not any(result.get("commands") or []), result
