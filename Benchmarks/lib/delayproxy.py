#!/usr/bin/env python3
"""A TCP proxy that delays every byte by a fixed time in each direction: the latency half of
a WAN link for `tandem-bench rpo --link-delay-ms` (this kernel has no netem; bandwidth is
tc tbf's job). Bytes keep their order; nothing is dropped.

usage: delayproxy.py LISTEN_PORT TARGET_PORT ONE_WAY_DELAY_MS [SPIKE_ONE_WAY_DELAY_MS]
With a spike delay, SIGUSR1 makes bytes read from then on wait that long instead, SIGUSR2
goes back to the plain delay (`tandem-bench rpo --profile adaptive-spike`).
Listens on 127.0.0.1:LISTEN_PORT, connects each accepted connection to
127.0.0.1:TARGET_PORT, prints "ready" once listening, runs until SIGTERM. An end of stream
or an error on one side closes both, after the bytes already read have been delivered.
"""
import collections, signal, socket, sys, threading, time

# The one-way delay applied to bytes read now: the plain delay, or the spike's while it lasts.
DELAY = {"now_s": 0.0, "plain_s": 0.0, "spike_s": 0.0}

CHUNK_BYTES = 256 * 1024
QUEUED_BYTES_MAX = 64 << 20  # a direction holds at most this much in flight


class Direction:
    """Bytes read from `source` and written to `sink` DELAY seconds later."""

    def __init__(self, source, sink, delay_s):
        self.source, self.sink, self.delay_s = source, sink, delay_s
        self.queue = collections.deque()  # (due monotonic s, bytes or None for the end)
        self.queued = 0
        self.cond = threading.Condition()

    def read(self):
        try:
            while True:
                with self.cond:
                    while self.queued > QUEUED_BYTES_MAX:
                        self.cond.wait()
                data = self.source.recv(CHUNK_BYTES)
                with self.cond:
                    self.queue.append((time.monotonic() + DELAY["now_s"], data or None))
                    self.queued += len(data)
                    self.cond.notify_all()
                if not data:
                    return
        except OSError:
            with self.cond:
                self.queue.append((time.monotonic() + self.delay_s, None))
                self.cond.notify_all()

    def write(self):
        try:
            while True:
                with self.cond:
                    while not self.queue:
                        self.cond.wait()
                    due, data = self.queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                with self.cond:
                    self.queue.popleft()
                    self.queued -= len(data or b"")
                    self.cond.notify_all()
                if data is None:
                    break
                self.sink.sendall(data)
        except OSError:
            pass
        for sock in (self.sink, self.source):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client, target_port, delay_s):
    try:
        upstream = socket.create_connection(("127.0.0.1", target_port), timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for direction in (Direction(client, upstream, delay_s), Direction(upstream, client, delay_s)):
        threading.Thread(target=direction.read, daemon=True).start()
        threading.Thread(target=direction.write, daemon=True).start()


def main():
    listen_port, target_port, delay_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    spike_ms = float(sys.argv[4]) if len(sys.argv) > 4 else delay_ms
    if not 0 <= delay_ms <= 10_000 or not 0 <= spike_ms <= 10_000:
        sys.exit("delayproxy: the delay must be within 0..10000 ms")
    DELAY.update(now_s=delay_ms / 1000.0, plain_s=delay_ms / 1000.0, spike_s=spike_ms / 1000.0)
    signal.signal(signal.SIGUSR1, lambda *_: DELAY.update(now_s=DELAY["spike_s"]))
    signal.signal(signal.SIGUSR2, lambda *_: DELAY.update(now_s=DELAY["plain_s"]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", listen_port))
    listener.listen(16)
    print("ready", flush=True)
    while True:
        client, _ = listener.accept()
        serve(client, target_port, delay_ms / 1000.0)


if __name__ == "__main__":
    main()
