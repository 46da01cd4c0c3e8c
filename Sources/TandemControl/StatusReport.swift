// StatusReport: `tandemctl status` for people: a table of resources in human units, then for
// each resource that is not healthy the reasons in words, and a progress bar for a running
// copy or verify. Pure: it formats the daemon's status fields and knows no clock. State
// words it does not know are shown as they come, never refused.

public enum StatusReport {
    /// Column title and the reply key it reads.
    public static let columns: [(title: String, key: String)] = [
        ("NAME", "name"), ("ROLE", "role"), ("CONNECTION", "connection_state"), ("DISK", "disk_state"),
        ("PEER-DISK", "peer_disk_state"), ("REPLICATION", "replication_state"), ("OUT-OF-SYNC", "out_of_sync_bytes"),
        ("LAG", "lag_bytes"), ("RPO", "rpo_ms"),
    ]

    /// A rate measured by the caller (two samples in `--watch`), used when the daemon reports none.
    public typealias MeasuredRates = [String: UInt64]

    /// The table, then the reasons and progress of every resource that is not healthy.
    public static func render(_ resources: [[String: JSONValue]], measuredRates: MeasuredRates = [:]) -> String {
        guard !resources.isEmpty else { return "no resources" }
        var lines = [table(resources)]
        for fields in resources {
            let name = fields["name"]?.stringValue ?? "?"
            let reasons = problems(fields)
            let bar = progress(fields, measuredRate: measuredRates[name])
            if reasons.isEmpty && bar == nil { continue }
            if lines.count == 1 { lines.append("") }
            lines += reasons.map { "\(name): \($0)" }
            if let bar { lines.append("\(name): \(bar)") }
        }
        return lines.joined(separator: "\n")
    }

