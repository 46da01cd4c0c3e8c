// StandardDescriptors: makes sure descriptors 0, 1 and 2 are open before an executable
// opens anything. A process started with one of them closed (`tandemctl status >&-`) would
// otherwise get its first socket or file as that number, and print() or a log line would
// write into it: into the control socket, a peer connection or a volume.
#if canImport(Glibc)
import Glibc
#endif

public enum StandardDescriptors {
    /// Opens /dev/null onto each of 0, 1 and 2 that is closed. Call first thing in main,
    /// before anything opens a descriptor. Returns false when one of them cannot be made
    /// valid; the caller must then exit without opening anything.
    public static func ensureOpen() -> Bool {
        for descriptor: Int32 in 0...2 where fcntl(descriptor, F_GETFD) == -1 && errno == EBADF {
            // open returns the lowest free number, which is `descriptor`: the ones below it
            // are open already (checked, or opened, by the turns before).
            let opened = open("/dev/null", O_RDWR)
            guard opened == descriptor else {
                if opened >= 0 { close(opened) }
                return false
            }
        }
        return true
    }
}
