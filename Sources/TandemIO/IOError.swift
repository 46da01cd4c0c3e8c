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

}
