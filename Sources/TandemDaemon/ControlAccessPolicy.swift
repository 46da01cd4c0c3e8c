// ControlAccessPolicy: who may use the control socket, decided from SO_PEERCRED once per
// connection. Allowed: root, the daemon's own user (it can already do anything the daemon
// can), and users whose primary or supplementary groups include the configured group.
#if canImport(Glibc)
import Glibc
#endif

/// The connecting process as the kernel reports it (SO_PEERCRED), not as it claims.
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

public struct ControlAccessPolicy: Sendable {
    /// The configured group's id; nil when only root (and the daemon's user) may connect.
    public var groupID: UInt32?
    public var daemonUID: UInt32
    /// The groups a uid belongs to; injectable so tests need no real users.
    public var groupsOfUser: @Sendable (UInt32) -> [UInt32]

    public init(
        groupID: UInt32?, daemonUID: UInt32 = geteuid(),
        groupsOfUser: @escaping @Sendable (UInt32) -> [UInt32] = ControlAccessPolicy.systemGroups
    ) {
        self.groupID = groupID
        self.daemonUID = daemonUID
        self.groupsOfUser = groupsOfUser
    }

    public func allows(_ peer: PeerCredentials) -> Bool {
        if peer.uid == 0 || peer.uid == daemonUID { return true }
        guard let groupID else { return false }
        return peer.gid == groupID || groupsOfUser(peer.uid).contains(groupID)
    }

    /// The group named `name`, or nil if the system has no such group.
    public static func groupID(named name: String) -> UInt32? {
        var entry = group()
        var result: UnsafeMutablePointer<group>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        while true {
            let rc = getgrnam_r(name, &entry, &buffer, buffer.count, &result)
            if rc == ERANGE, buffer.count < 1 << 20 {
                buffer = [CChar](repeating: 0, count: buffer.count * 2)
                continue
            }
            guard rc == 0, result != nil else { return nil }
            return entry.gr_gid
        }
    }

    /// Primary and supplementary groups of a user from the system databases (getgrouplist).
    /// SO_PEERCRED carries only the primary gid, so supplementary membership is looked up.
    @Sendable public static func systemGroups(ofUser uid: UInt32) -> [UInt32] {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = getpwuid_r(uid, &entry, &buffer, buffer.count, &result)
        guard rc == 0, result != nil, let name = entry.pw_name else { return [] }
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, entry.pw_gid, &groups, &count) == -1 {
            guard count > 0, count <= 65536 else { return [entry.pw_gid] }
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, entry.pw_gid, &groups, &count) != -1 else { return [entry.pw_gid] }
        }
        return Array(groups.prefix(Int(max(count, 0))))
    }
}
