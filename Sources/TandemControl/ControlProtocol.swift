// ControlProtocol: the version of the control socket's protocol, which `ping` and
// `capabilities` report so that a control plane can tell what it is talking to.

public enum ControlProtocol {
    /// Raised when a change could break a client written against the previous version: a
    /// command, argument or reply field removed or changing meaning, or an error code
    /// changing. Adding commands, arguments, reply fields or events keeps the version;
    /// `capabilities` says which of them a daemon carries out.
    public static let version: Int64 = 1
}
