// ConfigFile: tandemd's human-writable config format, a TOML subset:
//
//     # comment
//     node_name = "alpha"
//     buffer_pool_bytes = "64MiB"   # or 67108864
//
// One `key = value` per line; values are double-quoted strings (escapes \" \\ \n \t), integers
// (underscores allowed) or true/false. No sections, no arrays. Unknown keys, duplicate keys
// and bad values are refused with the file, line and key named, never ignored.
#if canImport(Glibc)
import Glibc
#endif

/// Reads `path` and applies every key to `config`; does not run `validate()` (flags come next).
public func applyConfigFile(path: String, to config: inout DaemonConfig) throws(ConfigError) {
    let text = try ConfigFile.readText(path)
    try ConfigFile.apply(text: text, fileName: path, to: &config)
}

public enum ConfigFile {
    /// A config file is small; a larger one is a mistake (wrong path), not a config.
    static let fileBytesMax = 1 << 20

    public static func apply(text: String, fileName: String, to config: inout DaemonConfig) throws(ConfigError) {
        var firstLine: [ConfigKey: Int] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            let location = "config \(fileName) line \(lineNumber)"
            guard let (keyText, value) = try parseLine(Substring(rawLine), location: location) else { continue }
            guard let key = ConfigKey(rawValue: keyText) else {
                throw ConfigError("\(location): unknown key '\(keyText)'")
            }
            if let first = firstLine[key] {
                throw ConfigError("\(location): key '\(keyText)' is already set on line \(first)")
            }
            firstLine[key] = lineNumber
            do throws(ConfigError) {
                try config.set(key, value)
            } catch {
                throw ConfigError("\(location): \(error.message)")
            }
        }
    }

    /// nil for blank and comment lines.
    static func parseLine(_ line: Substring, location: String) throws(ConfigError) -> (String, ConfigValue)? {
        let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
        if trimmed.isEmpty || trimmed.first == "#" || trimmed.allSatisfy({ $0.isWhitespace }) { return nil }
        if trimmed.first == "[" {
            throw ConfigError("\(location): sections are not supported; write 'key = value' lines")
        }
        guard let equals = trimmed.firstIndex(of: "=") else {
            throw ConfigError("\(location): expected 'key = value'")
        }
        let key = String(trimmed[..<equals].trimmingWhitespace())
        guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }) else {
            throw ConfigError("\(location): '\(key)' is not a key (lower-case letters, digits and '_')")
        }
        var scanner = ValueScanner(text: Array(trimmed[trimmed.index(after: equals)...]))
        guard let value = scanner.value() else {
            throw ConfigError("\(location): value of '\(key)' must be \(ConfigKey(rawValue: key)?.expectedForm ?? "a quoted string, an integer or true/false")")
        }
        guard scanner.restIsComment() else {
            throw ConfigError("\(location): unexpected text after the value of '\(key)'")
        }
        return (key, value)
    }

    static func readText(_ path: String) throws(ConfigError) -> String {
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readAll(path, bytesMax: fileBytesMax)
        } catch {
            throw ConfigError("cannot read config: \(error.message)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError("config \(path) is not UTF-8 text")
        }
        return text
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var result = drop(while: { $0.isWhitespace })
        while let last = result.last, last.isWhitespace { result = result.dropLast() }
        return result
    }
}

/// Scans one value and what follows it on the line.
struct ValueScanner {
    let text: [Character]
    var position = 0

    mutating func skipSpaces() {
        while position < text.count, text[position] == " " || text[position] == "\t" || text[position] == "\r" { position += 1 }
    }

    mutating func value() -> ConfigValue? {
        skipSpaces()
        guard position < text.count else { return nil }
        if text[position] == "\"" { return quoted().map { .string($0) } }
        var word = ""
        while position < text.count, !text[position].isWhitespace, text[position] != "#" {
            word.append(text[position])
            position += 1
        }
        if word == "true" { return .bool(true) }
        if word == "false" { return .bool(false) }
        let digits = word.filter { $0 != "_" }
        guard !digits.isEmpty, !word.hasPrefix("_"), let number = UInt64(digits), digits.allSatisfy(\.isNumber) else { return nil }
        return .integer(number)
    }

    mutating func quoted() -> String? {
        position += 1
        var result = ""
        while position < text.count {
            let character = text[position]
            position += 1
            switch character {
            case "\"": return result
            case "\\":
                guard position < text.count else { return nil }
                let escaped = text[position]
                position += 1
                switch escaped {
                case "\"", "\\": result.append(escaped)
                case "n": result.append("\n")
                case "t": result.append("\t")
                default: return nil
                }
            default: result.append(character)
            }
        }
        return nil
    }

    mutating func restIsComment() -> Bool {
        skipSpaces()
        return position >= text.count || text[position] == "#"
    }
}
