// JSONValueAccess: typed views of a JSONValue, so validation code reads as what it checks.

extension JSONValue {
    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }
    public var intValue: Int64? {
        if case .int(let number) = self { return number }
        return nil
    }
    public var boolValue: Bool? {
        if case .bool(let flag) = self { return flag }
        return nil
    }
    public var objectValue: [String: JSONValue]? {
        if case .object(let fields) = self { return fields }
        return nil
    }
    public var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    /// The JSON type name, for error messages ("expected a string, got an array").
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int: "an integer"
        case .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
