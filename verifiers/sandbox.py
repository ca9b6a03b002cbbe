"""Run untrusted programs in an OS sandbox.

Threat model. The program is hostile: it may loop forever, exhaust memory, fork-bomb, write
anywhere, open sockets, spawn daemons, read any file it can see, tamper with its own interpreter,
exit early with any status. What we guarantee, and how:

* **Resources**: every sandboxed process gets rlimits on CPU seconds, address space, process count,
  file size, open files and core dumps, and a wall-clock deadline after which its whole process
  group is killed; captured output is capped.
* **Identity**: when the host runs as root (CI and many containers do), the program runs as a
  throw-away unprivileged uid, unique to the sandbox, because RLIMIT_NPROC does not bind root.
  Its temporary directory is owned by that uid and private (0700). After the run, every process
  of that uid is killed, so a double-forked daemon does not survive.
* **With bubblewrap** (`bwrap`, the Debian package `bubblewrap`; used whenever it works): new user,
  pid, network, ipc and uts namespaces (no network at all), a read-only view of `/usr` only (not
  the project, not the datasets, not home directories), a private `/tmp`, the private temp dir
  as its only writable place, and death with its parent.
* **Without bubblewrap** a loud warning is logged once. rlimits, the unprivileged uid and the kills
  still apply, but the program can read world-readable files (datasets included) and use the
  network. Do not train on hostile code without bubblewrap.
* **Not covered**: kernel exploits and side channels; a host that is not root cannot change uid,
  so without bubblewrap it shares the host user's permissions.

The verdict is never taken from the untrusted program's exit status: see verifiers/code.py.
"""
from __future__ import annotations

import functools
import logging
import os
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
_warned = False


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    processes: int = 16
    file_size_mb: int = 16
    open_files: int = 64
    output_bytes: int = 1 << 20  # stdout / stderr kept per process


@dataclass
class Outcome:
    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    output_truncated: bool


