# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The resource-module engine shared by every module of the collection.

Every module follows the same four steps: *gather* the live state, *diff* it with the desired
``config`` (a pure function that yields operations and the expected result), *render* the
operations as the commands a human would type, and *apply* them once. A module only supplies a
:class:`Resource`; states, check mode, diff mode and the return values live here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError
from ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport import keep_compiled

STATES = ["merged", "replaced", "overridden", "deleted", "gathered", "rendered"]
# Offline: running_config (text a host printed) -> config. Only resources that implement
# Resource.parsed offer it (config_argument_spec(..., parsed=True)).
PARSED = "parsed"
# The states that touch nothing of the host: no privilege needed, nothing kept (not even compiled code).
OFFLINE = ("rendered", PARSED)
CAP_NET_ADMIN = 12  # bit in /proc/self/status CapEff
# The key of a gathered item that is planned like any other but never listed (gathered, before,
# after, diff: all go through listing()): a leftover with nothing behind it, such as the mountpoint
# of a namespace whose create or delete was killed. A config that names it has it made again
# (plan drops the key from the item it plans); otherwise it is deleted as overridden or deleted ask.
HIDDEN = "_hidden"


@dataclass(frozen=True)
class Operation:
    """One change: ``command`` is the human form (``ip link add ...``), ``action``/``args`` the machine form."""

    command: str
    action: str
    args: dict = field(default_factory=dict, compare=False, hash=False)


class ApplyError(RuntimeError):
    """The kernel refused an operation; the message says which. ``unchanged``: the failed write left
    everything as it was (an atomic ``nft -f``; restores all rolled back)."""

    def __init__(self, *args: Any, unchanged: bool = False) -> None:
        super().__init__(*args)
        self.unchanged = unchanged


@dataclass
class Foreseen:
    """What the earlier steps of one run (linuxnet.bridge.deployment's) leave for a later step's
    :meth:`Resource.check_references`, as their config asks: a check-mode run applies nothing, so
    the host it reads lacks what they would create. A resource run alone (one task) is given none
    and judges by the host alone."""

    #: network namespaces that exist after the earlier steps
    namespaces: set[str] = field(default_factory=set)
    #: bridges of the host's namespace that exist after the earlier steps -> their addresses (CIDRs)
    #: then; None: as they are now (none for a new bridge)
    bridges: dict[str, list[str] | None] = field(default_factory=dict)

    def host_addresses(self, live: dict[str, list[str]]) -> dict[str, list[str]]:
        """The host's addresses after the earlier steps: ``live`` (link name -> its CIDRs now) with
        the foreseen bridges' addresses in place of their live ones."""
        return {**live, **{name: list(addrs) for name, addrs in self.bridges.items() if addrs is not None}}


class Vocabulary(dict):
    """The kinds of operation a resource applies: ``action`` -> the function that carries it out.

    Each kind is registered next to the function that builds its :class:`Operation`, so its
    command line and its effect are written once, side by side.
    """

    def does(self, action: str) -> Callable[[Callable], Callable]:
        def register(function: Callable) -> Callable:
            self[action] = function
            return function

        return register


