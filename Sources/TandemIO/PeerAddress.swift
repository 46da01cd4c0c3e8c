// PeerAddress: a peer's "host:port" turned into socket addresses with getaddrinfo. A numeric
// host (IPv4, "[IPv6]") is converted at once; a DNS name is looked up on a background queue,
// because getaddrinfo blocks for as long as the resolver takes and the loop thread carries the
// data path. The answer comes back on the loop thread. The name is looked up again at every
// dial, so a peer whose address changes is found at the next reconnect.
import Dispatch
import Glibc

/// One address getaddrinfo returned, ready for socket() and connect().
public struct SocketAddress: @unchecked Sendable, CustomStringConvertible {
    public var storage: sockaddr_storage
    public var length: socklen_t

    public var family: Int32 { Int32(storage.ss_family) }

    /// "127.0.0.1:7788" or "[::1]:7788".
    public var description: String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        var copy = storage
        let rc = withUnsafePointer(to: &copy) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &service, socklen_t(service.count),
                            NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard rc == 0 else { return "(address family \(family))" }
        let hostText = String(cString: host), serviceText = String(cString: service)
        return family == AF_INET6 ? "[\(hostText)]:\(serviceText)" : "\(hostText):\(serviceText)"
    }
}

/// Why a peer address gave no socket address: a malformed text or a failed look-up.
public struct AddressLookupError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum PeerAddress {
    /// The addresses of "host:port", in getaddrinfo's order of preference. `numericOnly`
    /// refuses to look a name up (it never blocks): a name then gives nil, not an error.
    public static func lookup(_ text: String, numericOnly: Bool) -> Result<[SocketAddress], AddressLookupError>? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else {
            return .failure(AddressLookupError("bad peer address '\(text)' (want host:port)"))
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return .failure(AddressLookupError("bad peer address '\(text)' (no host)")) }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (numericOnly ? AI_NUMERICHOST : 0)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        defer { if let list { freeaddrinfo(list) } }
        if rc == EAI_NONAME && numericOnly { return nil }
        guard rc == 0 else {
            let reason = rc == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(rc))
            return .failure(AddressLookupError("cannot resolve '\(host)': \(reason)"))
        }
        var addresses: [SocketAddress] = []
        var entry = list
        while let current = entry {
            if let address = current.pointee.ai_addr, Int(current.pointee.ai_addrlen) <= MemoryLayout<sockaddr_storage>.size {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(current.pointee.ai_addrlen))) }
                addresses.append(SocketAddress(storage: storage, length: current.pointee.ai_addrlen))
            }
            entry = current.pointee.ai_next
        }
        guard !addresses.isEmpty else { return .failure(AddressLookupError("cannot resolve '\(host)': no address")) }
        return .success(addresses)
    }
}

/// Looks peer addresses up for one dialling owner. Its state is confined to the loop thread;
/// only the look-up itself runs on the background queue (hence `@unchecked Sendable`).
public final class PeerAddressResolver: @unchecked Sendable {
    public typealias Completion = (Result<[SocketAddress], AddressLookupError>) -> Void
    private let loop: EventLoop
    private var completion: Completion?

    public init(loop: EventLoop) { self.loop = loop }

    /// A look-up is under way; `resolve` is not called again until it completes.
    public var isResolving: Bool { completion != nil }

    /// Calls `done` on the loop thread: at once for a numeric address or a malformed one,
    /// after the look-up for a name.
    public func resolve(_ text: String, _ done: @escaping Completion) {
        precondition(completion == nil, "one peer address look-up at a time")
        if let immediate = PeerAddress.lookup(text, numericOnly: true) { return done(immediate) }
        completion = done
        DispatchQueue.global(qos: .utility).async { [self] in
            let result = PeerAddress.lookup(text, numericOnly: false) ?? .failure(AddressLookupError("cannot resolve '\(text)'"))
            loop.execute { [self] in
                let done = completion
                completion = nil
                done?(result)
            }
        }
    }
}
