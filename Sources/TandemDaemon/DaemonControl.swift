// DaemonControl: executes control commands. Runs on control-server threads; every state
// change happens on the loop thread through EventLoop.execute, so commands are serialised
// with the data path without locks.
import Logging
import TandemControl
import TandemCore
import TandemIO

final class DaemonControl: ControlHandler {
    let registry: ResourceRegistry
    let loop: EventLoop
    let config: DaemonConfig
    let logger: Logger
    static let version = "0.1.0"
    /// Commands DESIGN.md names that arrive with the replication pair.
    static let laterCommands: Set<String> = [
        "enable", "disable", "failover", "demote", "set", "verify", "resolve", "outdate-peer", "events",
    ]

    init(registry: ResourceRegistry, loop: EventLoop, config: DaemonConfig, logger: Logger) {
        self.registry = registry
        self.loop = loop
        self.config = config
        self.logger = logger
    }

    func handle(_ request: ControlRequest, credentials: PeerCredentials) -> ControlReply {
        let result: Result<[String: JSONValue], ControlError>
        switch request.cmd {
        case "ping":
            result = .success(["node": .string(config.nodeName), "version": .string(Self.version)])
        case "create":
            result = create(request.args)
        case "status":
            result = status(request.args)
        case "delete":
            result = delete(request.args)
        case let command where Self.laterCommands.contains(command):
            result = .failure(ControlError(.unsupported, "'\(command)' is not supported by this version yet"))
        default:
            result = .failure(ControlError(.unknownCommand, "unknown command '\(request.cmd)'"))
        }
        if case .failure(let error) = result {
            logger.notice("control command refused", metadata: [
                "cmd": "\(request.cmd)", "error": "\(error.code.rawValue)", "message": "\(error.message)",
            ])
        }
        return ControlReply(id: request.id, result: result)
    }

    private func create(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        let spec: ResourceSpec
        do {
            spec = try ResourceSpec.parse(createArgs: args, defaultNBDSocketDirectory: runtimeDirectory)
        } catch {
            return .failure(error)
        }
        guard spec.role == .standalone else {
            return .failure(ControlError(.unsupported, "role: '\(spec.role.rawValue)' needs the peer link, not in this version yet; use standalone"))
        }
        let registry = self.registry
        return loop.submitAndWait { Result { () throws(ControlError) in try registry.create(spec) } }
    }

    private func status(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        let registry = self.registry
        guard let nameValue = args["name"] else {
            return .success(loop.submitAndWait { registry.statusAll() })
        }
        guard case .string(let name) = nameValue else {
            return .failure(ControlError(.invalidArgument, "name: must be a string"))
        }
        return loop.submitAndWait { Result { () throws(ControlError) in try registry.status(name) } }
    }

    private func delete(_ args: [String: JSONValue]) -> Result<[String: JSONValue], ControlError> {
        guard let nameValue = args["name"] else { return .failure(ControlError(.missingArgument, "name: required")) }
        guard case .string(let name) = nameValue else {
            return .failure(ControlError(.invalidArgument, "name: must be a string"))
        }
        let registry = self.registry
        let error: ControlError? = loop.awaitOnLoop { done in registry.delete(name, done) }
        if let error { return .failure(error) }
        return .success(["name": .string(name)])
    }

    /// Where NBD sockets go when `create` names none: beside the control socket.
    private var runtimeDirectory: String {
        let path = config.controlSocket
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }
}
