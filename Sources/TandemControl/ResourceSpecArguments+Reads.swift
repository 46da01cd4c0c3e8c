// ResourceSpecArguments+Reads: `read_balancing` (issue 16 §4) for `create` and `set`. Any mode
// takes it: it acts only while the pair is sync with the peer UpToDate, and status says why it
// is inactive otherwise (PrimaryNode.peerReadsRefusal).
import TandemCore

extension ResourceSpec {
    /// `read_balancing`, for `create` and `set`; nil when absent.
    static func parseReadBalancing(_ reader: inout ArgumentReader) throws(ControlError) -> ReadBalancing? {
        try reader.optionalChoice("read_balancing", ReadBalancing.self)
    }

    /// The setting under its `create` key (status and the persisted spec); status block
    /// `read_routing` says whether it acts.
    func readBalancingFields(into fields: inout [String: JSONValue]) {
        fields["read_balancing"] = .string(readBalancing.rawValue)
    }
}
