// NBDSeeds: client streams as nbdinfo, qemu-nbd and old clients send them (fixed newstyle
// with and without structured replies, INFO and GO, LIST, EXPORT_NAME, ABORT), followed by
// transmission request headers, plus a few refused options.
import FuzzSupport
import TandemCore

enum NBDSeeds {
    static func option(_ code: NBD.Option, _ payload: [UInt8] = []) -> [UInt8] {
        option(code.rawValue, payload)
    }

    static func option(_ code: UInt32, _ payload: [UInt8]) -> [UInt8] {
        var writer = ByteWriter()
        writer.append(NBD.optionMagic)
        writer.append(code)
        writer.append(UInt32(payload.count))
        writer.append(bytes: payload)
        return writer.bytes
    }

    static func infoPayload(name: String, infos: [NBD.Info]) -> [UInt8] {
        var writer = ByteWriter()
        writer.append(UInt32(name.utf8.count))
        writer.append(bytes: name.utf8)
        writer.append(UInt16(infos.count))
        for info in infos { writer.append(info.rawValue) }
        return writer.bytes
    }

    static func request(_ command: NBD.Command, flags: UInt16 = 0, handle: UInt64, offset: UInt64, length: UInt32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: NBD.requestHeaderBytes)
        bytes.withUnsafeMutableBytes {
            NBDRequestHeader(flags: flags, type: command.rawValue, handle: handle, offset: offset, length: length).encode(into: $0)
        }
        return bytes
    }

    static let flags: [UInt8] = [0, 0, 0, 3]
    static let goStream = flags + option(.structuredReply)
        + option(.go, infoPayload(name: "r0", infos: [.blockSize, .name, .description]))

    static let requests =
        request(.read, handle: 1, offset: 0, length: 4096) + request(.write, flags: NBD.CommandFlag.fua, handle: 2, offset: 4096, length: 8)
        + Array(repeating: 0xEE, count: 8) + request(.flush, handle: 3, offset: 0, length: 0)
        + request(.trim, handle: 4, offset: 8192, length: 4096) + request(.disconnect, handle: 5, offset: 0, length: 0)

    static func all() -> [(name: String, bytes: [UInt8])] {
        let streams: [(String, [UInt8])] = [
            ("go-structured", goStream + requests),
            ("info-then-go", flags + option(.info, infoPayload(name: "", infos: [.export]))
                + option(.go, infoPayload(name: "", infos: [])) + requests),
            ("list-then-export-name", [0, 0, 0, 1] + option(.list) + option(.exportName, Array("r0".utf8)) + requests),
            ("export-name-zeroes", [0, 0, 0, 1] + option(.exportName, [])),
            ("abort", flags + option(.abort)),
            ("refused-options", flags + option(.startTLS) + option(42, [1, 2, 3]) + option(.listMetaContext, [0, 0, 0, 0])
                + option(.info, infoPayload(name: "other", infos: [])) + option(.go, [0, 0, 0, 9]) + goStream.dropFirst(4)),
            ("unknown-export", flags + option(.exportName, Array("nope".utf8))),
            ("bad-request-magic", goStream + Array(repeating: 0x41, count: NBD.requestHeaderBytes)),
        ]
        return streams.enumerated().map { index, stream in
            (stream.0, FuzzInput.file(seed: UInt64(index) &* 0x9E37, stream: stream.1))
        }
    }
}
