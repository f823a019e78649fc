"""Measure one command: wall time, processes it spawned, peak memory.

Processes are counted exactly with the kernel's process-events connector (``NETLINK_CONNECTOR``,
``CN_IDX_PROC``; needs root and ``CONFIG_PROC_EVENTS``): every fork on the machine is reported
with its parent, and the descendants of the measured command are followed through the event
stream, so concurrent work of other users is not counted. Threads are not processes and are
not counted. Listening is read-only: it changes nothing on the machine. When the connector is
unavailable (or the event stream overflowed), the machine-wide ``processes`` counter of
``/proc/stat`` is the fallback, which also counts everything else running at the same time;
both numbers are always recorded.

Memory: ``ru_maxrss`` of ``wait4()`` on the command (the largest single process of its tree,
as ``/usr/bin/time -v`` reports it) and, sampled every 50 ms, the peak of the summed RSS of all
live processes of the tree.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_EXIT = 0x80000000
SO_RCVBUFFORCE = 33
_NLMSG_HDR = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_EVENT_HDR = struct.Struct("=IIQ")
_PAGE = os.sysconf("SC_PAGE_SIZE")
TIME_BIN = "/usr/bin/time"


def machine_processes() -> int:
    """The machine-wide count of forks since boot (``processes`` in /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("processes "):
                return int(line.split()[1])
    return 0


class ProcEvents:
    """A listener on the process-events connector; records fork/exec/exit events in order."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.events: list[tuple] = []
        self.overflow = False
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
            sock.bind((0, CN_IDX_PROC))
            sock.settimeout(0.2)
            self.sock = sock
            self._send(PROC_CN_MCAST_LISTEN)
        except OSError as exc:
            self.error = f"process-events connector unavailable: {exc}"
            self.sock = None
            return
        self._thread = threading.Thread(target=self._loop, name="proc-events", daemon=True)
        self._thread.start()

    @property
    def available(self) -> bool:
        return self.sock is not None

    def _send(self, op: int) -> None:
        assert self.sock is not None
        data = struct.pack("=I", op)
        cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(data), 0) + data
        self.sock.send(_NLMSG_HDR.pack(_NLMSG_HDR.size + len(cn), 3, 0, 0, 0) + cn)  # NLMSG_DONE

    def _loop(self) -> None:
        assert self.sock is not None
        while not self._stop.is_set():
            try:
                buf = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError as exc:  # ENOBUFS: the kernel dropped events
                if getattr(exc, "errno", None) == 105:
                    self.overflow = True
                    continue
                self.error = str(exc)
                return
            batch = []
            offset = 0
            while offset + _NLMSG_HDR.size <= len(buf):
                length = _NLMSG_HDR.unpack_from(buf, offset)[0]
                if length < _NLMSG_HDR.size:
                    break
                base = offset + _NLMSG_HDR.size + _CN_MSG.size
                if base + _EVENT_HDR.size <= offset + length:
                    what = _EVENT_HDR.unpack_from(buf, base)[0]
                    data = base + _EVENT_HDR.size
                    if what == PROC_EVENT_FORK:
                        _ppid, ptgid, cpid, ctgid = struct.unpack_from("=IIII", buf, data)
                        if cpid == ctgid:  # a new process, not a thread
                            batch.append(("fork", ptgid, ctgid))
                    elif what == PROC_EVENT_EXEC:
                        _pid, tgid = struct.unpack_from("=II", buf, data)
                        batch.append(("exec", tgid, tgid))
                    elif what == PROC_EVENT_EXIT:
                        pid, tgid = struct.unpack_from("=II", buf, data)
                        if pid == tgid:
                            batch.append(("exit", tgid, tgid))
                offset += (length + 3) & ~3
            with self._lock:
                self.events.extend(batch)

    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def since(self, start: int) -> list[tuple]:
        with self._lock:
            return self.events[start:]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.sock is not None:
            try:
                self._send(PROC_CN_MCAST_IGNORE)
            except OSError:
                pass
            self.sock.close()
            self.sock = None


class Tree:
    """The process tree under *root*, followed incrementally through the event stream."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.live = {root}
        self.forks = 0
        self.execs = 0
        self.seen = 0

    def feed(self, events: list[tuple]) -> None:
        for kind, a, b in events:
            if kind == "fork":
                if a in self.live:
                    self.live.add(b)
                    self.forks += 1
            elif kind == "exec":
                if a in self.live:
                    self.execs += 1
            elif kind == "exit" and a != self.root:
                self.live.discard(a)  # a reused pid must not count as ours later
        self.seen += len(events)


def descendants(events: list[tuple], root: int) -> tuple[int, int, set[int]]:
    """(processes forked under *root*, execs under *root*, pids still in the tree)."""
    tree = Tree(root)
    tree.feed(events)
    return tree.forks, tree.execs, tree.live


@dataclass
class Measurement:
    argv: list[str]
    rc: int
    wall: float
    processes: int | None  # forked by the command's tree (exact), None if unknown
    execs: int | None
    machine_processes: int  # machine-wide fork counter delta (includes other users' work)
    maxrss_kb: int  # largest single process of the tree (wait4 ru_maxrss)
    peak_tree_rss_kb: int  # sampled peak of the summed RSS of the tree
    user_s: float
    sys_s: float
    log: str | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in (
            "rc", "wall", "processes", "execs", "machine_processes", "maxrss_kb", "peak_tree_rss_kb", "user_s", "sys_s")}
        d.update(self.extra)
        return d


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * _PAGE // 1024
    except (OSError, ValueError, IndexError):
        return 0


