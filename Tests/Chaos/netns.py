"""Hosts on one machine: Linux network namespaces joined by veth pairs to a bridge in a "switch" namespace.

Nothing is created in the root namespace: the bridge lives in `<prefix>sw`, every host is `<prefix><name>` with one
interface `eth0` (its peer `<name>` sits on the bridge in the switch namespace).  Cleanup kills every process in each
namespace (SIGKILL) and deletes the namespaces; stale namespaces with the prefix from a crashed run are removed first.
"""

import os
import signal
import subprocess
import time

PREFIX = "chx-"
SUBNET = "10.77.9"          # /24; hosts get SUBNET.<n>


class ChaosError(Exception):
    """A failed check or a bounded wait that ran out; the message says what and where."""


def run(cmd, check=True, timeout=60, capture=True, env=None):
    """Run a command (list), return CompletedProcess; raise ChaosError with its output on failure."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None,
                           text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise ChaosError(f"command timed out after {timeout}s: {' '.join(cmd)}\n{e.output or ''}") from None
    if check and p.returncode != 0:
        raise ChaosError(f"command failed (rc {p.returncode}): {' '.join(cmd)}\n{(p.stdout or '').strip()}")
    return p


def wait_until(what, predicate, timeout, interval=0.1):
    """Poll predicate() until it returns a truthy value; raise ChaosError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise ChaosError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def ns_pids(ns):
    p = run(["ip", "netns", "pids", ns], check=False, timeout=10)
    return [int(x) for x in (p.stdout or "").split() if x.isdigit()]


def kill_namespace_processes(ns, sig=signal.SIGKILL, wait=10.0):
    """Send `sig` to every process in namespace `ns`; with SIGKILL, wait until they are gone."""
    for pid in ns_pids(ns):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    if sig == signal.SIGKILL:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            alive = [p for p in ns_pids(ns) if _alive(p)]
            if not alive:
                return
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def existing_namespaces():
    p = run(["ip", "netns", "list"], check=False, timeout=10)
    return [line.split()[0] for line in (p.stdout or "").splitlines() if line.strip()]


def remove_stale(prefix=PREFIX, log=print):
    """Remove namespaces (and their processes) left by an earlier run that crashed."""
    stale = [ns for ns in existing_namespaces() if ns.startswith(prefix)]
    for ns in stale:
        log(f"removing stale namespace {ns} (pids {ns_pids(ns)})")
        kill_namespace_processes(ns)
        run(["ip", "netns", "del", ns], check=False, timeout=10)
    return stale


def check_privileges(prefix=PREFIX):
    """Fail loudly (ChaosError) when network namespaces cannot be created here."""
    probe = f"{prefix}probe{os.getpid()}"
    p = run(["ip", "netns", "add", probe], check=False, timeout=10)
    if p.returncode != 0:
        raise ChaosError("cannot create network namespaces (`ip netns add` failed: "
                         f"{(p.stdout or '').strip()}); the chaos harness needs root or CAP_SYS_ADMIN+CAP_NET_ADMIN "
                         "and iproute2. Not skipping: run it where namespaces are allowed.")
    run(["ip", "netns", "del", probe], check=False, timeout=10)


class Host:
    """One simulated host: a namespace with eth0 = SUBNET.<octet>, plus the processes the harness started in it."""

    def __init__(self, net, name, octet):
        self.net, self.name, self.octet = net, name, octet
        self.ns = f"{net.prefix}{name}"
        self.ip = f"{SUBNET}.{octet}"
        self.switch_port = name            # the veth end on the bridge (in the switch namespace)
        self.procs = []                    # (label, Popen)

    def __repr__(self):
        return f"Host({self.name} {self.ip})"

    def cmd(self, argv):
        return ["ip", "netns", "exec", self.ns] + list(argv)

    def run(self, argv, **kw):
        return run(self.cmd(argv), **kw)

    def spawn(self, label, argv, log_path, env=None, stdout_pipe=False):
        """Start a long-running process in this host (own session); stderr (and stdout unless piped) go to log_path."""
        logf = open(log_path, "ab", buffering=0)
        logf.write(f"\n==== {time.strftime('%H:%M:%S')} {label}: {' '.join(argv)}\n".encode())
        p = subprocess.Popen(self.cmd(argv), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE if stdout_pipe else logf, stderr=logf,
                             start_new_session=True, env=env)
        p.chaos_log = logf
        p.chaos_label = label
        self.procs.append((label, p))
        return p

    def link(self, up):
        """Cable in/out: set the switch side of this host's veth up or down (the host sees no carrier, no FIN/RST)."""
        run(["ip", "-n", self.net.switch_ns, "link", "set", self.switch_port, "up" if up else "down"], timeout=10)

    def kill_all(self, sig=signal.SIGKILL):
        """SIGKILL (or another signal to) every process in this host's namespace."""
        kill_namespace_processes(self.ns, sig)
        if sig == signal.SIGKILL:
            for _, p in self.procs:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            self.procs = [(l, p) for l, p in self.procs if p.poll() is None]


class Net:
    """The test network: a switch namespace with bridge br0, and hosts attached to it."""

    def __init__(self, prefix=PREFIX, log=print):
        self.prefix = prefix
        self.switch_ns = f"{prefix}sw"
        self.hosts = {}
        self.log = log
        self.created = []

    def create_switch(self):
        self._add_ns(self.switch_ns)
        run(["ip", "-n", self.switch_ns, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.switch_ns, "link", "set", "br0", "up"])

    def _add_ns(self, ns):
        run(["ip", "netns", "add", ns])
        self.created.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def add_host(self, name, octet):
        h = Host(self, name, octet)
        self._add_ns(h.ns)
        run(["ip", "-n", self.switch_ns, "link", "add", h.switch_port, "type", "veth", "peer", "name", "eth0",
             "netns", h.ns])
        run(["ip", "-n", self.switch_ns, "link", "set", h.switch_port, "master", "br0", "up"])
        run(["ip", "-n", h.ns, "addr", "add", f"{h.ip}/24", "dev", "eth0"])
        run(["ip", "-n", h.ns, "link", "set", "eth0", "up"])
        self.hosts[name] = h
        return h

    def __getitem__(self, name):
        return self.hosts[name]

    def destroy(self):
        """Kill every process in every namespace this run made, then delete the namespaces. Idempotent."""
        for ns in reversed(self.created):
            kill_namespace_processes(ns)
        for h in self.hosts.values():
            for _, p in h.procs:
                if p.poll() is None:
                    try:
                        p.kill()
                    except ProcessLookupError:
                        pass
                try:
                    p.chaos_log.close()
                except Exception:
                    pass
        for ns in reversed(self.created):
            run(["ip", "netns", "del", ns], check=False, timeout=10)
        self.created = []
