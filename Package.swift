// swift-tools-version:6.1
// Tandem: host-based block replication in userspace. See ../shared/DESIGN.md and docs/.
import PackageDescription

/// scripts/test.sh's AddressSanitizer run needs only the decoders' suites (in TandemCoreTests and
/// TandemTLSTests); with TANDEM_DECODER_TESTS_ONLY set, the package declares only those and the
/// targets they build on, so that build skips the daemon, the tools and the other suites.
let decoderTestsOnly = Context.environment["TANDEM_DECODER_TESTS_ONLY"] != nil
let decoderTargets: Set<String> = [
    "CURing", "CLZ4", "COpenSSL", "CShims", "CCRC32C", "TandemCore", "TandemIO", "TandemCoreTests", "TandemTLSTests",
]
/// In that build the two test targets hold only the decoders' suites (scripts/test.sh's
/// `asan_filter`, which checks that the ASan run ran every test the filter names in the debug
/// build) and the fixtures they use: the rest of TandemCoreTests was most of that build's
/// compiling, for tests it never ran.
let decoderTestSources: [String: [String]] = [
    "TandemCoreTests": [
        "WireDecoderErrorTests.swift", "WireCodecTests.swift", "MetadataFormatTests.swift", "WireTestSupport.swift",
    ],
    "TandemTLSTests": ["LZ4Tests.swift"],
]

/// `-O` after SwiftPM's `-Onone` in a debug build (the last one wins); `-enable-testing` and
/// `DEBUG` stay, so `@testable import` still works. For TandemCore and the simulator, whose
/// seeds run millions of TandemCore steps per test run: about 6x faster than unoptimised
/// (README.md, Tests). A debugger sees optimised code there. Not in the decoders' ASan build,
/// whose few seconds of tests do not pay for optimising TandemCore under the sanitizer.
let optimised: [SwiftSetting] = decoderTestsOnly ? [] : [.unsafeFlags(["-O"])]

let package = Package(
    name: "Tandem",
    platforms: [.macOS(.v14)],
    products: decoderTestsOnly ? [] : [
        .executable(name: "tandemd", targets: ["tandemd"]),
        .executable(name: "tandemctl", targets: ["tandemctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        .systemLibrary(name: "CURing", pkgConfig: "liburing", providers: [.apt(["liburing-dev"])]),
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "CShims", dependencies: ["CURing", "COpenSSL"]),
        // The CPU's CRC32C instruction, under TandemCore's CRC32C: computation only.
        .target(name: "CCRC32C"),
        // Optimised in every configuration (`optimised`, above).
        .target(name: "TandemCore", dependencies: ["CCRC32C"], swiftSettings: optimised),
        .target(
            name: "TandemIO",
            dependencies: [
                "CURing", "CLZ4", "COpenSSL", "CShims", "TandemCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]),
        .target(
            name: "TandemNBD",
            dependencies: ["TandemIO", "TandemCore", .product(name: "Logging", package: "swift-log")]),
        .target(name: "TandemControl", dependencies: ["TandemCore"]),
        .target(
            name: "TandemDaemon",
            dependencies: [
                "TandemCore", "TandemIO", "TandemNBD", "TandemControl", "CShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]),
        .executableTarget(
            name: "tandemd",
            dependencies: [
                "TandemDaemon", "TandemControl", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "tandemctl",
            dependencies: [
                "TandemControl", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "TandemCoreTests", dependencies: ["TandemCore"]),
        .testTarget(name: "TandemControlTests", dependencies: ["TandemControl", "TandemDaemon"]),
        .testTarget(
            name: "TandemSimulationTests", dependencies: ["TandemCore", "TandemIO"], swiftSettings: optimised),
        .testTarget(name: "TandemIOTests", dependencies: ["TandemIO", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "TandemIntegrationTests", dependencies: ["TandemCore", "TandemIO", "TandemDaemon"]),
        .testTarget(name: "TandemTLSTests", dependencies: ["TandemIO", "TandemCore"]),
        // Fuzz targets (docs/fuzzing.md): libFuzzer entry points when scripts/fuzz.sh builds
        // them with --sanitize=fuzzer; in a plain build, tools that write the seed corpus
        // and replay inputs.
        .target(name: "FuzzSupport", dependencies: ["TandemCore"], path: "Fuzz/FuzzSupport"),
        .executableTarget(name: "FuzzNBD", dependencies: ["FuzzSupport", "TandemCore"], path: "Fuzz/FuzzNBD"),
        .executableTarget(
            name: "FuzzWire", dependencies: ["FuzzSupport", "TandemCore", "TandemIO"], path: "Fuzz/FuzzWire"),
        .executableTarget(
            name: "FuzzControl", dependencies: ["FuzzSupport", "TandemControl", "TandemCore"],
            path: "Fuzz/FuzzControl"),
        .executableTarget(name: "FuzzMetadata", dependencies: ["FuzzSupport", "TandemCore"], path: "Fuzz/FuzzMetadata"),
        // The activity-log ring and the bitmap pages (sim).
        .executableTarget(name: "FuzzPages", dependencies: ["FuzzSupport", "TandemCore"], path: "Fuzz/FuzzPages"),
        // A split brain's bitmap exchange and the parted-bitmap file (sbfix).
        .executableTarget(name: "FuzzBitmap", dependencies: ["FuzzSupport", "TandemCore"], path: "Fuzz/FuzzBitmap"),
    ]
)

if decoderTestsOnly {
    package.targets = package.targets.filter { decoderTargets.contains($0.name) }
    for target in package.targets {
        if let sources = decoderTestSources[target.name] { target.sources = sources }
    }
}
