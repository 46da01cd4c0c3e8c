#!/usr/bin/env python3
"""Helpers for Benchmarks/catchup.sh: control requests, timed waits, metrics, the summary.

usage:
  catchup.py status CTL NAME                 print the resource's status reply (one JSON line)
  catchup.py wait CTL NAME TIMEOUT_S FIELD=VALUE...
                                             wait until every FIELD of the status has VALUE
                                             (compared as JSON text: out_of_sync_bytes=0,
                                             peer_disk_state=UpToDate); exit 1 with the last
                                             status on timeout. Status is asked at the start,
                                             after each event of the daemon's events stream
                                             and after a second without one, not polled: a
                                             poll every 20 ms cost the timed primary 4 % of its
                                             CPU in a resync
  catchup.py enable-timed CTL NAME TIMEOUT_S OUT_JSON
                                             subscribe to events, send enable, then wait until
                                             status shows connection_state Connected,
                                             peer_disk_state UpToDate and out_of_sync_bytes 0;
                                             write the timings (seconds from enable) and the
                                             catch-up events to OUT_JSON
  catchup.py metrics URL NAME                print "family value" for the byte counters of
                                             resource NAME at the Prometheus endpoint URL
  catchup.py tcp-bytes-acked PORT            bytes acknowledged on the established TCP
                                             connections to 127.0.0.1:PORT (ss -ti), summed
  catchup.py rsync-stats FILE                JSON of the --stats figures of an rsync run
  catchup.py summary DIR                     the markdown report from DIR's JSON files
"""
import glob, json, re, socket, statistics, subprocess, sys, threading, time, urllib.request


class Control:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self.next_id = 1

    def send(self, message):
        message = dict(message, id=self.next_id)
        self.next_id += 1
        self.file.write(json.dumps(message).encode() + b"\n")
        self.file.flush()

    def read(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("control socket closed")
        return json.loads(line)

    def request(self, message):
        self.send(message)
        return self.read()


def matches(reply, wanted):
    return all(json.dumps(reply.get(key)) == value or reply.get(key) == value
               for key, value in wanted.items())


def wait(ctl, name, timeout_s, pairs):
    wanted = dict(pair.split("=", 1) for pair in pairs)
    events = Control(ctl)
    events.send({"cmd": "events"})
    if events.read().get("event") != "subscribed":
        raise SystemExit("catchup.py: the events stream did not answer subscribed")
    changed = threading.Event()

    def listen():  # subscribed before the first status: no change can fall between the two
        while True:
            try:
                events.read()
            except (ConnectionError, ValueError, OSError):
                return
            changed.set()

    threading.Thread(target=listen, daemon=True).start()
    control = Control(ctl)
    deadline = time.monotonic() + float(timeout_s)
    while True:
        changed.clear()
        reply = control.request({"cmd": "status", "name": name})
        if matches(reply, wanted):
            print(json.dumps(reply))
            return 0
        if time.monotonic() > deadline:
            print(json.dumps(reply))
            print(f"catchup.py: {name} did not reach {wanted} within {timeout_s} s", file=sys.stderr)
            return 1
        changed.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic())))


def enable_timed(ctl, name, timeout_s, out):
    events = Control(ctl)
    events.send({"cmd": "events"})
    seen = []
    start = None

    def collect():  # every event after the enable, with its time from the enable
        while True:
            try:
                event = events.read()
            except (ConnectionError, ValueError, OSError):
                return
            if start is not None and event.get("resource") in (None, name):
                seen.append(dict(event, at_s=round(time.monotonic() - start, 4)))

    if events.read().get("event") != "subscribed":
        raise SystemExit("catchup.py: the events stream did not answer subscribed")
    threading.Thread(target=collect, daemon=True).start()
    control = Control(ctl)
    before = control.request({"cmd": "status", "name": name})
    start = time.monotonic()
    reply = control.request({"cmd": "enable", "name": name})
    if not reply.get("ok"):
        raise SystemExit(f"catchup.py: enable refused: {reply}")
    wanted = {"connection_state": "Connected", "peer_disk_state": "UpToDate", "out_of_sync_bytes": "0"}
    status, done, first = None, None, None
    while time.monotonic() - start < float(timeout_s):
        status = control.request({"cmd": "status", "name": name})
        if first is None:
            first = status.get("out_of_sync_bytes")
        if matches(status, wanted):
            done = time.monotonic() - start
            break
        time.sleep(0.01)
    time.sleep(0.2)  # let the stream deliver events published before the final status
    result = {"wall_s": done, "first_out_of_sync_bytes": first, "status_before": before, "status_after": status,
              "events": [e for e in seen if e.get("event") not in ("exists", "subscribed")]}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    if done is None:
        print(f"catchup.py: {name} not caught up within {timeout_s} s; last status: {json.dumps(status)}",
              file=sys.stderr)
        return 1
    print(f"{done:.3f}")
    return 0


