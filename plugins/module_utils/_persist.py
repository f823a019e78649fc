# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Boot-time restore and endpoint services: what the role writes on a systemd host, as pure functions.

The restore runs the collection's own engine (``_deployment.converge``) on the host at boot, on the
plan the role last converged (saved as JSON): the same code and the same idempotence as the role,
no Ansible or controller needed. The engine travels as one zip application holding this
collection's module_utils and the few ``ansible.module_utils`` files they import (the ones AnsiballZ
shipped to run the module), so what boots is byte for byte what converged.

Endpoint and unit names end up in file names and unit-file lines: every field is checked with
fullmatch and no value may carry a control character (a newline would start a directive of its own).
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import zipfile
from typing import Any

from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError
from ansible_collections.linuxnet.bridge.plugins.module_utils._ownership import RUN_DIR
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError, netns_name

UNIT = "linuxnet-bridge.service"
STATE_DIR = "/etc/linuxnet-bridge"
STATE_FILE = f"{STATE_DIR}/state.json"
LIB_DIR = "/usr/lib/linuxnet-bridge"
BUNDLE = f"{LIB_DIR}/linuxnet-bridge.pyz"
UNIT_DIR = "/etc/systemd/system"
SYSCTL_FILE = "/etc/sysctl.d/90-linuxnet-bridge.conf"
MODULES_FILE = "/etc/modules-load.d/linuxnet-bridge.conf"
SERVICE_PREFIX = "linuxnet-endpoint-"
# What systemctl_steps reads of each unit.
SHOW_PROPERTIES = "Id,LoadState,UnitFileState,ActiveState"
# What a run owes systemd between its first unit-file write and its last systemctl step (see
# debts): on tmpfs, so a boot, which makes every debt moot, clears it.
PENDING_FILE = f"{RUN_DIR}/persist-pending.json"
PENDING_FORMAT = 1
DROPIN = "50-linuxnet-bridge.conf"
MARKER = "# Managed by linuxnet.bridge (role bridge_network): changes here are overwritten."
STATE_FORMAT = 1
# The plan keys the engine reads (_deployment.step_params): the saved state holds only these.
PLAN_KEYS = ("netns", "host_groups", "bridge", "veth", "firewall", "port_mapping")

RESTART = ("always", "on-failure", "no")
DEFAULT_RESTART = "on-failure"
SERVICE_FIELDS = ("command", "user", "restart", "environment", "unit")
# Unit names may not carry '+' and give '@' a meaning: endpoints with a service use the rest.
_UNIT_SAFE_ENDPOINT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_OWN_SERVICE = re.compile(re.escape(SERVICE_PREFIX) + _UNIT_SAFE_ENDPOINT.pattern + r"\.service")
# No leading '-': the name is an argument of systemctl, which would read "-Hhost.service" as -H host.service
_UNIT = re.compile(r"[A-Za-z0-9_.:][A-Za-z0-9_.:-]{0,199}(@[A-Za-z0-9_.:-]{0,50})?\.service")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


