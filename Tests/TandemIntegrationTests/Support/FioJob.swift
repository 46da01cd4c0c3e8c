// FioJob: a time-based fio workload through an NBD export, running in the background while a
// test breaks things, with its JSON report read at the end (completions and the worst
// latency: what the application saw). A job still running when the FioJob goes is killed.
import Foundation

final class FioJob {
    struct Report {
        var writes: Int
        var maxLatencyNs: Int
        var errorCode: Int
    }

    let scratch: TempDirectory
    let child: ChildProcess
    let runtimeSeconds: Int

    /// Random `blockBytes` writes over the first `regionBytes` of the export at `socket`, at
    /// most `rateIOPS`, `iodepth` in flight, for `runtimeSeconds`.
    init(socket: String, regionBytes: Int, runtimeSeconds: Int, rateIOPS: Int, iodepth: Int = 4,
         blockBytes: Int = 4096, seed: Int = 13) throws {
        self.runtimeSeconds = runtimeSeconds
        scratch = try TempDirectory("fio")
        // Under `timeout`: a test process that dies without this object's deinit must not
        // leave fio behind (one whose server was gone spun for 20 minutes writing errors into
        // a deleted file until the disk was full).
        child = try ChildProcess(
            executable: try ExternalTool.locate("timeout"),
            arguments: [
                "-s", "KILL", "\(runtimeSeconds + 120)", try ExternalTool.locate("fio"),
                "--name=workload", "--ioengine=nbd", "--uri=nbd+unix:///r0?socket=\(socket)", "--rw=randwrite",
                "--bs=\(blockBytes)", "--size=\(regionBytes)", "--iodepth=\(iodepth)", "--time_based",
                "--runtime=\(runtimeSeconds)s", "--rate_iops=\(rateIOPS)", "--randseed=\(seed)",
                "--output-format=json",
            ],
            outputPath: scratch.file("fio.json"), errorPath: scratch.file("fio.err"))
    }

    deinit {
        killFioAndTimeout()
        _ = child.wait(timeoutSeconds: 10)
    }

    /// SIGKILL to fio first, then to its `timeout`: killing only `timeout` (as before) left
    /// fio orphaned with no deadline, spinning on a dead export and writing errors into a
    /// deleted file until the disk was full.
    private func killFioAndTimeout() {
        let children = (try? String(contentsOfFile: "/proc/\(child.pid)/task/\(child.pid)/children", encoding: .utf8)) ?? ""
        for word in children.split(separator: " ") {
            if let pid = pid_t(word) { kill(pid, SIGKILL) }
        }
        child.signal(SIGKILL)
    }

    /// Waits for the job to end (its runtime plus `graceSeconds`) and reads its report;
    /// throws with fio's output when it fails, stalls past the bound or reports no JSON.
    func finish(graceSeconds: Double = 30) throws -> Report {
        guard child.wait(timeoutSeconds: Double(runtimeSeconds) + graceSeconds) else {
            killFioAndTimeout()
            throw HarnessError("fio still running \(graceSeconds) s after its \(runtimeSeconds) s runtime: its writes stalled")
        }
        let text = (try? String(contentsOfFile: scratch.file("fio.json"), encoding: .utf8)) ?? ""
        let errors = (try? String(contentsOfFile: scratch.file("fio.err"), encoding: .utf8)) ?? ""
        guard child.exitStatus == 0, let start = text.firstIndex(of: "{"),
            let report = try? JSONSerialization.jsonObject(with: Data(text[start...].utf8)) as? JSONObject,
            let job = (report["jobs"] as? [JSONObject])?.first, let write = job["write"] as? JSONObject,
            let latency = write["lat_ns"] as? JSONObject
        else {
            throw HarnessError("fio exited \(child.exitStatus ?? -1) without a report:\n\(text.suffix(2000))\n\(errors.suffix(2000))")
        }
        return Report(writes: (write["total_ios"] as? NSNumber)?.intValue ?? 0,
                      maxLatencyNs: (latency["max"] as? NSNumber)?.intValue ?? Int.max,
                      errorCode: (job["error"] as? NSNumber)?.intValue ?? -1)
    }
}
