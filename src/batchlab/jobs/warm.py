"""Warm start: a server imports a step's libraries once, and each job runs in a process forked from it.

Started cold, every job of a run loads an interpreter, torch, pandas and pydantic (and scikit-learn or
matplotlib where its step needs them): 3 to 6 s a job, more than the work of most jobs. Started warm,
`python -m batchlab STEP ...` connects to the server for its step and hands over its arguments,
environment, working folder and standard streams. A child forked from the server runs the step as a
fresh process would: its own process and process group, the job's environment and thread counts, torch's
default random state. The client forwards signals to the child and exits with the child's status; a
client that dies takes its child with it.

The workflow starts the servers for one run of Snakemake on one machine (`Servers`, from its onstart
hook) and stops them when the run ends; a server also stops when Snakemake is gone. Only standard
library here: the client must start in milliseconds. Linux only (fork after torch is imported, file
descriptors passed over a Unix socket).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from batchlab import PACKAGE, source_files

ENV = "BATCHLAB_WARM"  # the folder of the run's server sockets, set for every job of the run
ANY = "any"  # the server of every step without a server of its own
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
HEADER = struct.Struct("!I")
# The line a server ends its log with (Server._say), as benchmarks/pipeline_time.py reads it.
STOPPED_LINE = re.compile(r"^batchlab warm server (?P<name>\S+): stopped after (?P<jobs>\d+) jobs; cpu (?P<cpu>[\d.]+) s", re.M)


def supported() -> str | None:
    """Why this platform cannot start jobs warm, or None when it can."""
    if sys.platform != "linux":
        return f"warm start needs Linux (fork after torch is imported), not {sys.platform}"
    return None


def boot_time() -> float:
    """Seconds on a clock shared by every process of the machine (since boot)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def process_started() -> float:
    """When this process started, on `boot_time`'s clock: from /proc to 10 ms (psutil's is only to 1 s)."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        return int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in ticks since boot
    except (OSError, ValueError, IndexError, AttributeError):
        import psutil

        return boot_time() - (time.time() - psutil.Process().create_time())


# ---- the client: `python -m batchlab` in a job


def socket_for(folder: str, argv: list[str]) -> Path:
    """The server of the step in argv: its own if it has one, else the one for any step."""
    own = Path(folder) / f"{argv[0]}.sock" if argv and argv[0].isidentifier() else None
    return own if own is not None and own.exists() else Path(folder) / f"{ANY}.sock"


def _send(conn: socket.socket, message: dict, fds: list[int] = ()) -> None:
    payload = json.dumps(message).encode()
    data = HEADER.pack(len(payload)) + payload
    sent = socket.send_fds(conn, [data], list(fds)) if fds else conn.send(data)
    if sent < len(data):  # not an empty send: to a peer that has answered and closed, that fails with EPIPE
        conn.sendall(data[sent:])


def _receive(conn: socket.socket, max_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One message (None at end of stream) and the file descriptors that came with it."""
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, max_fds) if max_fds else (conn.recv(1 << 16), [], 0, None)
    if not data:
        return None, fds
    while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
        more = conn.recv(1 << 16)
        if not more:
            raise ConnectionError("the message was cut short")
        data += more
    (size,) = HEADER.unpack_from(data)
    return json.loads(data[HEADER.size : HEADER.size + size]), fds


def delegate(argv: list[str]) -> int | None:
    """Run this job in a child of the run's warm server: its exit status, or None to start cold
    (no server set for this job, or none reachable: said on stderr, which is the job's log)."""
    folder = os.environ.get(ENV)
    if not folder:
        return None
    reason = supported()
    path = socket_for(folder, argv)
    child, pending = None, []

    def forward(signum, _frame):
        """A signal to the job goes to its process group; one that comes before the job began, once it has."""
        if child is None:
            pending.append(signum)
            return
        try:
            os.killpg(child, signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if reason:
            raise OSError(reason)
        conn.connect(str(path))
        request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "started": process_started()}
        _send(conn, request, [0, 1, 2])
        reply, _ = _receive(conn)
        if reply is None or "pid" not in reply:
            raise OSError((reply or {}).get("refused") or f"the server at {path} ended the connection")
    except OSError as err:
        conn.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in pending:  # what a cold job would have done
            signal.raise_signal(signum)
        print(f"batchlab: warm start unavailable ({err}): this job starts cold", file=sys.stderr, flush=True)
        return None
    child = reply["pid"]
    for signum in pending:
        forward(signum, None)
    try:
        reply, _ = _receive(conn)
    except OSError:
        reply = None
    if reply is None:  # the server died: the child cannot be waited for
        forward(signal.SIGTERM, None)
        print(f"batchlab: the warm server at {path} stopped before job {child} ended", file=sys.stderr)
        return 1
    status = reply["exit"]
    if status < 0:  # killed by a signal: end the same way, as a cold job would
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


