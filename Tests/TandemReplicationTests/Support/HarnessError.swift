// HarnessError: why the harness itself could not do what a test asked. These are failures
// of the environment or of the daemon's interface, reported with enough context to act on.

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
