"""Start-up handshake of lab processes: a setup script prints READY once its sandbox is in place."""

from __future__ import annotations

import os
import selectors
import subprocess
import time


class NotReady(RuntimeError):
    """The process exited or stayed silent before printing READY; the message says which."""


def wait_ready(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Read *proc*'s stdout until ``READY``; raise NotReady on exit (with its stderr) or timeout.

    Closes stdout and stderr either way: later output of the process goes nowhere.
    """
    assert proc.stdout is not None and proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    out = b""
    try:
        while b"READY\n" not in out:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise NotReady(f"no READY within {timeout:.0f} s")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait(timeout=5)
                err = proc.stderr.read().decode(errors="replace").strip()
                raise NotReady(f"exited with rc={proc.returncode}: {err}")
            out += chunk
    finally:
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
