// ResourceSettingDocs: the documentation of every `create` key, in the order of
// docs/control-protocol.md, for docs/tunables.md. Defaults are read from the spec a minimal
// `create` makes (DESIGN.md's defaults are stated for the settings refused as unsupported),
// choices from the enums and lists the parser uses; the words and the designed live flag
// are written here. Tests check that every key the parser
// takes has an entry and that the bounds are the parser's.
import TandemCore

extension ResourceSpec {
    /// The spec a `create` with only `name` and `volume` makes: the source of every default.
    public static func withDefaults(name: String = "r0", volume: String = "/dev/null") -> ResourceSpec {
        // Both arguments are valid by construction; a failure here is a bug in the parser.
        guard let spec = try? parse(
            createArgs: ["name": .string(name), "volume": .string(volume)], defaultNBDSocketDirectory: "/run/tandem")
        else { preconditionFailure("the default resource spec does not parse") }
        return spec
    }

    /// DESIGN.md's settings that `set` is to change on a running resource; the others are
    /// fixed at `create`. Those of `liveKeys` change live in this version.
    public static let designedLiveKeys: Set<String> = [
        "mode", "period_s", "rpo_target_ms", "compression", "resync_rate", "resync_rate_min", "bandwidth", "fencing",
        "after_split_brain", "disk_drain", "async_buffer_bytes", "disk_timeout_ms",
        "read_balancing",
    ]

    /// The settings `set` changes on a running resource in this version; `set` refuses the
    /// other designed ones with `unsupported`.
    public static let liveKeys: Set<String> = ["resync_rate", "resync_rate_min", "disk_timeout_ms", "after_split_brain",
        "period_s",
        "bandwidth",
        "read_balancing",
    ]

    public static var tunableDocs: [TunableDoc] {
        let defaults = withDefaults().jsonFields
        func entry(
            _ name: String, _ unit: String, range: String, bounds: ClosedRange<Int64>? = nil,
            stated: String? = nil, _ advice: String
        ) -> TunableDoc {
            let defaultText = stated ?? defaults[name].map { renderDefault($0, unit: unit) } ?? "unset"
            return TunableDoc(
                name: name, unit: unit, defaultText: defaultText, range: range, bounds: bounds,
                live: designedLiveKeys.contains(name), advice: advice)
        }
        return identityDocs(entry) + replicationDocs(entry) + policyDocs(entry)
    }

    /// name, unit, range, bounds, the default in words where it is not one value, advice.
    typealias DocEntry = (String, String, String, ClosedRange<Int64>?, String?, String) -> TunableDoc

