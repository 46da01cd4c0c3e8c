#!/usr/bin/env python3
"""Minimal QMP client for Benchmarks/pair.sh: drives qemu-storage-daemon's active mirror.

usage:
  qmp.py SOCKET mirror-start SOURCE_NODE TARGET_NODE FILTER_NODE [TIMEOUT_S]
      qmp_capabilities; blockdev-mirror job "m0" (sync full, copy-mode write-blocking,
      filter-node-name FILTER_NODE); waits until query-block-jobs reports ready: true.
  qmp.py SOCKET export-node EXPORT_ID
      prints the node the export's block backend is attached to now (query-block-exports).
  qmp.py SOCKET job
      prints query-block-jobs' entry for m0 as JSON.
  qmp.py SOCKET mirror-abandon
      block-job-cancel m0 with force: true (a ready mirror stops without its final copy
      pass), waits for the job to disappear.
  qmp.py SOCKET quit
"""
import json, socket, sys, time


class QMP:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        greeting = self.read()
        if "QMP" not in greeting:
            sys.exit(f"qmp: unexpected greeting {greeting}")
        self.command("qmp_capabilities")

    def read(self):
        line = self.file.readline()
        if not line:
            sys.exit("qmp: connection closed")
        return json.loads(line)

    def command(self, cmd, **arguments):
        message = {"execute": cmd}
        if arguments:
            message["arguments"] = arguments
        self.file.write(json.dumps(message).encode() + b"\n")
        self.file.flush()
        while True:
            reply = self.read()
            if "event" in reply:
                continue
            if "error" in reply:
                sys.exit(f"qmp: {cmd}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def job(self, job_id="m0"):
        for job in self.command("query-block-jobs"):
            if job.get("device") == job_id:
                return job
        return None


def main():
    path, action, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    qmp = QMP(path)
    if action == "mirror-start":
        source, target, filter_node = rest[:3]
        timeout = float(rest[3]) if len(rest) > 3 else 600.0
        qmp.command("blockdev-mirror", **{
            "job-id": "m0", "device": source, "target": target, "sync": "full",
            "copy-mode": "write-blocking", "filter-node-name": filter_node,
            "auto-finalize": True, "auto-dismiss": True})
        deadline = time.monotonic() + timeout
        while True:
            job = qmp.job()
            if job is None:
                sys.exit("qmp: mirror job m0 vanished before it was ready")
            if job.get("ready"):
                break
            if time.monotonic() > deadline:
                sys.exit(f"qmp: mirror not ready after {timeout:g} s: {job}")
            time.sleep(0.1)
    elif action == "export-node":
        for export in qmp.command("query-block-exports"):
            if export.get("id") == rest[0]:
                print(export.get("node-name"))
                break
        else:
            sys.exit(f"qmp: no export {rest[0]}")
    elif action == "job":
        print(json.dumps(qmp.job()))
    elif action == "mirror-abandon":
        qmp.command("block-job-cancel", device="m0", force=True)
        deadline = time.monotonic() + 60
        while qmp.job() is not None:
            if time.monotonic() > deadline:
                sys.exit("qmp: mirror job did not end")
            time.sleep(0.05)
    elif action == "quit":
        try:
            qmp.command("quit")
        except SystemExit:
            pass
    else:
        sys.exit(f"qmp: unknown action {action}")


if __name__ == "__main__":
    main()
