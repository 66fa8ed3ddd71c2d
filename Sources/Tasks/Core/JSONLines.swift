import Foundation

/// One JSON object of a data file, with errors that name the file, the line and the field.
struct JSONRecord {
    let object: [String: Any]
    let path: String
    let line: Int?

    /// "a number", "an array", … for error messages.
    static func kind(_ value: Any) -> String {
        switch value {
        case is NSNull: return "null"
        case is String: return "a string"
        case is NSNumber: return "a number or boolean"
        case is [Any]: return "an array"
        case is [String: Any]: return "an object"
        default: return "\(type(of: value))"
        }
    }

    func fail(_ field: String?, _ message: String) -> TaskError {
        .malformed(path: path, line: line, field: field, message: message)
    }

    func string(_ key: String) throws -> String {
        guard let value = object[key] else { throw fail(key, "missing") }
        guard let s = value as? String else { throw fail(key, "expected a string, found \(Self.kind(value))") }
        return s
    }

    func optionalString(_ key: String) throws -> String? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let s = value as? String else { throw fail(key, "expected a string, found \(Self.kind(value))") }
        return s
    }

    func record(_ key: String) throws -> JSONRecord {
        guard let value = object[key] else { throw fail(key, "missing") }
        guard let o = value as? [String: Any] else { throw fail(key, "expected an object") }
        return JSONRecord(object: o, path: path, line: line)
    }

    func array(_ key: String) throws -> [Any] {
        guard let value = object[key] else { throw fail(key, "missing") }
        guard let a = value as? [Any] else { throw fail(key, "expected an array") }
        return a
    }

    func strings(_ key: String) throws -> [String] {
        let a = try array(key)
        return try a.enumerated().map { i, v in
            guard let s = v as? String else { throw fail("\(key)[\(i)]", "expected a string") }
            return s
        }
    }
}

enum JSONLines {
    /// Parses a jsonl text: one object per non-empty line.
    static func parse(_ text: String, path: String) throws -> [JSONRecord] {
        var records: [JSONRecord] = []
        var lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            let value: Any
            do {
                value = try JSONSerialization.jsonObject(with: Data(trimmed.utf8), options: [.fragmentsAllowed])
            } catch {
                throw TaskError.malformed(path: path, line: lineNumber, field: nil, message: "not valid JSON")
            }
            guard let object = value as? [String: Any] else {
                throw TaskError.malformed(path: path, line: lineNumber, field: nil, message: "expected a JSON object")
            }
            records.append(JSONRecord(object: object, path: path, line: lineNumber))
        }
        return records
    }

    /// Parses a whole-file JSON object.
    static func parseObject(_ text: String, path: String) throws -> JSONRecord {
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: Data(text.utf8))
        } catch {
            throw TaskError.malformed(path: path, line: nil, field: nil, message: "not valid JSON: \(error.localizedDescription)")
        }
        guard let object = value as? [String: Any] else {
            throw TaskError.malformed(path: path, line: nil, field: nil, message: "expected a JSON object")
        }
        return JSONRecord(object: object, path: path, line: nil)
    }
}
