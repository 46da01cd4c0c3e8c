// `metadata` at `create` (docs/metadata.md, *Internal metadata*): `internal` is taken and
// survives the resource file's round trip (jsonFields, then parse again, as at a restart);
// a `metadata_path` beside it and an unknown word are refused `invalid-argument`.
import TandemControl
import TandemCore
import Testing

@Suite struct MetadataPlacementArgumentTests {
    static let base: [String: JSONValue] = ["name": .string("r0"), "volume": .string("/dev/vdb")]

    private func parse(_ extra: [String: JSONValue]) throws(ControlError) -> ResourceSpec {
        try ResourceSpec.parse(createArgs: Self.base.merging(extra) { $1 }, defaultNBDSocketDirectory: "/run/tandem")
    }

    @Test func internalIsTakenAndSurvivesTheResourceFile() throws {
        let spec = try parse(["metadata": .string("internal")])
        #expect(spec.metadataInternal && spec.metadataPath == nil)
        let fields = spec.jsonFields
        #expect(fields["metadata"] == .string("internal") && fields["metadata_path"] == nil)
        let again = try ResourceSpec.parse(createArgs: fields, defaultNBDSocketDirectory: "/run/tandem")
        #expect(again.metadataInternal)
        #expect(try !parse(["metadata": .string("external")]).metadataInternal)
        #expect(try !parse([:]).metadataInternal)
    }

    @Test func aPathBesideInternalAndAnUnknownWordAreRefused() {
        for extra: [String: JSONValue] in [
            ["metadata": .string("internal"), "metadata_path": .string("/var/lib/tandem/r0.md")],
            ["metadata": .string("inside")],
        ] {
            #expect(throws: ControlError.self, "\(extra)") { try parse(extra) }
            do { _ = try parse(extra) } catch { #expect(error.code == .invalidArgument, "\(extra): \(error)") }
        }
    }
}
