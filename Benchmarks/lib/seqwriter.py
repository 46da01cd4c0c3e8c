"""The sequence-numbered writer of `tandem-bench rpo`: a small NBD client (fixed newstyle
handshake, NBD_OPT_GO, simple replies) that pipelines WRITEs (and READs, for a mix) to one
export at a paced rate, and records, for every write, its sequence number, where it went,
and the moment (time.monotonic_ns) its reply arrived.

Why its own client and not fio: the truth check needs to know exactly which writes the
application was told are done, and when, and to find each of them again on the other
replica. Every block starts with a 32-byte header (magic, run id, sequence, submit time)
so a reader of the failed-over volume can tell which write a slot holds.

Layout: write `seq` (from 1) goes to slot `(seq - 1) % slots`, offset `slot * block_bytes`.
A slot holding a later sequence of the same run superseded the earlier write (its data is
legitimately gone from both replicas); a slot holding an earlier one (or another run's, or
zeros) lacks it.
"""
import random, socket, struct, threading, time

MAGIC = b"TNDMSEQ1"
HEADER = struct.Struct(">8sQQQ")  # magic, run id, sequence, submit time (ns, monotonic)

NBD_INIT = b"NBDMAGIC"
NBD_OPTS_MAGIC = 0x49484156454F5054  # "IHAVEOPT"
NBD_REP_MAGIC = 0x3E889045565A9
NBD_REQUEST_MAGIC = 0x25609513
NBD_SIMPLE_REPLY_MAGIC = 0x67446698
NBD_OPT_GO = 7
NBD_REP_ACK, NBD_REP_INFO = 1, 3
NBD_INFO_EXPORT = 0
NBD_FLAG_C_FIXED_NEWSTYLE, NBD_FLAG_C_NO_ZEROES = 1, 2
NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_DISC = 0, 1, 2
REQUEST = struct.Struct(">IHHQQI")
REPLY = struct.Struct(">IIQ")


class NBDError(Exception):
    pass


