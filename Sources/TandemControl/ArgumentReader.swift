// ArgumentReader: typed, named access to a request's arguments. Every failure is a
// ControlError naming the key (with its path, e.g. 'peer.address') and what is allowed, so an
// operator can fix the request from the message alone. `finish()` refuses leftover keys.

public struct ArgumentReader {
    var args: [String: JSONValue]
    let prefix: String

    public init(_ args: [String: JSONValue], prefix: String = "") {
        self.args = args
        self.prefix = prefix
    }

    func path(_ key: String) -> String { prefix + key }

    mutating func take(_ key: String) -> JSONValue? {
        args.removeValue(forKey: key)
    }

    /// A present `null` counts as absent: JSON clients often send optional fields that way.
    mutating func optional(_ key: String) -> JSONValue? {
        guard let value = take(key), value != .null else { return nil }
        return value
    }

    public mutating func requiredString(_ key: String) throws(ControlError) -> String {
        guard let text = try optionalString(key) else {
            throw ControlError(.missingArgument, "missing argument '\(path(key))'")
        }
        return text
    }

    public mutating func optionalString(_ key: String) throws(ControlError) -> String? {
        guard let value = optional(key) else { return nil }
        guard let text = value.stringValue else { throw typeError(key, "a string", value) }
        return text
    }

    /// An integer in `range`; `unit` names it in the message ("bytes", "seconds").
    public mutating func optionalInteger(
        _ key: String, in range: ClosedRange<Int64>, unit: String
    ) throws(ControlError) -> Int64? {
        guard let value = optional(key) else { return nil }
        guard let number = value.intValue else { throw typeError(key, "an integer (\(unit))", value) }
        guard range.contains(number) else {
            throw ControlError(
                .invalidArgument,
                "argument '\(path(key))' must be between \(range.lowerBound) and \(range.upperBound) \(unit), got \(number)")
        }
        return number
    }

    public mutating func optionalBool(_ key: String) throws(ControlError) -> Bool? {
        guard let value = optional(key) else { return nil }
        guard let flag = value.boolValue else { throw typeError(key, "true or false", value) }
        return flag
    }

    /// One of an enum's raw values.
    public mutating func optionalChoice<Choice: RawRepresentable & CaseIterable>(
        _ key: String, _ type: Choice.Type
    ) throws(ControlError) -> Choice? where Choice.RawValue == String {
        let allowed = Choice.allCases.map(\.rawValue)
        guard let text = try optionalWord(key, allowed: allowed) else { return nil }
        return Choice(rawValue: text)
    }

    /// One of a fixed set of words.
    public mutating func optionalWord(_ key: String, allowed: [String]) throws(ControlError) -> String? {
        guard let value = optional(key) else { return nil }
        let list = allowed.joined(separator: "|")
        guard let text = value.stringValue else { throw typeError(key, "one of \(list)", value) }
        guard allowed.contains(text) else {
            throw ControlError(
                .invalidArgument,
                "argument '\(path(key))' must be one of \(list), got '\(ControlCodec.printable(text))'")
        }
        return text
    }

    /// A nested object, read with its own reader (keys reported as 'outer.inner').
    public mutating func optionalObject(_ key: String) throws(ControlError) -> ArgumentReader? {
        guard let value = optional(key) else { return nil }
        guard let fields = value.objectValue else { throw typeError(key, "an object", value) }
        return ArgumentReader(fields, prefix: path(key) + ".")
    }

    /// Refuses any key not read: a misspelt option must not be silently ignored.
    public func finish() throws(ControlError) {
        guard let key = args.keys.sorted().first else { return }
        throw ControlError(.invalidArgument, "unknown argument '\(path(ControlCodec.printable(key)))'")
    }

    func typeError(_ key: String, _ expected: String, _ value: JSONValue) -> ControlError {
        ControlError(.invalidArgument, "argument '\(path(key))' must be \(expected), got \(value.typeName)")
    }

    public func invalid(_ key: String, _ reason: String) -> ControlError {
        ControlError(.invalidArgument, "argument '\(path(key))' \(reason)")
    }
}