# ---- the server


def _job_threads(env: dict) -> None:
    """The thread counts a fresh process would take from the job's environment (Snakemake sets
    OMP_NUM_THREADS and its kin to the job's threads): libraries loaded before the job began read theirs
    from the server's."""
    threads = env.get("OMP_NUM_THREADS", "")
    if not threads.isdigit() or int(threads) < 1:
        return
    if "numpy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(int(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))


def _fresh_state() -> None:
    """What a fresh interpreter starts with, where the server's imports may have moved it."""
    tempfile.tempdir = None  # found again from the job's TMPDIR
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.random.default_generator.manual_seed(torch.random.default_generator.initial_seed())


def entry_point(entry: str):
    """The function `module:name` names: what a server's children call with the job's arguments."""
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)


def _run_child(request: dict, fds: list[int], entry: str) -> int:
    """In the forked child: become the job (streams, folder, environment, threads), run its step."""
    from batchlab import forked

    forked.FORKED_JOB = True
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _job_threads(request["env"])
    _fresh_state()
    sys.argv = [sys.argv[0], *request["argv"]]
    return entry_point(entry)(request["argv"], started=request["started"], warm=True)


def source_state() -> dict[str, tuple[int, int]]:
    """Each source file of the package with its modification time and size: what the server loaded."""
    return {str(f): (st.st_mtime_ns, st.st_size) for f in source_files() for st in [f.stat()]}


@dataclass
class _Job:
    conn: socket.socket
    pid: int
    client_gone: bool = False


@dataclass
class Server:
    """The accept-fork-reap loop of one server: single-threaded, so that fork copies no other thread."""

    path: Path
    parent: int
    entry: str  # `module:function` each child calls with the job's arguments (batchlab.cli:main)
    modules: list[str]
    grace_s: float = 10.0  # at shutdown, what running jobs get between SIGTERM and SIGKILL
    jobs: dict[int, _Job] = field(default_factory=dict)
    forked: int = 0
    stopping: bool = False

    def serve(self) -> None:
        self.source = source_state()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        staging = self.path.with_suffix(".binding")
        listener.bind(str(staging))
        listener.listen(128)
        os.replace(staging, self.path)  # the socket appears only once it accepts connections
        signal.signal(signal.SIGTERM, self._stop)
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)
        self.listener = listener
        to_import, began = list(self.modules), time.monotonic()
        while not self.stopping and os.getppid() == self.parent:
            for key, _ in self.selector.select(0 if to_import else 0.2):
                if key.fileobj is listener:
                    self._accept()
                else:
                    self._client_event(key.fileobj)
            self._reap()
            if to_import:  # between imports, so that early jobs need not wait for them all
                self._load(to_import.pop(0))
                if not to_import:
                    self._say(f"loaded {len(self.modules)} modules in {time.monotonic() - began:.2f} s")
        self._shutdown()

    def _load(self, module: str) -> None:
        """Import a module for the jobs; one that fails is left to the jobs that need it (they say why)."""
        try:
            importlib.import_module(module)
        except Exception:
            print(f"batchlab warm server: could not load {module}:", file=sys.stderr)
            traceback.print_exc()

    def _refusal(self) -> str | None:
        """Why a job forked now would not run as a cold one does (it then starts cold, saying so), or None."""
        if source_state() != self.source:  # a job runs the code as it is now, as a cold one would
            return f"batchlab's source under {PACKAGE} changed since the server loaded it"
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            return "the server initialised CUDA while loading its modules, and a process forked from it cannot use CUDA"
        return None

    def _say(self, what: str) -> None:
        """A line of the server's log: what it did, and its own CPU-seconds so far (benchmarks/pipeline_time.py)."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        print(f"batchlab warm server {self.path.stem}: {what}; cpu {own.ru_utime + own.ru_stime:.2f} s", flush=True)

    def _stop(self, *_):
        self.stopping = True

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        try:
            conn.settimeout(10)
            request, fds = _receive(conn, max_fds=3)
            if request is None or len(fds) != 3:
                raise ConnectionError(f"expected a job and its 3 streams, got {len(fds)} streams")
        except (OSError, ValueError) as err:
            print(f"batchlab warm server: bad request: {err}", file=sys.stderr, flush=True)
            conn.close()
            return
        refusal = self._refusal()
        if refusal:
            for fd in fds:
                os.close(fd)
            try:
                _send(conn, {"refused": refusal})
            except OSError:
                pass
            conn.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._child(request, fds, conn)
        try:
            os.setpgid(pid, pid)  # as the child does: its group exists before the client can signal it
        except OSError:
            pass
        for fd in fds:
            os.close(fd)
        self.forked += 1
        job = self.jobs[pid] = _Job(conn, pid)
        try:
            _send(conn, {"pid": pid})
        except OSError:  # the client is already gone
            job.client_gone = True
            self._signal(job, signal.SIGKILL)
            return
        self.selector.register(conn, selectors.EVENT_READ, pid)

    def _child(self, request: dict, fds: list[int], conn: socket.socket) -> None:
        code = 1
        try:
            os.setpgid(0, 0)  # its own group: signals reach it and the workers it forks
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL if sig == signal.SIGTERM else signal.default_int_handler)
            self.selector.close()
            self.listener.close()
            conn.close()  # only the server may hold it: the client sees the server's end, not the job's
            for job in self.jobs.values():
                job.conn.close()
            code = _run_child(request, fds, self.entry)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _client_event(self, conn: socket.socket) -> None:
        job = self.jobs[self.selector.get_key(conn).data]
        try:
            gone = not conn.recv(1 << 10)
        except OSError:
            gone = True
        if gone:  # the client was killed (SIGKILL, or it would have passed the signal on): so is its job
            self.selector.unregister(conn)
            job.client_gone = True
            self._signal(job, signal.SIGKILL)

    def _signal(self, job: _Job, sig: int) -> None:
        try:
            os.killpg(job.pid, sig)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        """Tell each ended job's client its exit status."""
        while self.jobs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            job = self.jobs.pop(pid, None)
            if job is None:
                continue
            if not job.client_gone:
                self.selector.unregister(job.conn)
                try:
                    _send(job.conn, {"exit": os.waitstatus_to_exitcode(status)})
                except OSError:
                    pass
            job.conn.close()

    def _shutdown(self) -> None:
        for job in self.jobs.values():
            self._signal(job, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while self.jobs and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.05)
        for job in self.jobs.values():
            self._signal(job, signal.SIGKILL)
        self.path.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()  # the run's folder, once its last server is gone
        except OSError:
            pass
        self._say(f"stopped after {self.forked} jobs")


