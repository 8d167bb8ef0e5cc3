"""`adaptnb dashboard` ended by SIGTERM or SIGHUP stops as Ctrl-C does (issue 37): exit status 0, one line saying it
stopped, Voila and every kernel it started gone (Voila's process group, and each kernel's, for Jupyter starts a kernel
in a session of its own), and the port free: three dashboards in turn on one port, ended by SIGTERM, SIGHUP and SIGINT,
each starting and answering on the port the one before freed. Real processes on a loopback port (about 10 s each).
The tree is read from /proc here, independently of the code under test; zombies count as ended."""
import contextlib, os, select, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

pytest.importorskip("voila", reason="voila is not installed")
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")

EXE = Path(sys.executable).with_name("adaptnb")
START = 300  # seconds a dashboard may take to answer on a busy machine (usually under 10)
FREE = 5  # seconds the port may take to be free once the command has ended


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    "Whether a server could listen on `port` (with SO_REUSEADDR, as Voila's tornado does: TIME_WAIT does not count)"
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _processes() -> dict[int, tuple[int, int]]:
    "pid -> (parent pid, process group) of each live process; a zombie has ended"
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if state != "Z":
            out[int(stat.parent.name)] = (int(ppid), int(pgrp))
    return out


def _tree(pid: int) -> set[int]:
    "`pid`'s live descendants"
    procs, out, todo = _processes(), set(), [pid]
    while todo:
        parent = todo.pop()
        kids = {p for p, (pp, _) in procs.items() if pp == parent}
        out |= kids
        todo += kids
    return out


def _start(port: int, tmp: Path, name: str) -> subprocess.Popen:
    "`adaptnb dashboard` on `port`, once it has printed its URL"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("ADAPTNB_DASHBOARD", None)
    with open(tmp / f"{name}.log", "w") as log:
        proc = subprocess.Popen([str(EXE), "dashboard", "--root", str(tmp / "runs"), "--port", str(port)], env=env,
                                cwd=tmp, stdout=subprocess.PIPE, stderr=log, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], START)
    line = proc.stdout.readline() if ready else f"(nothing within {START} s)"
    log = (tmp / f"{name}.log").read_text()[-2000:]
    assert line.startswith(f"adaptnb dashboard: http://127.0.0.1:{port}/"), (line, log)
    return proc


def _page(port: int) -> int:
    "The status of the app's page; rendering it starts a kernel"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=START) as r:
        r.read()
        return r.status


def _stop(proc: subprocess.Popen, sig: signal.Signals, port: int):
    "Send `sig`: exit 0, one line saying it stopped, nothing left of Voila's and its kernels' groups, the port free"
    tree = _tree(proc.pid)
    groups = {g for p, (_, g) in _processes().items() if p in tree}
    assert len(groups) >= 2, f"expected Voila and a kernel, each in its own group: {tree}"
    proc.send_signal(sig)
    assert proc.wait(60) == 0
    assert proc.stdout.read() == f"adaptnb dashboard: stopped ({sig.name})\n"
    deadline = time.monotonic() + FREE
    while time.monotonic() < deadline:
        left = {p for p, (_, g) in _processes().items() if g in groups or p in tree}
        if not left and _port_free(port):
            return
        time.sleep(0.1)
    assert not left, f"left running after {sig.name}: {left}"
    assert _port_free(port), f"port {port} still in use {FREE} s after {sig.name}"


def _kill(proc: subprocess.Popen):
    "A failed test's clean-up: end whatever is left of the dashboard's tree"
    for p in _tree(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
        proc.wait()



def test_each_stop_signal_ends_voila_and_its_kernels(tmp_path):
    "Three dashboards in turn on one port, ended by SIGTERM, SIGHUP and SIGINT (Ctrl-C): each port free for the next"
    port = _free_port()
    for n, sig in enumerate((signal.SIGTERM, signal.SIGHUP, signal.SIGINT)):
        proc = _start(port, tmp_path, f"dashboard-{n}")
        try:
            assert _page(port) == 200
            _stop(proc, sig, port)
        finally:
            _kill(proc)
