// GroupCommitDecision: a consistency group's durable decision that its members' staged
// catch-ups commit (docs/groups.md, *Catch-up: one commit for the group*): each member's name,
// staging session and journal length. GroupStagedCommit decides it; the daemon stores it
// (GroupCommitFile) before any member commits, and a member's settlement rolls a journal it
// names forward. The text form is bounded and checksummed: a torn or foreign file is no
// decision.

/// The group's durable decision: these members' journals commit (every one of them, or, were
/// the decision not stored, none). Stored by the daemon in a file of the group's own.
public struct GroupCommitDecision: Sendable, Equatable {
    public struct Member: Sendable, Equatable {
        public var resource: String
        public var stagingSession: UInt64
        public var journalBytes: UInt64

        public init(resource: String, stagingSession: UInt64, journalBytes: UInt64) {
            self.resource = resource
            self.stagingSession = stagingSession
            self.journalBytes = journalBytes
        }
    }

    public var group: String
    public var members: [Member]

    public init(group: String, members: [Member]) {
        self.group = group
        self.members = members
    }

    /// The journal bytes this decision commits for `resource`'s journal of `stagingSession`
    /// (nil: the decision is about another journal, or none of this member's).
    public func committedBytes(resource: String, stagingSession: UInt64) -> UInt64? {
        members.first { $0.resource == resource && $0.stagingSession == stagingSession }?.journalBytes
    }

    static let magic = "tandem-group-commit 1"
    /// Members per decision: a group is a handful of volumes; this bounds a decoded file.
    public static let membersMax = 256

    /// Text, one member a line, then the CRC32C of everything before the last line.
    public func encode() -> [UInt8] {
        var text = "\(Self.magic)\ngroup \(group)\n"
        for member in members { text += "member \(member.resource) \(member.stagingSession) \(member.journalBytes)\n" }
        let body = Array(text.utf8)
        return body + Array("crc \(CRC32C.checksum(body))\n".utf8)
    }

    /// Nil for anything but a whole decision this code wrote (a torn or foreign file is no
    /// decision: the rename that stores it is atomic, so a crash leaves the old one or none).
    public static func decode(_ bytes: [UInt8]) -> GroupCommitDecision? {
        guard bytes.count <= 64 << 10, let text = String(validating: bytes, as: UTF8.self) else { return nil }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.last == "" else { return nil }
        lines.removeLast()
        guard lines.count >= 3, lines.count - 3 <= membersMax, lines[0] == magic, lines[1].hasPrefix("group "),
            let crcLine = lines.last, crcLine.hasPrefix("crc "), let crc = UInt32(crcLine.dropFirst(4))
        else { return nil }
        let bodyBytes = Array((lines.dropLast().joined(separator: "\n") + "\n").utf8)
        guard CRC32C.checksum(bodyBytes) == crc else { return nil }
        var decision = GroupCommitDecision(group: String(lines[1].dropFirst(6)), members: [])
        for line in lines[2..<(lines.count - 1)] {
            let fields = line.split(separator: " ")
            guard fields.count == 4, fields[0] == "member", let session = UInt64(fields[2]),
                let journalBytes = UInt64(fields[3])
            else { return nil }
            decision.members.append(Member(resource: String(fields[1]), stagingSession: session, journalBytes: journalBytes))
        }
        return decision
    }
}
