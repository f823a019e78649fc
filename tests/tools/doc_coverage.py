"""Module documentation coverage: every RETURN value has a sample, and EXAMPLES use every state.

Reads the documentation as users see it (`ansible-doc --json`, doc fragments merged). Run from the
checkout with the venv on PATH (`make lint`; module names as arguments check only those); prints each gap and exits 1 on any.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def missing_samples(values: dict, prefix: str = "") -> list[str]:
    """RETURN keys (nested ones under `contains` too) without a `sample`."""
    gaps = []
    for key, spec in (values or {}).items():
        name = f"{prefix}{key}"
        # A container whose every member has a sample is documented by them.
        if "sample" not in spec and not spec.get("contains"):
            gaps.append(name)
        gaps += missing_samples(spec.get("contains") or {}, f"{name}.")
    return gaps


def gaps_of(entry: dict) -> list[str]:
    doc, text = entry.get("doc") or {}, entry.get("examples") or ""
    gaps = [f"RETURN {name}: no sample" for name in missing_samples(entry.get("return") or {})]
    examples = yaml.safe_load(text) or []
    if not examples:
        gaps.append("EXAMPLES: none")
    state = (doc.get("options") or {}).get("state") or {}
    used = set(re.findall(r"^\s*state:\s*(\w+)", text, re.M))
    # A task that leaves state out uses the default; every example task of these modules is a module call.
    if state.get("default"):
        used.add(state["default"])
    gaps += [f"EXAMPLES: no task with state: {s}" for s in state.get("choices") or [] if s not in used]
    return gaps


def main() -> int:
    names = [f"linuxnet.bridge.{m}" for m in sys.argv[1:]] or [
        f"linuxnet.bridge.{p.stem}" for p in sorted((ROOT / "plugins/modules").glob("*.py"))]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.environ.get("LINUXNET_COLLECTIONS_PATH", str(ROOT / ".collections")))
    out = subprocess.run(["ansible-doc", "--json", "-t", "module", *names], env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return 1
    failed = 0
    for name, entry in sorted(json.loads(out.stdout).items()):
        for gap in gaps_of(entry):
            print(f"{name}: {gap}")
            failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main())
