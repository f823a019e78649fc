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
    expected = {"worker": 0.02, "args": 0.08, "ansiballz": 0.32, "module": 0.60, "result": 0.05}
    assert {k: converge[k] for k in expected} == pytest.approx(expected)
    assert converge["connection"] == pytest.approx(1.15 - sum(expected.values()))


def test_a_payload_kept_by_an_earlier_run_is_the_payload_phase() -> None:
    cached = LOG.replace(" 102 10.53: ANSIBALLZ: Creating module\n", "").replace(
        " 102 10.83: ANSIBALLZ: Done creating module", " 102 10.60: ANSIBALLZ: using cached module: /t/ansiballz_cache/x")
    converge = timeline.parse(cached)["tasks"][1]
    assert converge["ansiballz"] == pytest.approx(0.25)  # 10.60, then the wrapper until the next line (10.85)
    assert converge["module"] == pytest.approx(0.60)


def test_a_log_without_debug_lines_is_refused() -> None:
    with pytest.raises(ValueError):
        timeline.parse("PLAY RECAP\n")


SSH_LOG = """\
 100 20.00: starting run
TASK [Ping] ***
 100 20.10: entering _queue_task() for bench1/ansible.builtin.ping
 103 20.11: calling self._execute()
 103 20.20: ANSIBALLZ: Creating module
 103 20.30: ANSIBALLZ: Done creating module
 103 20.31: _low_level_execute_command(): starting
 103 20.32: _low_level_execute_command(): executing: /bin/sh -c 'sudo -H -S -n -u root /bin/sh -c "echo BECOME-SUCCESS-abc"'
 103 20.33: Initial state: awaiting_escalation: BECOME-SUCCESS-abc
 103 20.72: stdout chunk (state=1):
>>>BECOME-SUCCESS-abc
<<<

 103 20.72: become_success: (source=stdout, state=awaiting_escalation): 'BECOME-SUCCESS-abc'
 103 20.73: Sending initial data
 103 20.75: Sent initial data (4242 bytes)
 103 21.10: stdout chunk (state=3):
>>>{"ping": "pong"}
<<<

 103 21.11: stdout chunk (state=3):
>>><<<

 103 21.12: _low_level_execute_command() done: rc=0, stdout={"ping": "pong"}, stderr=
 103 21.13: _execute() done
 100 21.15: no more pending results, returning what we have
"""
JOURNAL = """\
20.6000 bench1 sshd[77]: Accepted publickey for ansible from 172.16.211.254 port 1 ssh2: ED25519 SHA256:x
20.6100 bench1 systemd-logind[50]: New session 3 of user ansible.
20.6500 bench1 systemd[900]: Reached target default.target - Main User Target.
20.7000 bench1 sudo[80]:  ansible : PWD=/home/ansible ; USER=root ; COMMAND=/bin/sh -c 'echo BECOME-SUCCESS-abc ; /usr/bin/python3'
20.9000 bench1 ansible-ansible.builtin.ping[81]: Invoked with data=pong
20.9500 bench1 systemd[1]: Reloading.
21.0500 bench1 systemd[1]: Finished linuxnet-bridge.service - linuxnet.bridge: restore
21.0600 bench1 kernel: noise
"""


def test_a_pipelined_become_run_over_ssh_is_split_by_controller_and_journal() -> None:
    tl = timeline.parse(SSH_LOG)
    (ping,) = tl["tasks"]
    # With pipelining the module run is the first command: the payload build is not counted twice.
    assert ping["args"] == pytest.approx(0.09) and ping["ansiballz"] == pytest.approx(0.11)
    assert ping["module"] == pytest.approx(0.80) and ping["connection"] == pytest.approx(0.02)
    journal = timeline.parse_journal(JOURNAL)
    assert [who for _ts, who, _msg in journal] == ["sshd", "systemd-logind", "sudo", "ansible-ansible.builtin.ping",
                                                   "systemd", "systemd"]  # the user manager and the kernel left out
    split = timeline.ssh_split(ping["ssh"], journal)
    expected = {"total": 0.80, "connect": 0.28, "session": 0.10, "become": 0.02, "transfer": 0.02, "startup": 0.15,
                "work": 0.20, "exit": 0.01, "systemd": 0.10}
    assert {k: split[k] for k in expected} == pytest.approx(expected)
    assert split["events"][0][0] == pytest.approx(0.28) and split["events"][0][1] == "sshd"


def test_a_reused_connection_has_no_connect_step() -> None:
    tl = timeline.parse(SSH_LOG)
    journal = [e for e in timeline.parse_journal(JOURNAL) if e[1] not in ("sshd", "systemd-logind")]
    split = timeline.ssh_split(tl["tasks"][0]["ssh"], journal)
    assert "connect" not in split and split["session"] == pytest.approx(0.38)  # ssh start to sudo
    without_journal = timeline.ssh_split(tl["tasks"][0]["ssh"], [])
    assert without_journal["session"] == pytest.approx(0.40) and "startup" not in without_journal
    assert without_journal["work"] == pytest.approx(0.35)  # from the module sent to its result


def test_the_ssh_report_compares_the_first_converge_with_the_re_runs() -> None:
    def phase(journal: str) -> dict:
        tl = timeline.parse(SSH_LOG)
        tl["tasks"][0]["ssh"] = timeline.ssh_split(tl["tasks"][0]["ssh"], timeline.parse_journal(journal))
        return tl

    warm = "\n".join(line for line in JOURNAL.splitlines() if "sshd" not in line and "Reloading" not in line
                     and "linuxnet-bridge" not in line)
    phases = {timeline.CONVERGE: phase(JOURNAL), timeline.RERUN: phase(warm), "teardown": phase(warm)}
    base = {k: 1.0 for k in ("bare", "rerun", "ping", "rerun_fresh", "ping_fresh")}
    text = timeline.render_ssh({10: {"phases": phases, "baseline": base, "walls": {"rerun": [1.0]},
                                     "tails": {"rerun": [0.12]}}}, 1)
    assert "| connect | 0.28 |  |  | +0.28 |" in text
    assert "| systemd | 0.10 |  |  | +0.10 |" in text
    assert "| rerun | 1.00 (0.12) |" in text
    assert "* +0.280 sshd: Accepted publickey" in text
