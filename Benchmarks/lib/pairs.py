#!/usr/bin/env python3
"""Bulk control work for Benchmarks/pairs-memory.sh, one control connection per node.

  pairs.py create ALPHA_CTL BETA_CTL WORK N MODE SIZE_BYTES PORT_A PORT_B
      creates r0..r{N-1} on both nodes (beta secondary, alpha primary, --initial-sync none,
      volumes WORK/{alpha,beta}/rI.img made by the daemon, NBD sockets WORK/{node}-rI.sock)
      and enables each on both; exits 1 on the first refusal, printing it.
  pairs.py wait-connected CTL N TIMEOUT_S
      polls `status` (all resources) every 0.5 s until N resources report
      connection_state Connected; exit 1 with a count on timeout.
  pairs.py sample PID
      prints "rss_kib anon_kib cpu_ticks fds" of PID from /proc (VmRSS, RssAnon,
      utime+stime, open descriptors).
"""
import json, os, socket, sys, time


class Control:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.buffer = b""
        self.next_id = 0

    def request(self, cmd, **args):
        self.next_id += 1
        body = dict(args, cmd=cmd, id=self.next_id)
        self.sock.sendall((json.dumps(body) + "\n").encode())
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise SystemExit(f"pairs.py: control socket closed during {cmd}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def create(alpha_ctl, beta_ctl, work, n, mode, size, port_a, port_b):
    nodes = {"alpha": (Control(alpha_ctl), "primary", "beta", port_b),
             "beta": (Control(beta_ctl), "secondary", "alpha", port_a)}
    for index in range(int(n)):
        name = f"r{index}"
        for node in ("beta", "alpha"):
            control, role, peer, port = nodes[node]
            reply = control.request(
                "create", name=name, volume=f"{work}/{node}/{name}.img", size_bytes=int(size),
                role=role, mode=mode, initial_sync="none",
                peer={"name": peer, "address": f"127.0.0.1:{port}"},
                nbd={"socket": f"{work}/{node}-{name}.sock"})
            if not reply.get("ok"):
                raise SystemExit(f"pairs.py: create {name} on {node} refused: {reply}")
        for node in ("beta", "alpha"):
            reply = nodes[node][0].request("enable", name=name)
            if not reply.get("ok") and reply.get("error") != "wrong-state":
                raise SystemExit(f"pairs.py: enable {name} on {node} refused: {reply}")


def wait_connected(ctl, n, timeout):
    control = Control(ctl)
    deadline = time.monotonic() + float(timeout)
    while True:
        reply = control.request("status")
        connected = sum(1 for r in reply.get("resources", []) if r.get("connection_state") == "Connected")
        if connected >= int(n):
            return 0
        if time.monotonic() > deadline:
            print(f"pairs.py: {connected} of {n} Connected on {ctl} after {timeout} s", file=sys.stderr)
            return 1
        time.sleep(0.5)


def sample(pid):
    status = open(f"/proc/{pid}/status").read().split("\n")
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    rss_kib = int(fields["VmRSS"].split()[0])
    anon_kib = int(fields["RssAnon"].split()[0])
    stat = open(f"/proc/{pid}/stat").read()
    after = stat[stat.rindex(")") + 2:].split()
    ticks = int(after[11]) + int(after[12])  # utime, stime: fields 14 and 15
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    print(rss_kib, anon_kib, ticks, fds)
    return 0


def main():
    action, args = sys.argv[1], sys.argv[2:]
    if action == "create":
        create(*args)
        return 0
    if action == "wait-connected":
        return wait_connected(*args)
    if action == "sample":
        return sample(*args)
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