# -- validation ---------------------------------------------------------------------------------
def _text(value: object, field: str, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValidationError(f"{field}: {what} must be a string, not {type(value).__name__}")
    text = str(value)
    if not text.isprintable():
        # A newline would end the unit-file line and start a directive of the caller's choosing.
        raise ValidationError(f"{field}: {what} {text!r} must not contain newlines or other control characters")
    return text


def endpoint_service(value: object, at: str, name: str, mode: str) -> dict | None:
    """The ``service`` of endpoint ``name`` checked and normalized: ``{"unit": U}`` for a drop-in into
    an existing unit, else ``{"command": [argv] | "line", "user", "restart", "environment"}``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"{at}: a service is a dict with command (or unit), not {type(value).__name__}")
    unknown = sorted(set(value) - set(SERVICE_FIELDS))
    if unknown:
        raise ValidationError(f"{at}.{unknown[0]}: unknown field (known: {', '.join(SERVICE_FIELDS)})")
    if mode == "host":
        raise ValidationError(f"{at}: endpoint {name} is in host mode: it has no namespace to run a service in")
    if not _UNIT_SAFE_ENDPOINT.fullmatch(name):
        raise ValidationError(f"{at}: endpoint {name!r} cannot name a systemd unit: a service needs an endpoint"
                              " name of letters, digits and '_.-'")
    if ("unit" in value) == ("command" in value):
        raise ValidationError(f"{at}: give either command (a unit for this endpoint) or unit (an existing unit)")
    if "unit" in value:
        extra = sorted(set(value) - {"unit"})
        if extra:
            raise ValidationError(f"{at}.{extra[0]}: only for a command; an existing unit keeps its own settings")
        unit = value["unit"]
        if not isinstance(unit, str) or not _UNIT.fullmatch(unit):
            raise ValidationError(f"{at}.unit: {unit!r} is not a service unit name (letters, digits, '_.:-@', ending .service)")
        if unit.startswith("linuxnet-"):
            raise ValidationError(f"{at}.unit: {unit} is a name the collection uses for its own units")
        return {"unit": unit}

    command = value["command"]
    if isinstance(command, list):
        if not command:
            raise ValidationError(f"{at}.command: an empty list runs nothing")
        command = [_text(arg, f"{at}.command[{i}]", "argument") for i, arg in enumerate(command)]
        if not command[0]:
            raise ValidationError(f"{at}.command[0]: the program is empty")
    else:
        command = _text(command, f"{at}.command", "command").strip()
        if not command:
            raise ValidationError(f"{at}.command: the command is empty")
        if command.endswith("\\"):
            raise ValidationError(f"{at}.command: a trailing backslash would continue the unit-file line")
    user = value.get("user")
    if user is not None:
        user = _text(user, f"{at}.user", "user")
        if not _USER.fullmatch(user):
            raise ValidationError(f"{at}.user: {user!r} is not a user name or uid")
    restart = value.get("restart", DEFAULT_RESTART)
    if restart is False:  # YAML reads an unquoted `no` as false
        restart = "no"
    if restart not in RESTART:
        raise ValidationError(f"{at}.restart: {restart!r} is not one of {', '.join(RESTART)}")
    environment = value.get("environment") or {}
    if not isinstance(environment, dict):
        raise ValidationError(f"{at}.environment: a dict of names and values, not {type(environment).__name__}")
    env: dict[str, str] = {}
    for key, val in environment.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise ValidationError(f"{at}.environment: {key!r} is not a variable name (letters, digits, '_')")
        env[key] = _text(val, f"{at}.environment.{key}", "value")
    return {"command": command, "user": user, "restart": restart, "environment": env}


def services(endpoints: list[dict]) -> dict[str, dict]:
    """Every endpoint's service (endpoint name -> normalized service), in inventory order."""
    found: dict[str, dict] = {}
    for i, raw in enumerate(endpoints or []):
        if not isinstance(raw, dict) or raw.get("service") is None:
            continue
        # Runs before the plan checks the endpoints: the name (unit name, map key) is checked here too.
        name = netns_name(raw.get("name"), f"linuxnet_endpoints[{i}].name")
        at = f"linuxnet_endpoints[{i}].service"
        service = endpoint_service(raw["service"], at, name, raw.get("mode") or "bridge")
        unit = service_unit_name(name, service)
        clash = next((ep for ep, other in found.items() if service_unit_name(ep, other) == unit), None)
        if clash is not None:
            raise ValidationError(f"{at}.unit: {unit} already runs in endpoint {clash}")
        found[name] = service
    return found


# -- rendering ----------------------------------------------------------------------------------
def _quote(arg: str, variables: bool = True) -> str:
    """One quoted word of a unit file, specifiers (and, in Exec lines, ``$VAR``) taken literally."""
    text = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return '"' + (text.replace("$", "$$") if variables else text) + '"'


def exec_line(command: str | list[str]) -> str:
    """A list is argv (each argument quoted); a string is a command line as systemd reads it
    (quotes, ``$VAR``), with ``%`` taken literally."""
    if isinstance(command, list):
        return " ".join(_quote(arg) for arg in command)
    return command.replace("%", "%%")


def service_unit_name(endpoint: str, service: dict) -> str:
    return service["unit"] if "unit" in service else f"{SERVICE_PREFIX}{endpoint}.service"


def _namespace_lines(endpoint: str) -> list[str]:
    # What `ip netns exec` does: the namespace, and /etc/netns/<ep>/* over /etc/* (here only the
    # two files the collection writes; '-': a missing file is no error, resolv.conf is optional).
    return [
        f"NetworkNamespacePath=/run/netns/{endpoint}",
        f"BindReadOnlyPaths=-/etc/netns/{endpoint}/hosts:/etc/hosts",
        f"BindReadOnlyPaths=-/etc/netns/{endpoint}/resolv.conf:/etc/resolv.conf",
    ]


def _requires() -> list[str]:
    return [f"Requires={UNIT}", f"After={UNIT}"]


def service_unit(endpoint: str, service: dict) -> str:
    """The unit running an endpoint's command in its namespace."""
    lines = [
        MARKER,
        "[Unit]",
        f"Description=linuxnet.bridge endpoint {endpoint}",
        *_requires(),
        "",
        "[Service]",
        f"ExecStart={exec_line(service['command'])}",
        f"Restart={service['restart']}",
    ]
    if service["user"] is not None:
        lines.append(f"User={service['user']}")
    for key, value in service["environment"].items():
        lines.append("Environment=" + _quote(f"{key}={value}", variables=False))
    lines += _namespace_lines(endpoint)
    lines += ["", "[Install]", "WantedBy=multi-user.target"]
    return "\n".join(lines) + "\n"


def dropin(endpoint: str) -> str:
    """The drop-in that moves an existing unit into an endpoint's namespace."""
    return "\n".join([MARKER, "[Unit]", *_requires(), "", "[Service]", *_namespace_lines(endpoint)]) + "\n"


def restore_unit(python: str) -> str:
    """The oneshot unit that rebuilds the saved deployment at boot (and on reload)."""
    run = f"{python} {BUNDLE} --state {STATE_FILE}"
    return "\n".join([
        MARKER,
        "[Unit]",
        "Description=linuxnet.bridge: restore bridges, endpoint namespaces, veths and firewall rules",
        f"ConditionPathExists={STATE_FILE}",
        # Kernel modules and sysctl.d first; then after whatever loads a whole ruleset at boot
        # (netfilter-persistent, firewalld, nftables.service's `flush ruleset`, ufw), which would
        # otherwise flush the rules restored here.
        "After=local-fs.target systemd-modules-load.service systemd-sysctl.service network-pre.target",
        "After=netfilter-persistent.service firewalld.service nftables.service ufw.service iptables.service",
        # Before anything that waits for the network (docker.service among them: After=network-online.target).
        "Before=network.target network-online.target",
        # `systemctl reload firewalld` re-applies the rules here too (see the role's README).
        "ReloadPropagatedFrom=firewalld.service",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        f"ExecStart={run}",
        f"ExecReload={run}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]) + "\n"


def sysctls(plan: dict) -> dict[str, str]:
    """The sysctls the firewall step sets for this plan (Docker's daemon sets the same)."""
    if not plan.get("firewall"):
        return {}
    wanted = {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}
    for bridge in plan.get("bridge", []):
        # An interface name may hold '.', which sysctl.d reads as a separator: '/' keeps it whole.
        wanted[f"net/ipv4/conf/{bridge['name']}/route_localnet"] = "1"
    return wanted


def sysctl_conf(plan: dict) -> str | None:
    values = sysctls(plan)
    if not values:
        return None
    return "\n".join([MARKER, *(f"{key} = {value}" for key, value in values.items())]) + "\n"


def modules_conf(plan: dict) -> str | None:
    # net.bridge.* exists only once br_netfilter is loaded; systemd-modules-load runs before systemd-sysctl.
    return f"{MARKER}\nbr_netfilter\n" if plan.get("firewall") else None


def saved_state(plan: dict, options: dict[str, str]) -> dict:
    """What the restore reads: the converged plan (addresses as allocated, so a reboot renumbers
    nothing) and the firewall options the engine takes (chain_prefix, iptables_variant, ...), under
    a format number."""
    return {
        "format": STATE_FORMAT,
        "options": dict(options),
        "plan": {key: plan[key] for key in PLAN_KEYS},
    }


def state_json(state: dict) -> str:
    return json.dumps(state, indent=1, sort_keys=True) + "\n"


def _load_record(text: str | bytes, path: str, what: str, version: int, hint: str = "") -> dict:
    """A JSON object of ours (``format``: ``version``) at ``path``; ValidationError names what is wrong."""
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"{path}: not JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != version:
        raise ValidationError(f"{path}: not a linuxnet.bridge {what} of format {version}{hint}")
    return record


def load_state(text: str, path: str = STATE_FILE) -> dict:
    """The saved state checked for what the restore needs; ValidationError names what is wrong."""
    state = _load_record(text, path, "state", STATE_FORMAT, "; re-run the role")
    plan = state.get("plan")
    missing = [key for key in PLAN_KEYS if not isinstance(plan, dict) or key not in plan]
    options = state.get("options")
    if missing or not isinstance(options, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
        raise ValidationError(f"{path}: incomplete state (missing {', '.join(missing) or 'firewall options'}); re-run the role")
    return state


# -- the engine as one zip application ----------------------------------------------------------
COLLECTION_UTILS = "ansible_collections.linuxnet.bridge.plugins.module_utils"
_PACKAGES = ("ansible", "ansible.module_utils", "ansible_collections", "ansible_collections.linuxnet",
             "ansible_collections.linuxnet.bridge", "ansible_collections.linuxnet.bridge.plugins", COLLECTION_UTILS)
MAIN = (
    "# linuxnet.bridge boot-time restore: the collection's engine on the saved plan (see _restore.py).\n"
    f"from {COLLECTION_UTILS}._zipimport import compile_once\n"
    "compile_once()  # before the engine's imports: each module of this zip compiled once\n"
    f"from {COLLECTION_UTILS}._restore import main\n"
    "main()\n"
)


def _wanted_module(name: str) -> bool:
    return name.startswith("ansible.module_utils.") or name.startswith(COLLECTION_UTILS + ".")


def engine_sources() -> dict[str, bytes]:
    """Sources of the engine as this process loaded them: the collection's module_utils and the
    ``ansible.module_utils`` modules imported so far, plus, under AnsiballZ, every such file of the
    module's payload (lazy imports included). Package ``__init__`` files are empty regular packages,
    so nothing of another ``ansible`` installation on the host mixes in."""
    from ansible_collections.linuxnet.bridge.plugins.module_utils import _restore, _zipimport  # noqa: F401  (the runner's imports)

    sources: dict[str, bytes] = {}
    archives = set()
    for name, module in list(sys.modules.items()):
        if not _wanted_module(name) or getattr(module, "__name__", None) != name:
            continue  # six.moves and the like alias modules of the standard library
        loader = getattr(module, "__loader__", None)
        archive = getattr(loader, "archive", None)
        if archive:
            archives.add(archive)
        source = loader.get_source(name) if loader is not None and hasattr(loader, "get_source") else None
        if source is None:
            continue  # a namespace package
        is_package = getattr(module, "__path__", None) is not None
        path = name.replace(".", "/") + ("/__init__.py" if is_package else ".py")
        sources[path] = source.encode("utf-8")
    for archive in sorted(archives):
        with zipfile.ZipFile(archive) as payload:
            for entry in payload.namelist():
                module_name = entry[:-3].replace("/", ".") if entry.endswith(".py") else ""
                if module_name.endswith(".__init__"):
                    module_name = module_name[: -len(".__init__")]
                if _wanted_module(module_name) and entry not in sources:
                    sources[entry] = payload.read(entry)
    for package in _PACKAGES:
        sources[package.replace(".", "/") + "/__init__.py"] = b""
    return sources


def bundle(sources: dict[str, bytes]) -> bytes:
    """A zip application (``python3 linuxnet-bridge.pyz``) of ``sources``: stored, sorted, with a
    fixed timestamp, so the same sources give the same bytes and an unchanged engine is no change."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for path, data in sorted({**sources, "__main__.py": MAIN.encode()}.items()):
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return out.getvalue()


# -- the files of a host ------------------------------------------------------------------------
def wanted_files(plan: dict, endpoint_services: dict[str, dict], options: dict[str, str], engine: bytes,
                 python: str) -> dict[str, bytes]:
    """Path -> content of every file the role keeps on a host with boot-time restore."""
    files: dict[str, bytes] = {
        STATE_FILE: state_json(saved_state(plan, options)).encode(),
        BUNDLE: engine,
        f"{UNIT_DIR}/{UNIT}": restore_unit(python).encode(),
    }
    for path, text in ((SYSCTL_FILE, sysctl_conf(plan)), (MODULES_FILE, modules_conf(plan))):
        if text is not None:
            files[path] = text.encode()
    for endpoint, service in endpoint_services.items():
        if "unit" in service:
            files[f"{UNIT_DIR}/{service['unit']}.d/{DROPIN}"] = dropin(endpoint).encode()
        else:
            files[f"{UNIT_DIR}/{service_unit_name(endpoint, service)}"] = service_unit(endpoint, service).encode()
    return files


def is_unit_file(path: str) -> bool:
    return path.startswith(UNIT_DIR + "/")


def unit_of(path: str) -> str:
    """The unit a unit file or drop-in belongs to."""
    rest = path[len(UNIT_DIR) + 1:]
    return rest.split("/", 1)[0][: -len(".d")] if "/" in rest else rest


def python_interpreter() -> str:
    return sys.executable or "/usr/bin/python3"


def changes(wanted: dict[str, bytes], current: dict[str, bytes]) -> tuple[list[str], list[str]]:
    """Files to write (new or different) and files of ours to remove (no longer wanted)."""
    return (sorted(path for path, data in wanted.items() if current.get(path) != data),
            sorted(path for path in current if path not in wanted))


def own_service(path: str) -> bool:
    """A unit file of an endpoint's own service (not the restore unit, not a drop-in)."""
    return is_unit_file(path) and "/" not in path[len(UNIT_DIR) + 1:] and unit_of(path).startswith(SERVICE_PREFIX)


def is_dropin(path: str) -> bool:
    return is_unit_file(path) and path.endswith("/" + DROPIN)


# -- what a run owes systemd ----------------------------------------------------------------------
# A run killed after writing a changed unit file but before its daemon-reload and restart leaves the
# old command running, and the next run finds the files as wanted: nothing in the files or in
# systemd says a restart is owed (NeedDaemonReload is no sign: systemd 257, Debian 13, keeps it
# "yes" for our units after a reload). So the run writes what it owes before it touches a unit
# file, and removes the record once its last systemctl step succeeded; a run that finds one pays.
DEBTS = ("restart", "try_restart", "stop")


def debts(write: list[str], remove: list[str]) -> dict:
    """What writing ``write`` and removing ``remove`` owes systemd: a daemon-reload, a restart (or
    start) of the endpoint services written, a try-restart of the units whose drop-in changed, and a
    stop of the endpoint services removed."""
    changed = list(write) + list(remove)
    return {
        "daemon_reload": any(is_unit_file(p) for p in changed),
        "restart": sorted({unit_of(p) for p in write if own_service(p) and p not in remove}),
        "try_restart": sorted({unit_of(p) for p in changed if is_dropin(p)}),
        "stop": sorted({unit_of(p) for p in remove if own_service(p)}),
    }


def owes(owed: dict | None) -> bool:
    return bool(owed) and (bool(owed.get("daemon_reload")) or any(owed.get(key) for key in DEBTS))


def merge_debts(old: dict | None, new: dict) -> dict:
    """Both runs' debts: a run that finds a record and changes files owes what it found too."""
    old = old or {}
    merged = {"daemon_reload": bool(old.get("daemon_reload") or new.get("daemon_reload"))}
    for key in DEBTS:
        merged[key] = sorted(set(old.get(key, [])) | set(new.get(key, [])))
    return merged


def pending_json(owed: dict) -> str:
    return json.dumps({"format": PENDING_FORMAT, **owed}, sort_keys=True) + "\n"


def load_pending(text: str | bytes, path: str = PENDING_FILE) -> dict:
    """A record written by :func:`pending_json`, every unit name checked whole (it ends up in a
    systemctl argv); ValidationError names the file and what is wrong."""
    record = _load_record(text, path, "pending record", PENDING_FORMAT)
    unknown = sorted(set(record) - {"format", "daemon_reload", *DEBTS})
    if unknown:
        raise ValidationError(f"{path}: unknown field {unknown[0]}")
    if not isinstance(record.get("daemon_reload"), bool):
        raise ValidationError(f"{path}: daemon_reload must be true or false")
    owed = {"daemon_reload": record["daemon_reload"]}
    for key in DEBTS:
        names = record.get(key, [])
        pattern = _UNIT if key == "try_restart" else _OWN_SERVICE
        if not isinstance(names, list):
            raise ValidationError(f"{path}: {key} must be a list of unit names")
        for name in names:
            if not isinstance(name, str) or not pattern.fullmatch(name):
                raise ValidationError(f"{path}: {key}: {name!r} is not a unit name of ours")
        owed[key] = sorted(set(names))
    return owed


def everything_owed(paths: list[str]) -> dict:
    """What a record that cannot be read stands for: every debt any run could owe on these files."""
    return {**debts(sorted(paths), []), "daemon_reload": True}


def systemctl_steps(state: str, write: list[str], remove: list[str], current: dict[str, bytes],
                    units: dict[str, dict[str, str]], owed: dict | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """The systemctl commands around a file change: (before writing, after writing). ``units`` has
    each unit's LoadState, UnitFileState and ActiveState (``systemctl show``); a unit that is enabled
    and active with an unchanged file needs nothing, so a converged host gets no command. ``owed``:
    the debts a killed run recorded (:func:`load_pending`), paid even when the files are as wanted:
    a daemon-reload, a restart (or start) of each listed endpoint service that is still wanted, a
    try-restart of each listed unit systemd still has, a stop of each listed service that is gone."""
    owed = owed or {}

    def enabled(unit: str) -> bool:
        return units.get(unit, {}).get("UnitFileState") in ("enabled", "enabled-runtime", "static")

    def active(unit: str) -> bool:
        return units.get(unit, {}).get("ActiveState") in ("active", "activating", "reloading")

    def known(unit: str) -> bool:
        return units.get(unit, {}).get("LoadState") != "not-found"

    before: list[list[str]] = []
    after: list[list[str]] = []
    written = write
    kept = (set(write) | set(current)) - set(remove)
    reload = any(is_unit_file(p) for p in written + remove) or bool(owed.get("daemon_reload"))
    # enable and disable reload systemd themselves (about 0.2 s each); when unit files change, the
    # one daemon-reload after the files are written does it for all of them.
    no_reload = ["--no-reload"] if reload else []
    stop = [unit_of(p) for p in remove if own_service(p) and (enabled(unit_of(p)) or active(unit_of(p)))]
    if stop:
        before.append(["systemctl", "disable", *no_reload, "--now", *stop])
    restore_path = f"{UNIT_DIR}/{UNIT}"
    if state == "absent" and restore_path in current and enabled(UNIT):
        before.append(["systemctl", "disable", *no_reload, UNIT])
    if reload:
        after.append(["systemctl", "daemon-reload"])
    # A killed run's removed service that still runs (its disable --now did not happen).
    stale = [unit for unit in owed.get("stop", []) if f"{UNIT_DIR}/{unit}" not in kept and unit not in stop and active(unit)]
    if stale:
        after.append(["systemctl", "stop", *stale])
    # Drop-ins removed or changed: the unit runs again where it now belongs (if it runs at all).
    moved = {unit_of(p) for p in written + remove if is_dropin(p)}
    moved |= {unit for unit in owed.get("try_restart", []) if known(unit)}
    if state == "present":
        restart, start = [], []
        if not (enabled(UNIT) and active(UNIT)):
            start.append(UNIT)  # first: the endpoint services require it (systemd orders one transaction)
        for path in sorted(set(write) | set(current)):
            unit = unit_of(path)
            if not own_service(path) or path in remove:
                continue
            if path in written and path in current and active(unit):
                restart.append(unit)
            elif not enabled(unit) or (path in written and not active(unit)):
                start.append(unit)
        for unit in owed.get("restart", []):
            # systemd still runs what the file said before the killed run changed it
            if f"{UNIT_DIR}/{unit}" in kept and unit not in restart and unit not in start:
                (restart if active(unit) else start).append(unit)
        if start:
            after.append(["systemctl", "enable", *no_reload, "--now", *start])
        if restart:
            after.append(["systemctl", "restart", *restart])
    if moved:
        after.append(["systemctl", "try-restart", *sorted(moved)])
    if state == "absent" and active(UNIT):
        after.append(["systemctl", "stop", UNIT])
    return before, after


def parse_show(text: str) -> dict[str, dict[str, str]]:
    """``systemctl show -p Id,LoadState,UnitFileState,ActiveState U...`` as unit -> properties."""
    units: dict[str, dict[str, str]] = {}
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            units[props["Id"]] = props
    return units


# -- the host (imperative edge: files and systemctl) ---------------------------------------------
SYSTEMD_RUNNING = "/run/systemd/system"  # sd_booted(): the host runs systemd as PID 1


def systemd_running() -> bool:
    return os.path.isdir(SYSTEMD_RUNNING)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def current_files() -> dict[str, bytes]:
    """The files of ours on the host now: the fixed paths, and endpoint units and drop-ins that carry the marker."""
    found: dict[str, bytes] = {}
    fixed = [STATE_FILE, BUNDLE, f"{UNIT_DIR}/{UNIT}", SYSCTL_FILE, MODULES_FILE]
    marked = glob.glob(f"{UNIT_DIR}/{SERVICE_PREFIX}*.service") + glob.glob(f"{UNIT_DIR}/*.d/{DROPIN}")
    for path in fixed + sorted(marked):
        data = _read(path)
        if data is not None and (path in fixed or data.startswith(MARKER.encode())):
            found[path] = data
    return found


def _write(path: str, data: bytes) -> None:
    """Atomically: a reader (systemd, the restore at boot) sees the old file or the new one."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".linuxnet-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _remove(path: str) -> None:
    os.unlink(path)
    directory = os.path.dirname(path)
    # Our own directories and emptied drop-in directories go too.
    if directory in (STATE_DIR, LIB_DIR) or (is_unit_file(directory + "/x") and directory.endswith(".d")):
        try:
            os.rmdir(directory)
        except OSError:
            pass  # not empty: something else lives there


def _pending(module: Any, paths: list[str]) -> dict | None:
    """The debts a killed run recorded, None without a record. A record that cannot be read (no
    run of ours writes one: it is written atomically) stands for every debt, with a warning."""
    data = _read(PENDING_FILE)
    if data is None:
        return None
    try:
        return load_pending(data, PENDING_FILE)
    except ValidationError as exc:
        module.warn(f"{exc}: reloading systemd and restarting every endpoint service and drop-in unit of ours")
        return everything_owed(paths)


def _forget_pending() -> None:
    try:
        os.unlink(PENDING_FILE)
    except FileNotFoundError:
        pass


def sync(module: Any, state: str, wanted: dict[str, bytes]) -> dict:
    """Make the host's files of ours ``wanted`` (``{}`` for absent) and tell systemd, honouring
    check mode. Returns changed, written, removed, commands (systemctl command lines) and diff.
    What the run owes systemd is recorded in :data:`PENDING_FILE` before the first file changes and
    forgotten after the last systemctl step; a run that finds a record pays it (see :func:`debts`)."""
    current = current_files()
    write, remove = changes(wanted, current)
    systemd = systemd_running()
    units: dict[str, dict[str, str]] = {}
    pending = _pending(module, sorted(set(wanted) | set(current))) if systemd else None
    if systemd:
        names = {UNIT} | {unit_of(p) for p in set(wanted) | set(current) if is_unit_file(p)}
        names |= {unit for key in DEBTS for unit in (pending or {}).get(key, [])}
        rc, out, err = module.run_command(["systemctl", "show", f"--property={SHOW_PROPERTIES}", "--", *sorted(names)])
        if rc != 0:
            raise ApplyError(f"systemctl show failed: {err.strip()}")
        units = parse_show(out)
    before, after = systemctl_steps(state, write, remove, current, units, pending) if systemd else ([], [])
    owed = merge_debts(pending, debts(write, remove)) if systemd else {}
    if not module.check_mode:
        for argv in before:
            _systemctl(module, argv)
        if owes(owed) and owed != pending:
            _write(PENDING_FILE, pending_json(owed).encode())
        for path in write:
            _write(path, wanted[path])
        for path in remove:
            _remove(path)
        for argv in after:
            _systemctl(module, argv)
        if pending is not None or owes(owed):
            _forget_pending()
    commands = [" ".join(argv) for argv in before + after]
    return {
        "changed": bool(write or remove or commands or pending is not None),
        "written": write,
        "removed": remove,
        "commands": commands,
        "diff": [_diff(path, current.get(path), wanted.get(path)) for path in write + remove],
    }


def requested(state: str, persist: bool | None, endpoints: list[dict]) -> str | None:
    """What the deployment module's ``persist`` asks of the boot-time restore: "present", "absent" or
    None (leave it as it is). Contradictions are refused before anything changes."""
    if persist is None:
        return None
    if state == "absent":
        if persist:
            raise ValidationError("persist: true installs the boot-time restore of a deployment that state=absent"
                                  " removes; give persist: false (or leave it unset)")
        return "absent"
    if not persist:
        with_service = [str(ep.get("name")) for ep in endpoints or [] if isinstance(ep, dict) and ep.get("service") is not None]
        if with_service:
            # The service would start before its endpoint exists at boot: it needs the restore.
            raise ValidationError("linuxnet_endpoints: a service runs in its endpoint only with linuxnet_persist: true"
                                  f" (persist; the endpoint is rebuilt at boot first): {', '.join(with_service)}")
        return "absent"
    return "present"


NOT_INSTALLED = "the host does not run systemd: the deployment is not restored at boot (nothing installed)"


def checked_services(state: str, endpoints: list[dict]) -> dict[str, dict]:
    """The endpoints' services, validated before anything changes (``{}`` for absent); services on a
    host not booted with systemd are refused (nothing could run them)."""
    found = services(endpoints) if state == "present" else {}
    if found and not systemd_running():
        raise ValidationError(f"linuxnet_endpoints: services ({', '.join(found)}) need a host booted with systemd")
    return found


def apply(module: Any, state: str, plan: dict | None, endpoint_services: dict[str, dict], options: dict[str, str]) -> dict:
    """The boot-time restore of ``plan`` (the converged one; None for absent) installed or removed,
    honouring check mode: :func:`sync`'s result with ``installed`` and ``services``. On a host without
    systemd, present installs nothing and warns."""
    installed = systemd_running()
    if state == "present" and not installed:
        module.warn(NOT_INSTALLED)
        return {"changed": False, "installed": False, "written": [], "removed": [], "commands": [], "services": {},
                "diff": []}
    wanted: dict[str, bytes] = {}
    if state == "present":
        wanted = wanted_files(plan or {}, endpoint_services, options, bundle(engine_sources()), python_interpreter())
    result = sync(module, state, wanted)
    result["installed"] = installed
    result["services"] = {endpoint: service_unit_name(endpoint, service) for endpoint, service in endpoint_services.items()}
    return result


def _systemctl(module: Any, argv: list[str]) -> None:
    rc, _out, err = module.run_command(argv)
    if rc != 0:
        raise ApplyError(f"{' '.join(argv)} failed: {err.strip()}")


def _diff(path: str, old: bytes | None, new: bytes | None) -> dict:
    def text(data: bytes | None) -> str:
        if data is None:
            return ""
        if path == BUNDLE:  # a zip: its size and digest say whether the engine changed
            return f"<zip application, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}>\n"
        return data.decode("utf-8", "replace")
    return {"before_header": path, "after_header": path, "before": text(old), "after": text(new)}
