// Create: `tandemctl create NAME --volume PATH ...`, one flag per create key.
import ArgumentParser
import TandemControl

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a resource: a volume to serve over NBD and, with a peer, to replicate.",
        discussion: """
            The daemon validates every value and names the one it refuses. Sizes and rates \
            accept suffixes: 4096, 64KiB, 10GiB (K, M, G, T are binary too).

            Example: tandemctl create r0 --volume /var/lib/tandem/r0.img --size 1GiB
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name: 1-64 of A-Z a-z 0-9 - _ . (also the NBD export name).")
    var name: String

    @Option(help: ArgumentHelp("Block device or file (absolute path).", valueName: "path"))
    var volume: String
    @Option(help: ArgumentHelp("Create a missing volume file of this size (multiple of 4096).", valueName: "bytes"))
    var size: ByteCount?
    @Option(help: ArgumentHelp("standalone, primary or secondary (default standalone).", valueName: "role"))
    var role: String?
    @Option(help: ArgumentHelp("Peer node name (primary and secondary).", valueName: "name"))
    var peerName: String?
    @Option(help: ArgumentHelp("Peer replication address.", valueName: "host:port"))
    var peerAddress: String?
    @Option(help: ArgumentHelp("sync, async, adaptive or periodic (default sync).", valueName: "mode"))
    var mode: String?
    @Option(help: ArgumentHelp("Seconds between cycles in periodic mode.", valueName: "seconds"))
    var period: Int64?
    @Option(help: ArgumentHelp("Lag target; writes are paced to stay under it.", valueName: "ms"))
    var rpoTargetMs: Int64?
    @Option(help: ArgumentHelp("The secondary's group commit: flush and confirm at the latest this long after an epoch completed (default 2000).", valueName: "us"))
    var groupCommitUs: Int64?
    @Option(help: ArgumentHelp("none or lz4 (default none).", valueName: "kind"))
    var compression: String?
    @Option(help: ArgumentHelp("Resync cap in bytes per second; 0 = the dynamic controller (default). Changes live with set.", valueName: "bytes"))
    var resyncRate: ByteCount?
    @Option(help: ArgumentHelp("The dynamic controller's floor, bytes per second (default 32MiB). Changes live with set.", valueName: "bytes"))
    var resyncRateMin: ByteCount?
    @Option(help: ArgumentHelp("Cap on all replication traffic, bytes per second; 0 = none.", valueName: "bytes"))
    var bandwidth: ByteCount?
    @Option(help: ArgumentHelp("dont-care or suspend-io (default dont-care).", valueName: "policy"))
    var fencing: String?
    @Option(help: ArgumentHelp("disconnect, discard-zero-changes, discard-younger-primary or discard-least-changes.", valueName: "policy"))
    var afterSplitBrain: String?
    @Option(help: ArgumentHelp("Where a sync primary's reads go while its peer is UpToDate: prefer-local (default), prefer-remote, round-robin or least-pending. Changes live with set.", valueName: "policy"))
    var readBalancing: String?
    @Option(help: ArgumentHelp("drain or flush (default drain).", valueName: "how"))
    var diskDrain: String?
    @Option(help: ArgumentHelp("full or none (default full).", valueName: "how"))
    var initialSync: String?
    @Option(help: ArgumentHelp("Fail the disk when a volume or metadata I/O hangs this long; 0 = off (default). Changes live with set.", valueName: "ms"))
    var diskTimeoutMs: Int64?
    @Option(help: ArgumentHelp("Async replication queue size (default 256MiB).", valueName: "bytes"))
    var asyncBuffer: ByteCount?
    @Option(help: ArgumentHelp("Activity-log extents, 0-1000 (default: the metadata's 512; 0: none).", valueName: "count"))
    var alExtents: Int64?
    @Option(help: ArgumentHelp("external (default: a file at --metadata-path) or internal (the volume's last bytes; size_bytes is then the data area).", valueName: "where"))
    var metadata: String?
    @Option(help: ArgumentHelp("Metadata file (default <state_dir>/<name>.md).", valueName: "path"))
    var metadataPath: String?
    @Option(help: ArgumentHelp("Consistency group: its resources share one epoch sequence (same peer and mode; docs/groups.md).", valueName: "name"))
    var group: String?
    @Option(help: ArgumentHelp("NBD Unix socket (default: <name>.nbd beside the daemon's control socket).", valueName: "path"))
    var nbdSocket: String?
    @Option(help: ArgumentHelp("Also serve NBD on this TCP address.", valueName: "host:port"))
    var nbdTcp: String?

    var args: [String: JSONValue] {
        var args: [String: JSONValue] = ["name": .string(name), "volume": .string(volume)]
        let strings: [(String, String?)] = [
            ("role", role), ("mode", mode), ("compression", compression), ("fencing", fencing),
            ("after_split_brain", afterSplitBrain), ("disk_drain", diskDrain), ("initial_sync", initialSync),
            ("metadata", metadata), ("metadata_path", metadataPath), ("read_balancing", readBalancing),
            ("group", group),
        ]
        for (key, value) in strings { if let value { args[key] = .string(value) } }
        let sizes: [(String, ByteCount?)] = [
            ("size_bytes", size), ("resync_rate", resyncRate), ("resync_rate_min", resyncRateMin),
            ("bandwidth", bandwidth), ("async_buffer_bytes", asyncBuffer),
        ]
        for (key, value) in sizes { if let value { args[key] = value.json } }
        if let alExtents { args["al_extents"] = .int(alExtents) }
        if let period { args["period_s"] = .int(period) }
        if let rpoTargetMs { args["rpo_target_ms"] = .int(rpoTargetMs) }
        if let groupCommitUs { args["group_commit_us"] = .int(groupCommitUs) }
        if let diskTimeoutMs { args["disk_timeout_ms"] = .int(diskTimeoutMs) }
        if peerName != nil || peerAddress != nil {
            var peer: [String: JSONValue] = [:]
            if let peerName { peer["name"] = .string(peerName) }
            if let peerAddress { peer["address"] = .string(peerAddress) }
            args["peer"] = .object(peer)
        }
        if nbdSocket != nil || nbdTcp != nil {
            var nbd: [String: JSONValue] = [:]
            if let nbdSocket { nbd["socket"] = .string(nbdSocket) }
            if let nbdTcp { nbd["tcp"] = .string(nbdTcp) }
            args["nbd"] = .object(nbd)
        }
        return args
    }

    /// The request's argument names whose option is not the name with `-` for `_`.
    static let flagNames: [String: String] = [
        "size_bytes": "--size", "period_s": "--period", "async_buffer_bytes": "--async-buffer",
        "peer.name": "--peer-name", "peer.address": "--peer-address", "nbd.socket": "--nbd-socket",
        "nbd.tcp": "--nbd-tcp", "peer": "--peer-name and --peer-address",
    ]

    /// Every argument this command sends, with its option (for errors that name the argument).
    var flags: [String: String] {
        var flags: [String: String] = [:]
        for key in args.keys where key != "peer" && key != "nbd" {
            flags[key] = Self.flagNames[key] ?? "--" + String(key.map { $0 == "_" ? "-" : $0 })
        }
        flags.merge(Self.flagNames) { _, named in named }
        return flags
    }

    func run() throws {
        try options.call("create", args, flags: flags) { fields in
            print("created \(name)")
            if let socket = fields["nbd"]?.objectValue?["socket"]?.stringValue { print("nbd socket: \(socket)") }
        }
    }
}
