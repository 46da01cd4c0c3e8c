#!/usr/bin/env python3
"""The load and the probes of Benchmarks/control-storm.sh.

  control_storm.py run --ctl SOCK --nbd SOCK --export NAME --pid PID --out JSON
                       [--metrics HOST:PORT] [--clients N] [--scrapers N] [--seconds S]
                       [--procs N]

Two phases of S seconds each, the first quiet, the second under the storm:
  probe    one NBD connection (the export NAME on the Unix socket --nbd): every 10 ms a
           4 KiB write at a random 4 KiB-aligned offset in the first 64 MiB, then a flush;
           the latency is from sending the write to the flush's reply (both in one
           round: the flush is sent after the write's reply)
  ping     every 50 ms a new control connection sends `ping` and closes: its latency and
           whether it was answered `busy`
  storm    (second phase only) N control connections, each sending `status` (all
           resources) again as soon as the previous reply arrived, spread over --procs
           processes; a connection answered `busy` closes and reconnects after 10 ms;
           and --scrapers connections fetching GET /metrics in a loop, one at a time each
The daemon's CPU (utime+stime of --pid) is sampled at the start and end of each phase.
Writes one JSON object to --out: per phase the probe's latencies (ms), ping's latencies (ms)
and busy count, status replies and scrapes per second, the daemon's CPU (% of one core),
and the largest `status_age_ms` seen in a status reply.
"""
import argparse, json, multiprocessing, os, random, selectors, socket, statistics, struct, sys, threading, time

NBD_OPT_GO = 7
NBD_REP_ACK = 1
NBD_CMD_WRITE, NBD_CMD_FLUSH = 1, 3


def recv_exact(sock, count):
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("NBD server closed the connection")
        data += chunk
    return bytes(data)


class NBDClient:
    """Fixed newstyle handshake with NBD_OPT_GO, simple replies (no structured replies)."""

    def __init__(self, path, export):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        magic, opt_magic, _flags = struct.unpack(">QQH", recv_exact(self.sock, 18))
        assert magic == 0x4E42444D41474943 and opt_magic == 0x49484156454F5054, "not an NBD server"
        self.sock.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
        name = export.encode()
        data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
        self.sock.sendall(struct.pack(">QII", 0x49484156454F5054, NBD_OPT_GO, len(data)) + data)
        while True:
            _magic, _opt, kind, length = struct.unpack(">QIII", recv_exact(self.sock, 20))
            payload = recv_exact(self.sock, length)
            if kind == NBD_REP_ACK:
                break
            if kind & 0x80000000:
                raise ConnectionError(f"NBD_OPT_GO refused: {kind:#x} {payload!r}")
        self.handle = 0

    def request(self, command, offset=0, data=b"", length=None):
        self.handle += 1
        length = len(data) if length is None else length
        self.sock.sendall(struct.pack(">IHHQQI", 0x25609513, 0, command, self.handle, offset, length) + data)
        magic, error, handle = struct.unpack(">IIQ", recv_exact(self.sock, 16))
        assert magic == 0x67446698 and handle == self.handle, "bad NBD reply"
        if error:
            raise OSError(error, f"NBD command {command} failed")


def probe_writes(path, export, stop, latencies):
    client = NBDClient(path, export)
    payload = os.urandom(4096)
    while not stop.is_set():
        offset = random.randrange(16384) * 4096
        start = time.perf_counter()
        client.request(NBD_CMD_WRITE, offset, payload)
        client.request(NBD_CMD_FLUSH)
        latencies.append((time.perf_counter() - start) * 1000)
        stop.wait(0.01)


def control_request(sock_file, request):
    sock_file.write((json.dumps(request) + "\n").encode())
    sock_file.flush()
    line = sock_file.readline()
    if not line:
        raise ConnectionError("control socket closed")
    return json.loads(line)


def probe_pings(path, stop, latencies, outcome):
    while not stop.is_set():
        start = time.perf_counter()
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            with sock, sock.makefile("rwb") as file:
                reply = control_request(file, {"id": 1, "cmd": "ping"})
        except OSError:
            outcome["failed"] += 1
        else:
            if reply.get("ok"):
                latencies.append((time.perf_counter() - start) * 1000)
            elif reply.get("error") == "busy":
                outcome["busy"] += 1
            else:
                outcome["failed"] += 1
        stop.wait(0.05)


