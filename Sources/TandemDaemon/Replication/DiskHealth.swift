// DiskHealth: whether a resource's own disk (its volume and its metadata file) has failed.
// Every failed disk result of the resource — the NBD server's reads and writes, the
// replicators' writes, flushes and copy reads, metadata writes — is reported here instead of
// stopping the process. The first one fails the resource: disk_state `Failed` with the
// operation and errno in status, a `disk-failed` event, and the owner's `onFailed` detaches
// the disk (DRBD's `on-io-error detach`, docs/replication.md "Disk failures"). The failure
// stays until the operator disables and re-enables the resource or restarts the daemon.
// Loop thread only.
import Glibc
import Logging
import TandemControl
import TandemCore

struct DiskFailure: Equatable {
    /// What was being done: "write", "flush", "read", "metadata write", "open", ...
    var operation: String
    var errno: Int32
    var message: String

    var json: JSONValue {
        .object(["operation": .string(operation), "errno": .int(Int64(errno)), "message": .string(message)])
    }
}

final class DiskHealth {
    let resource: String
    let events: EventHub
    let logger: Logger
    private(set) var failure: DiskFailure?
    /// Failed disk results of this resource since the daemon started, the first included
    /// (metrics read it).
    private(set) var errorCount: UInt64 = 0
    /// Runs once, when the resource fails.
    var onFailed: (() -> Void)?

    init(resource: String, events: EventHub, logger: Logger) {
        self.resource = resource
        self.events = events
        self.logger = logger
    }

    var isFailed: Bool { failure != nil }

    /// A disk result that is not what was asked for: `result` is a negated errno, or the byte
    /// count of a transfer that ended early (reported as EIO).
    func record(_ operation: String, result: Int32) {
        record(operation, errno: result < 0 ? -result : EIO,
               detail: result < 0 ? nil : "transferred \(result) bytes, fewer than asked")
    }

    func record(_ operation: String, errno code: Int32, detail: String? = nil) {
        errorCount &+= 1
        guard failure == nil else { return }
        let message = detail ?? String(cString: strerror(code))
        let found = DiskFailure(operation: operation, errno: code, message: message)
        failure = found
        logger.error("disk failed: the resource stops using its disk", metadata: [
            "operation": "\(operation)", "errno": "\(code)", "error": "\(message)",
        ])
        events.publish(resource: resource, "disk-failed", ["disk_error": found.json, "disk_state": .string(DiskState.failed.rawValue)])
        onFailed?()
    }

    /// An I/O of `operation` has been outstanding for `ageNs`, longer than disk_timeout_ms
    /// (`timeoutNs`): the disk counts as failed with ETIMEDOUT, as if the I/O had returned an
    /// error. The I/O itself completes to its owner whenever the disk answers.
    func timedOut(_ operation: String, ageNs: UInt64, timeoutNs: UInt64) {
        record(operation, errno: ETIMEDOUT, detail: DiskTimeout.message(ageNs: ageNs, timeoutNs: timeoutNs))
    }

    /// The operator re-enabled the resource: its disk is tried again.
    func clear() {
        guard failure != nil else { return }
        failure = nil
        events.publish(resource: resource, "disk-attached", [:])
    }

    /// The failure's status field (the disk states it overrides are `ReportedDiskStates`').
    func merge(into fields: inout [String: JSONValue]) {
        guard let failure else { return }
        fields["disk_error"] = failure.json
    }
}
