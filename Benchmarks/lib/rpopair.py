"""The replicated pair `tandem-bench rpo` measures: two tandemd processes (alpha primary,
beta secondary, TLS on) on this machine, started the way Benchmarks/pair.sh starts them
(scripts/lib/start-tandemd.py, scripts/make-certs.sh), optionally inside a network
namespace whose loopback is shaped with `tc qdisc ... tbf` (a bandwidth cap on the
replication link; NBD and control stay on Unix sockets, outside the shaping). Or two
running daemons named by their control sockets (`ExistingPair`).
"""
import json, os, signal, socket, subprocess, sys, time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Control:
    """One connection to a daemon's control socket (newline-delimited JSON)."""

    def __init__(self, path, timeout_s=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self.next_id = 1

    def request(self, message):
        message = dict(message, id=self.next_id)
        self.next_id += 1
        self.file.write(json.dumps(message).encode() + b"\n")
        self.file.flush()
        line = self.file.readline()
        if not line:
            raise ConnectionError("control socket closed")
        return json.loads(line)

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ShapedNamespace:
    """A network namespace whose loopback carries at most `mbit` Mbit/s (tc tbf), so both
    daemons inside it replicate over a capped link. Needs root (CAP_NET_ADMIN)."""

    def __init__(self, mbit, hops=1):
        self.name = f"tandem-rpo-{os.getpid()}-{int(time.monotonic_ns()) % 100000}"
        self.mbit = mbit
        # Every byte passes the loopback qdisc once per hop: through a delay proxy it is two
        # (node to proxy, proxy to node), so the bucket fills at twice the link's rate.
        self.qdisc_mbit = mbit * hops
        self.commands = []

    def _run(self, *args):
        self.commands.append(" ".join(args))
        done = subprocess.run(args, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(args)}` failed: {done.stderr.strip()}")

    def create(self):
        if os.geteuid() != 0:
            raise RuntimeError("a shaped link needs root (network namespace and tc); run as root or without --link-mbit")
        self._run("ip", "netns", "add", self.name)
        try:
            # MTU 1500 so that tbf's bucket (burst) holds whole packets as on a real NIC.
            self._run("ip", "-n", self.name, "link", "set", "lo", "mtu", "1500", "up")
            burst_bytes = max(16 * 1024, int(self.qdisc_mbit * 1e6 / 8 / 250))  # 4 ms of the rate
            self._run("ip", "netns", "exec", self.name, "tc", "qdisc", "add", "dev", "lo", "root", "tbf",
                      "rate", f"{self.qdisc_mbit:g}mbit", "burst", str(burst_bytes), "latency", "100ms")
        except RuntimeError:
            self.delete()
            raise

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class Pair:
    """Starts alpha (primary) and beta (secondary) with resource r0 of `size_bytes` on fresh
    sparse volumes under `work` (both zeros, `initial_sync: none`), waits until Connected."""

    NAME = "r0"

    def __init__(self, work, bin_dir, mode, size_bytes, namespace=None, delay_ms=0.0, settings=None, log=print,
                 spike_ms=None):
        self.work, self.bin, self.mode, self.size = work, bin_dir, mode, size_bytes
        self.spike_ms = spike_ms  # a round trip the delay proxies switch to on `spike(True)`
        self.settings = settings or {}  # more create settings, on both nodes
        self.namespace = namespace
        self.delay_ms = delay_ms
        self.log = log
        self.pids = {}
        self.disk_state_before_failover = None
        self.proxies = []
        self.commands = []

    def ctl_path(self, node):
        return os.path.join(self.work, f"{node}.ctl")

    def nbd_path(self, node):
        return os.path.join(self.work, f"{node}-r0.sock")

    def volume(self, node):
        return os.path.join(self.work, f"{node}.img")

    def _start_node(self, node, port, certs):
        state = os.path.join(self.work, node)
        command = [os.path.join(self.bin, "tandemd"), "--node-name", node, "--state-dir", state,
                   "--control-socket", self.ctl_path(node), "--listen", f"127.0.0.1:{port}",
                   "--tls-ca", f"{certs}/ca.crt", "--tls-cert", f"{certs}/{node}.crt",
                   "--tls-key", f"{certs}/{node}.key"]
        if self.namespace:
            command = self.namespace.prefix() + command
        self.commands.append(" ".join(command))
        done = subprocess.run([sys.executable, os.path.join(REPO, "scripts/lib/start-tandemd.py"),
                               "--log", os.path.join(self.work, f"{node}.log"), "--"] + command,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"tandemd {node} did not start: {done.stderr.strip()}")
        self.pids[node] = int(done.stdout.strip())

    def start(self, connect_timeout_s=30.0):
        certs = os.path.join(self.work, "certs")
        if not os.path.exists(os.path.join(certs, "beta.key")):
            subprocess.run([os.path.join(REPO, "scripts/make-certs.sh"), certs, "alpha", "beta"],
                           check=True, capture_output=True)
        ports = {"alpha": free_port(), "beta": free_port()}
        for node in ("beta", "alpha"):
            self._start_node(node, ports[node], certs)
        # Each node reaches its peer through a delay proxy when the link has latency.
        dial = dict(ports)
        if self.delay_ms or self.spike_ms:
            dial = {node: self._start_proxy(port) for node, port in ports.items()}
        roles = {"beta": ("secondary", "alpha"), "alpha": ("primary", "beta")}
        for node in ("beta", "alpha"):
            role, peer = roles[node]
            request = {"cmd": "create", "name": self.NAME, "volume": self.volume(node),
                       "size_bytes": self.size, "role": role, "mode": self.mode, "initial_sync": "none",
                       "peer": {"name": peer, "address": f"127.0.0.1:{dial[peer]}"},
                       "nbd": {"socket": self.nbd_path(node)}, **self.settings}
            self.commands.append(f"{node}: {json.dumps(request)}")
            reply = self.request(node, request)
            if not reply.get("ok"):
                raise RuntimeError(f"create r0 on {node} refused: {json.dumps(reply)}")
        for node in ("beta", "alpha"):
            reply = self.request(node, {"cmd": "enable", "name": self.NAME})
            if not reply.get("ok") and reply.get("error") != "wrong-state":
                raise RuntimeError(f"enable r0 on {node} refused: {json.dumps(reply)}")
        for node in ("alpha", "beta"):
            self.wait_status(node, lambda r: r.get("connection_state") == "Connected", connect_timeout_s,
                             "Connected")

    def _start_proxy(self, target_port):
        """A delay proxy to target_port (half the round trip each way); returns its port."""
        port = free_port()
        command = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "delayproxy.py"),
                   str(port), str(target_port), f"{self.delay_ms / 2:g}"]
        if self.spike_ms:
            command.append(f"{self.spike_ms / 2:g}")
        if self.namespace:
            command = self.namespace.prefix() + command
        self.commands.append(" ".join(command))
        proxy = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.proxies.append(proxy)
        if proxy.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the delay proxy to port {target_port} did not start")
        return port

    def spike(self, on):
        """The delay proxies switch to the spike's round trip (on) or back (off)."""
        for proxy in self.proxies:
            if proxy.poll() is None:
                proxy.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    def request(self, node, message):
        control = Control(self.ctl_path(node))
        try:
            return control.request(message)
        finally:
            control.close()

    def wait_status(self, node, predicate, timeout_s, what):
        control = Control(self.ctl_path(node))
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                reply = control.request({"cmd": "status", "name": self.NAME})
                if predicate(reply):
                    return reply
                if time.monotonic() > deadline:
                    raise RuntimeError(f"r0 on {node} not {what} within {timeout_s:g} s; last status: {json.dumps(reply)}")
                time.sleep(0.02)
        finally:
            control.close()

    def kill_primary(self):
        """SIGKILLs alpha; returns (monotonic ns when the signal was sent, ns when it was gone)."""
        pid = self.pids.pop("alpha")
        sent = time.monotonic_ns()
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.001)
        return sent, time.monotonic_ns()

    def fail_over(self, timeout_s=30.0, allow_inconsistent=False):
        """Forced failover on beta (the primary is dead); waits until it serves NBD."""
        before = self.request("beta", {"cmd": "status", "name": self.NAME})
        self.disk_state_before_failover = before.get("disk_state")
        request = {"cmd": "failover", "name": self.NAME, "force": True}
        if allow_inconsistent:
            request["allow_inconsistent"] = True
        reply = self.request("beta", request)
        if not reply.get("ok"):
            raise RuntimeError(f"failover --force on beta refused: {json.dumps(reply)}")
        self.wait_status("beta", lambda r: r.get("role") == "primary" and r.get("nbd_serving") is True,
                         timeout_s, "serving as primary")

    def read_volume(self, node, out_path):
        """Copies what `node` serves over NBD into out_path with nbdcopy (a real NBD client)."""
        uri = f"nbd+unix:///{self.NAME}?socket={self.nbd_path(node)}"
        done = subprocess.run(["nbdcopy", uri, out_path], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"nbdcopy {uri} failed: {done.stderr.strip()}")

    def describe_failure(self, node, error):
        """The error, and whether `node` died meanwhile (with its log's fatal line)."""
        pid = self.pids.get(node)
        deadline = time.monotonic() + 5  # a crashing daemon prints its backtrace first
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid is None or _alive(pid):
            return str(error)
        fatal = ""
        if self.work:
            try:
                with open(os.path.join(self.work, f"{node}.log"), errors="replace") as f:
                    fatal = next((line.strip() for line in f if "Fatal error" in line), "")
            except OSError:
                pass
        return f"tandemd {node} (pid {pid}) died: {fatal or 'no Fatal error line in its log'} ({error})"

    def stop(self):
        for node, pid in list(self.pids.items()):
            if _alive(pid):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 30
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.01)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
        self.pids = {}
        for proxy in self.proxies:
            proxy.terminate()
            proxy.wait(timeout=10)
        self.proxies = []


class ExistingPair(Pair):
    """Two running daemons named on the command line: PRIMARY_CTL and SECONDARY_CTL control
    sockets, a resource NAME already replicating between them. The instrument only samples
    and writes; a truth check needs the primary's pid (`--primary-pid`) to kill."""

    def __init__(self, primary_ctl, secondary_ctl, name, primary_pid=None, log=print):
        super().__init__(work=None, bin_dir=None, mode=None, size_bytes=None, log=log)
        self.paths = {"alpha": primary_ctl, "beta": secondary_ctl}
        self.NAME = name
        if primary_pid:
            self.pids["alpha"] = primary_pid
        self.nbd = {}

    def ctl_path(self, node):
        return self.paths[node]

    def nbd_path(self, node):
        return self.nbd[node]

    def start(self, connect_timeout_s=30.0):
        for node in ("alpha", "beta"):
            status = self.request(node, {"cmd": "status", "name": self.NAME})
            if not status.get("ok"):
                raise RuntimeError(f"status {self.NAME} on {self.paths[node]}: {json.dumps(status)}")
            self.nbd[node] = (status.get("nbd") or {}).get("socket")
        alpha = self.request("alpha", {"cmd": "status", "name": self.NAME})
        if alpha.get("role") != "primary" or not self.nbd["alpha"]:
            raise RuntimeError(f"{self.paths['alpha']} is not a primary serving NBD for {self.NAME}")
        self.mode, self.size = alpha.get("mode"), alpha.get("size_bytes")

    def stop(self):
        self.pids = {}  # not ours to stop


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