def storm_worker(path, count, seconds, results):
    """`count` connections, each polling `status` back to back, for `seconds`."""
    selector = selectors.DefaultSelector()
    replies = busy = 0
    age_max = 0
    request = b'{"id":1,"cmd":"status"}\n'
    reconnect_at = {}

    def connect(slot):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            sock.send(request)
        except OSError:
            # Refused and closed (past a connection limit) before the request went out.
            sock.close()
            reconnect_at[slot] = time.monotonic() + 0.01
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, [slot, bytearray()])

    for slot in range(count):
        connect(slot)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.01):
            sock, state = key.fileobj, key.data
            try:
                chunk = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                selector.unregister(sock)
                sock.close()
                reconnect_at[state[0]] = time.monotonic() + 0.01
                continue
            state[1] += chunk
            while b"\n" in state[1]:
                line, _, rest = bytes(state[1]).partition(b"\n")
                state[1] = bytearray(rest)
                reply = json.loads(line)
                if reply.get("ok"):
                    replies += 1
                    age_max = max(age_max, reply.get("status_age_ms", 0))
                    try:
                        sock.send(request)
                    except OSError:
                        pass  # the daemon closed it: the read sees the end and reconnects
                elif reply.get("error") == "busy":
                    busy += 1
        now = time.monotonic()
        for slot, when in list(reconnect_at.items()):
            if when <= now:
                del reconnect_at[slot]
                connect(slot)
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    results.put((replies, busy, age_max))


def scraper(address, seconds, results):
    host, port = address.rsplit(":", 1)
    scrapes = failures = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while True:
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        break
                    data += chunk
            if data.startswith(b"HTTP/1.1 200"):
                scrapes += 1
            else:
                failures += 1
        except OSError:
            failures += 1
    results.put((scrapes, failures))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, fraction):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def phase(args, storm):
    stop = threading.Event()
    writes, pings, outcome = [], [], {"busy": 0, "failed": 0}
    threads = [threading.Thread(target=probe_writes, args=(args.nbd, args.export, stop, writes)),
               threading.Thread(target=probe_pings, args=(args.ctl, stop, pings, outcome))]
    results = multiprocessing.Queue()
    workers = []
    if storm:
        per_proc = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0)
                    for i in range(args.procs)]
        workers = [multiprocessing.Process(target=storm_worker, args=(args.ctl, n, args.seconds, results))
                   for n in per_proc if n > 0]
        if args.metrics:
            workers += [multiprocessing.Process(target=scraper, args=(args.metrics, args.seconds, results))
                        for _ in range(args.scrapers)]
    cpu_before, start = cpu_seconds(args.pid), time.monotonic()
    for worker in workers:
        worker.start()
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    # A worker that died puts nothing: fail rather than wait for ever.
    outputs = [results.get(timeout=args.seconds + 60) for _ in workers]
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(args.pid) - cpu_before
    status = [o for o in outputs if len(o) == 3]
    scrapes = [o for o in outputs if len(o) == 2]
    return {
        "probe_ms": {"count": len(writes), "p50": percentile(writes, 0.5), "p99": percentile(writes, 0.99),
                     "max": max(writes) if writes else None},
        "ping_ms": {"count": len(pings), "p50": percentile(pings, 0.5), "max": max(pings) if pings else None,
                    "busy": outcome["busy"], "failed": outcome["failed"]},
        "status_per_s": sum(s[0] for s in status) / elapsed,
        "status_busy": sum(s[1] for s in status),
        "status_age_ms_max": max((s[2] for s in status), default=0),
        "scrapes_per_s": sum(s[0] for s in scrapes) / elapsed,
        "scrape_failures": sum(s[1] for s in scrapes),
        "daemon_cpu_percent": 100 * cpu / elapsed,
    }


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--ctl", required=True)
    run.add_argument("--nbd", required=True)
    run.add_argument("--export", required=True)
    run.add_argument("--pid", type=int, required=True)
    run.add_argument("--out", required=True)
    run.add_argument("--metrics")
    run.add_argument("--clients", type=int, default=60)
    run.add_argument("--scrapers", type=int, default=1)
    run.add_argument("--seconds", type=float, default=10)
    run.add_argument("--procs", type=int, default=4)
    args = parser.parse_args()
    result = {"clients": args.clients, "scrapers": args.scrapers if args.metrics else 0,
              "quiet": phase(args, storm=False), "storm": phase(args, storm=True)}
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    sys.exit(main())
