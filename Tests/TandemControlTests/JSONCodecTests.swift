import Testing
import TandemControl

@Suite struct JSONCodecTests {
    @Test func integersStayExactAcrossTheWholeInt64Range() {
        for number in [Int64.min, -1, 0, 1, 9_007_199_254_740_993, Int64.max] {
            let text = JSONCodec.serializeString(.int(number))
            #expect(parseJSON(text) == .int(number))
        }
    }

    /// 2^53 + 1 is the first integer a Double cannot hold: it must arrive as that integer.
    @Test func integersAboveDoublePrecisionParseAsExactIntegers() {
        #expect(parseJSON("9007199254740993") == .int(9_007_199_254_740_993))
        #expect(parseJSON("[9223372036854775807,-9223372036854775808]") == .array([.int(.max), .int(.min)]))
        #expect(parseJSON(#"{"size_bytes":9007199254740993}"#) == .object(["size_bytes": .int(9_007_199_254_740_993)]))
        #expect(JSONCodec.serializeString(.int(9_007_199_254_740_993)) == "9007199254740993")
        #expect(JSONCodec.serializeString(.int(.max)) == "9223372036854775807")
    }

    @Test func numbersKeepTheirKindAndBooleansAreNotNumbers() {
        #expect(parseJSON("[0,1,true,false,1.0,1e2,-0]") == .array([
            .int(0), .int(1), .bool(true), .bool(false), .double(1.0), .double(100), .int(0),
        ]))
        #expect(JSONCodec.serializeString(.array([.bool(true), .int(1), .double(1.5)])) == "[true,1,1.5]")
    }

    /// Foundation's parser, unlike the hand-written one it replaced, accepts a trailing comma
    /// and lets the last of two equal keys win. docs/control-protocol.md says so.
    @Test func foundationsLeniencyIsWhatTheDocsSay() {
        #expect(parseJSON("[1,]") == .array([.int(1)]))
        #expect(parseJSON(#"{"a":1,"a":2}"#) == .object(["a": .int(2)]))
    }

    @Test func integersBeyondInt64AreRefusedNotRounded() {
        #expect(parseJSON("9223372036854775808") == nil)
        #expect(parseJSON("-9223372036854775809") == nil)
        #expect(parseJSON("18446744073709551615") == nil)
        #expect(parseJSON("[100000000000000000000000]") == nil)
        #expect(parseJSON("1.5e300") == nil, "nor a Double of that size (finding 6)")
        #expect(parseJSON("1.5e18") == .double(1.5e18), "below 2^63 a fraction or exponent is a Double, as before")
    }

    /// Found by FuzzControl (docs/fuzzing.md, finding 6): `12345678901234564567.890` parsed
    /// to a Double that serialises as `1.2345678901234565e+19`, which Foundation reads back as
    /// an integer beyond 64 bits, refused: the codec wrote what it refuses. And numbers of 17
    /// or more digits went through Decimal's `doubleValue`, which is not correctly rounded,
    /// so the same text could parse to two different Doubles.
    @Test func everyNumberParsedSurvivesSerializeAndParse() {
        let texts = [
            "12345678901234564567.890", "1.2345678901234565e+19", "0.12345678901234565", "123456789012345678.5",
            "-98765432109876543210.5", "1.5e300", "1.234567890123456e+19", "9.3e18", "1e-5", "0.1",
            // Below 2^63 with more digits than a Double holds: it parses to an integral Double,
            // which must not be written with fewer digits than it has (FuzzControl, CI run).
            "2345678901234564567.890", "-2345678901234564567.5", "4611686018427387904.25",
        ]
        for text in texts {
            guard let value = parseJSON(text) else { continue }  // refused: nothing to round-trip
            let again = parseJSON(JSONCodec.serializeString(value))
            // JSON has one kind of number: a Double with no fraction may come back as the
            // integer, which must be that Double exactly (not an integer near it).
            #expect(again.map(Self.exact) == Self.exact(value), "\(text) parsed to \(value), which came back as \(String(describing: again))")
        }
        // A Double parsed from many digits is the correctly rounded one.
        #expect(parseJSON("0.12345678901234565") == .double(0.12345678901234565))
        #expect(parseJSON("1.2345678901234565e+19") == nil, "a number of magnitude 2^63 or more, however it is spelt")
        #expect(parseJSON("12345678901234564567.890") == nil)
        #expect(parseJSON("-98765432109876543210.5") == nil)
    }

    /// A number as an exact integer when it is one, else its Double.
    static func exact(_ value: JSONValue) -> String? {
        switch value {
        case .int(let integer): return "int \(integer)"
        case .double(let double):
            if double.rounded() == double, let integer = Int64(exactly: double) { return "int \(integer)" }
            return "double \(double)"
        default: return nil
        }
    }

    static func number(_ value: JSONValue) -> Double? {
        switch value {
        case .int(let integer): return Double(integer)
        case .double(let double): return double
        default: return nil
        }
    }

    @Test func valuesRoundTripThroughSerializeAndParse() {
        let value: JSONValue = .object([
            "a": .array([.null, .bool(true), .bool(false), .double(1.5), .string("x\"\\\n\t\u{1}é😀")]),
            "nested": .object(["k": .int(-3)]), "": .string(""),
        ])
        #expect(parseJSON(JSONCodec.serializeString(value)) == value)
    }

    @Test func objectKeysAreSortedForDeterministicOutput() {
        let value: JSONValue = .object(["b": .int(2), "a": .int(1), "c": .object(["z": .null, "y": .null])])
        #expect(JSONCodec.serializeString(value) == #"{"a":1,"b":2,"c":{"y":null,"z":null}}"#)
    }

    @Test func escapesAndSurrogatePairsDecode() {
        #expect(parseJSON(#""\u00e9\ud83d\ude00\/\b\f\n\r\t""#) == .string("é😀/\u{8}\u{C}\n\r\t"))
    }

    @Test(arguments: [
        "", " ", "{", "}", "{'a':1}", "tru", "nul", "01", "1.", ".5", "1e", "-",
        "+1", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\u{1}b\"", "[1 2]",
        "{\"a\" 1}", "{1:2}", "{\"a\":1}{}", "NaN", "Infinity", "1e999",
        "\u{0}1", "[1,\u{0}2]",
    ])
    func malformedInputIsRefused(text: String) {
        #expect(parseJSON(text) == nil)
    }

    @Test func invalidUTF8IsRefused() {
        #expect((try? JSONCodec.parse([0x22, 0xFF, 0xFE, 0x22]).get()) == nil)
    }

    @Test func nestingIsBoundedInsteadOfExhaustingTheStack() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(parseJSON(deep) == nil)
        let allowed = String(repeating: "[", count: JSONCodec.depthMax) + String(repeating: "]", count: JSONCodec.depthMax)
        #expect(parseJSON(allowed) != nil)
    }

    @Test func arbitraryBytesNeverCrashTheParser() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let alphabet = Array("{}[]\":,0123456789-+.eEtrufalsn \\u\n".utf8) + [0x00, 0xC3, 0xFF]
        for _ in 0..<3000 {
            var input: [UInt8] = []
            for _ in 0..<Int(state % 40) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                input.append(alphabet[Int(state >> 33) % alphabet.count])
            }
            state = state &* 6364136223846793005 &+ 1442695040888963407
            if case .success(let value) = JSONCodec.parse(input) {
                #expect(parseJSON(JSONCodec.serializeString(value)) == value)
            }
        }
    }

    @Test func nonFiniteDoublesSerializeAsNull() {
        #expect(JSONCodec.serializeString(.array([.double(.nan), .double(.infinity)])) == "[null,null]")
    }
}
