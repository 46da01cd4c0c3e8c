#!/usr/bin/env python3
"""Waits until a resource's status satisfies every KEY=VALUE given, driven by its events.

It subscribes to the daemon's `events` stream, then checks `status` once and again after
every event, so it wakes when the state changes instead of sleeping. Exits 0 when the
condition holds (printing the status as JSON), 1 on timeout (printing the last status).

usage: wait-status.py --socket PATH --name r0 [--timeout S] connection_state=Connected disk_state=UpToDate
"""
import argparse, json, select, socket, sys, time


def request(path, body):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall((json.dumps(body) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def holds(status, wanted):
    return all(str(status.get(key)) == value for key, value in wanted.items())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("conditions", nargs="+")
    args = parser.parse_args()
    wanted = dict(item.split("=", 1) for item in args.conditions)

    events = socket.socket(socket.AF_UNIX)
    events.connect(args.socket)
    events.sendall((json.dumps({"id": 1, "cmd": "events", "name": args.name}) + "\n").encode())
    deadline = time.monotonic() + args.timeout
    status = {}
    while True:
        status = request(args.socket, {"id": 2, "cmd": "status", "name": args.name})
        if holds(status, wanted):
            print(json.dumps(status, sort_keys=True))
            return 0
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # Block until the next event (any state change), at most one second so that a
        # change that raised no event (counters draining) is still seen.
        readable, _, _ = select.select([events], [], [], min(remaining, 1.0))
        if readable and not events.recv(65536):
            break
    print(f"wait-status: timed out waiting for {wanted}; last status:", file=sys.stderr)
    print(json.dumps(status, sort_keys=True), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
