#!/usr/bin/env python3
"""Crash-restart benchmark (issue 13, the activity log): what a kill -9 of the primary costs.

Release builds of tandemd as separate processes (TLS on, loopback), files in BENCH_DIR (a real
disk). For each configuration (al_extents default 512, then 0: no activity log), `rounds` times:

  1. Two zero-filled files of SIZE; an MODE pair (alpha primary, beta secondary,
     --initial-sync none) connects and is in sync.
  2. fio writes random 4 KiB blocks (QD16, unthrottled) over the first REGION of alpha's NBD
     export; after 3 s alpha gets SIGKILL (fio then fails; it is waited for).
  3. alpha is started again on the same state directory (it re-enables itself); timed from
     that start until its status says connection_state Connected, peer_disk_state UpToDate,
     out_of_sync_bytes 0. Recorded: session_start and its reason, the first out_of_sync_bytes,
     the copy's payload bytes (tandem_resynced_bytes_total on alpha), the wall time.
  4. Both stopped (SIGTERM), `cmp` of the two files (must be equal).

Exact commands (WORK = BENCH_DIR/crash.XXXXXX, A/B = WORK/alpha.img, WORK/beta.img):
  fio --name=zero --filename=A --rw=write --bs=1m --iodepth=16 --ioengine=io_uring --direct=1
      --zero_buffers --size=SIZE                                    (B likewise)
  scripts/make-certs.sh WORK/certs alpha beta
  tandemd --node-name beta --state-dir WORK/beta --control-socket WORK/beta.ctl
      --listen 127.0.0.1:PB --tls-ca .../ca.crt --tls-cert .../beta.crt --tls-key .../beta.key
      (alpha likewise, plus --metrics-listen 127.0.0.1:PM)
  tandemctl --socket WORK/beta.ctl create r0 --volume B --role secondary --peer-name alpha
      --peer-address 127.0.0.1:PA --mode MODE --initial-sync none --nbd-socket WORK/beta-r0.sock
  tandemctl --socket WORK/alpha.ctl create r0 --volume A --role primary --peer-name beta
      --peer-address 127.0.0.1:PB --mode MODE --initial-sync none --nbd-socket WORK/alpha-r0.sock
      [--al-extents 0]
  tandemctl ... enable r0 (beta, then alpha)
  fio --name=crash --ioengine=nbd --uri='nbd+unix:///r0?socket=WORK/alpha-r0.sock'
      --rw=randwrite --bs=4k --iodepth=16 --size=REGION --time_based --runtime=30
  kill -9 ALPHA; tandemd ... (alpha again, same state dir)

usage: Benchmarks/crash-restart.py   (settings: BENCH_DIR, BENCH_SIZE (default 2G), BENCH_REGION
       (default 64M), BENCH_MODE (sync), BENCH_REPEAT (3), BENCH_RESULTS)
"""
import json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def units(text):
    match = re.fullmatch(r"(\d+)([KMG]?)", text)
    return int(match.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[match.group(2)]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Control:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")

    def request(self, message):
        self.file.write(json.dumps(dict(message, id=1)).encode() + b"\n")
        self.file.flush()
        return json.loads(self.file.readline())


def status(control):
    return Control(control).request({"cmd": "status", "name": "r0"})


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name) and 'resource="r0"' in line:
            return int(float(line.split()[-1]))
    return 0


class Pair:
    def __init__(self, work, bin_dir, mode, al_extents):
        self.work, self.bin, self.mode = work, bin_dir, mode
        self.ports = {"alpha": free_port(), "beta": free_port()}
        self.metrics_port = free_port()
        self.pids = {}
        for node in ("beta", "alpha"):
            self.start(node)
        peer = {"alpha": "beta", "beta": "alpha"}
        for node, role in (("beta", "secondary"), ("alpha", "primary")):
            args = ["create", "r0", "--volume", f"{work}/{node}.img", "--role", role, "--peer-name", peer[node],
                    "--peer-address", f"127.0.0.1:{self.ports[peer[node]]}", "--mode", mode,
                    "--initial-sync", "none", "--nbd-socket", f"{work}/{node}-r0.sock"]
            if node == "alpha" and al_extents is not None:
                args += ["--al-extents", str(al_extents)]
            self.ctl(node, *args)
        for node in ("beta", "alpha"):
            subprocess.run([f"{self.bin}/tandemctl", "--socket", f"{work}/{node}.ctl", "enable", "r0"],
                           capture_output=True)

    def ctl(self, node, *args):
        subprocess.run([f"{self.bin}/tandemctl", "--socket", f"{self.work}/{node}.ctl", *args], check=True,
                       capture_output=True)

    def start(self, node):
        certs = f"{self.work}/certs"
        command = [f"{self.bin}/tandemd", "--node-name", node, "--state-dir", f"{self.work}/{node}",
                   "--control-socket", f"{self.work}/{node}.ctl", "--listen", f"127.0.0.1:{self.ports[node]}",
                   "--tls-ca", f"{certs}/ca.crt", "--tls-cert", f"{certs}/{node}.crt", "--tls-key", f"{certs}/{node}.key"]
        if node == "alpha":
            command += ["--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        out = subprocess.run(["python3", f"{REPO}/scripts/lib/start-tandemd.py", "--log", f"{self.work}/{node}.log",
                              "--", *command], check=True, capture_output=True, text=True).stdout
        self.pids[node] = int(out.split()[-1])

    def wait(self, what, condition, timeout=600):
        deadline = time.time() + timeout
        while True:
            reply = status(f"{self.work}/alpha.ctl")
            if condition(reply):
                return reply
            if time.time() > deadline:
                raise TimeoutError(f"{what}: {reply}")
            time.sleep(0.05)

    def stop(self, node):
        os.kill(self.pids[node], signal.SIGTERM)
        while os.path.exists(f"/proc/{self.pids[node]}"):
            time.sleep(0.05)


