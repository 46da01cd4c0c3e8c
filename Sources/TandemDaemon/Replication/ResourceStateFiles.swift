// ResourceStateFiles: the files a resource keeps beside its spec — its staging journal, its
// parted bitmap, a survivor's union resync left, a returned primary's compare set and a crash restart's compare record (and the temporary files their writes may
// have left), and format 2's state files — removed when the resource is deleted, so that a resource created later under the
// same name starts from nothing of the old one's (a parted bitmap left behind would be taken
// for the new resource's changes since a split brain it never had). Each removal is made
// durable by an fsync of the directory that held the file. The metadata file is not here: an
// open resource closes (or, internal, wipes) it itself (ResourceReplication), an unopened
// one's registry entry removes it with these.
#if canImport(Glibc)
import Glibc
#endif
import TandemCore

enum ResourceStateFiles {
    /// The state files of resource `name` whose staging journal is at `stagingPath` (nil: the
    /// default place), every one of which may be absent.
    static func paths(stateDir: String, name: String, stagingPath: String?) -> [String] {
        let parted = PartedBitmapFile.path(stateDir: stateDir, name: name)
        let legacy = MetadataStore.legacyPaths(stateDir: stateDir, name: name)
        let unionLeft = Resource.unionResyncPath(stateDir: stateDir, name: name)
        let compareSet = Resource.returnedCompareSetPath(stateDir: stateDir, name: name)
        let crashCompare = CrashCompareRecordFile.path(stateDir: stateDir, name: name)
        return [stagingPath ?? StagingJournal.defaultPath(stateDir: stateDir, name: name), parted, parted + ".new",
                unionLeft, unionLeft + ".new", compareSet, compareSet + ".new", crashCompare, crashCompare + ".new",
                legacy.meta, legacy.enabled, legacy.peerFailed]
    }

    /// Removes `paths` (an absent one is no error) and fsyncs each directory that held one,
    /// once. Every file is tried; the first failure is thrown after.
    static func remove(_ paths: [String]) throws(ResourceStoreError) {
        var directories: [String] = []
        var failure: ResourceStoreError?
        for path in paths {
            if unlink(path) == 0 {
                let directory = directory(of: path)
                if !directories.contains(directory) { directories.append(directory) }
            } else if errno != ENOENT, failure == nil {
                failure = FileIO.failure("unlink \(path)")
            }
        }
        for directory in directories {
            do throws(ResourceStoreError) { try FileIO.syncDirectory(directory) } catch {
                if failure == nil { failure = error }
            }
        }
        if let failure { throw failure }
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
