// swift-tools-version:6.1
// Tandem: host-based block replication in userspace. See ../shared/DESIGN.md and docs/.
import PackageDescription

let package = Package(
    name: "Tandem",
    platforms: [.macOS(.v14)],
    products: [
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
        .target(name: "TandemCore", dependencies: ["CCRC32C"]),
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
        .testTarget(name: "TandemSimulationTests", dependencies: ["TandemCore", "TandemIO"]),
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