def in_sync(reply):
    return (reply.get("connection_state") == "Connected" and reply.get("peer_disk_state") == "UpToDate"
            and reply.get("out_of_sync_bytes") == 0 and reply.get("lag_bytes") == 0)


def one_round(root, bin_dir, size, region, mode, al_extents):
    work = tempfile.mkdtemp(prefix="crash.", dir=root)
    try:
        for node in ("alpha", "beta"):
            subprocess.run(["fio", "--name=zero", f"--filename={work}/{node}.img", "--rw=write", "--bs=1m",
                            "--iodepth=16", "--ioengine=io_uring", "--direct=1", "--zero_buffers",
                            f"--size={size}", "--output=/dev/null"], check=True)
        subprocess.run([f"{REPO}/scripts/make-certs.sh", f"{work}/certs", "alpha", "beta"], check=True,
                       capture_output=True)
        pair = Pair(work, bin_dir, mode, al_extents)
        pair.wait("in sync", in_sync, timeout=120)
        fio = subprocess.Popen(["fio", "--name=crash", "--ioengine=nbd",
                                f"--uri=nbd+unix:///r0?socket={work}/alpha-r0.sock", "--rw=randwrite", "--bs=4k",
                                "--iodepth=16", f"--size={region}", "--time_based", "--runtime=30",
                                "--output=/dev/null"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3)
        os.kill(pair.pids["alpha"], signal.SIGKILL)
        while os.path.exists(f"/proc/{pair.pids['alpha']}"):
            time.sleep(0.01)
        fio.wait()
        started = time.time()
        pair.start("alpha")
        first = status(f"{work}/alpha.ctl")
        pair.wait("caught up", in_sync)
        seconds = time.time() - started
        copied = metric(pair.metrics_port, "tandem_resynced_bytes_total")
        pair.stop("alpha")
        pair.stop("beta")
        same = subprocess.run(["cmp", "-s", f"{work}/alpha.img", f"{work}/beta.img"]).returncode == 0
        return {"session_start": first.get("session_start"), "reason": first.get("session_start_reason", ""),
                "out_of_sync_bytes": first.get("out_of_sync_bytes"), "copied_bytes": copied, "seconds": seconds,
                "identical": same}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    root = os.environ.get("BENCH_DIR", f"{REPO}/.bench")
    size, region = os.environ.get("BENCH_SIZE", "2G"), os.environ.get("BENCH_REGION", "64M")
    mode, rounds = os.environ.get("BENCH_MODE", "sync"), int(os.environ.get("BENCH_REPEAT", "3"))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results = os.environ.get("BENCH_RESULTS", f"{REPO}/Benchmarks/results/crash-restart-{stamp}.md")
    os.makedirs(root, exist_ok=True)
    subprocess.run(["swift", "build", "-c", "release"], cwd=REPO, check=True, capture_output=True)
    bin_dir = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.strip()
    lines = [f"# Crash restart: {mode} pair, {size} volume, random 4 KiB QD16 over {region}, kill -9 after 3 s",
             "", f"{rounds} rounds per configuration, medians; every round ended with `cmp` equal.", "",
             "| al_extents | session start | out_of_sync at start | copied (payload) | restart to in sync (s) |",
             "|---|---|---:|---:|---:|"]
    for al_extents in (None, 0):
        runs = [one_round(root, bin_dir, size, region, mode, al_extents) for _ in range(rounds)]
        for run in runs:
            print(json.dumps(dict(run, al_extents=al_extents)), file=sys.stderr)
            if not run["identical"]:
                raise SystemExit(f"volumes differ after the restart: {run}")
        label = "512 (default)" if al_extents is None else str(al_extents)
        lines.append(f"| {label} | {runs[0]['session_start']} | "
                     f"{statistics.median(r['out_of_sync_bytes'] for r in runs) / 2**20:.0f} MiB | "
                     f"{statistics.median(r['copied_bytes'] for r in runs) / 2**20:.0f} MiB | "
                     f"{statistics.median(r['seconds'] for r in runs):.2f} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(results), exist_ok=True)
    with open(results, "w") as out:
        out.write(text)
    print(text)


if __name__ == "__main__":
    main()