def default_python() -> str:
    """The interpreter sandboxes run: the system Python under /usr (visible inside bwrap)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("python3") or "python3"


@functools.lru_cache(maxsize=None)
def bwrap_works(python: str) -> bool:
    """True when bubblewrap is installed and can start `python` in a sandbox as we would."""
    if shutil.which("bwrap") is None:
        return False
    try:
        probe = Sandbox(Limits(wall_s=20), python=python, use_bwrap=True)
        out = probe.run({}, [python, "-c", "print(6 * 7)"])
        return out.returncode == 0 and out.stdout.strip() == b"42"
    except Exception:
        return False


def _warn_no_bwrap() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("=" * 70 + "\nbubblewrap (bwrap) is not available: untrusted code runs with rlimits and an "
                    "unprivileged uid only, and can READ FILES and USE THE NETWORK. Install it: apt-get install "
                    "bubblewrap\n" + "=" * 70)


def _sandbox_uid() -> int:
    """A uid used by nothing else: per process and per call, so concurrent sandboxes never share one."""
    _sandbox_uid.counter = getattr(_sandbox_uid, "counter", 0) + 1
    return 200_000 + (os.getpid() % 20_000) * 40 + _sandbox_uid.counter % 40


class Sandbox:
    def __init__(self, limits: Limits = Limits(), *, python: str | None = None, use_bwrap: bool | str = "auto"):
        self.limits = limits
        self.python = python or default_python()
        self.use_bwrap = bwrap_works(self.python) if use_bwrap == "auto" else bool(use_bwrap)
        self.as_root = os.geteuid() == 0
        _become_subreaper()
        if not self.use_bwrap:
            _warn_no_bwrap()

    # --- launching -------------------------------------------------------------------------
    def start(self, files: dict[str, str], argv: list[str], *, pass_fds: tuple[int, ...] = ()) -> "Running":
        """Write `files` into a fresh private directory and start argv there (cwd = that directory)."""
        uid = _sandbox_uid() if self.as_root else None
        workdir = Path(tempfile.mkdtemp(prefix="reasonrl-sandbox-"))
        for name, text in files.items():
            (workdir / name).write_text(text)
        if uid is not None:
            for p in [workdir, *workdir.iterdir()]:
                os.chown(p, uid, uid)
        os.chmod(workdir, 0o700)
        inner_dir = "/sandbox" if self.use_bwrap else str(workdir)
        command = self._bwrap(workdir, inner_dir) + argv if self.use_bwrap else argv
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": inner_dir, "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONIOENCODING": "utf-8", "PYTHONHASHSEED": "0"}
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=str(workdir), env=env, pass_fds=pass_fds,
                                preexec_fn=functools.partial(_enter_limits, self.limits, uid))
        return Running(proc, workdir, uid, self.limits)

    def run(self, files: dict[str, str], argv: list[str], stdin: bytes = b"") -> Outcome:
        return self.start(files, argv).finish(stdin)

    def _bwrap(self, workdir: Path, inner: str) -> list[str]:
        cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr",
               "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind", str(workdir), inner, "--chdir", inner]
        for d in ("bin", "sbin", "lib", "lib32", "lib64"):
            host = Path("/") / d
            if host.is_symlink():
                cmd += ["--symlink", os.readlink(host), f"/{d}"]
            elif host.is_dir():
                cmd += ["--ro-bind", str(host), f"/{d}"]
        prefix = Path(self.python).resolve().parent.parent
        if not str(prefix).startswith("/usr"):  # an interpreter outside /usr: show its installation only
            cmd += ["--ro-bind", str(prefix), str(prefix)]
        return cmd + ["--"]


@functools.lru_cache(maxsize=None)
def _become_subreaper() -> None:
    """Orphaned sandbox processes (bwrap's inner init, a daemonised child) are re-parented to us
    rather than to PID 1, which in many containers never reaps them; we reap them in kill()."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def _reap(uid: int | None) -> None:
    """waitpid() our own orphaned sandbox children: those of the sandbox uid, or (when we could not
    change uid) bubblewrap's inner processes. Never anyone else's, so Popen and multiprocessing
    keep their own children."""
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if uid is not None and entry.stat().st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/stat") as fh:
                head, _, tail = fh.read().rpartition(")")
            ppid, comm = int(tail.split()[1]), head.partition("(")[2]
            if ppid == me and (uid is not None or comm == "bwrap"):
                os.waitpid(int(entry.name), os.WNOHANG)
        except (FileNotFoundError, ProcessLookupError, ChildProcessError, PermissionError, ValueError, IndexError):
            continue


def _enter_limits(limits: Limits, uid: int | None) -> None:
    """In the child, before exec: own process group, rlimits, die with the parent, then drop to uid."""
    os.setsid()
    mb = 1024 * 1024
    for which, value in ((resource.RLIMIT_CPU, limits.cpu_s), (resource.RLIMIT_AS, limits.memory_mb * mb),
                         (resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_FSIZE, limits.file_size_mb * mb),
                         (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)


class Running:
    """A started sandboxed process: feed it, collect its capped output, and clean up everything."""

    def __init__(self, proc: subprocess.Popen, workdir: Path, uid: int | None, limits: Limits):
        self.proc, self.workdir, self.uid, self.limits = proc, workdir, uid, limits
        self.started = time.monotonic()

    def finish(self, stdin: bytes = b"", wall_s: float | None = None) -> Outcome:
        deadline = self.started + (wall_s if wall_s is not None else self.limits.wall_s)
        out, err, truncated, timed_out = bytearray(), bytearray(), False, False
        sel = selectors.DefaultSelector()
        try:
            if self.proc.stdin is not None:
                try:
                    self.proc.stdin.write(stdin)
                    self.proc.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
            for stream, buf in ((self.proc.stdout, out), (self.proc.stderr, err)):
                os.set_blocking(stream.fileno(), False)
                sel.register(stream, selectors.EVENT_READ, buf)
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(timeout=min(left, 0.5)):
                    chunk = os.read(key.fileobj.fileno(), 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    room = self.limits.output_bytes - len(key.data)
                    key.data.extend(chunk[:max(room, 0)])
                    if len(chunk) > room:
                        truncated = True
                        timed_out = False
                        raise _OutputLimit()
            left = max(0.0, deadline - time.monotonic())
            try:
                self.proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                timed_out = True
        except _OutputLimit:
            pass
        finally:
            sel.close()
            self.kill()
        code = None if timed_out or truncated else self.proc.returncode
        return Outcome(code, bytes(out), bytes(err), timed_out, truncated)

    def kill(self) -> None:
        """Kill the process group, every process of the sandbox uid, and remove the temp dir."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self.uid is not None:
            kill_uid(self.uid)
        for _ in range(20):
            _reap(self.uid)
            if self.uid is None or not _has_processes(self.uid):
                break
            time.sleep(0.01)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        shutil.rmtree(self.workdir, ignore_errors=True)


class _OutputLimit(Exception):
    pass


def _has_processes(uid: int) -> bool:
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                return True
        except FileNotFoundError:
            continue
    return False


def kill_uid(uid: int) -> int:
    """SIGKILL every process owned by uid (a sandbox uid: nothing else runs under it). Returns the count."""
    killed = 0
    for _ in range(3):  # a fork bomb may spawn while we sweep
        found = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid == uid:
                    os.kill(int(entry.name), signal.SIGKILL)
                    found += 1
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
        killed += found
        if not found:
            break
    return killed