def metrics(url, name):
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    for family in ("tandem_replicated_bytes_total", "tandem_resynced_bytes_total",
                   "tandem_received_bytes_total", "tandem_nbd_write_bytes_total"):
        pattern = re.compile(r'^' + family + r'\{[^}]*resource="' + re.escape(name) + r'"[^}]*\} (\S+)$', re.M)
        found = pattern.search(text)
        print(family, int(float(found.group(1))) if found else "absent")
    return 0


def tcp_bytes_acked(port):
    out = subprocess.run(["ss", "-tinH", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    print(sum(int(v) for v in re.findall(r"bytes_acked:(\d+)", out)))
    return 0


def rsync_stats(path):
    text = open(path).read()
    stats = {}
    for label, key in (("Total file size", "file_bytes"), ("Literal data", "literal_bytes"),
                       ("Matched data", "matched_bytes"), ("Total bytes sent", "sent_bytes"),
                       ("Total bytes received", "received_bytes")):
        found = re.search(re.escape(label) + r": ([\d,.]+)", text)
        stats[key] = int(found.group(1).replace(",", "").replace(".", "")) if found else None
    print(json.dumps(stats))
    return 0


# ---------------------------------------------------------------- summary

def load(path):
    with open(path) as f:
        return json.load(f)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def read_env(path):
    values = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            values[key] = value
    return values


def size_bytes(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def mib(value):
    return f"{value / (1 << 20):,.1f} MiB" if value is not None else "—"


def fio_value(path, workload):
    with open(path) as f:
        text = f.read()
    job = json.loads(text[text.index("{"):])["jobs"][0]["write"]
    return job["bw_bytes"] / (1 << 20) if workload == "seqwrite" else job["iops"]


def catchup_table(directory, env):
    volume, writes = size_bytes(env["volume_size"]), size_bytes(env["writes"])
    run = load(f"{directory}/catchup.json")
    events = {e["event"]: e for e in run["events"] if "bytes" in e}
    done = events.get("catch-up-done", {})
    rsync = json.loads(env["rsync_stats"])
    resynced = int(env["catchup_resynced_bytes"])
    lines = ["| method | wall time (s) | bytes read | bytes sent | result |", "|---|---|---|---|---|"]
    lines.append(
        f"| tandemd catch-up (`enable` until peer UpToDate, out_of_sync 0) | {float(env['catchup_wall_s']):.2f} | "
        f"{mib(int(env['catchup_primary_read_bytes']))} (primary's storage reads, /proc/PID/io) | "
        f"{mib(resynced)} payload (catch-up-done: {mib(done.get('bytes'))}); "
        f"{mib(int(env['catchup_tcp_bytes_acked']))} on the wire (TCP, TLS included) | cmp: {env['catchup_cmp']} |")
    lines.append(
        f"| `rsync --inplace --no-whole-file` | {float(env['rsync_wall_s']):.2f} | {mib(2 * volume)} (both files, whole) | "
        f"{mib(rsync['sent_bytes'])} (literal {mib(rsync['literal_bytes'])}, matched {mib(rsync['matched_bytes'])}) | "
        f"cmp: {env['rsync_cmp']} |")
    lines.append(
        f"| `nbdcopy` of the whole volume | {float(env['nbdcopy_wall_s']):.2f} | {mib(volume)} (the whole volume) | "
        f"{mib(volume)} over NBD | {mib(int(env['nbdcopy_allocated_bytes']))} allocated in the copy |")
    status = run["status_after"] or {}
    first = run.get("first_out_of_sync_bytes")
    detail = (f"Volume {mib(volume)}, {mib(writes)} of random 4 KiB writes (each block once) while "
              f"replication was disabled. out_of_sync_bytes in the first status after `enable`: {mib(first)} "
              f"(a disabled primary reports 0). Catch-up events after the enable: "
              + ", ".join(f"{e['event']} at {e['at_s']:.2f} s" + (f" ({mib(e['bytes'])})" if "bytes" in e else "")
                          for e in run["events"] if e["event"] not in ("heartbeat",))
              + f". Counters over the catch-up: primary resynced {mib(resynced)}, replicated "
              f"{mib(int(env['catchup_replicated_bytes']))}; secondary received {mib(int(env['catchup_received_bytes']))}. "
              f"Final status: replication_state {status.get('replication_state')}, session_start "
              f"{status.get('session_start')}. Load average before the catch-up {env['load_before_catchup']}, "
              f"before rsync {env['load_before_rsync']}, before nbdcopy {env['load_before_nbdcopy']}.")
    return lines, detail


def summary(directory):
    env = read_env(f"{directory}/results.env")
    table, detail = catchup_table(directory, env)
    lines = ["### Catch-up against rsync and nbdcopy", ""] + table + ["", detail, ""]
    lines += ["### Async throughput while the peer is away", "",
              "| workload | peer away (Ahead) | replication disabled | standalone resource | away / disabled | away / standalone |",
              "|---|---|---|---|---|---|"]
    for workload, label in (("seqwrite", "seq write 1 MiB QD16 (MiB/s)"), ("randwrite", "4 KiB randwrite QD16 (IOPS)")):
        row = {}
        for state in ("away", "disabled", "standalone"):
            paths = sorted(glob.glob(f"{directory}/{state}.{workload}.*.json"))
            row[state] = [fio_value(p, workload) for p in paths]
        m = {state: median(values) for state, values in row.items()}
        ratio = lambda x, y: f"{x / y:.2f}" if x and y else "—"
        cell = lambda vs: f"{median(vs):,.0f} ({' / '.join(f'{v:,.0f}' for v in vs)})" if vs else "—"
        lines.append(f"| {label} | {cell(row['away'])} | {cell(row['disabled'])} | {cell(row['standalone'])} | "
                     f"{ratio(m['away'], m['disabled'])} | {ratio(m['away'], m['standalone'])} |")
    states = []
    for path in sorted(glob.glob(f"{directory}/away.*.status.json")):
        if ".before." in path:
            continue
        status = load(path)
        states.append(f"{status.get('replication_state')} (out_of_sync {mib(status.get('out_of_sync_bytes'))})")
    rounds = []
    for key in sorted(k for k in env if k.startswith("round") and k.endswith("_catchup_wall_s")):
        number = key[len("round"):-len("_catchup_wall_s")]
        rounds.append(f"round {number}: {mib(int(env[f'round{number}_catchup_resynced_bytes']))} "
                      f"in {float(env[key]):.1f} s")
    lines += ["", "Medians (rounds in brackets). Alpha's state after each round's away runs: "
              f"{'; '.join(states)}. Catch-up before each round's away runs (beta back; the previous "
              f"round's writes, an Ahead catch-up): {'; '.join(rounds)}. Load average before part 2 "
              f"{env['load_before_throughput']}, at the end {env['load_end']}.", ""]
    print("\n".join(lines))
    return 0


def main():
    action, args = sys.argv[1], sys.argv[2:]
    if action == "status":
        print(json.dumps(Control(args[0]).request({"cmd": "status", "name": args[1]})))
        return 0
    handlers = {"wait": lambda: wait(args[0], args[1], args[2], args[3:]),
                "enable-timed": lambda: enable_timed(*args),
                "metrics": lambda: metrics(*args),
                "tcp-bytes-acked": lambda: tcp_bytes_acked(*args),
                "rsync-stats": lambda: rsync_stats(*args),
                "summary": lambda: summary(*args)}
    if action not in handlers:
        raise SystemExit(__doc__)
    return handlers[action]()


if __name__ == "__main__":
    sys.exit(main())