class Resource:
    """What a module plugs into :func:`run`. Subclasses implement the hooks below.

    Item resources (one kernel object per config item) implement :meth:`plan_item` and
    :meth:`delete_ops` and inherit :meth:`plan`, which owns the states. Resources whose result
    is a whole ruleset override :meth:`plan` instead.
    """

    def __init__(self, module: Any) -> None:
        self.module = module
        self.params = module.params if module is not None else {}
        self.warnings: list[str] = []

    # -- pure parts ---------------------------------------------------------------------------
    def normalize(self, config: list[dict], state: str) -> list[dict]:
        """Validate and canonicalise ``config``; raise ValidationError naming item and field."""
        raise NotImplementedError

    def key(self, item: dict) -> Any:
        """Identity of a config item, as the key of gather()'s dictionary."""
        return item["name"]

    def plan(self, desired: list[dict], current: dict, state: str) -> tuple[list[Operation], dict]:
        """Return the operations that turn ``current`` into what ``state`` asks, and the expected result.

        ``merged`` adds and changes, ``replaced`` makes the given items exact, ``overridden`` also
        deletes the other items we own, ``deleted`` deletes the given items we own (all we own
        when ``config`` is empty). Items not ours are never deleted: a named one gets a warning.
        """
        ops: list[Operation] = []
        after = {k: dict(val) for k, val in current.items()}
        if state == "deleted":
            named = [self.key(d) for d in desired] if desired else list(current)
            gone = [k for k in named if k in current and current[k].get("_owned")]
            for key in named:
                if desired and key in current and not current[key].get("_owned"):
                    self.warnings.append(
                        f"{self.describe(key)} was not created by linuxnet.bridge: left alone "
                        "(state=deleted removes only what the collection created)"
                    )
        else:
            exact = state in ("replaced", "overridden")
            for item in desired:
                item_ops, planned = self.plan_item(item, current.get(self.key(item)), exact)
                if planned.get(HIDDEN):  # made (again) as asked: listed from now on
                    planned = {k: val for k, val in planned.items() if k != HIDDEN}
                after[self.key(item)] = planned
                ops += item_ops
            wanted = {self.key(d) for d in desired}
            gone = [k for k, c in current.items() if state == "overridden" and c.get("_owned") and k not in wanted]
        for key in gone:
            if key in current:
                ops += self.delete_ops(current[key])
                after.pop(key)
        return ops, after

    def describe(self, key: Any) -> str:
        """An item's key as messages show it."""
        return " in netns ".join(str(part) for part in key if part) if isinstance(key, tuple) else str(key)

    def plan_item(self, item: dict, have: dict | None, exact: bool) -> tuple[list[Operation], dict]:
        """Operations that make live item ``have`` (None: absent) what ``item`` asks, and the item after.

        ``exact`` (replaced, overridden): lists such as addresses become exactly the given ones;
        otherwise they are added to. Options left out (None) are left as they are.
        """
        raise NotImplementedError

    def delete_ops(self, have: dict) -> list[Operation]:
        """Operations that delete live item ``have``."""
        raise NotImplementedError

    def parsed(self, text: str | None) -> dict:
        """``state: parsed``: the items ``text`` (``running_config``) describes, as gather() returns them.

        Pure: reads neither the host nor its files."""
        raise ValidationError("state: parsed is not supported by this module")

    def render(self, desired: list[dict]) -> list[str]:
        """Commands that build ``desired`` on an empty host."""
        ops, _after = self.plan(desired, {}, "merged")
        return [op.command for op in ops]

    def public(self, item: dict) -> dict:
        """The item as users see it (same shape as ``config``); drops internal keys."""
        return {k: v for k, v in item.items() if not k.startswith("_")}

    # -- kernel parts -------------------------------------------------------------------------
    def check_references(self, desired: list[dict], state: str, foreseen: Foreseen | None = None) -> None:
        """Validation that needs the live system (e.g. a bridge must exist); raise ValidationError.
        What ``foreseen`` holds (earlier steps of the same run create it) counts as live."""

    def foresee(self, desired: list[dict], state: str, foreseen: Foreseen) -> None:
        """Add to ``foreseen`` what a run of this resource with ``desired`` leaves for the later steps."""

    def missing(self, problem: str, hint: str = "an earlier task may create it") -> None:
        """A reference that an earlier task of the play may fix: in check mode a warning (the
        prediction goes on), else a ValidationError."""
        if self.module is not None and self.module.check_mode:
            self.warnings.append(f"{problem} ({hint})")
        else:
            raise ValidationError(problem)

    def gather(self, desired: list[dict], state: str) -> dict:
        """Live state as ``{key: item}``; items carry ``_owned`` when the collection created them,
        and :data:`HIDDEN` when they are planned but not listed."""
        raise NotImplementedError

    def apply(self, operations: list[Operation]) -> None:
        """Carry out ``operations`` in order; raise ApplyError naming the one that failed."""
        raise NotImplementedError

    def persist(self) -> None:
        """After a real (non-check) run: record bookkeeping such as ownership state files."""

    def close(self) -> None:
        """Release sockets and other handles."""


def missing_privilege() -> str | None:
    """Why this process may not change the network (None: it may), as a phrase for messages.

    Root, or CAP_NET_ADMIN in the effective set. Without it every netlink or iptables request
    ends in EPERM; saying so once beats a traceback from the first request.
    """
    euid = os.geteuid()
    if euid == 0:
        return None
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            caps = next((line.split()[1] for line in status if line.startswith("CapEff:")), "0")
        if int(caps, 16) >> CAP_NET_ADMIN & 1:
            return None
    except (OSError, ValueError):  # no /proc: judge by the uid alone
        pass
    try:
        import pwd

        user = pwd.getpwuid(euid).pw_name
    except (ImportError, KeyError):
        user = "?"
    return f"runs as {user} (uid {euid}) without CAP_NET_ADMIN"


def require_privilege(module: Any) -> None:
    """Fail the module with one message when it cannot change the network (module edge)."""
    reason = missing_privilege()
    if reason is not None:
        name = getattr(module, "_name", None) or "this module"
        module.fail_json(
            msg=f"{name} needs root on the managed host: it {reason}. Set `become: true` on the play, role or task."
        )