    private static func identityDocs(_ entry: DocEntry) -> [TunableDoc] {
        [
            entry("name", "name", "1–64 of `A-Z a-z 0-9 - _ .`, not starting with `.`", nil, "required", """
                The resource's name on this node: also its NBD export name, the name of its \
                persisted file and metadata, and the `resource` of its events. Use the same \
                name on both nodes (the peer link matches resources by name).
                """),
            entry("volume", "path", "absolute path of a block device or regular file", nil, "required", """
                The local copy. In production a block device (an LV or a partition) of the \
                same size on both nodes; a file works too. `status` reports `direct_io`: \
                whether the volume could be opened with O_DIRECT (tmpfs, for one, cannot).
                """),
            entry("size_bytes", "bytes", "> 0, multiple of 4096", 4096...Int64.max - 4095,
                  "the volume's size", """
                Creates a missing volume file of this size; when the volume exists it must \
                have exactly this size. Leave it out for a block device. With `metadata: \
                internal` it is the data area's size: the file is made larger by the \
                metadata area, an existing volume must give exactly this data area.
                """),
            entry("role", "word", ResourceRole.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", "),
                  nil, nil, """
                `primary` serves the volume over NBD and replicates to the peer; `secondary` \
                receives and serves nothing until promoted; `standalone` serves without a \
                peer. Changes only through `failover` and `demote` (persisted).
                """),
            entry("peer", "object", "`{\"name\": node name, \"address\": \"host:port\"}`", nil,
                  "none (required for `primary` and `secondary`)", """
                The other node: `name` must be named by its TLS certificate, `address` is its \
                `listen` address (the primary dials it; the secondary only accepts that node).
                """),
            entry("nbd", "object", "`socket`: absolute path ≤ 107 bytes; `tcp`: `host:port`", nil,
                  "socket `<name>.nbd` beside the control socket, no TCP", """
                Where the volume is served. Give `tcp` only on a trusted network: NBD has no \
                authentication.
                """),
            entry("metadata", "word", "`external` or `internal`", nil, "`external`", """
                Where the metadata (docs/metadata.md) lives: `external`, a file of its own \
                at `metadata_path`; `internal`, the last bytes of the volume (at least 1 MiB, \
                rounded up to 1 MiB): the resource serves the data area before it, `status` \
                says `size_bytes` (the data area) and `metadata_bytes`. With `size_bytes` a \
                new volume file is made that much larger. Fixed at `create`; `resize` is \
                refused (`unsupported`). A pair must agree on the data size: an external peer \
                needs a volume of the internal node's `size_bytes` (docs/metadata.md).
                """),
            entry("metadata_path", "path", "absolute path", nil, "`<state_dir>/<name>.md`", """
                The metadata file: put it on another disk than the volume, or on storage \
                with a faster flush. Every activity-log transaction is a durable write here, \
                and a write to an extent the log does not hold waits for one: on a device with \
                power-loss protection or FUA that wait shrinks to the record's write \
                (docs/tracking.md, *What a miss's wait protects*; docs/benchmarks.md, ninth \
                session). Fixed at `create` (the default is resolved then and persisted); the \
                file is created there, replacing any file of that name.
                """),
            // stage (issue 13 §3)
            entry("staging_path", "path", "absolute path", nil, "`<state_dir>/<name>.staging`", """
                The secondary's staging journal: a catch-up is written here and applied to the \
                volume in one commit, so the copy stays Consistent meanwhile (docs/replication.md, \
                *Staged catch-up*). Fixed at `create`; created sparse at `staging_bytes` when \
                first used.
                """),
            entry("staging_bytes", "bytes", "0 ... 1 TiB", 0...(1 << 40), "268435456 (256 MiB)", """
                The staging journal's size. A catch-up whose records (each a 4 KiB header plus \
                its payload rounded up to 4 KiB) would exceed it is applied in place instead: \
                Inconsistent until done, event `catch-up-inconsistent`. `0` never stages (the \
                DRBD way). Size it to the dirty data a typical outage leaves. Fixed at `create`.
                """),
        ]
    }

    private static func replicationDocs(_ entry: DocEntry) -> [TunableDoc] {
        [
            entry("mode", "word", allModes.map { "`\($0)`" }.joined(separator: ", "),
                  nil, nil, """
                `sync`: a write is acknowledged once it is on both disks (no acknowledged \
                write is lost by a failover). `async`: once it is on the local disk; the \
                secondary is a crash-consistent prefix that may lack the newest writes (see \
                `lag_bytes`, `rpo_ms`). Choose `async` when the link's round trip dominates \
                write latency (a WAN) and losing the last moments of writes on a forced \
                failover is acceptable. `adaptive`: sync while the peer's acknowledgements \
                arrive within `adaptive_latency_ms`, async when they do not, sync again once \
                the async queue has drained; a switch applies to writes admitted after it, \
                so a write admitted sync is acknowledged only once the peer applied it \
                (`effective_mode`, event `mode-switched`). \
                `periodic`: the WAN mode: writes are acknowledged on the local disk and only \
                tracked; every `period_s` a cycle copies the regions written since the last \
                one (the last write to each), after which the secondary holds every write \
                acknowledged before the cycle began. Fixed at `create`.
                """),
            entry("period_s", "seconds", "1–86400; required with mode `periodic`, refused with any other", periodSRange, "unset", """
                The interval between cycles in `periodic` mode (OpenSDS's replication_period, \
                which is in minutes: multiply by 60), from the start of one cycle to the next; \
                a cycle still running when the next is due delays it until it ends. It bounds \
                the RPO (about period + a cycle's duration). `set` changes it on a running \
                resource: the next cycle is due one new period after the last one started.
                """),
            entry("rpo_target_ms", "milliseconds", "1–86400000; only with mode `async` or `adaptive`",
                  rpoTargetMsRange, "unset (no pacing)", """
                A lag target (VVR's and SRDF/A's write pacing): once the projected RPO (the \
                oldest unconfirmed write's age, or the lag bytes over the measured drain \
                rate, whichever is higher) passes a quarter of the target, each async write \
                is admitted, and so acknowledged, a delay after the previous one: writes are \
                let in at 1.5 times the measured drain rate there, at the drain rate at half \
                the target and not at all at the target, so that the application's write \
                rate follows the link's (`pacing_delay_ms` in status). \
                When even `rpo_pacing_max_ms` cannot hold it (the link carries less than the \
                writes paced at the maximum), status and event `rpo-target-missed` say so and \
                the primary goes `Ahead`. `rpo_ms` is reported either way.
                """),
            entry("rpo_pacing_max_ms", "milliseconds", "1–10000; only with `rpo_target_ms`", rpoPacingMaxMsRange,
                  "\(ResourceSpec.rpoPacingMaxMsDefault)", """
                The longest pacing delays one write. Higher holds the target over slower \
                links at the cost of write latency; once writes are paced at it and the RPO \
                is still above the target for this long, the target is reported missed.
                """),
            entry("adaptive_latency_ms", "milliseconds", "1–60000; only with mode `adaptive`", adaptiveLatencyMsRange,
                  "\(ResourceSpec.adaptiveLatencyMsDefault)", """
                Mode `adaptive` stays sync while every peer acknowledgement (a write's \
                admission to the peer's DataAck) and the wait of the oldest unacknowledged \
                write stay within this. Set it above the link's round trip plus the \
                secondary's write latency under load.
                """),
            entry("adaptive_switch_ms", "milliseconds", "0–600000; only with mode `adaptive`", adaptiveSwitchMsRange,
                  "\(ResourceSpec.adaptiveSwitchMsDefault)", """
                The hysteresis of mode `adaptive`: the latency must stay above the bound \
                this long before writes go async, and the queue must stay drained (no write \
                waits for the peer longer than the bound, no catch-up due) with the latency \
                within the bound this long before they go sync again.
                """),
            entry("group_commit_us", "microseconds", "0–1000000", groupCommitUsRange,
                  "\(ResourceSpec.groupCommitUsDefault)", """
                The secondary's group commit: it flushes its volume at the latest this long \
                after the oldest unflushed epoch completed, also when a flush was in flight \
                meanwhile (or once 64 MiB completed), then confirms the flushed epochs to the \
                primary. An async primary's lag, and so its \
                RPO, ends at that confirmation: lower gives a lower RPO for more flushes on the \
                secondary's disk (0 flushes as soon as an epoch completes). Read while the \
                node is secondary, from its own resource; fixed at `create`.
                """),
            entry("async_buffer_bytes", "bytes", "1 MiB – 1 TiB, multiple of 4096", 1 << 20...1 << 40, nil, """
                Bounds the payload of writes admitted and not yet confirmed durable by the \
                secondary, in both modes (the effective bound is at least twice \
                `max_request_bytes` and 4 MiB). When it is full new writes wait \
                (`replication_state` `Blocked`). In async mode it is how far the secondary \
                may fall behind before the application is slowed: raise it for bursts over a \
                slow link. The primary allocates a spill arena of this size (plus two \
                requests) at `enable`, touched only when used.
                """),
            entry("compression", "word", CompressionKind.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", "),
                  nil, nil, """
                `lz4` compresses each replicated block whose compressed form is smaller \
                (checksummed before compression). Turn it on when the replication link, not \
                the disk or the CPU, is the bottleneck and the data compresses (not for \
                encrypted or already compressed data).
                """),
            entry("initial_sync", "word", InitialSync.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", "),
                  nil, nil, """
                `full` copies the whole volume to the secondary at the first `enable` (the \
                secondary is `Inconsistent` until it ends). `none` skips it: only when both \
                volumes are known to be identical, e.g. both freshly zeroed.
                """),
            // groups (issue 16 §3)
            entry("group", "name", "1-64 characters of A-Z a-z 0-9 `-` `_` `.`; role `primary` or `secondary`",
                  nil, "none", """
                A consistency group: its resources share one epoch sequence, so write order \
                holds across their volumes and the group's secondaries together are a \
                crash-consistent image (docs/groups.md). Give every member the same `peer` \
                and `mode` (`sync`, `async` or `adaptive`), and the same group on both nodes. \
                Fixed at `create`.
                """),
        ]
    }

    private static func policyDocs(_ entry: DocEntry) -> [TunableDoc] {
        [
            entry("resync_rate", "bytes/s", "0 – 1 TiB/s; 0 selects the dynamic controller", 0...resyncRateBytesPerSecondMax, nil, """
                A hard cap on resync traffic (the full copy and a catch-up): the copy reads a \
                chunk only when the bytes it has read since the cap was set stay within rate × \
                elapsed + burst (a token bucket; burst = 1 MiB, one chunk, or above 100 MiB/s 10 ms \
                of the rate, at most the copy's 64 chunks). Application writes \
                are never slowed by it. 0 (the default): the dynamic controller (DRBD's \
                c-plan-ahead / c-fill-target / c-min-rate) keeps 4 MiB of copy in flight, \
                backs off to `resync_rate_min` while the application writes and rises again \
                when it is idle. `set` changes it on a running resource.
                """),
            entry("resync_rate_min", "bytes/s", "64 KiB/s – 10 GiB/s", resyncRateMinBytesPerSecondRange, nil, """
                The dynamic controller's floor (`resync_rate: 0`): however busy the \
                application, the copy is given at least this rate (the link may still be \
                slower). DRBD's 250 KiB/s leaves a 100 GiB volume degraded for almost five \
                days under load; at 32 MiB/s 10 GiB takes 5.3 minutes and 100 GiB 53 minutes. \
                Lower it when the application cannot spare that much disk bandwidth; `set` \
                changes it on a running resource.
                """),
            entry("bandwidth", "bytes/s", "0 – 1 TiB/s; 0 means no cap", 0...resyncRateBytesPerSecondMax, "0 (no cap)", """
                A cap on all replication traffic the primary sends for the resource (the \
                stream's writes, the full copy, catch-ups and periodic cycles, verify \
                requests), for a link shared with other traffic (OpenSDS's \
                replication_bandwidth): the frames handed to the link from the moment it \
                was set stay within rate × elapsed + burst (a token bucket; burst = 1 MiB or \
                the largest request). What the cap holds back is unconfirmed, so a sync \
                primary's writes wait for it and an async one's buffer fills and it goes \
                `Ahead`, as with a slow link. `resync_rate` caps the copy within it. `set` \
                changes it on a running resource.
                """),
            entry("fencing", "word", Fencing.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", "), nil,
                  "`dont-care` (a resource file written before `fencing` existed loads as `suspend-io`)", """
                What a sync primary does while its peer is away. `dont-care` (DRBD's \
                default): it keeps serving, acknowledging writes on its own copy and \
                tracking them; the peer becomes `Outdated`, and "no acknowledged write is \
                lost" is the guarantee of the connected pair, as in DRBD. `suspend-io`: it \
                waits for its peer, so every acknowledged write is on both copies; a write, \
                or a FLUSH the peer has not confirmed durable, still waiting for the peer \
                when the node stops serving (shutdown, demotion, a returned primary's \
                yield) or when a split brain stops its replication fails with EIO rather \
                than being acknowledged on one copy (a planned failover first hands every \
                write to the peer); `disable` and `outdate-peer` release it as acknowledged \
                alone. Fixed at `create`.
                """),
            entry("al_extents", "extents", "0–1000; 0: no activity log; else at least `max_request_bytes` / 4 MiB + 1 (9 by default)",
                  0...Int64(ResourceSpec.alExtentsMax), "the metadata's `AL extents max` (512)", """
                The primary's activity log: how many 4 MiB extents (2 GiB at 512) may take \
                writes before one of them must leave the log. A write to an extent outside \
                it waits for one 4 KiB metadata write and flush (and a volume flush when an \
                extent leaves: `docs/metadata.md`); a primary that crashes (kill -9, power \
                loss) while streaming copies only these extents to its peer when it \
                restarts, instead of the whole volume. Raise it when the write \
                working set is larger (fewer log writes), lower it for a faster crash \
                restart; 0 turns the log off (every crash restart copies the volume). Fixed \
                at `create`.
                """),
            entry("after_split_brain", "word", AfterSplitBrain.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", "),
                  nil, "`disconnect`", """
                What two primaries do when they meet and find both wrote while apart (split \
                brain). `disconnect`: both stay primary and StandAlone until `resolve`. \
                `discard-zero-changes`: the side that changed nothing loses. \
                `discard-younger-primary`: the one promoted last loses. \
                `discard-least-changes`: the side that changed fewer bytes loses. A loser \
                becomes secondary and gets a full copy from the survivor; with no clear \
                loser (or settings that differ on the two nodes) both disconnect. \
                `set` changes it on a running resource.
                """),
            entry("disk_drain", "word", DiskDrain.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", "),
                  nil, nil, """
                How the secondary keeps dependent writes in order. `drain` (group commit): \
                writes of an epoch complete before the next epoch's are issued, and one \
                flush makes a group of epochs durable. `flush`: a flush at every epoch \
                boundary, for devices that may reorder completed writes; it caps a queue \
                depth 1 workload at the secondary's flush rate.
                """),
            entry("disk_timeout_ms", "milliseconds",
                  "0 (off), or \(DiskTimeout.timeoutMsRange.lowerBound) – \(DiskTimeout.timeoutMsRange.upperBound)",
                  0...Int64(DiskTimeout.timeoutMsRange.upperBound), nil, """
                DRBD's disk-timeout: a read, write or flush of the volume or the metadata file \
                still outstanding after this long fails the resource's disk as an EIO would \
                (`disk_state` `Failed`, `disk_error` with errno 110 ETIMEDOUT naming the \
                operation, event `disk-failed`): a secondary detaches and the primary serves \
                alone; a primary answers later writes with EIO. Ages are checked once a \
                second, so the failure comes between this and a second later. The I/O that \
                hung keeps its buffer and completes to its owner whenever the disk answers \
                (a `disable` waits for it). Set it on nodes whose storage can hang (SAN, \
                iSCSI, NFS, a dying disk that retries for minutes) above the worst latency \
                it shows when healthy. 0 (the default): wait for the disk however long. \
                `set` changes it on a running resource.
                """),
            entry("read_balancing", "word", ReadBalancing.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", "),
                  nil, "`prefer-local`", """
                Where a primary's application reads go (DRBD's read-balancing). \
                `prefer-local`: this node's disk. `prefer-remote`: the peer. `round-robin`: \
                alternately. `least-pending`: the side with fewer reads in flight. Reads go \
                to the peer only while it can serve them exactly (mode `sync`, the peer \
                connected, `UpToDate` and speaking protocol 6), only whole 4 KiB blocks of \
                at most 128 KiB, at most 64 at once (the peer itself serves 32), and never \
                for a region with a write in flight; every other read, and every read the \
                peer refuses or loses with the link, is served here. Status \
                `read_routing` says whether it is active and why not. Whatever this says, \
                a primary whose disk failed reads through an UpToDate peer \
                (`serving_from: peer`). Use `round-robin` or `least-pending` when the peer's \
                disk and the link can add read throughput (a read costs a round trip); \
                `set` changes it on a running resource.
                """),
        ]
    }

    /// Every mode DESIGN.md names: those the parser knows and those refused as unsupported.
    public static var allModes: [String] {
        let known = ReplicationMode.allCases.map(\.rawValue)
        return known + unsupportedModes.filter { !known.contains($0) }
    }

    /// A default as the page shows it: words in backquotes, byte counts also in binary units.
    static func renderDefault(_ value: JSONValue, unit: String) -> String {
        switch value {
        case .string(let text): return "`\(text)`"
        case .int(let number) where unit.hasPrefix("bytes") && number >= 1024:
            return "\(number) (\(ByteSize.format(UInt64(number))))"
        case .int(let number): return "\(number)"
        default: return "`\(JSONCodec.serializeString(value))`"
        }
    }
}
