// JSONTextWriter writes what Foundation's JSONSerialization wrote before it (the control
// protocol's replies must not change with the writer), for every kind of value, every
// character that needs escaping, and key orders that Foundation's collator and byte order
// could disagree on.
import Foundation
import Testing
@testable import TandemControl

@Suite struct JSONTextWriterTests {
    func expectSameAsFoundation(_ value: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) {
        let ours = JSONCodec.serializeString(value)
        let foundation = String(decoding: JSONCodec.foundationSerialize(value), as: UTF8.self)
        #expect(ours == foundation, sourceLocation: sourceLocation)
    }

    @Test func scalarsAreWrittenAsFoundationWroteThem() {
        let doubles: [Double] = [0.5, -0.25, 0.1, 1.0 / 3, 1e-7, 123456.789, 2.5e300, -1e-300, 9.007199254740993e15,
                                 1e20, -0.0, 3.0, .nan, .infinity]
        let integers: [Int64] = [0, 1, -1, 9, 10, 4096, .max, .min, 1 << 53, -(1 << 53) - 1]
        for value in [JSONValue.null, .bool(true), .bool(false)] + integers.map(JSONValue.int) + doubles.map(JSONValue.double) {
            expectSameAsFoundation(.array([value]))
        }
    }

    @Test func everyCharacterThatNeedsEscapingIsEscapedAsFoundationDid() {
        for scalar in (0..<0x80).compactMap(Unicode.Scalar.init) {
            expectSameAsFoundation(.string("a\(Character(scalar))b"))
        }
        expectSameAsFoundation(.string("é 😀 / \\ \" \u{2028} \u{FEFF} \u{7F} /dev/nbd0"))
    }

    @Test func keysAreSortedAsFoundationSortedTheControlProtocolsKeys() {
        // Every key status, capabilities and the events write, and neighbours of them.
        let keys = ["resync_rate", "resync_rate_min", "resync_rate_bytes_per_second", "resync_progress", "resync_eta_seconds",
                    "rpo_ms", "rpo_target_ms", "id", "io", "ok", "name", "nbd", "nbd_clients", "nbd_serving", "status_age_ms",
                    "disk_error", "disk_state", "peer", "peer_disk_state", "peer_node", "error", "error_codes", "event",
                    "a", "ab", "a_b", "abc", "time_ms", "seq", "bad_slot", "used_slot", "write_bytes", "write_requests"]
        var fields: [String: JSONValue] = [:]
        for (index, key) in keys.enumerated() { fields[key] = .int(Int64(index)) }
        expectSameAsFoundation(.object(fields))
        expectSameAsFoundation(.object(["b": .object(["z": .null, "y": .array([.object(["d": .int(1), "c": .int(2)])])]), "a": .int(1)]))
    }

    @Test func nestedStatusShapedValuesAreWrittenAsFoundationWroteThem() {
        let resource: JSONValue = .object([
            "name": .string("r0"), "volume": .string("/var/lib/tandem/r0.img"), "size_bytes": .int(1 << 30),
            "resync_progress": .double(0.4375), "enabled": .bool(true), "peer": .object(["name": .string("beta"), "address": .string("[::1]:7788")]),
            "io": .object(["read_requests": .int(12), "errors": .int(0)]), "last_error": .string("peer closed: \"EOF\"\n"),
            "empty": .object([:]), "none": .array([]),
        ])
        expectSameAsFoundation(.object(["resources": .array([resource, resource]), "status_age_ms": .int(0), "ok": .bool(true)]))
    }
}
