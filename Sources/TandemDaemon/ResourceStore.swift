// ResourceStore: resources persisted as `<stateDir>/resources/<name>.json`, so they come back
// after a restart. Crash-safe: a spec is written to a temporary file, fsynced, renamed over the
// old one and the directory fsynced, so after a crash at any point a file holds either the old
// or the new spec, never a torn one. Leftover temporary files are ignored (and removed) on load.
import TandemControl
import TandemCore

#if canImport(Glibc)
import Glibc
#endif

public struct ResourceStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// The errno of a failed system call; 0 when the error is not one.
    public var errno: Int32
    public init(_ message: String, errno: Int32 = 0) {
        self.message = message
        self.errno = errno
    }
    public var description: String { message }
}

public struct ResourceStore: Sendable {
    /// Layout version written into every file; a newer one is refused, not misread. Format 1
    /// predates `fencing`: such a file loads as `suspend-io`, the behaviour it was created
    /// with (`fencingDefaulted`), and is rewritten as format 2 at start.
    public static let formatVersion: Int64 = 2
    static let formatVersionsRead: ClosedRange<Int64> = 1...2
    /// What a format-1 file's resource does while its sync peer is away: it waited.
    public static let formatOneFencing = Fencing.suspendIO
    static let fileBytesMax = 1 << 20
    static let temporarySuffix = ".tmp"

    public let directory: String

    public init(stateDir: String) {
        directory = stateDir + "/resources"
    }

    func path(of name: String) -> String { "\(directory)/\(name).json" }
    func temporaryPath(of name: String) -> String { "\(directory)/.\(name).json\(Self.temporarySuffix)" }

    /// Persists `spec`, replacing any previous version atomically.
    public func save(_ spec: ResourceSpec) throws(ResourceStoreError) {
        guard ResourceSpec.isValidName(spec.name) else {
            throw ResourceStoreError("'\(spec.name)' is not a valid resource name")
        }
        try makeDirectory()
        let document: JSONValue = .object(["version": .int(Self.formatVersion), "spec": .object(spec.jsonFields)])
        let bytes = JSONCodec.serialize(document) + [0x0A]
        let temporary = temporaryPath(of: spec.name)
        try FileIO.writeDurably(bytes, to: temporary)
        guard rename(temporary, path(of: spec.name)) == 0 else {
            let error = FileIO.failure("rename \(temporary)")
            unlink(temporary)
            throw error
        }
        try FileIO.syncDirectory(directory)
    }

    /// Forgets a resource. Removing one that is not stored is not an error.
    public func remove(name: String) throws(ResourceStoreError) {
        guard ResourceSpec.isValidName(name) else { return }
        guard unlink(path(of: name)) == 0 || errno == ENOENT else { throw FileIO.failure("unlink \(path(of: name))") }
        unlink(temporaryPath(of: name))
        try FileIO.syncDirectory(directory)
    }

    /// Every stored spec, a line per file that could not be loaded (the daemon logs them
    /// and keeps serving the others rather than refusing to start), and the names of the
    /// format-1 resources whose `fencing` was set to `formatOneFencing` (the daemon says so
    /// and rewrites their files).
    public func loadAll() -> (specs: [ResourceSpec], problems: [String], fencingDefaulted: [String]) {
        guard let names = FileIO.listDirectory(directory) else {
            if errno == ENOENT { return ([], [], []) }
            return ([], ["cannot list \(directory): \(String(cString: strerror(errno)))"], [])
        }
        var specs: [ResourceSpec] = []
        var problems: [String] = []
        var fencingDefaulted: [String] = []
        for fileName in names.sorted() {
            if fileName.hasPrefix(".") {
                if fileName.hasSuffix(Self.temporarySuffix) { unlink("\(directory)/\(fileName)") }
                continue
            }
            guard fileName.hasSuffix(".json") else { continue }
            switch load(fileName: fileName) {
            case .success(let (spec, defaulted)):
                specs.append(spec)
                if defaulted { fencingDefaulted.append(spec.name) }
            case .failure(let error): problems.append(error.message)
            }
        }
        return (specs, problems, fencingDefaulted)
    }

    /// The spec, and whether its `fencing` was defaulted (a format-1 file).
    func load(fileName: String) -> Result<(ResourceSpec, Bool), ResourceStoreError> {
        let filePath = "\(directory)/\(fileName)"
        let bytes: [UInt8]
        do throws(ResourceStoreError) {
            bytes = try FileIO.readAll(filePath, bytesMax: Self.fileBytesMax)
        } catch {
            return .failure(error)
        }
        guard case .success(let value) = JSONCodec.parse(bytes), let document = value.objectValue,
            let fields = document["spec"]?.objectValue
        else { return .failure(ResourceStoreError("\(filePath): not a resource file (bad JSON)")) }
        guard let version = document["version"]?.intValue, Self.formatVersionsRead.contains(version) else {
            return .failure(ResourceStoreError("\(filePath): unsupported format version"))
        }
        var settings = fields
        var fencingDefaulted = false
        if version == 1 {
            settings = Self.withoutLegacyDefaults(fields)
            if settings["fencing"] == nil {
                settings["fencing"] = .string(Self.formatOneFencing.rawValue)
                fencingDefaulted = true
            }
        }
        let spec: ResourceSpec
        do throws(ControlError) {
            spec = try ResourceSpec.parse(createArgs: settings, defaultNBDSocketDirectory: "/")
        } catch {
            return .failure(ResourceStoreError("\(filePath): \(error.message)"))
        }
        guard fileName == "\(spec.name).json" else {
            return .failure(ResourceStoreError("\(filePath): holds resource '\(spec.name)', not the one its name says"))
        }
        return .success((spec, fencingDefaulted))
    }

    /// Format-1 files written before the unbuilt settings were refused carry them at their
    /// defaults of then (no rate limit, `fencing: dont-care` that was never carried out);
    /// those are dropped, so such a file's `fencing` is `formatOneFencing` too. A file that
    /// asked for more is refused by `parse` with the key named.
    static let legacyDefaults: [String: JSONValue] = [
        "resync_rate": .int(0), "bandwidth": .int(0), "fencing": .string("dont-care"),
        "after_split_brain": .string("disconnect"),
    ]

    static func withoutLegacyDefaults(_ fields: [String: JSONValue]) -> [String: JSONValue] {
        fields.filter { key, value in legacyDefaults[key] != value }
    }

    func makeDirectory() throws(ResourceStoreError) {
        var prefix = ""
        for component in directory.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o750) != 0, errno != EEXIST { throw FileIO.failure("mkdir \(prefix)") }
        }
    }
}