    public static func table(_ resources: [[String: JSONValue]]) -> String {
        let header = columns.map(\.title)
        let rows = resources.map { fields in columns.map { cell(fields[$0.key], key: $0.key) } }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        return ([header] + rows).map { row in
            row.enumerated().map { column, text in
                column == row.count - 1 ? text : text + String(repeating: " ", count: widths[column] - text.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func cell(_ value: JSONValue?, key: String) -> String {
        guard let value else { return "-" }
        switch value {
        case .string(let text): return text
        case .int(let number) where number >= 0 && key.hasSuffix("_bytes"): return HumanUnits.bytes(UInt64(number))
        case .int(let number) where number >= 0 && key.hasSuffix("_ms"):
            return HumanUnits.duration(milliseconds: UInt64(number))
        case .int(let number): return String(number)
        case .bool(let flag): return flag ? "yes" : "no"
        case .null: return "-"
        default: return JSONCodec.serializeString(value)
        }
    }

    /// Why a resource is not healthy, in words an operator can act on; empty when healthy.
    public static func problems(_ fields: [String: JSONValue]) -> [String] {
        let name = fields["name"]?.stringValue ?? "NAME"
        let role = fields["role"]?.stringValue ?? "standalone"
        let disk = fields["disk_state"]?.stringValue ?? "UpToDate"
        let lastError = fields["last_error"]?.stringValue
        var reasons: [String] = []
        if disk == "Failed" {
            if fields["disk_error"]?.objectValue?["operation"]?.stringValue == "metadata open" {
                reasons.append("metadata cannot be proven: \(lastError ?? "see the daemon's log"); put the right file back "
                    + "and restart tandemd, or re-initialise it with 'tandemctl create-md \(name) --force' "
                    + "(the next connection copies the whole volume)")
            } else {
                reasons.append("disk failed: " + (fields["disk_error"]?.stringValue ?? lastError ?? "see the daemon's log"))
            }
        }
        if fields["split_brain"]?.boolValue == true {
            let detail = fields["split_brain_detail"]?.objectValue
            func bytes(_ key: String) -> String {
                detail?[key]?.intValue.map { HumanUnits.bytes(UInt64(max(0, $0))) } ?? "?"
            }
            reasons.append("split brain: both nodes wrote while apart (\(bytes("local_changed_bytes")) here, "
                + "\(bytes("peer_changed_bytes")) on the peer); end it with 'tandemctl resolve \(name) --discard local' "
                + "on the node whose changes go, then '--discard peer' on the other")
        }
        if let reason = fields["demoted_by_promotion"]?.stringValue {
            reasons.append("takes no writes: \(reason); 'tandemctl resolve \(name) --discard local' makes it the peer's secondary")
        }
        // A periodic primary between cycles is Ahead with no link by design: say when the
        // secondary catches up instead of calling it a connection problem.
        let betweenCycles = role == "primary" && fields["replication_state"]?.stringValue == "Ahead"
            && fields["periodic"]?.objectValue?["cycle_running"]?.boolValue == false
        if betweenCycles, let periodic = fields["periodic"]?.objectValue { reasons.append(periodicSummary(periodic)) }
        if role != "standalone" && !betweenCycles { reasons += connectionProblems(fields, name: name, lastError: lastError) }
        if let local = diskProblem(disk, replication: fields["replication_state"]?.stringValue) { reasons.append(local) }
        if role == "primary" && !betweenCycles, let peer = peerDiskProblem(fields) { reasons.append(peer) }
        // What point a consistent image that is not UpToDate holds (stagefix: consistent_as_of).
        if let asOf = consistentAsOfLine(fields, role: role, disk: disk, reasons: reasons) { reasons.append(asOf) }
        if fields["replication_state"]?.stringValue == "PausedSync" {
            reasons.append("resync paused: the daemon's resync_concurrency_max copies run; this one waits for a slot")
        }
        if fields["writes_blocked"]?.boolValue == true || fields["replication_state"]?.stringValue == "Blocked" {
            let unconfirmed = fields["unconfirmed_bytes"]?.intValue.map { HumanUnits.bytes(UInt64(max(0, $0))) } ?? "?"
            reasons.append("writes blocked: the replication buffer is full (\(unconfirmed) not yet confirmed by the peer)")
        }
        return reasons
    }

    /// "periodic: between cycles, the secondary lacks what was written since the last one; next
    /// cycle in 4m 12s (last: 256KiB in 35ms)".
    static func periodicSummary(_ periodic: [String: JSONValue]) -> String {
        func milliseconds(_ key: String) -> String {
            periodic[key]?.intValue.map { HumanUnits.duration(milliseconds: UInt64(max(0, $0))) } ?? "?"
        }
        var text = "periodic: between cycles, the secondary lacks what was written since the last one; next cycle in "
            + milliseconds("next_cycle_in_ms")
        if let bytes = periodic["last_cycle_bytes"]?.intValue {
            text += " (last: \(HumanUnits.bytes(UInt64(max(0, bytes)))) in \(milliseconds("last_cycle_duration_ms")))"
        }
        return text
    }

    static func connectionProblems(_ fields: [String: JSONValue], name: String, lastError: String?) -> [String] {
        guard fields["enabled"]?.boolValue != false else {
            // A re-enable that failed at the daemon's start says why in last_error.
            return ["replication disabled" + (lastError.map { " (\($0))" } ?? "") + ": 'tandemctl enable \(name)' starts it"]
        }
        let connection = fields["connection_state"]?.stringValue ?? "unknown"
        guard connection != "Connected" else { return [] }
        return ["peer not connected" + (lastError.map { ": \($0)" } ?? " (\(connection))")]
    }

    static func diskProblem(_ disk: String, replication: String?) -> String? {
        switch disk {
        case "UpToDate", "Failed": return nil
        case "Inconsistent" where replication == "SyncTarget":
            return "this copy is Inconsistent: receiving the full copy from the primary"
        case "Inconsistent": return "this copy is Inconsistent: it is not usable until a copy from the primary completes"
        case "Outdated": return "this copy is Outdated: the peer holds newer data"
        case "Consistent": return "this copy is Consistent: crash-consistent, but possibly behind the primary"
        case "DUnknown", "Unknown": return "this copy's state is unknown"
        default: return "disk state \(disk)"
        }
    }

    static func peerDiskProblem(_ fields: [String: JSONValue]) -> String? {
        guard let peer = fields["peer_disk_state"]?.stringValue else { return nil }
        switch peer {
        case "UpToDate": return nil
        case "Inconsistent":
            let done = number(fields["resync_progress"]).map { " \(Int(($0 * 100).rounded(.down)))% done" } ?? ""
            return "secondary is Inconsistent: full copy\(done)"
        case "Outdated": return "secondary is Outdated: it needs a resync"
        case "DUnknown", "Unknown": return "the secondary's disk state is unknown"
        default: return "secondary is \(peer)"
        }
    }

    /// "sync [#######.............]  35.2%  12MiB/s  ETA 8s" while a copy or verify runs.
    public static func progress(_ fields: [String: JSONValue], measuredRate: UInt64? = nil) -> String? {
        let replication = fields["replication_state"]?.stringValue ?? ""
        let isVerify = replication.hasPrefix("Verify")
        guard isVerify || replication.hasPrefix("Sync") || replication.hasPrefix("PausedSync"),
            let fraction = number(fields[isVerify ? "verify_progress" : "resync_progress"] ?? fields["resync_progress"])
        else { return nil }
        let clamped = min(max(fraction, 0), 1)
        let width = 20
        let filled = Int((clamped * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let tenths = Int((clamped * 1000).rounded(.down))
        var text = "\(isVerify ? "verify" : "sync") [\(bar)] \(tenths / 10).\(tenths % 10)%"
        // The configured cap (`resync_rate`), when there is one.
        let cap = fields["resync_rate"]?.intValue.flatMap { $0 > 0 ? "  cap " + HumanUnits.rate(bytesPerSecond: UInt64($0)) : nil } ?? ""
        let reported = fields["resync_rate_bytes_per_second"]?.intValue.flatMap { $0 > 0 ? UInt64($0) : nil }
        guard let rate = reported ?? measuredRate, rate > 0 else { return text + "  rate -  ETA -" + cap }
        text += "  " + HumanUnits.rate(bytesPerSecond: rate)
        let remaining = fields["out_of_sync_bytes"]?.intValue.map { UInt64(max(0, $0)) }
        let eta = fields["resync_eta_seconds"]?.intValue.map { UInt64(max(0, $0)) }
            ?? remaining.map { ($0 + rate - 1) / rate }
        return text + "  ETA " + (eta.map { HumanUnits.duration(seconds: $0) } ?? "-") + cap
    }

    static func number(_ value: JSONValue?) -> Double? {
        switch value {
        case .int(let number)?: Double(number)
        case .double(let number)?: number
        default: nil
        }
    }

    /// Every field of one resource, `key: value`, sorted (for `tandemctl status NAME`).
    public static func details(_ fields: [String: JSONValue]) -> String {
        fields.keys.sorted().map { key in
            let value = fields[key] ?? .null
            return "\(key): \(value.stringValue ?? JSONCodec.serializeString(value))"
        }.joined(separator: "\n")
    }

    // MARK: consistent_as_of (stagefix)

    /// "consistent as of session 123 epoch 45" for a copy that is Consistent or Outdated (this
    /// node's on a secondary, the peer's on a primary): nil when healthy or not reported.
    static func consistentAsOfLine(_ fields: [String: JSONValue], role: String, disk: String, reasons: [String]) -> String? {
        guard !reasons.isEmpty else { return nil }
        let peer = role == "primary"
        let word = peer ? fields["peer_disk_state"]?.stringValue : disk
        guard word == "Consistent" || word == "Outdated",
            let point = fields[peer ? "peer_consistent_as_of" : "consistent_as_of"]?.objectValue,
            let session = point["session"]?.stringValue
        else { return nil }
        let through = point["whole_session"]?.boolValue == true ? "all of session \(session)"
            : "session \(session) through epoch \(point["epoch"]?.intValue.map(String.init) ?? "?")"
        let time = point["time"]?.stringValue.map { " (as of \($0))" } ?? ""
        return (peer ? "the peer's image holds " : "this copy's image holds ") + through + time
    }
}