class Runner:
    """Runs commands one at a time and measures them."""

    def __init__(self) -> None:
        self.events = ProcEvents()
        self.current: int | None = None

    def close(self) -> None:
        self.kill_current()
        self.events.close()

    def kill_current(self) -> None:
        """Kill the command we started (its whole process group), if it is still running."""
        pid = self.current
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)  # the group the command leads (setsid)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.current = None

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        stdin_text: str | None = None,
        log: str | os.PathLike[str] | None = None,
        timeout: float = 3600,
    ) -> Measurement:
        """Run *argv* (stdout and stderr to *log*, or discarded) and measure it.

        The command is started with ``posix_spawn`` (vfork-like), so the child does not inherit
        a copy of this Python process's memory: its ``ru_maxrss`` is its own.
        """
        maxrss_file = None
        if os.access(TIME_BIN, os.X_OK):
            # GNU time reports the command's own ru_maxrss; a child forked by this Python process
            # would carry this process's high-water RSS (the kernel keeps it across exec).
            fd, maxrss_file = tempfile.mkstemp(prefix="bench-maxrss-")
            os.close(fd)
            argv = [TIME_BIN, "-q", "-f", "%M", "-o", maxrss_file, *argv]
        mark = self.events.mark() if self.events.available else 0
        machine_before = machine_processes()
        stdin_r = stdin_w = None
        actions: list[tuple] = []
        if stdin_text is not None:
            stdin_r, stdin_w = os.pipe()
            actions.append((os.POSIX_SPAWN_DUP2, stdin_r, 0))
        else:
            actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
        out_path = os.fspath(log) if log is not None else os.devnull
        actions.append((os.POSIX_SPAWN_OPEN, 1, out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        actions.append((os.POSIX_SPAWN_DUP2, 1, 2))
        started = time.monotonic()
        # Own session and process group: kill_current() kills exactly this tree, nothing else.
        pid = os.posix_spawnp(argv[0], list(argv), dict(env if env is not None else os.environ),
                              file_actions=actions, setsid=True)
        if stdin_r is not None:
            os.close(stdin_r)
        self.current = pid
        peak_tree = [0]
        stop = threading.Event()
        tree = Tree(pid)
        tree_lock = threading.Lock()

        def sample() -> None:
            while not stop.wait(0.05):
                if not self.events.available:
                    total = _rss_kb(pid)
                else:
                    with tree_lock:
                        tree.feed(self.events.since(mark + tree.seen))
                        pids = [p for p in tree.live if p != pid or maxrss_file is None]
                    total = sum(_rss_kb(p) for p in pids)
                peak_tree[0] = max(peak_tree[0], total)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        if stdin_w is not None:
            writer = threading.Thread(target=_write_all, args=(stdin_w, stdin_text.encode()), daemon=True)
            writer.start()
        deadline = started + timeout
        status = rusage = None
        while True:
            done, status, rusage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                self.kill_current()
                raise TimeoutError(f"{argv[0]} did not finish in {timeout:.0f}s")
            time.sleep(0.005)
        wall = time.monotonic() - started
        rc = os.waitstatus_to_exitcode(status)
        self.current = None
        stop.set()
        sampler.join()
        time.sleep(0.05)  # let the last events of the tree arrive
        machine = machine_processes() - machine_before
        forks = execs = None
        if self.events.available and not self.events.overflow:
            with tree_lock:
                tree.feed(self.events.since(mark + tree.seen))
            # + the command itself, unless it is GNU time (which forked the command)
            forks, execs = tree.forks + (maxrss_file is None), tree.execs - (maxrss_file is not None)
        maxrss = rusage.ru_maxrss
        if maxrss_file is not None:
            try:
                with open(maxrss_file, encoding="ascii") as fh:
                    maxrss = int(fh.read().split()[-1])
            except (OSError, ValueError, IndexError):
                pass
            os.unlink(maxrss_file)
        return Measurement(
            argv=list(argv),
            rc=rc,
            wall=wall,
            processes=forks,
            execs=execs,
            machine_processes=machine,
            maxrss_kb=maxrss,
            peak_tree_rss_kb=peak_tree[0],
            user_s=rusage.ru_utime,
            sys_s=rusage.ru_stime,
            log=out_path if log is not None else None,
        )


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass
    finally:
        os.close(fd)
