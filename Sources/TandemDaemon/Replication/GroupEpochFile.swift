// GroupEpochFile: the primary node's floor of a consistency group's epoch numbers
// (docs/groups.md, *Across a primary restart*): `<state_dir>/<group>.group-epochs` holds the
// first number the group's next primary run may use (GroupEpochReservation), stored
// atomically (a new file fsynced, renamed over the old one, the directory fsynced) before
// the run uses a number of its block. Blocking file I/O of a few dozen bytes, on the loop
// thread, at the group's first primary start in a process and once per 2^40 epochs after.
import Glibc
import TandemCore

enum GroupEpochFile {
    enum Loaded: Equatable {
        /// No file: the group never ran as primary on this node.
        case absent
        case floor(Epoch)
        /// A file that is not a whole floor (damage: the store is atomic), or unreadable.
        case damaged(String)
    }

    static func path(stateDir: String, group: String) -> String { "\(stateDir)/\(group).group-epochs" }

    static func load(stateDir: String, group: String) -> Loaded {
        let target = path(stateDir: stateDir, group: group)
        do throws(ResourceStoreError) {
            let bytes = try FileIO.readAll(target, bytesMax: 4096)
            guard let floor = GroupEpochReservation.decode(bytes) else { return .damaged("\(target) is not a group epoch floor") }
            return .floor(floor)
        } catch {
            return error.errno == ENOENT ? .absent : .damaged(error.message)
        }
    }

    /// Stores `floor` durably; nil, or what failed.
    static func store(_ floor: Epoch, stateDir: String, group: String) -> ResourceStoreError? {
        let target = path(stateDir: stateDir, group: group)
        let temporary = target + ".new"
        do throws(ResourceStoreError) {
            try FileIO.writeDurably(GroupEpochReservation.encode(floor: floor), to: temporary)
            guard rename(temporary, target) == 0 else { throw FileIO.failure("rename \(temporary)") }
            try FileIO.syncDirectory(stateDir)
            return nil
        } catch {
            return error
        }
    }
}