def _ansible_module(argument_spec: dict, privileged: bool) -> Any:
    """The run's AnsibleModule (check mode supported); ``privileged``: fails at once, with one message,
    without root. Once the run knows it is neither in check mode nor offline (``rendered``, ``parsed``:
    they touch nothing of the host), the code it compiled goes to the bytecode cache
    (:func:`keep_compiled`)."""
    from ansible.module_utils.basic import AnsibleModule  # only module runs need it, not the boot-time restore

    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if privileged:
        require_privilege(module)
    if not module.check_mode and module.params.get("state") not in OFFLINE:
        keep_compiled()
    return module


def privileged_module(argument_spec: dict) -> Any:
    """The AnsibleModule of a module that reads or changes the network (check mode supported); fails
    at once, with one message, without root."""
    return _ansible_module(argument_spec, privileged=True)


def config_argument_spec(item_options: dict, extra: dict | None = None, parsed: bool = False) -> dict:
    spec = {
        "config": {"type": "list", "elements": "dict", "options": item_options},
        "state": {"type": "str", "default": "merged", "choices": STATES + [PARSED] if parsed else STATES},
    }
    if parsed:
        spec["running_config"] = {"type": "str"}
    spec.update(extra or {})
    return spec


def listing(items: dict, resource: Resource) -> list[dict]:
    """Gathered items as ``state: gathered`` returns them: config items sorted by key, less the
    :data:`HIDDEN` ones. Every result that lists items (gathered, before, after, diff) is made here."""
    return [resource.public(items[k]) for k in sorted(items, key=str) if not items[k].get(HIDDEN)]


def _desired(resource: Resource, config: list[dict] | None, state: str) -> list[dict]:
    if state in ("merged", "replaced", "overridden", "rendered") and config is None:
        raise ValidationError(f"config: state={state} needs a config list")
    return resource.normalize(config or [], state)


def predict(resource: Resource, state: str, before: dict | None = None) -> list[Operation]:
    """The operations a run of ``resource`` with its ``config`` would apply now (reads only).

    ``before`` is a live state this resource gathered moments ago, to spare a second gather.
    Raises ValidationError (bad input) or ApplyError (a kernel tool failed to read), which
    :func:`run` would report.
    """
    desired = _desired(resource, resource.params.get("config"), state)
    resource.check_references(desired, state)
    if before is None:
        before = resource.gather(desired, state)
    operations, _expected = resource.plan(desired, before, state)
    return operations


def main(resource_class: Callable[[Any], Resource], item_options: dict, module_options: dict | None = None,
         parsed: bool = False) -> None:
    """The whole main() of a resource module: its argument spec (see :func:`config_argument_spec`), one run."""
    module = _ansible_module(config_argument_spec(item_options, module_options, parsed), privileged=False)
    run(module, resource_class(module))  # (root is checked in run(): not for the offline states)


def run(module: Any, resource: Resource) -> None:
    """Execute one resource-module run and exit the module (the privilege check is skipped offline)."""
    state = module.params["state"]
    config = module.params.get("config")
    result: dict[str, Any] = {"changed": False}
    if state not in OFFLINE:
        require_privilege(module)
    try:
        if state == PARSED:
            result["parsed"] = listing(resource.parsed(module.params.get("running_config")), resource)
            module.exit_json(**result)
        desired = _desired(resource, config, state)
        if state == "rendered":
            result["rendered"] = resource.render(desired)
            for warning in resource.warnings:  # exit_json(warnings=) is deprecated in ansible-core 2.19
                module.warn(warning)
            module.exit_json(**result)
        resource.check_references(desired, state)
        before = resource.gather(desired, state)
        if state == "gathered":
            result["gathered"] = listing(before, resource)
            module.exit_json(**result)
        operations, expected = resource.plan(desired, before, state)
    except (ValidationError, ApplyError) as exc:  # bad input, or a kernel tool that failed to read
        resource.close()
        module.fail_json(msg=str(exc))
        return

    result["before"] = listing(before, resource)
    result["commands"] = [op.command for op in operations]
    after = expected
    if operations:
        result["changed"] = True
        if not module.check_mode:
            try:
                resource.apply(operations)
                after = resource.gather(desired, state)
            except ApplyError as exc:
                resource.close()
                module.fail_json(msg=str(exc), **result)
                return
    if not module.check_mode:
        resource.persist()
    resource.close()
    result["after"] = listing(after, resource)
    if module._diff and operations:
        result["diff"] = {
            "before": json.dumps(result["before"], indent=2, sort_keys=True) + "\n",
            "after": json.dumps(result["after"], indent=2, sort_keys=True) + "\n",
        }
    for warning in resource.warnings:
        module.warn(warning)
    module.exit_json(**result)