def _read_exactly(sock, count):
    chunks, left = [], count
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise NBDError("the server closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def connect(socket_path, export, timeout_s=10.0):
    """Opens an NBD connection to a Unix socket and negotiates `export` with NBD_OPT_GO.
    Returns (socket, size_bytes)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    sock.connect(socket_path)
    init, opts, _flags = struct.unpack(">8sQH", _read_exactly(sock, 18))
    if init != NBD_INIT or opts != NBD_OPTS_MAGIC:
        raise NBDError("not a fixed-newstyle NBD server")
    sock.sendall(struct.pack(">I", NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))
    name = export.encode()
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    sock.sendall(struct.pack(">QII", NBD_OPTS_MAGIC, NBD_OPT_GO, len(data)) + data)
    size = None
    while True:
        magic, _option, kind, length = struct.unpack(">QIII", _read_exactly(sock, 20))
        if magic != NBD_REP_MAGIC:
            raise NBDError("bad option reply magic")
        payload = _read_exactly(sock, length) if length else b""
        if kind & 0x80000000:
            raise NBDError(f"NBD_OPT_GO refused (reply type {kind:#x}): {payload[4:].decode(errors='replace')}")
        if kind == NBD_REP_INFO and len(payload) >= 12 and struct.unpack(">H", payload[:2])[0] == NBD_INFO_EXPORT:
            size = struct.unpack(">Q", payload[2:10])[0]
        if kind == NBD_REP_ACK:
            break
    if size is None:
        raise NBDError("the server sent no export size")
    sock.settimeout(None)
    return sock, size


class Pacer:
    """The offered load over time: bytes per second at a moment of the run."""

    def __init__(self, rate_bytes_s, burst_rate_bytes_s=None, burst_on_s=0.0, burst_off_s=0.0):
        self.rate = rate_bytes_s
        self.burst_rate = burst_rate_bytes_s
        self.on_s, self.off_s = burst_on_s, burst_off_s

    def rate_at(self, t_s):
        if not self.burst_rate:
            return self.rate
        phase = t_s % (self.on_s + self.off_s)
        return self.burst_rate if phase < self.on_s else self.rate


class SeqWriter:
    """Writes numbered blocks through one NBD connection from a sender and a receiver thread.

    `acks` is filled as replies arrive: seq -> (ack_ns, slot). `acked_bytes` and
    `read_bytes` count completed payload. After the server dies the receiver records the
    end (`closed_error`) and the sender stops; writes still in flight were never
    acknowledged."""

    def __init__(self, sock, size_bytes, block_bytes, queue_depth, pacer, read_fraction, run_id, seed):
        if block_bytes < HEADER.size or block_bytes % 512:
            raise ValueError("block size must be a multiple of 512 of at least 512 bytes")
        self.sock = sock
        self.block_bytes = block_bytes
        self.slots = size_bytes // block_bytes
        if self.slots < 1:
            raise ValueError("the export is smaller than one block")
        self.pacer = pacer
        self.read_fraction = read_fraction
        self.run_id = run_id
        self.random = random.Random(seed)
        self.filler = memoryview(random.Random(seed ^ 0x5EED).randbytes(block_bytes))
        self.window = threading.Semaphore(queue_depth)
        self.lock = threading.Lock()
        self.inflight = {}  # handle -> (kind, seq, slot, submit_ns)
        self.acks = {}  # seq -> (ack_ns, slot)
        self.submitted = {}  # seq -> (submit_ns, slot)
        self.acked_bytes = 0
        self.read_bytes = 0
        self.errors = 0
        self.closed_error = None
        self.stop = threading.Event()  # the sender stops at the next request
        self._closing = False  # finish() is closing the connection
        self.start_ns = None
        self._threads = []

    # ------------------------------------------------------------ running

    def start(self, duration_s):
        self.start_ns = time.monotonic_ns()
        self._threads = [threading.Thread(target=self._send, args=(duration_s,), daemon=True),
                         threading.Thread(target=self._receive, daemon=True)]
        for thread in self._threads:
            thread.start()

    def wait_sent(self, timeout_s=None):
        """Waits for the sender to finish (duration over, stopped, or the connection gone)."""
        self._threads[0].join(timeout_s)

    def finish(self, timeout_s=10.0):
        """Waits for the replies to what was sent, then disconnects (if the server lives)."""
        self.wait_sent()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.closed_error is None:
            with self.lock:
                if not self.inflight:
                    break
            time.sleep(0.005)
        # Closing before the DISC goes: the server may close the connection before this thread
        # runs again, and the receiver must not take that end for a failure.
        self._closing = True
        if self.closed_error is None:
            try:
                self.sock.sendall(REQUEST.pack(NBD_REQUEST_MAGIC, 0, NBD_CMD_DISC, 0, 0, 0))
            except OSError:
                pass
        self.stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._threads[1].join(timeout_s)
        self.sock.close()

    def _send(self, duration_s):
        seq, handle = 0, 0
        due_s = 0.0  # when the next request may go, in seconds from the start
        end_s = duration_s
        try:
            while not self.stop.is_set() and self.closed_error is None:
                now_s = (time.monotonic_ns() - self.start_ns) / 1e9
                if now_s >= end_s:
                    return
                if due_s > now_s:
                    time.sleep(min(due_s - now_s, 0.05))
                    continue
                # The rate now sets the gap to the next request (a burst's last request is
                # followed by the idle phase, not by requests every few ms).
                rate = self.pacer.rate_at(now_s)
                if rate <= 0:  # an idle phase: look again soon
                    time.sleep(0.005)
                    due_s = now_s
                    continue
                # Fall behind by at most 50 ms: an offered rate, not a debt to pay later.
                due_s = max(due_s, now_s - 0.05) + self.block_bytes / rate
                while not self.window.acquire(timeout=0.05):
                    if self.stop.is_set() or self.closed_error is not None:
                        return
                handle += 1
                if self.read_fraction > 0 and seq > 0 and self.random.random() < self.read_fraction:
                    slot = self.random.randrange(min(seq, self.slots))
                    with self.lock:
                        self.inflight[handle] = ("r", 0, slot, time.monotonic_ns())
                    self.sock.sendall(REQUEST.pack(NBD_REQUEST_MAGIC, 0, NBD_CMD_READ, handle,
                                                   slot * self.block_bytes, self.block_bytes))
                    continue
                seq += 1
                slot = (seq - 1) % self.slots
                submit_ns = time.monotonic_ns()
                with self.lock:
                    self.inflight[handle] = ("w", seq, slot, submit_ns)
                    self.submitted[seq] = (submit_ns, slot)
                self.sock.sendall(REQUEST.pack(NBD_REQUEST_MAGIC, 0, NBD_CMD_WRITE, handle,
                                               slot * self.block_bytes, self.block_bytes)
                                  + HEADER.pack(MAGIC, self.run_id, seq, submit_ns))
                self.sock.sendall(self.filler[HEADER.size:])
        except OSError as error:
            if self.closed_error is None:
                self.closed_error = f"send: {error}"

    def _receive(self):
        try:
            while True:
                magic, error, handle = REPLY.unpack(_read_exactly(self.sock, REPLY.size))
                now = time.monotonic_ns()
                if magic != NBD_SIMPLE_REPLY_MAGIC:
                    raise NBDError(f"bad reply magic {magic:#x}")
                with self.lock:
                    kind, seq, slot, _submit = self.inflight.pop(handle)
                if kind == "r" and error == 0:
                    _read_exactly(self.sock, self.block_bytes)
                with self.lock:
                    if error:
                        self.errors += 1
                    elif kind == "w":
                        self.acks[seq] = (now, slot)
                        self.acked_bytes += self.block_bytes
                    else:
                        self.read_bytes += self.block_bytes
                self.window.release()
        except (OSError, NBDError) as error:
            if not self._closing:  # not the end finish() made
                self.closed_error = f"receive: {error}"
            self.stop.set()


def slot_contents(image_path, block_bytes, slots):
    """Reads the header of every slot of a volume image: a list of (run id, seq) or None."""
    out = []
    with open(image_path, "rb") as f:
        for slot in range(slots):
            f.seek(slot * block_bytes)
            raw = f.read(HEADER.size)
            if len(raw) < HEADER.size:
                out.append(None)
                continue
            magic, run_id, seq, _submit = HEADER.unpack(raw)
            out.append((run_id, seq) if magic == MAGIC else None)
    return out
