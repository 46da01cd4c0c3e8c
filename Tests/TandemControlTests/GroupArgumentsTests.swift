// The `group` key of `create` (docs/groups.md): what one resource's arguments may say, and
// what a group's members must share.
import Testing
import TandemControl
import TandemCore

@Suite struct GroupArgumentsTests {
    static let replicated: [String: JSONValue] = [
        "name": .string("g0"), "volume": .string("/dev/vdb"), "role": .string("primary"),
        "peer": .object(["name": .string("beta"), "address": .string("10.0.0.2:7788")]), "mode": .string("async"),
        "group": .string("db"),
    ]

    static func parse(_ changes: [String: JSONValue]) -> Result<ResourceSpec, ControlError> {
        let args = replicated.merging(changes) { $1 }.filter { $0.value != .null }
        return Result { () throws(ControlError) in
            try ResourceSpec.parse(createArgs: args, defaultNBDSocketDirectory: "/run/tandem")
        }
    }

    @Test func aGroupIsKeptAndShownUnderItsKey() throws {
        let spec = try Self.parse([:]).get()
        #expect(spec.group == "db" && spec.groupID == ConsistencyGroup.id(ofName: "db"))
        #expect(spec.jsonFields["group"] == .string("db"))
        let reparsed = try ResourceSpec.parse(createArgs: spec.jsonFields.filter { $0.key != "metadata" },
                                              defaultNBDSocketDirectory: "/run/tandem")
        #expect(reparsed.group == "db", "persisted and read back")
        #expect(try Self.parse(["group": .null]).get().groupID == 0)
    }

    @Test func aBadNameAStandaloneResourceAndPeriodicModeAreRefused() {
        guard case .failure(let bad) = Self.parse(["group": .string(".hidden")]) else { Issue.record("accepted"); return }
        #expect(bad.code == .invalidArgument && bad.message.contains("group"), "\(bad)")
        guard case .failure(let alone) = Self.parse(["role": .null, "peer": .null]) else { Issue.record("accepted"); return }
        #expect(alone.code == .invalidArgument && alone.message.contains("role primary or secondary"), "\(alone)")
        guard case .failure(let periodic) = Self.parse(["mode": .string("periodic"), "period_s": .int(60)]) else {
            Issue.record("accepted")
            return
        }
        #expect(periodic.code == .unsupported && periodic.message.contains("group"), "\(periodic)")
    }

    @Test func membersMustShareThePeerNodeAndTheMode() throws {
        let first = try Self.parse([:]).get()
        let sibling = try Self.parse(["name": .string("g1"), "volume": .string("/dev/vdc")]).get()
        #expect(sibling.groupConflict(with: first) == nil)
        let otherRoute = try Self.parse([
            "name": .string("g1"), "peer": .object(["name": .string("beta"), "address": .string("10.0.1.2:7788")]),
        ]).get()
        #expect(otherRoute.groupConflict(with: first) == nil, "the same node by another address")
        let otherPeer = try Self.parse([
            "name": .string("g1"), "peer": .object(["name": .string("gamma"), "address": .string("10.0.0.3:7788")]),
        ]).get()
        #expect(otherPeer.groupConflict(with: first)?.contains("share their peer") == true)
        let otherMode = try Self.parse(["name": .string("g1"), "mode": .string("sync")]).get()
        #expect(otherMode.groupConflict(with: first)?.contains("share their mode") == true)
        let otherGroup = try Self.parse(["name": .string("g1"), "mode": .string("sync"), "group": .string("logs")]).get()
        #expect(otherGroup.groupConflict(with: first) == nil, "another group is no conflict")
    }
}
