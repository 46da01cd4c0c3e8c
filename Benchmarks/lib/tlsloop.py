#!/usr/bin/env python3
"""TLS loopback throughput: one limit a pair's resync cannot beat (Benchmarks/resync.sh).

  tlsloop.py CERT_DIR SECONDS
      a TLS 1.3 server (beta's certificate) and client (alpha's), in two processes as the
      two nodes are, both verifying against
      CERT_DIR/ca.crt as tandemd does, on 127.0.0.1; the client sends 1 MiB buffers for
      SECONDS; prints one JSON line: {"mib_s": ..., "cipher": ..., "bytes": ...,
      "cpu_s_per_gib": ...}: cpu_s_per_gib is the CPU time (user and system) of the sender
      and the receiver together per GiB received, the kernel's TCP copies of both included.

Python's ssl module is OpenSSL underneath, the same library and cipher negotiation tandemd
uses; with 1 MiB buffers the interpreter's share is small, so the figure is what OpenSSL and
the loopback give one sender and one receiver (one core each at most). Until 2026-12-07 the
two ran as threads of one process, sharing the interpreter's lock.
"""
import json, os, resource, socket, ssl, sys, time


def contexts(cert_dir):
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    server.load_cert_chain(os.path.join(cert_dir, "beta.crt"), os.path.join(cert_dir, "beta.key"))
    server.load_verify_locations(os.path.join(cert_dir, "ca.crt"))
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    client.load_cert_chain(os.path.join(cert_dir, "alpha.crt"), os.path.join(cert_dir, "alpha.key"))
    client.load_verify_locations(os.path.join(cert_dir, "ca.crt"))
    client.check_hostname = False  # the name check is tandemd's; the chain is verified
    return server, client


def process_cpu_s():
    """User and system CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def receive(listener, server_context, report):
    """The receiver, in a process of its own: writes {"bytes", "cpu_s"} to `report`."""
    connection, _ = listener.accept()
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    received = 0
    with server_context.wrap_socket(connection, server_side=True) as tls:
        cpu_before = process_cpu_s()
        buffer = bytearray(1 << 20)
        while True:
            count = tls.recv_into(buffer)
            if count == 0:
                break
            received += count
        cpu_s = process_cpu_s() - cpu_before
    os.write(report, json.dumps({"bytes": received, "cpu_s": cpu_s}).encode())


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    cert_dir, seconds = sys.argv[1], float(sys.argv[2])
    server_context, client_context = contexts(cert_dir)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    # Sender and receiver in two processes, as the two nodes are: two threads of one
    # interpreter would take turns at its lock between records.
    report_read, report_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(report_read)
        try:
            receive(listener, server_context, report_write)
        finally:
            os._exit(0)
    os.close(report_write)
    listener.close()
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tls = client_context.wrap_socket(raw, server_hostname="beta")
    payload = os.urandom(1 << 20)
    cpu_before = process_cpu_s()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        tls.sendall(payload)
    cipher = tls.cipher()[0]
    tls.close()
    sender_cpu_s = process_cpu_s() - cpu_before
    with os.fdopen(report_read, "rb") as report:
        text = report.read()
    elapsed = time.monotonic() - started
    os.waitpid(child, 0)
    if not text:
        raise SystemExit("tlsloop.py: the receiver reported nothing")
    receiver = json.loads(text)
    received = receiver["bytes"]
    cpu_s_per_gib = (sender_cpu_s + receiver["cpu_s"]) / (received / (1 << 30))
    print(json.dumps({"mib_s": round(received / elapsed / (1 << 20), 1), "cipher": cipher, "bytes": received,
                      "cpu_s_per_gib": round(cpu_s_per_gib, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