# ---- the servers of one run


@dataclass
class Servers:
    """The warm servers of one run: one per entry of `preload` (step name, or ANY, to modules)."""

    folder: Path
    processes: dict[str, subprocess.Popen]

    @classmethod
    def start(cls, preload: dict[str, list[str]], log: Path, entry: str, timeout_s: float = 30.0) -> Servers:
        """Start the servers (children of this process, each in its own session) and wait until each
        accepts connections; their children run a job by calling `entry` (`module:function`, which
        takes the job's arguments). Jobs find the servers through the environment variable ENV, set here."""
        reason = supported()
        if reason:
            raise OSError(reason)
        folder = Path(tempfile.mkdtemp(prefix="batchlab-warm-"))  # mode 0700: this user's jobs only
        log.parent.mkdir(parents=True, exist_ok=True)
        # torch's NVML device check: should anything the servers load ask whether CUDA is there, the
        # answer leaves the driver uninitialised, so their forked GPU jobs can still initialise it.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}
        processes = {}
        with open(log, "ab") as out:
            for name, modules in preload.items():
                command = [sys.executable, "-m", "batchlab.jobs.warm", str(folder / f"{name}.sock"), str(os.getpid()), entry,
                           *modules]
                processes[name] = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, start_new_session=True,
                )
        servers = cls(folder, processes)
        deadline = time.monotonic() + timeout_s
        while not all((folder / f"{name}.sock").exists() for name in preload):
            failed = [name for name, p in processes.items() if p.poll() is not None]
            if failed or time.monotonic() > deadline:
                servers.stop()
                raise OSError(f"warm server {', '.join(failed) or 'start'} failed: see {log}")
            time.sleep(0.01)
        os.environ[ENV] = str(folder)
        return servers

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop every server (each stops its remaining jobs first) and remove their sockets."""
        os.environ.pop(ENV, None)
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_for_run(enabled: bool, local: bool, preload: dict[str, list[str]], log: Path, entry: str) -> Servers | None:
    """The warm servers of a Snakemake run, or None when its jobs start cold; says which, and why, on stderr."""
    reason = (
        "warm_start: false in the config" if not enabled
        else "the jobs run on other machines" if not local
        else supported()
    )
    if reason is None:
        try:
            servers = Servers.start(preload, log, entry)
        except OSError as err:
            reason = str(err)
        else:
            print(f"batchlab: jobs start warm, forked from servers of {', '.join(preload)} (log: {log})", file=sys.stderr)
            return servers
    print(f"batchlab: jobs start cold: {reason}", file=sys.stderr)
    return None


def main(argv: list[str]) -> None:
    """`python -m batchlab.jobs.warm SOCKET PARENT_PID ENTRY MODULE...`: serve until stopped or the parent is gone."""
    path, parent, entry, *modules = argv
    Server(Path(path), int(parent), entry, modules).serve()


if __name__ == "__main__":  # `python -m batchlab.jobs.warm`: serve from the module the jobs import, not __main__
    from batchlab.jobs.warm import main as serve

    serve(sys.argv[1:])
