// ControlSeeds: request lines as tandemctl and control planes send them (encoded by
// ControlCodec), `create` with every argument, replies, and a few lines that are refused.
import FuzzSupport
import TandemControl
import TandemCore

enum ControlSeeds {
    static func request(_ cmd: String, id: JSONValue = .int(1), _ args: [String: JSONValue] = [:]) -> [UInt8] {
        ControlCodec.encode(ControlRequest(id: id, cmd: cmd, args: args))
    }

    static let createPrimary: [String: JSONValue] = [
        "name": .string("r0"), "volume": .string("/dev/vg/r0"), "role": .string("primary"),
        "peer": .object(["name": .string("beta"), "address": .string("10.0.0.2:7789")]), "mode": .string("async"),
        "async_buffer_bytes": .int(64 << 20), "compression": .string("lz4"), "disk_drain": .string("flush"),
        "initial_sync": .string("none"), "size_bytes": .int(1 << 30),
        "nbd": .object(["socket": .string("/run/tandem/r0.nbd"), "tcp": .string("[::1]:10809")]),
    ]

    static func all() -> [(name: String, bytes: [UInt8])] {
        let streams: [(String, [UInt8])] = [
            ("create-primary", request("create", createPrimary)),
            ("create-minimal", request("create", id: .string("c-1"), ["name": .string("r1"), "volume": .string("/tmp/v")])),
            ("create-secondary-ipv6", request("create", [
                "name": .string("r2"), "volume": .string("/v"), "role": .string("secondary"),
                "peer": .object(["name": .string("alpha"), "address": .string("[fe80::1]:7789")]),
                "fencing": .null, "nbd": .object(["tcp": .string("*:10809")]),
            ])),
            ("session", request("ping") + request("capabilities", id: .null) + request("status", id: .double(2.5), ["resource": .string("r0")])
                + request("set", ["resource": .string("r0"), "key": .string("max_lag_ms"), "value": .int(500)])
                + request("failover", ["resource": .string("r0"), "force": .bool(true)]) + request("events", id: .array([.int(1), .null]))),
            ("replies", ControlCodec.encode(.ok(.int(7), ["resources": .array([.object(["name": .string("r0")])])]))
                + ControlCodec.encode(.failure(.string("x"), ControlError(.notFound, "no resource 'r9'")))),
            ("refused", Array("{\"cmd\":\"nope\",\"id\":3}\r\n[1,2]\n{\"id\":1e999}\n{\"cmd\":5}\n\"x\"\n{\"a\":\n".utf8)),
            ("numbers-and-escapes", Array(("{\"cmd\":\"ping\",\"id\":1e20}\n{\"cmd\":\"ping\",\"id\":-0.0}\n"
                + "{\"cmd\":\"status\",\"id\":123456789012345678901234567890}\n{\"cmd\":\"ping\",\"id\":0.1,\"x\":\"\\ud800\\u0000\"}\n"
                + "{\"cmd\":\"create\",\"name\":\"r0\",\"volume\":\"/v\",\"size_bytes\":4096.0}\n").utf8)),
            ("long-line", Array(repeating: 0x20, count: 70) + Array("{\"cmd\":\"ping\"}\n".utf8)),
        ]
        return streams.enumerated().map { index, stream in
            (stream.0, FuzzInput.file(seed: UInt64(index) &* 0xC0FFEE, stream: stream.1))
        }
    }
}
