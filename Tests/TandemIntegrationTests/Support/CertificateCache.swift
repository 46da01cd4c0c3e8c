// CertificateCache: the certificates of a ReplicatedPair, made once per test process for each
// set of node names and copied into each pair's own directory. scripts/make-certs.sh runs
// eight openssl processes for a pair, and their start-up (OpenSSL 3 loading its configuration
// and providers) was about a twelfth of the fault campaign's CPU time. Each pair still gets its
// own files (a test may rotate or remove them); a test that needs a CA of its own (a stranger)
// calls `ReplicatedPair.makeCertificates`, which never uses the cache.
import Foundation

final class CertificateCache: @unchecked Sendable {
    static let shared = CertificateCache()

    /// One file of a made set: its name, bytes and permission bits (keys 0600).
    private struct File {
        let name: String
        let bytes: Data
        let permissions: Int
    }

    private let lock = NSLock()
    /// Made sets by their node names, joined with a space.
    private var sets: [String: [File]] = [:]

    /// Writes the set for `nodes` (made on first use) into `directory`.
    func copy(into directory: String, nodes: [String]) throws {
        for file in try set(for: nodes) {
            let path = "\(directory)/\(file.name)"
            guard FileManager.default.createFile(atPath: path, contents: file.bytes,
                                                 attributes: [.posixPermissions: file.permissions])
            else { throw HarnessError("cannot write \(path)") }
        }
    }

    private func set(for nodes: [String]) throws -> [File] {
        let key = nodes.joined(separator: " ")
        lock.lock()
        defer { lock.unlock() }
        if let files = sets[key] { return files }
        let made = try TempDirectory("certset")
        try ReplicatedPair.makeCertificates(into: made.path, nodes: nodes)
        let files = try FileManager.default.contentsOfDirectory(atPath: made.path).sorted().map { name in
            let path = made.file(name)
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            return File(name: name, bytes: try Data(contentsOf: URL(fileURLWithPath: path)),
                        permissions: (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0o600)
        }
        sets[key] = files
        return files
    }
}
