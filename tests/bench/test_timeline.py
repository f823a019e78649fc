"""tests.bench.timeline splits an ANSIBLE_DEBUG log into start-up and per-task phases."""

from __future__ import annotations

import pytest

from tests.bench import timeline

LOG = """\
 100 10.00: starting run
TASK [linuxnet.bridge.bridge_network : Validating arguments] ***
 100 10.20: entering _queue_task() for bench1/ansible.builtin.validate_argument_spec
 101 10.25: calling self._execute()
 101 10.30: _execute() done
 100 10.31: no more pending results, returning what we have
TASK [linuxnet.bridge.bridge_network : Converge networks and endpoints] ***
 100 10.40: entering _queue_task() for bench1/linuxnet.bridge.deployment
 102 10.42: calling self._execute()
 102 10.50: _low_level_execute_command(): starting
 102 10.51: _low_level_execute_command(): executing: /bin/sh -c 'echo ~ && sleep 0'
 102 10.52: done communicating
 102 10.53: ANSIBALLZ: Creating module
 102 10.83: ANSIBALLZ: Done creating module
 102 10.85: _low_level_execute_command(): executing: /bin/sh -c 'chmod u+rwx /r/AnsiballZ_deployment.py && sleep 0'
 102 10.86: done communicating
 102 10.87: _low_level_execute_command(): executing: /bin/sh -c '/usr/bin/python3 /r/AnsiballZ_deployment.py && sleep 0'
 102 11.47: done communicating
 102 11.48: _low_level_execute_command(): executing: /bin/sh -c 'rm -f -r /r/ > /dev/null 2>&1 && sleep 0'
 102 11.49: done communicating
 102 11.50: _execute() done
 100 11.55: no more pending results, returning what we have
 100 11.60: RUNNING CLEANUP
"""


def test_phases_of_a_module_task_and_an_action_only_task() -> None:
    tl = timeline.parse(LOG)
    assert tl["startup"] == pytest.approx(0.20) and tl["total"] == pytest.approx(1.60) and tl["end"] == pytest.approx(0.05)
    check, converge = tl["tasks"]
    assert check["name"] == "Validating arguments" and check["task"] == pytest.approx(0.11)
    assert set(check) == {"name", "task"}  # no module through the connection
    assert converge["name"] == "Converge networks and endpoints" and converge["task"] == pytest.approx(1.15)
    expected = {"worker": 0.02, "args": 0.08, "ansiballz": 0.30, "module": 0.60, "result": 0.05}
    assert {k: converge[k] for k in expected} == pytest.approx(expected)
    assert converge["connection"] == pytest.approx(1.15 - sum(expected.values()))


def test_a_log_without_debug_lines_is_refused() -> None:
    with pytest.raises(ValueError):
        timeline.parse("PLAY RECAP\n")
