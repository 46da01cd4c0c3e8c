// FuzzTool: what a fuzz target does when built without libFuzzer (plain `swift build`):
// `--write-seeds DIR` writes the seed corpus generated from the real encoders, and any other
// arguments are input files run through the same check the fuzzer runs (to replay a crash
// under a debugger, or to confirm a fix).
import Foundation

public enum FuzzTool {
    public static func main(
        name: String, seeds: () -> [(name: String, bytes: [UInt8])], check: (UnsafeRawBufferPointer) -> Void
    ) {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.count == 2 && arguments[0] == "--write-seeds" {
            writeSeeds(seeds(), into: arguments[1])
            return
        }
        guard !arguments.isEmpty else {
            print("usage: \(name) --write-seeds DIR | \(name) INPUT...")
            print("Built without --sanitize=fuzzer; scripts/fuzz.sh builds the libFuzzer binary.")
            exit(2)
        }
        for path in arguments {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("\(name): cannot read \(path)")
                exit(1)
            }
            data.withUnsafeBytes { check($0) }
            print("\(name): \(path): \(data.count) bytes, every invariant held")
        }
    }

    static func writeSeeds(_ seeds: [(name: String, bytes: [UInt8])], into directory: String) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for seed in seeds {
                try Data(seed.bytes).write(to: URL(fileURLWithPath: directory + "/" + seed.name))
            }
        } catch {
            print("cannot write seeds into \(directory): \(error)")
            exit(1)
        }
        print("wrote \(seeds.count) seeds into \(directory)")
    }
}
