#!/usr/bin/env python3
"""Starts tandemd in the background and returns once it is ready.

Readiness is the systemd protocol: this script binds a Unix datagram socket, passes it to
tandemd as NOTIFY_SOCKET, and waits for the READY=1 datagram (or for tandemd to exit, or for
the timeout). On success it prints tandemd's pid and exits 0, leaving tandemd running.

usage: start-tandemd.py --log FILE [--timeout SECONDS] -- /path/to/tandemd ARGS...
"""
import argparse, os, select, socket, subprocess, sys, tempfile, time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no tandemd command given")

    notify_dir = tempfile.mkdtemp(prefix="tandem-notify-")
    notify_path = os.path.join(notify_dir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    with open(args.log, "ab") as log:
        child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=log, start_new_session=True)
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                child.kill()
                sys.exit(f"start-tandemd: no READY=1 within {args.timeout:g} s; see {args.log}")
            readable, _, _ = select.select([sock], [], [], min(remaining, 0.2))
            if readable:
                message = sock.recv(4096).decode(errors="replace")
                if "READY=1" in message.split("\n"):
                    print(child.pid)
                    return
            status = child.poll()
            if status is not None:
                sys.exit(f"start-tandemd: tandemd exited with status {status} before READY=1; see {args.log}")
    finally:
        sock.close()
        os.unlink(notify_path)
        os.rmdir(notify_dir)


if __name__ == "__main__":
    main()
