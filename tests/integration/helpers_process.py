"""Helpers shared by the integration tests that run the modules as processes (as Ansible runs them on a
managed host: the file under ``plugins/modules`` as ``__main__``, the JSON arguments on stdin).

* ``start``: a shell script inside the lab host ``linuxnet1``, in a process group of its own;
  ``killed``: the same, SIGKILLed (its group only) after a while.
* ``LAUNCHER``: runs a module after a few lines of Python (a setup file) that change one thing of the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
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
