// Capabilities a real NBD client sees (DESIGN.md "Volumes"; nbdkit's habit of testing each
// capability one by one against a real client).
import Foundation
import Testing

extension Integration {
    @Suite struct NBDCapabilities {
        @Test(
            "nbdinfo --can reports each advertised capability",
            arguments: ["flush", "fua", "multi-conn", "trim", "zero", "structured-reply", "cache"])
        func exportAdvertisesCapability(_ capability: String) throws {
            let export = try NBDExport()
            let result = try ExternalTool.run("nbdinfo", ["--can", capability, export.uri], timeoutSeconds: 30)
            #expect(result.succeeded, "nbdinfo --can \(capability) is false or failed: \(result)")
        }

        @Test func exportSizeIsTheVolumeSize() throws {
            let export = try NBDExport(sizeBytes: 64 << 20)
            let result = try ExternalTool.check("nbdinfo", ["--size", export.uri], timeoutSeconds: 30)
            #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(64 << 20))
        }

        @Test func exportIsWritable() throws {
            let export = try NBDExport()
            let result = try ExternalTool.run("nbdinfo", ["--is", "readonly", export.uri], timeoutSeconds: 30)
            #expect(result.status == 2, "a standalone export must be writable (nbdinfo --is readonly → 2): \(result)")
        }

        // nbdkit's file plugin advertises no block sizes and lists no export names.
        @Test(.enabled(if: NBDExport.server == .tandemd))
        func blockSizeHintsAreMinimumOnePreferred4KiBMaximum32MiB() throws {
            let export = try NBDExport()
            let result = try ExternalTool.check("nbdinfo", ["--json", export.uri], timeoutSeconds: 30)
            let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? JSONObject
            let first = (json?["exports"] as? [JSONObject])?.first
            #expect(first?.uint64("block_size_minimum") == 1)
            #expect(first?.uint64("block_size_preferred") == 4096)
            #expect(first?.uint64("block_size_maximum") == 32 << 20)
        }

        @Test(.enabled(if: NBDExport.server == .tandemd))
        func exportListNamesTheResource() throws {
            let export = try NBDExport()
            let result = try ExternalTool.check("nbdinfo", ["--list", "--json", "nbd+unix://?socket=\(export.socketPath)"], timeoutSeconds: 30)
            #expect(result.stdout.contains("\"export-name\": \"r0\""), "\(result)")
        }
    }
}
