# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark helper (tests/bench/fleet.py): per host, the seconds from its first task's start to
its last task's result, written as JSON to $LINUXNET_BENCH_HOST_TIMES at the end of the run."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_host_times
type: aggregate
short_description: per-host task time span (benchmark helper)
description: Writes a JSON object (host name to seconds) to the file named by LINUXNET_BENCH_HOST_TIMES.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_host_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.spans: dict[str, list[float]] = {}

    def v2_runner_on_start(self, host, task) -> None:
        now = time.monotonic()
        self.spans.setdefault(host.get_name(), [now, now])

    def _done(self, result, *_args, **_kwargs) -> None:
        span = self.spans.get(result._host.get_name())
        if span is not None:
            span[1] = time.monotonic()

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = v2_runner_on_unreachable = _done

    def v2_playbook_on_stats(self, stats) -> None:
        path = os.environ.get("LINUXNET_BENCH_HOST_TIMES")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump({host: end - start for host, (start, end) in self.spans.items()}, handle)
