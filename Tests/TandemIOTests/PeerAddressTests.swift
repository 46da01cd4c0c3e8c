import Glibc
import Testing
@testable import TandemIO

/// A peer address is turned into socket addresses by getaddrinfo: numeric ones without a
/// look-up (never blocking the loop), names with one, on a background thread.
struct PeerAddressTests {
    func lookup(_ text: String, numericOnly: Bool) -> Result<[String], AddressLookupError>? {
        PeerAddress.lookup(text, numericOnly: numericOnly).map { $0.map { $0.map(\.description) } }
    }

    @Test func numericAddressesNeedNoLookUp() throws {
        #expect(try lookup("127.0.0.1:7788", numericOnly: true)?.get() == ["127.0.0.1:7788"])
        #expect(try lookup("[::1]:7788", numericOnly: true)?.get() == ["[::1]:7788"])
    }

    @Test func aNameIsNotLookedUpWhenOnlyNumericIsAllowed() throws {
        #expect(lookup("localhost:7788", numericOnly: true) == nil)
        let addresses = try #require(lookup("localhost:7788", numericOnly: false)).get()
        #expect(addresses.contains("127.0.0.1:7788") || addresses.contains("[::1]:7788"), "\(addresses)")
    }

    @Test(arguments: ["beta", "beta:0", "beta:x", ":7788", "[]:7788"])
    func aMalformedAddressIsAnError(text: String) {
        guard case .failure(let error)? = PeerAddress.lookup(text, numericOnly: false) else {
            Issue.record("'\(text)' was accepted")
            return
        }
        #expect(error.message.contains("bad peer address"), "\(error)")
    }

    @Test func anUnresolvableNameIsAnErrorNamingIt() {
        guard case .failure(let error)? = PeerAddress.lookup("no-such-host.invalid:7788", numericOnly: false) else {
            Issue.record("no-such-host.invalid resolved")
            return
        }
        #expect(error.message.hasPrefix("cannot resolve 'no-such-host.invalid'"), "\(error)")
    }
}
