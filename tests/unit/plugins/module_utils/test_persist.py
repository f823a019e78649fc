"""Boot-time restore and endpoint services (``_persist``, ``_restore``): validation of every service
field, the unit files, the saved-state format, the engine's zip application and the systemctl
commands around a file change (pure; no root, no systemd). The unit on booted machines, with a
reboot, is molecule/machine; the restore against a kernel is tests/integration/test_persist.py.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_persist.py -q``
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _persist as p
from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import plan_deployment
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

from .fixtures.topology import SEED_ENDPOINTS, SEED_NETWORKS

AT = "linuxnet_endpoints[2].service"


def svc(value: object, name: str = "web", mode: str = "bridge") -> dict | None:
    return p.endpoint_service(value, AT, name, mode)


# -- validation -----------------------------------------------------------------------------------
def test_service_defaults_and_normalization() -> None:
    assert svc({"command": "python3 -m http.server 80"}) == {
        "command": "python3 -m http.server 80", "user": None, "restart": "on-failure", "environment": {}}
    assert svc({"command": ["/bin/echo", 1], "restart": False, "environment": {"A": 1}, "user": "www-data"}) == {
        "command": ["/bin/echo", "1"], "user": "www-data", "restart": "no", "environment": {"A": "1"}}
    assert svc({"unit": "nginx.service"}) == {"unit": "nginx.service"}
    assert svc({"unit": "getty@tty1.service"}) == {"unit": "getty@tty1.service"}
    assert svc(None) is None


@pytest.mark.parametrize(("value", "name", "mode", "message"), [
    ("sleep 1", "web", "bridge", f"{AT}: a service is a dict"),
    ({"command": "x", "image": "nginx"}, "web", "bridge", f"{AT}.image: unknown field"),
    ({"command": "x"}, "web", "host", f"{AT}: endpoint web is in host mode"),
    ({"command": "x"}, "a+b", "bridge", f"{AT}: endpoint 'a+b' cannot name a systemd unit"),
    ({"command": "x"}, "a@b", "bridge", f"{AT}: endpoint 'a@b' cannot name a systemd unit"),
    ({}, "web", "bridge", f"{AT}: give either command"),
    ({"command": "x", "unit": "a.service"}, "web", "bridge", f"{AT}: give either command"),
    ({"unit": "a.service", "user": "x"}, "web", "bridge", f"{AT}.user: only for a command"),
    ({"unit": "a.service\nExecStartPre=/bin/evil"}, "web", "bridge", f"{AT}.unit: "),
    ({"unit": "a.socket"}, "web", "bridge", f"{AT}.unit: 'a.socket' is not a service unit"),
    ({"unit": "../a.service"}, "web", "bridge", f"{AT}.unit: "),
    ({"unit": "linuxnet-bridge.service"}, "web", "bridge", f"{AT}.unit: linuxnet-bridge.service is a name the collection"),
    ({"command": "run\nExecStartPre=/bin/evil"}, "web", "bridge", f"{AT}.command: command 'run\\nExecStartPre"),
    ({"command": "run\r"}, "web", "bridge", f"{AT}.command: "),
    ({"command": "run \\"}, "web", "bridge", f"{AT}.command: a trailing backslash"),
    ({"command": "  "}, "web", "bridge", f"{AT}.command: the command is empty"),
    ({"command": []}, "web", "bridge", f"{AT}.command: an empty list"),
    ({"command": ["", "x"]}, "web", "bridge", f"{AT}.command[0]: the program is empty"),
    ({"command": ["a", "b\nc"]}, "web", "bridge", f"{AT}.command[1]: argument"),
    ({"command": ["a", {"b": 1}]}, "web", "bridge", f"{AT}.command[1]: argument must be a string"),
    ({"command": "x", "user": "root\nUser=evil"}, "web", "bridge", f"{AT}.user: "),
    ({"command": "x", "user": "a b"}, "web", "bridge", f"{AT}.user: 'a b' is not a user name"),
    ({"command": "x", "restart": "unless-stopped"}, "web", "bridge", f"{AT}.restart: 'unless-stopped' is not one of"),
    ({"command": "x", "environment": ["A=1"]}, "web", "bridge", f"{AT}.environment: a dict"),
    ({"command": "x", "environment": {"A-B": "1"}}, "web", "bridge", f"{AT}.environment: 'A-B' is not a variable"),
    ({"command": "x", "environment": {"A\nB": "1"}}, "web", "bridge", f"{AT}.environment: 'A\\nB'"),
    ({"command": "x", "environment": {"A": "1\nExecStart=/bin/evil"}}, "web", "bridge", f"{AT}.environment.A: value"),
    ({"command": "x", "environment": {"A": True}}, "web", "bridge", f"{AT}.environment.A: value must be a string"),
])
def test_service_refused_with_field(value: object, name: str, mode: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        svc(value, name, mode)
    assert str(err.value).startswith(message), str(err.value)


def test_plan_deployment_checks_services_before_anything_changes() -> None:
    endpoints = [dict(ep) for ep in SEED_ENDPOINTS]
    endpoints[2] = {**endpoints[2], "service": {"command": "x", "restart": "sometimes"}}
    with pytest.raises(ValidationError, match=r"^linuxnet_endpoints\[2\]\.service\.restart: 'sometimes'"):
        plan_deployment(SEED_NETWORKS, endpoints)


def test_two_endpoints_cannot_move_the_same_unit() -> None:
    endpoints = [{"name": "a", "service": {"unit": "nginx.service"}}, {"name": "b", "service": {"unit": "nginx.service"}}]
    with pytest.raises(ValidationError, match=r"^linuxnet_endpoints\[1\]\.service\.unit: nginx.service already runs in endpoint a"):
        p.services(endpoints)


@pytest.mark.parametrize(("endpoint", "message"), [
    ({"network": "bridge", "service": {"command": "sleep 100"}}, "linuxnet_endpoints[1].name: a namespace name is required"),
    ({"name": None, "service": {"command": "x"}}, "linuxnet_endpoints[1].name: a namespace name is required"),
    ({"name": 5, "service": {"command": "x"}}, "linuxnet_endpoints[1].name: a namespace name is required"),
    ({"name": ".web", "service": {"command": "x"}}, "linuxnet_endpoints[1].name: namespace name '.web' must be"),
    ({"name": "-web", "service": {"command": "x"}}, "linuxnet_endpoints[1].name: namespace name '-web' must be"),
])
def test_services_checks_the_endpoint_name_first(endpoint: dict, message: str) -> None:
    """services() runs before the plan checks the endpoints (the deployment module, state=present
    with persist): an endpoint without a usable name is the same clean error the plan gives."""
    with pytest.raises(ValidationError) as err:
        p.services([{"name": "db", "network": "bridge"}, endpoint])
    assert str(err.value).startswith(message), str(err.value)
    with pytest.raises(ValidationError) as err:
        plan_deployment(SEED_NETWORKS, [endpoint])
    assert str(err.value).split(":", 1)[0] == "linuxnet_endpoints[0].name"


# -- unit files -----------------------------------------------------------------------------------
def test_service_unit_runs_in_the_namespace_with_its_etc_files() -> None:
    text = p.service_unit("web", svc({"command": ["python3", "-m", "http.server", "80"], "user": "nobody",
                                      "restart": "always", "environment": {"GREETING": 'say "hi" 100% $HOME\\'}}))
    assert text == "\n".join([
        p.MARKER,
        "[Unit]",
        "Description=linuxnet.bridge endpoint web",
        "Requires=linuxnet-bridge.service",
        "After=linuxnet-bridge.service",
        "",
        "[Service]",
        'ExecStart="python3" "-m" "http.server" "80"',
        "Restart=always",
        "User=nobody",
        'Environment="GREETING=say \\"hi\\" 100%% $HOME\\\\"',
        "NetworkNamespacePath=/run/netns/web",
        "BindReadOnlyPaths=-/etc/netns/web/hosts:/etc/hosts",
        "BindReadOnlyPaths=-/etc/netns/web/resolv.conf:/etc/resolv.conf",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def test_exec_line_takes_arguments_literally() -> None:
    assert p.exec_line(["/bin/sh", "-c", 'echo "$X" 50% \\n']) == '"/bin/sh" "-c" "echo \\"$$X\\" 50%% \\\\n"'
    assert p.exec_line("/bin/sh -c 'echo $X 50%'") == "/bin/sh -c 'echo $X 50%%'"


def test_every_rendered_line_is_one_directive() -> None:
    """Whatever passes validation stays on its own line: no value can add a directive."""
    service = svc({"command": ["a", 'b" \\'], "environment": {"X": "\\"}, "user": "u"})
    for text in (p.service_unit("web", service), p.dropin("web"), p.restore_unit("/usr/bin/python3")):
        for line in text.splitlines():
            assert line == "" or line.startswith(("#", "[")) or "=" in line


def test_dropin_moves_an_existing_unit() -> None:
    assert p.dropin("web").splitlines()[1:] == [
        "[Unit]", "Requires=linuxnet-bridge.service", "After=linuxnet-bridge.service", "", "[Service]",
        "NetworkNamespacePath=/run/netns/web",
        "BindReadOnlyPaths=-/etc/netns/web/hosts:/etc/hosts",
        "BindReadOnlyPaths=-/etc/netns/web/resolv.conf:/etc/resolv.conf",
    ]


def test_restore_unit_order_and_commands() -> None:
    lines = p.restore_unit("/usr/bin/python3").splitlines()
    run = "/usr/bin/python3 /usr/lib/linuxnet-bridge/linuxnet-bridge.pyz --state /etc/linuxnet-bridge/state.json"
    for expected in ("Type=oneshot", "RemainAfterExit=yes", f"ExecStart={run}", f"ExecReload={run}",
                     "WantedBy=multi-user.target", "ReloadPropagatedFrom=firewalld.service",
                     "Before=network.target network-online.target",
                     "ConditionPathExists=/etc/linuxnet-bridge/state.json"):
        assert expected in lines
    after = " ".join(line for line in lines if line.startswith("After="))
    for unit in ("systemd-modules-load.service", "systemd-sysctl.service", "local-fs.target",
                 "netfilter-persistent.service", "firewalld.service", "nftables.service"):
        assert unit in after
    # docker.service is After=network-online.target: ordering after it would be a cycle.
    assert "docker.service" not in after


def test_sysctls_and_modules_of_a_plan() -> None:
    plan = plan_deployment(SEED_NETWORKS, SEED_ENDPOINTS)
    assert p.sysctl_conf(plan).splitlines()[1:] == [
        "net.ipv4.ip_forward = 1",
        "net.bridge.bridge-nf-call-iptables = 1",
        "net/ipv4/conf/docker0/route_localnet = 1",
        "net/ipv4/conf/br-usernet/route_localnet = 1",
    ]
    assert p.modules_conf(plan).splitlines()[1:] == ["br_netfilter"]
    empty = plan_deployment([], [])
    assert p.sysctl_conf(empty) is None and p.modules_conf(empty) is None


# -- saved state ----------------------------------------------------------------------------------
OPTIONS = {"chain_prefix": "DOCKER", "firewall_backend": "nftables", "iptables_variant": "iptables-nft"}


def test_saved_state_round_trip_keeps_allocated_addresses() -> None:
    plan = plan_deployment(SEED_NETWORKS, SEED_ENDPOINTS)
    text = p.state_json(p.saved_state(plan, OPTIONS))
    state = p.load_state(text)
    assert state["format"] == 1 and state["options"] == OPTIONS  # what converge() takes as keywords
    assert set(state["plan"]) == set(p.PLAN_KEYS)
    assert state["plan"]["veth"] == plan["veth"]  # the addresses as allocated, not re-planned at boot
    assert text == p.state_json(json.loads(text))  # stable text: an unchanged plan is no change


def test_restore_passes_the_saved_options_to_the_engine() -> None:
    import inspect

    from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment
    from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import MODULE_OPTIONS

    # The module saves every option of MODULE_OPTIONS; converge() must take each as a keyword.
    assert set(MODULE_OPTIONS) <= set(inspect.signature(_deployment.converge).parameters)


PLAN_OK = '"plan": {"netns": [], "host_groups": [], "bridge": [], "veth": [], "firewall": [], "port_mapping": []}'


@pytest.mark.parametrize(("text", "message"), [
    ("{", "/s: not JSON"),
    ('{"format": 2}', "/s: not a linuxnet.bridge state of format 1"),
    ('{"format": 1, "plan": {"netns": []}, "options": {}}', "/s: incomplete state (missing host_groups"),
    ('{"format": 1, ' + PLAN_OK + "}", "/s: incomplete state (missing firewall options)"),
    ('{"format": 1, ' + PLAN_OK + ', "options": {"chain_prefix": 1}}', "/s: incomplete state (missing firewall options)"),
])
def test_load_state_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        p.load_state(text, "/s")
    assert str(err.value).startswith(message)


# -- the engine as a zip application --------------------------------------------------------------
def test_bundle_is_deterministic_and_self_contained(tmp_path) -> None:
    sources = p.engine_sources()
    data = p.bundle(sources)
    assert data == p.bundle(p.engine_sources())
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
    assert names == sorted(names) and "__main__.py" in names
    assert "ansible/module_utils/common/arg_spec.py" in names
    assert "ansible_collections/linuxnet/bridge/plugins/module_utils/_deployment.py" in names
    assert not [n for n in names if "/plugins/modules/" in n or n.startswith("ansible/plugins")]
    bundle = tmp_path / "linuxnet-bridge.pyz"
    bundle.write_bytes(data)
    # Isolated interpreter, the bundle first: every ansible module the runner imports comes from it
    # (the venv's own ansible-core is shadowed by the bundle's regular packages; six.moves aliases
    # of the standard library are not ansible's files).
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import ansible_collections.linuxnet.bridge.plugins.module_utils._restore;"
        "bad = [n for n, m in sys.modules.items() if n.startswith('ansible') and getattr(m, '__name__', n) == n"
        " and getattr(m, '__file__', None)"
        " and not m.__file__.startswith(sys.argv[1])]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-I", "-c", probe, str(bundle)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    runner = [sys.executable, "-I", str(bundle), "--state", str(tmp_path / "missing.json")]
    if os.geteuid() == 0:  # its bytecode cache goes under /run/linuxnet: a private /run, not this machine's
        runner = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  'mount -t tmpfs linuxnet-test-run /run && exec "$@"', "sh", *runner]
    run = subprocess.run(runner, capture_output=True, text=True, check=False)
    assert run.returncode == 1 and "missing.json" in run.stderr and run.stdout == ""


def test_wanted_files_of_a_host() -> None:
    plan = plan_deployment(SEED_NETWORKS, SEED_ENDPOINTS)
    services = p.services([{"name": "web", "service": {"command": "python3 -m http.server 80"}},
                           {"name": "c1", "service": {"unit": "nginx.service"}}])
    files = p.wanted_files(plan, services, OPTIONS, b"zip", "/usr/bin/python3")
    assert sorted(files) == [
        "/etc/linuxnet-bridge/state.json",
        "/etc/modules-load.d/linuxnet-bridge.conf",
        "/etc/sysctl.d/90-linuxnet-bridge.conf",
        "/etc/systemd/system/linuxnet-bridge.service",
        "/etc/systemd/system/linuxnet-endpoint-web.service",
        "/etc/systemd/system/nginx.service.d/50-linuxnet-bridge.conf",
        "/usr/lib/linuxnet-bridge/linuxnet-bridge.pyz",
    ]
    assert p.unit_of("/etc/systemd/system/nginx.service.d/50-linuxnet-bridge.conf") == "nginx.service"
    assert p.own_service("/etc/systemd/system/linuxnet-endpoint-web.service")
    assert not p.own_service("/etc/systemd/system/linuxnet-bridge.service")


# -- systemctl around a change --------------------------------------------------------------------
WEB = "/etc/systemd/system/linuxnet-endpoint-web.service"
OLD = "/etc/systemd/system/linuxnet-endpoint-old.service"
DROP = "/etc/systemd/system/nginx.service.d/50-linuxnet-bridge.conf"
UNIT = "/etc/systemd/system/linuxnet-bridge.service"
ON = {"UnitFileState": "enabled", "ActiveState": "active"}


def test_systemctl_first_install() -> None:
    wanted = {UNIT: b"u", WEB: b"w", DROP: b"d", p.STATE_FILE: b"s"}
    write, remove = p.changes(wanted, {})
    assert (write, remove) == (sorted(wanted), [])
    before, after = p.systemctl_steps("present", write, remove, {}, {})
    assert before == []
    # one reload for the files, one job transaction starting the restore and the service it requires
    assert after == [["systemctl", "daemon-reload"],
                     ["systemctl", "enable", "--no-reload", "--now", "linuxnet-bridge.service", "linuxnet-endpoint-web.service"],
                     ["systemctl", "try-restart", "nginx.service"]]


def test_systemctl_converged_host_gets_nothing() -> None:
    current = {UNIT: b"u", WEB: b"w", DROP: b"d"}
    units = {"linuxnet-bridge.service": ON, "linuxnet-endpoint-web.service": ON, "nginx.service": ON}
    assert p.changes(current, dict(current)) == ([], [])
    assert p.systemctl_steps("present", [], [], current, units) == ([], [])
    # A command that exited (restart: no) is not started again by every run.
    units["linuxnet-endpoint-web.service"] = {"UnitFileState": "enabled", "ActiveState": "inactive"}
    assert p.systemctl_steps("present", [], [], current, units) == ([], [])


def test_systemctl_changed_and_removed_services() -> None:
    current = {UNIT: b"u", WEB: b"w", OLD: b"o", DROP: b"d"}
    wanted = {UNIT: b"u", WEB: b"w2"}
    units = {n: ON for n in ("linuxnet-bridge.service", "linuxnet-endpoint-web.service", "linuxnet-endpoint-old.service", "nginx.service")}
    write, remove = p.changes(wanted, current)
    assert (write, remove) == ([WEB], [OLD, DROP])
    before, after = p.systemctl_steps("present", write, remove, current, units)
    assert before == [["systemctl", "disable", "--no-reload", "--now", "linuxnet-endpoint-old.service"]]
    assert after == [["systemctl", "daemon-reload"], ["systemctl", "restart", "linuxnet-endpoint-web.service"],
                     ["systemctl", "try-restart", "nginx.service"]]


def test_systemctl_absent() -> None:
    current = {UNIT: b"u", WEB: b"w", DROP: b"d", p.BUNDLE: b"z"}
    units = {n: ON for n in ("linuxnet-bridge.service", "linuxnet-endpoint-web.service", "nginx.service")}
    write, remove = p.changes({}, current)
    before, after = p.systemctl_steps("absent", write, remove, current, units)
    assert before == [["systemctl", "disable", "--no-reload", "--now", "linuxnet-endpoint-web.service"],
                      ["systemctl", "disable", "--no-reload", "linuxnet-bridge.service"]]
    # The drop-in goes before the restore unit stops: nginx no longer requires it and keeps running.
    assert after == [["systemctl", "daemon-reload"], ["systemctl", "try-restart", "nginx.service"],
                     ["systemctl", "stop", "linuxnet-bridge.service"]]
    assert p.systemctl_steps("absent", [], [], {}, {}) == ([], [])


class ShowModule:
    """check mode; ``systemctl show`` answers ``show``."""
    check_mode = True

    def __init__(self, show: str) -> None:
        self.show = show
        self.commands: list[list[str]] = []

    def run_command(self, argv: list[str], **_kw):
        self.commands.append(argv)
        return 0, self.show, ""


def test_parse_show() -> None:
    text = "Id=a.service\nActiveState=active\nUnitFileState=enabled\n\nActiveState=inactive\nId=b.service\nUnitFileState=\n"
    assert p.parse_show(text) == {
        "a.service": {"Id": "a.service", "ActiveState": "active", "UnitFileState": "enabled"},
        "b.service": {"Id": "b.service", "ActiveState": "inactive", "UnitFileState": ""},
    }


def test_runner_module_stand_in(tmp_path) -> None:
    from ansible_collections.linuxnet.bridge.plugins.module_utils._restore import HostModule

    module = HostModule(check_mode=True)
    assert module.run_command(["cat"], data="x") == (0, "x\n", "")
    assert module.run_command(["cat"], data="x", binary_data=True) == (0, "x", "")
    assert module.run_command(["sh", "-c", "echo e >&2; exit 3"])[0::2] == (3, "e\n")
    assert module.get_bin_path("sh") and module.get_bin_path("no-such-binary-here") is None
    assert os.path.isabs(module.get_bin_path("sh"))


# -- the deployment module's persist option (one module run for converge and boot-time restore) ----
WITH_SERVICE = [{"name": "c1", "network": "bridge"}, {"name": "web", "network": "bridge", "service": {"command": "x"}}]


@pytest.mark.parametrize(("state", "persist", "expected"), [
    ("present", None, None), ("present", True, "present"), ("present", False, "absent"),
    ("absent", None, None), ("absent", False, "absent"),
])
def test_requested(state: str, persist: bool | None, expected: str | None) -> None:
    assert p.requested(state, persist, [{"name": "c1", "network": "bridge"}]) == expected


def test_requested_refuses_contradictions() -> None:
    with pytest.raises(ValidationError, match="^persist: true installs the boot-time restore of a deployment that state=absent"):
        p.requested("absent", True, [])
    with pytest.raises(ValidationError, match=r"^linuxnet_endpoints: a service runs in its endpoint only with linuxnet_persist: true .*: web$"):
        p.requested("present", False, WITH_SERVICE)
    assert p.requested("present", True, WITH_SERVICE) == "present"
    assert p.requested("absent", False, WITH_SERVICE) == "absent"  # a teardown removes the services


class FakeModule:
    check_mode = True

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.commands: list[list[str]] = []

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)

    def run_command(self, argv: list[str], **_kw):
        self.commands.append(argv)
        return 0, "", ""


def test_checked_services_and_apply_without_systemd(monkeypatch) -> None:
    monkeypatch.setattr(p, "systemd_running", lambda: False)
    assert p.checked_services("present", [{"name": "c1", "network": "bridge"}]) == {}
    assert p.checked_services("absent", WITH_SERVICE) == {}
    with pytest.raises(ValidationError, match=r"^linuxnet_endpoints: services \(web\) need a host booted with systemd"):
        p.checked_services("present", WITH_SERVICE)
    module = FakeModule()
    result = p.apply(module, "present", plan_deployment(SEED_NETWORKS, SEED_ENDPOINTS, []), {}, {})
    assert result == {"changed": False, "installed": False, "written": [], "removed": [], "commands": [], "services": {},
                      "diff": []}
    assert module.warnings == [p.NOT_INSTALLED] and module.commands == []


def test_apply_present_installs_the_files_in_one_pass(monkeypatch) -> None:
    """With systemd and nothing installed: every file is to be written, and the unit enabled (check mode)."""
    monkeypatch.setattr(p, "systemd_running", lambda: True)
    monkeypatch.setattr(p, "current_files", lambda: {})
    plan = plan_deployment(SEED_NETWORKS, SEED_ENDPOINTS, [])
    services = p.checked_services("present", [{"name": "web", "network": "bridge", "service": {"command": "x"}}])
    module = FakeModule()
    result = p.apply(module, "present", plan, services, {"chain_prefix": "LINUXNET"})
    assert result["installed"] and result["changed"]
    assert p.STATE_FILE in result["written"] and p.BUNDLE in result["written"]
    assert result["services"] == {"web": "linuxnet-endpoint-web.service"}
    assert f"systemctl enable --no-reload --now {p.UNIT} linuxnet-endpoint-web.service" in result["commands"]
    assert module.commands[0][:2] == ["systemctl", "show"] and len(module.commands) == 1  # check mode: only the query


def test_systemctl_without_unit_file_changes_lets_enable_reload() -> None:
    """No unit file written or removed: no daemon-reload, so enable and disable keep their own."""
    current = {UNIT: b"u", WEB: b"w"}
    stopped = {"linuxnet-bridge.service": {"UnitFileState": "disabled", "ActiveState": "inactive"},
               "linuxnet-endpoint-web.service": ON}
    assert p.systemctl_steps("present", [p.STATE_FILE], [], current, stopped) == (
        [], [["systemctl", "enable", "--now", "linuxnet-bridge.service"]])


# -- a killed run's debts (/run/linuxnet/persist-pending.json) -----------------------------------------
def test_debts_of_a_change() -> None:
    assert p.debts([WEB, DROP, p.STATE_FILE], [OLD]) == {
        "daemon_reload": True, "restart": ["linuxnet-endpoint-web.service"], "try_restart": ["nginx.service"],
        "stop": ["linuxnet-endpoint-old.service"]}
    # The state file and the engine are read at boot only: they owe systemd nothing.
    assert not p.owes(p.debts([p.STATE_FILE, p.BUNDLE], []))
    assert p.merge_debts(None, p.debts([WEB], [])) == p.debts([WEB], [])
    assert p.merge_debts(p.debts([], [DROP]), p.debts([WEB], [])) == {
        "daemon_reload": True, "restart": ["linuxnet-endpoint-web.service"], "try_restart": ["nginx.service"], "stop": []}


def test_killed_run_is_paid_when_the_files_are_as_wanted() -> None:
    """The files a killed run wrote are as wanted, so only its record says the services run the old ones."""
    current = {UNIT: b"u", WEB: b"w2", DROP: b"d"}
    units = {n: ON for n in ("linuxnet-bridge.service", "linuxnet-endpoint-web.service", "nginx.service")}
    assert p.systemctl_steps("present", [], [], current, units) == ([], [])  # the defect: nothing to do
    owed = p.debts([WEB, DROP], [])
    assert p.systemctl_steps("present", [], [], current, units, owed) == ([], [
        ["systemctl", "daemon-reload"], ["systemctl", "restart", "linuxnet-endpoint-web.service"],
        ["systemctl", "try-restart", "nginx.service"]])
    # A service the killed run was to start (enabled, not running) is started; enable reloads no more.
    units["linuxnet-endpoint-web.service"] = {"UnitFileState": "enabled", "ActiveState": "failed"}
    assert p.systemctl_steps("present", [], [], current, units, p.debts([WEB], []))[1] == [
        ["systemctl", "daemon-reload"], ["systemctl", "enable", "--no-reload", "--now", "linuxnet-endpoint-web.service"]]


def test_debts_of_units_no_longer_wanted_or_gone() -> None:
    units = {"linuxnet-bridge.service": ON, "linuxnet-endpoint-web.service": ON, "linuxnet-endpoint-old.service": ON,
             "nginx.service": {"LoadState": "not-found", "ActiveState": "inactive"}}
    owed = {"daemon_reload": True, "restart": ["linuxnet-endpoint-web.service", "linuxnet-endpoint-gone.service"],
            "try_restart": ["nginx.service"], "stop": ["linuxnet-endpoint-old.service"]}
    # web's service is now removed: disabled and stopped (before), not restarted; gone has no file;
    # nginx is no unit systemd has; old's file is gone but it still runs: stopped.
    before, after = p.systemctl_steps("present", [], [WEB], {UNIT: b"u", WEB: b"w"}, units, owed)
    assert before == [["systemctl", "disable", "--no-reload", "--now", "linuxnet-endpoint-web.service"]]
    assert after == [["systemctl", "daemon-reload"], ["systemctl", "stop", "linuxnet-endpoint-old.service"]]
    # A file changed again by this run is restarted once; absent restarts nothing it owed.
    assert p.systemctl_steps("present", [WEB], [], {UNIT: b"u", WEB: b"w"}, units, owed)[1] == [
        ["systemctl", "daemon-reload"], ["systemctl", "stop", "linuxnet-endpoint-old.service"],
        ["systemctl", "restart", "linuxnet-endpoint-web.service"]]
    assert p.systemctl_steps("absent", [], [], {}, {}, {"daemon_reload": True, "restart": ["linuxnet-endpoint-web.service"]}) == (
        [], [["systemctl", "daemon-reload"]])


def test_pending_record_round_trip() -> None:
    owed = p.debts([WEB, DROP], [OLD])
    assert p.load_pending(p.pending_json(owed)) == owed
    assert p.load_pending(p.pending_json(owed).encode()) == owed


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not JSON"),
    ('{"format": 2, "daemon_reload": true}', "not a linuxnet.bridge pending record of format 1"),
    ('{"format": 1, "daemon_reload": true, "start": []}', "unknown field start"),
    ('{"format": 1, "daemon_reload": "yes"}', "daemon_reload must be true or false"),
    ('{"format": 1, "daemon_reload": true, "restart": "linuxnet-endpoint-web.service"}', "restart must be a list"),
    # every name whole: an argument of systemctl, and restart/stop only for our own services
    ('{"format": 1, "daemon_reload": true, "restart": ["nginx.service"]}', r"restart: 'nginx.service' is not a unit name of ours"),
    ('{"format": 1, "daemon_reload": true, "stop": ["linuxnet-endpoint-web.service\\n"]}', "stop: 'linuxnet-endpoint-web.service\\\\n'"),
    ('{"format": 1, "daemon_reload": true, "try_restart": ["-Hhost.service"]}', "try_restart: '-Hhost.service'"),
    ('{"format": 1, "daemon_reload": true, "try_restart": ["nginx.service x.service"]}', "try_restart: 'nginx.service x.service'"),
])
def test_pending_record_refused_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=f"^/run/linuxnet/persist-pending.json: .*{message}"):
        p.load_pending(text)


class HostModule(FakeModule):
    """``systemctl show`` answers every unit enabled and active; ``kill_at``: a command that ends the
    run as a SIGKILL would (nothing after it happens)."""

    def __init__(self, check_mode: bool, kill_at: str = "") -> None:
        super().__init__()
        self.check_mode = check_mode
        self.kill_at = kill_at

    def run_command(self, argv: list[str], **_kw):
        self.commands.append(argv)
        if argv[1] == "show":
            names = argv[argv.index("--") + 1:]
            return 0, "\n\n".join(f"Id={n}\nLoadState=loaded\nUnitFileState=enabled\nActiveState=active" for n in names), ""
        if argv[1] == self.kill_at:
            raise SystemExit(-9)
        return 0, "", ""


def test_sync_records_debts_and_the_next_run_pays_them(monkeypatch, tmp_path) -> None:
    """A run killed before its daemon-reload leaves the record; the next run (check mode first)
    reloads and restarts, then forgets the record; the one after changes nothing."""
    monkeypatch.setattr(p, "systemd_running", lambda: True)
    monkeypatch.setattr(p, "UNIT_DIR", str(tmp_path / "system"))
    monkeypatch.setattr(p, "PENDING_FILE", str(tmp_path / "run" / "pending.json"))
    for name in ("STATE_FILE", "BUNDLE", "SYSCTL_FILE", "MODULES_FILE"):
        monkeypatch.setattr(p, name, str(tmp_path / name))
    web, drop = f"{p.UNIT_DIR}/linuxnet-endpoint-web.service", f"{p.UNIT_DIR}/nginx.service.d/{p.DROPIN}"
    old = {web: (p.MARKER + "\nExecStart=sleep 1001\n").encode(), drop: (p.MARKER + "\n").encode()}
    new = {web: (p.MARKER + "\nExecStart=sleep 1002\n").encode(), drop: (p.MARKER + "\n#2\n").encode()}
    assert p.sync(HostModule(check_mode=False), "present", old)["changed"]
    assert not os.path.exists(p.PENDING_FILE)  # a finished run leaves no record

    with pytest.raises(SystemExit):
        p.sync(HostModule(check_mode=False, kill_at="daemon-reload"), "present", new)
    assert p.current_files() == new  # the files as wanted...
    assert p.load_pending(open(p.PENDING_FILE).read()) == {   # ...and what the run owed
        "daemon_reload": True, "restart": ["linuxnet-endpoint-web.service"], "try_restart": ["nginx.service"], "stop": []}
    paid = ["systemctl daemon-reload", "systemctl restart linuxnet-endpoint-web.service", "systemctl try-restart nginx.service"]

    check = HostModule(check_mode=True)
    result = p.sync(check, "present", new)
    assert (result["changed"], result["written"], result["commands"]) == (True, [], paid)
    assert [argv[1] for argv in check.commands] == ["show"] and os.path.exists(p.PENDING_FILE)  # writes nothing

    module = HostModule(check_mode=False)
    result = p.sync(module, "present", new)
    assert (result["changed"], result["written"], result["commands"]) == (True, [], paid)
    assert [" ".join(argv) for argv in module.commands[1:]] == paid and not os.path.exists(p.PENDING_FILE)
    result = p.sync(HostModule(check_mode=False), "present", new)
    assert (result["changed"], result["commands"]) == (False, [])


def test_sync_pays_everything_for_an_unreadable_record(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(p, "systemd_running", lambda: True)
    monkeypatch.setattr(p, "UNIT_DIR", str(tmp_path / "system"))
    monkeypatch.setattr(p, "PENDING_FILE", str(tmp_path / "pending.json"))
    for name in ("STATE_FILE", "BUNDLE", "SYSCTL_FILE", "MODULES_FILE"):
        monkeypatch.setattr(p, name, str(tmp_path / name))
    files = {f"{p.UNIT_DIR}/linuxnet-endpoint-web.service": p.MARKER.encode(),
             f"{p.UNIT_DIR}/nginx.service.d/{p.DROPIN}": p.MARKER.encode()}
    p.sync(HostModule(check_mode=False), "present", files)
    with open(p.PENDING_FILE, "w") as handle:
        handle.write('{"format": 1, "daemon_reload": true, "restart": ["-H evil.service"]}')
    module = HostModule(check_mode=False)
    result = p.sync(module, "present", files)
    assert result["changed"] and result["commands"] == [
        "systemctl daemon-reload", "systemctl restart linuxnet-endpoint-web.service", "systemctl try-restart nginx.service"]
    assert module.warnings == [f"{p.PENDING_FILE}: restart: '-H evil.service' is not a unit name of ours: reloading"
                               " systemd and restarting every endpoint service and drop-in unit of ours"]
    assert not os.path.exists(p.PENDING_FILE)
