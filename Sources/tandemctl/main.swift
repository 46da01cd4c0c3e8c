// tandemctl: the operator's and control plane's client for tandemd's control socket.
// Thin: builds a request from flags, prints the reply as a table or as JSON.
import ArgumentParser
import TandemControl

#if canImport(Glibc)
import Glibc
#endif

struct Tandemctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tandemctl",
        abstract: "Control a running tandemd: create, inspect and change replicated resources.",
        discussion: """
            Every subcommand sends one request to tandemd's control socket and prints the \
            reply: tables for people, or with --json the reply object exactly as the daemon \
            sent it (see docs/control-protocol.md).

            Exit status: 0 on success, 1 when the daemon refuses the request (the error code \
            and message are printed as 'tandemctl: <error>: <message>'), 2 when the daemon \
            cannot be reached.
            """,
        subcommands: [
            Ping.self, Create.self, Status.self, Delete.self, Enable.self, Disable.self,
            Failover.self, Demote.self, CreateMD.self, SetOptions.self, Verify.self, Resize.self, Resolve.self,
            Outdate.self, OutdatePeer.self, Events.self, Capabilities.self, ReloadTLS.self, Trace.self,
        ])

    /// Accepted before the subcommand too (`tandemctl --socket PATH status`).
    @OptionGroup var options: GlobalOptions
}

// Before anything opens a descriptor: a closed stdout must not become the control socket.
guard StandardDescriptors.ensureOpen() else { exit(127) }
Tandemctl.main()
