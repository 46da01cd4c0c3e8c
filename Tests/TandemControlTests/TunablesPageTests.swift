// docs/tunables.md is the code's tables rendered: the page must equal the rendering byte for
// byte, every key the parser takes must be documented, and the documented bounds must be
// the validators' bounds. Regenerate the page after changing a table with
//   TANDEM_REGENERATE_DOCS=1 swift test --filter TunablesPage
import Foundation
import TandemControl
import TandemCore
import TandemDaemon
import Testing

@Suite struct TunablesPageTests {
    static let pagePath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/tunables.md").path

    @Test func theTunablesPageIsTheRenderingOfTheCodesTables() throws {
        let rendered = TunablesPage.render()
        if ProcessInfo.processInfo.environment["TANDEM_REGENERATE_DOCS"] == "1" {
            try rendered.write(toFile: Self.pagePath, atomically: true, encoding: .utf8)
        }
        let page = try String(contentsOfFile: Self.pagePath, encoding: .utf8)
        let pageLines = page.split(separator: "\n", omittingEmptySubsequences: false)
        let renderedLines = rendered.split(separator: "\n", omittingEmptySubsequences: false)
        let firstDifference = zip(pageLines, renderedLines).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(
            page == rendered,
            """
            docs/tunables.md differs from the code's tables (first at line \((firstDifference?.offset ?? min(pageLines.count, renderedLines.count)) + 1)); \
            run `\(TunablesPage.regenerateCommand)` and review the diff
            """)
    }

    /// A spec with every optional key the parser carries out set: its JSON keys, with the
    /// keys refused as unsupported, are every key DESIGN.md gives `create`.
    @Test func everyCreateKeyIsDocumentedOnce() throws {
        let args: [String: JSONValue] = [
            "name": .string("r0"), "volume": .string("/dev/vdb"), "size_bytes": .int(1 << 30),
            "role": .string("primary"), "peer": .object(["name": .string("beta"), "address": .string("10.0.0.2:7788")]),
            "mode": .string("adaptive"), "rpo_target_ms": .int(500), "metadata_path": .string("/var/lib/tandem/r0.md"), "al_extents": .int(512),
            "nbd": .object(["socket": .string("/run/tandem/r0.nbd"), "tcp": .string("127.0.0.1:10809")]),
            "staging_path": .string("/var/lib/tandem/r0.staging"), "staging_bytes": .int(256 << 20),
            "group": .string("db"),  // groups (issue 16 §3)
        ]
        let spec = try ResourceSpec.parse(createArgs: args, defaultNBDSocketDirectory: "/run/tandem")
        // `period_s` goes with mode periodic, `rpo_target_ms` with another: a second spec.
        var periodicArgs = args
        periodicArgs["mode"] = .string("periodic")
        periodicArgs["rpo_target_ms"] = nil
        periodicArgs["period_s"] = .int(60)
        periodicArgs["group"] = nil  // a group needs a stream (docs/groups.md)
        let periodic = try ResourceSpec.parse(createArgs: periodicArgs, defaultNBDSocketDirectory: "/run/tandem")
        let documented = ResourceSpec.tunableDocs.map(\.name)
        #expect(Set(documented).count == documented.count, "a key is documented twice: \(documented)")
        #expect(Set(documented) == Set(spec.jsonFields.keys).union(periodic.jsonFields.keys).union(ResourceSpec.unsupportedKeys))
        #expect(Set(ConfigKey.allCases.map(\.tunableDoc.name)) == Set(ConfigKey.allCases.map(\.rawValue)))
    }

    @Test func theModesDocumentedAreTheParsersAndTheRefusedOnes() {
        let known = ReplicationMode.allCases.map(\.rawValue)
        #expect(Set(ResourceSpec.allModes) == Set(known).union(ResourceSpec.unsupportedModes))
    }

    /// Settings refused as unsupported are left out: their range is the one DESIGN.md specifies.
    @Test(arguments: ResourceSpec.tunableDocs.filter { $0.bounds != nil && !ResourceSpec.unsupportedKeys.contains($0.name) }.map(\.name))
    func aResourceSettingsBoundsAreTheParsers(key: String) throws {
        let bounds = try #require(ResourceSpec.tunableDocs.first { $0.name == key }?.bounds)
        // The replication profile's keys are taken only with the mode (and key) they act with.
        let companions: [String: [String: JSONValue]] = [
            "adaptive_latency_ms": ["mode": .string("adaptive")], "adaptive_switch_ms": ["mode": .string("adaptive")],
            "rpo_target_ms": ["mode": .string("async")],
            "rpo_pacing_max_ms": ["mode": .string("async"), "rpo_target_ms": .int(500)],
            "period_s": ["mode": .string("periodic")],
        ]
        func parse(_ value: Int64) -> ControlError? {
            var args: [String: JSONValue] = ["name": .string("r0"), "volume": .string("/dev/vdb"), key: .int(value)]
            args.merge(companions[key] ?? [:]) { old, _ in old }
            do {
                _ = try ResourceSpec.parse(createArgs: args, defaultNBDSocketDirectory: "/run/tandem")
                return nil
            } catch { return error }
        }
        #expect(parse(bounds.lowerBound) == nil, "\(key) = \(bounds.lowerBound) refused")
        #expect(parse(bounds.upperBound) == nil, "\(key) = \(bounds.upperBound) refused")
        if bounds.lowerBound > Int64.min {
            #expect(parse(bounds.lowerBound - 1)?.code == .invalidArgument, "\(key) = \(bounds.lowerBound - 1) accepted")
        }
        if bounds.upperBound < Int64.max {
            #expect(parse(bounds.upperBound + 1)?.code == .invalidArgument, "\(key) = \(bounds.upperBound + 1) accepted")
        }
    }

    @Test(arguments: ConfigKey.allCases.filter { $0.tunableDoc.bounds != nil })
    func aDaemonKeysBoundsAreTheValidators(key: ConfigKey) throws {
        let bounds = try #require(key.tunableDoc.bounds)
        func accepts(_ value: Int64) -> Bool {
            var config = DaemonConfig()
            do {
                try config.set(key, .integer(UInt64(value)))
                return true
            } catch { return false }
        }
        #expect(accepts(bounds.lowerBound) && accepts(bounds.upperBound), "\(key.rawValue): \(bounds) not accepted")
        #expect(!accepts(bounds.lowerBound - 1) && !accepts(bounds.upperBound + 1), "\(key.rawValue): outside \(bounds) accepted")
    }

    @Test func theDocumentedDefaultsAreTheCodesDefaults() {
        let resource = Dictionary(uniqueKeysWithValues: ResourceSpec.tunableDocs.map { ($0.name, $0.defaultText) })
        #expect(resource["mode"] == "`sync`")
        #expect(resource["async_buffer_bytes"] == "\(ResourceSpec.withDefaults().asyncBufferBytes) (256MiB)")
        #expect(resource["disk_drain"] == "`drain`")
        #expect(ConfigKey.bufferPoolBytes.tunableDoc.defaultText == "\(DaemonConfig().bufferPoolBytes) (32MiB)")
        #expect(ConfigKey.listen.tunableDoc.defaultText == "`\(DaemonConfig().listen)`")
    }
}
