// TandemControl owns the control socket's protocol, shared by tandemd and tandemctl: the
// JSON-lines request and reply types and their codec, error codes, the validation of control
// input into a ResourceSpec, the tunables' documentation, status and event texts, and the
// client. It does no I/O beyond the client's socket and holds no daemon state.
//
// ControlProtocol: the version of the control socket's protocol, which `ping` and
// `capabilities` report so that a control plane can tell what it is talking to.

public enum ControlProtocol {
    /// Raised when a change could break a client written against the previous version: a
    /// command, argument or reply field removed or changing meaning, or an error code
    /// changing. Adding commands, arguments, reply fields or events keeps the version;
    /// `capabilities` says which of them a daemon carries out.
    public static let version: Int64 = 1
}
