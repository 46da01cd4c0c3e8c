// IOError: an errno from a system call or an io_uring completion, named once here so that
// callers decide per errno (retry, fail the request, fail the resource) instead of "else".
import Glibc

public struct IOError: Error, Sendable, Equatable, CustomStringConvertible {
    public var errno: Int32
    public var operation: String

    public init(errno: Int32, _ operation: String) {
        self.errno = errno
        self.operation = operation
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }

    /// The completion should simply be submitted again.
    public static func isTransient(_ errno: Int32) -> Bool {
        errno == EINTR || errno == EAGAIN
    }
}

/// Runs a syscall-style closure until it stops failing with EINTR.
@inline(__always)
func retryingEINTR(_ body: () -> Int32) -> Int32 {
    while true {
        let rc = body()
        if rc == -1 && Glibc.errno == EINTR { continue }
        return rc
    }
}
