// ResourceCommands: the subcommands that act on one resource by name.
import ArgumentParser
import TandemControl

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the daemon answers.")
    @OptionGroup var options: GlobalOptions
    func run() throws { try options.call("ping") }
}

struct ReloadTLS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload-tls",
        abstract: "Read the TLS CA, certificate and key again (certificate rotation).",
        discussion: """
            The daemon reads tls_ca, tls_cert and tls_key again from the paths it was started \
            with (as on SIGHUP). New peer connections use them; links already up keep going. \
            When a file cannot be loaded, or the key does not match the certificate, the \
            request is refused and the previous material stays in use.
            """)
    @OptionGroup var options: GlobalOptions
    func run() throws { try options.call("reload-tls") }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop serving a resource and forget it. The volume's data is left in place.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    func run() throws { try options.call("delete", ["name": .string(name)]) }
}

struct Enable: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Attach the volume and start serving and replicating.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    // Diskless regions (issue 13 §4): a replaced disk lacks more than the record's regions.
    @Flag(help: "A primary whose disk lacks writes (diskless) and was replaced: pull the whole volume from the peer, not only the regions its record names.")
    var wholeVolume = false
    func run() throws {
        var arguments: [String: JSONValue] = ["name": .string(name)]
        if wholeVolume { arguments["whole_volume"] = .bool(true) }
        try options.call("enable", arguments)
    }
}

struct Disable: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop serving and replicating; keep the resource.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    func run() throws { try options.call("disable", ["name": .string(name)]) }
}

struct Failover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Promote this node's copy to primary.",
        discussion: """
            Without --force, refused while the peer's data may be newer than this node's. With \
            --force, still refused while this node's copy is Inconsistent (a full copy or a \
            re-send had not finished), unless --allow-inconsistent is given too; a copy promoted \
            that way reports promoted_inconsistent: true from then on.
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    @Flag(help: "Promote even though the peer may hold newer data (after the primary is lost).")
    var force = false
    @Flag(help: "With --force: promote even an Inconsistent copy (data that is no state the primary ever had).")
    var allowInconsistent = false
    func validate() throws {
        if allowInconsistent && !force { throw ValidationError("--allow-inconsistent needs --force") }
    }
    func run() throws {
        var arguments: [String: JSONValue] = ["name": .string(name), "force": .bool(force)]
        if allowInconsistent { arguments["allow_inconsistent"] = .bool(true) }
        try options.call("failover", arguments)
    }
}

struct Demote: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Make this node's copy secondary.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    func run() throws { try options.call("demote", ["name": .string(name)]) }
}

struct CreateMD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-md",
        abstract: "Re-initialise a resource's metadata; the next connection copies the whole volume.",
        discussion: """
            For a resource whose metadata cannot be proven (status disk_error operation \
            "metadata open": both slots corrupt, truncated, missing, another resource's or \
            size, a newer format). The new metadata claims nothing: a secondary gets a full \
            copy from its primary; a primary copies its whole volume to its peer. Refused \
            without --force and while the resource is enabled.
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    @Flag(help: "Replace the metadata (required).") var force = false
    func run() throws { try options.call("create-md", ["name": .string(name), "force": .bool(force)]) }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare both copies online; mismatching regions are marked out of sync.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    func run() throws { try options.call("verify", ["name": .string(name)]) }
}

struct Resize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Grow a running resource (its primary resizes both nodes); shrinking needs --force.",
        discussion: """
            Grow the backing volume on both nodes first (lvextend; a file volume is extended \
            by resize itself), then run this on the primary: the secondary checks its volume \
            and grows its metadata, then the primary does, and the new area is caught up. NBD \
            clients see the new size when they reconnect. With the peer away, or on a \
            secondary whose primary is not connected, only this node is resized: resize the \
            other node too before they reconnect. --force shrinks the metadata and the \
            bitmap (the volume itself is left as it is).
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    @Option(help: ArgumentHelp("The new size: bytes or with a unit (64MiB, 10G); a multiple of 4096.", valueName: "size"))
    var size: String
    @Flag(help: "Allow shrinking.") var force = false
    func run() throws {
        guard let bytes = ByteSize.parse(size), bytes > 0, bytes <= UInt64(Int64.max) else {
            throw ValidationError("--size: '\(size)' is not a size (bytes, or a number with KiB, MiB, GiB, TiB)")
        }
        var args: [String: JSONValue] = ["name": .string(name), "size_bytes": .int(Int64(bytes))]
        if force { args["force"] = .bool(true) }
        try options.call("resize", args)
    }
}

struct Resolve: ParsableCommand {
    enum Side: String, ExpressibleByArgument, CaseIterable { case local, peer }
    static let configuration = CommandConfiguration(
        abstract: "End a split brain by discarding one side's changes.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    @Option(help: ArgumentHelp("Whose changes since the split are discarded: local or peer.", valueName: "side"))
    var discard: Side
    func run() throws { try options.call("resolve", ["name": .string(name), "discard": .string(discard.rawValue)]) }
}

struct Outdate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mark this secondary's copy Outdated: the primary went on without it (persisted; promotion then needs --force).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    func run() throws { try options.call("outdate", ["name": .string(name)]) }
}

struct OutdatePeer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outdate-peer",
        abstract: "Confirm the peer is outdated (fenced), so suspended I/O may resume.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name.") var name: String
    func run() throws { try options.call("outdate-peer", ["name": .string(name)]) }
}

struct SetOptions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Change a resource's settings live.",
        discussion: """
            Settings are given as key=value with the create keys (docs/control-protocol.md), \
            e.g. 'tandemctl set r0 resync_rate=100MiB' (0: the dynamic controller) or \
            'tandemctl set r0 resync_rate_min=64MiB' (its floor) or 'tandemctl set r0 \
            disk_timeout_ms=30000'. This version changes resync_rate, resync_rate_min and \
            disk_timeout_ms live ('tandemctl capabilities' lists live_settings); the \
            other settings are refused with 'unsupported' and nothing changes. The change is \
            persisted. Values that are integers (with an optional size suffix) are sent as \
            integers, true/false as booleans, anything else as strings. Also period_s \
            (periodic mode) and bandwidth. Without a resource name the daemon's own settings \
            change: 'tandemctl set resync_concurrency_max=8' (until the daemon restarts).
            """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Resource name (none: the daemon's settings).") var name: String
    @Argument(help: ArgumentHelp("Settings to change.", valueName: "key=value")) var settings: [String] = []

    func run() throws {
        // A name cannot hold '=': a first argument that does is a daemon setting.
        let daemonTarget = name.contains("=")
        var args: [String: JSONValue] = daemonTarget ? [:] : ["name": .string(name)]
        let label = daemonTarget ? "daemon" : name
        for setting in (daemonTarget ? [name] : []) + settings {
            guard let equals = setting.firstIndex(of: "="), equals != setting.startIndex else {
                throw ValidationError("'\(setting)' is not key=value")
            }
            let value = String(setting[setting.index(after: equals)...])
            args[String(setting[..<equals])] = Self.jsonValue(value)
        }
        try options.call("set", args) { fields in
            for key in args.keys.sorted() where key != "name" {
                let value = fields[key] ?? .null
                print("\(label): \(key) = \(value.stringValue ?? JSONCodec.serializeString(value))")
            }
        }
    }

    static func jsonValue(_ text: String) -> JSONValue {
        if text == "true" { return .bool(true) }
        if text == "false" { return .bool(false) }
        if let bytes = ByteSize.parse(text), bytes <= UInt64(Int64.max) { return .int(Int64(bytes)) }
        return .string(text)
    }
}
