import Foundation
import SiriusEngine
import Testing
import TestSupport

/// Loads `path` and returns the error's text, failing the test if loading succeeds or throws something
/// other than a `ModelLoadError`.
func loadError(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> String {
    do {
        _ = try ModelLoader.load(path: path)
        Issue.record("loading \(path) succeeded", sourceLocation: sourceLocation)
        return ""
    } catch let e as ModelLoadError {
        #expect(!e.fix.isEmpty, sourceLocation: sourceLocation)
        #expect(e.description.contains(e.file), sourceLocation: sourceLocation)
        return e.description
    } catch {
        Issue.record("unexpected error type \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return ""
    }
}

/// Expects loading `bytes` (written to a temp file) to fail with a message containing every fragment.
func expectLoadError(_ bytes: [UInt8], _ fragments: [String], name: String = "m.gguf",
                     sourceLocation: SourceLocation = #_sourceLocation) throws {
    let dir = try TempDir("err")
    defer { dir.remove() }
    let msg = loadError(try dir.write(bytes, to: name), sourceLocation: sourceLocation)
    for f in fragments {
        #expect(msg.contains(f), "message \"\(msg)\" should mention \"\(f)\"", sourceLocation: sourceLocation)
    }
}

@Suite("GGUF loading errors")
struct GGUFLoadErrorTests {
    let tiny = TinyLlama(.small(seed: 4))
    var writer: GGUFWriter { tiny.ggufWriter(TinyWeightTypes(.q8_0)) }

    @Test("the unmodified tiny GGUF loads (control for every case below)")
    func control() throws {
        let dir = try TempDir("err")
        defer { dir.remove() }
        let m = try ModelLoader.load(path: try dir.write(writer.bytes(), to: "ok.gguf"))
        #expect(m.config.layerCount == 2 && m.config.vocabSize == 300)
    }

    @Test("missing file, directory without weights, empty file")
    func missingOrEmpty() throws {
        let dir = try TempDir("err")
        defer { dir.remove() }
        #expect(loadError(dir.file("nope.gguf")).contains("no such file"))
        #expect(loadError(dir.path).contains("config.json is missing"))
        #expect(throws: ModelLoadError.self) { try GGUFFile(path: dir.path) }
        do { _ = try GGUFFile(path: dir.path) } catch { #expect("\(error)".contains("not a regular file")) }
        do { _ = try GGUFFile(path: dir.file("nope.gguf")) } catch { #expect("\(error)".contains("cannot open")) }
        try expectLoadError([], ["empty"])
    }

    @Test("bad magic, unsupported versions")
    func magicAndVersion() throws {
        var w = writer
        w.magic = 0x4C4D_4747   // "GGML"
        try expectLoadError(w.bytes(), ["not a GGUF file"])
        try expectLoadError(Array("{\"not\": \"gguf\"}".utf8), ["not a GGUF file"])
        try expectLoadError([0x47, 0x47], ["truncated", "magic"])
        for v: UInt32 in [1, 4, 0x0300_0000] {
            var w = writer
            w.version = v
            try expectLoadError(w.bytes(), ["GGUF version \(v) is not supported"])
        }
    }

    /// Cuts the file at every byte of the header, metadata and tensor table and at sample points of the
    /// tensor data: every cut must fail cleanly with a message that says the file is truncated/corrupt.
    @Test("truncated anywhere: header, metadata, tensor table, tensor data")
    func truncated() throws {
        let w = writer
        let bytes = w.bytes(), layout = w.layout()
        // The writer pads every tensor to the default alignment of 32.
        let lastOffset = w.tensors.dropLast().reduce(0) { ($0 + $1.data.count + 31) / 32 * 32 }
        let lastDataEnd = layout.dataStart + lastOffset + w.tensors.last!.data.count
        #expect(layout.metadataStart == 24 && layout.tensorTableStart > layout.metadataStart && layout.dataStart > layout.tensorTableStart)
        let dir = try TempDir("cut")
        defer { dir.remove() }
        var cuts = Array(1..<layout.dataStart)
        cuts += stride(from: layout.dataStart, to: lastDataEnd, by: 997) + [lastDataEnd - 1]
        var counts = (header: 0, metadata: 0, table: 0, data: 0)
        for cut in cuts {
            let path = try dir.write(Array(bytes[..<cut]), to: "cut.gguf")
            let msg = loadError(path)
            let ok = msg.contains("truncated") || msg.contains("corrupt")
            #expect(ok, "cut at \(cut): \(msg)")
            if !ok { break }
            switch cut {
            case ..<layout.metadataStart: counts.header += 1
            case ..<layout.tensorTableStart: counts.metadata += 1
            case ..<layout.dataStart: counts.table += 1
            default: counts.data += 1
            }
        }
        #expect(counts.header > 10 && counts.metadata > 100 && counts.table > 100 && counts.data > 10)
        // Named points: mid-string of a key, in the tensor table, in the last tensor's data.
        let tableMsg = loadError(try dir.write(Array(bytes[..<(layout.tensorTableStart + 20)]), to: "t.gguf"))
        #expect(tableMsg.contains("tensor"))
        let dataMsg = loadError(try dir.write(Array(bytes[..<(lastDataEnd - 1)]), to: "d.gguf"))
        #expect(dataMsg.contains("truncated") && dataMsg.contains("output.weight"), "\(dataMsg)")
    }

    @Test("tensors of types the engine cannot compute with are named in the error",
          arguments: [(UInt32(13), "Q5_K"), (7, "Q5_1"), (10, "Q2_K"), (16, "IQ2_XXS"), (23, "IQ4_XS"), (20, "IQ4_NL"),
                      (4, "type 4"), (99, "type 99"), (28, "F64")])
    func unsupportedType(id: UInt32, name: String) throws {
        // Rows of 256 so that K-quant types have whole blocks; the byte size follows the new type.
        var w = TinyLlama(.kQuant(seed: 4)).ggufWriter(TinyWeightTypes(.q8_0))
        let i = try #require(w.tensors.firstIndex { $0.name == "blk.0.ffn_up.weight" })
        w.tensors[i].type = id
        if let g = GGMLType(rawValue: id)?.blockGeometry { w.tensors[i].data = [UInt8](repeating: 0, count: 256 * 256 / g.elements * g.bytes) }
        try expectLoadError(w.bytes(), ["blk.0.ffn_up.weight", name])
    }

    @Test("unsupported or missing architecture", arguments: ["gpt2", "falcon", "phi3", ""])
    func architecture(arch: String) throws {
        var w = writer
        w.set("general.architecture", .string(arch))
        try expectLoadError(w.bytes(), ["architecture '\(arch)' is not supported"])
        w.remove("general.architecture")
        try expectLoadError(w.bytes(), ["general.architecture is missing"])
    }

    @Test("missing tensors and metadata are named", arguments: ["blk.1.ffn_down.weight", "token_embd.weight", "output_norm.weight", "blk.0.attn_k.weight", "blk.0.ffn_norm.weight"])
    func missingTensor(name: String) throws {
        var w = writer
        w.tensors.removeAll { $0.name == name }
        try expectLoadError(w.bytes(), [name, "missing"])
    }

    @Test("missing required metadata is named", arguments: ["llama.embedding_length", "llama.block_count", "llama.feed_forward_length", "llama.attention.head_count"])
    func missingMetadata(key: String) throws {
        var w = writer
        w.remove(key)
        try expectLoadError(w.bytes(), [key])
    }

    @Test("wrong tensor shapes are named with the expected shape")
    func wrongShape() throws {
        var w = writer
        let q = try #require(w.tensors.firstIndex { $0.name == "blk.1.attn_q.weight" })
        w.tensors[q].dims = [32, 128]     // 64×64 values re-shaped
        try expectLoadError(w.bytes(), ["blk.1.attn_q.weight", "shape", "[64, 64]"])
        w = writer
        let n = try #require(w.tensors.firstIndex { $0.name == "blk.0.attn_norm.weight" })
        w.tensors[n].dims = [32]; w.tensors[n].data = Array(w.tensors[n].data[..<128])
        try expectLoadError(w.bytes(), ["blk.0.attn_norm.weight", "32 elements, expected 64"])
        w = writer
        let o = try #require(w.tensors.firstIndex { $0.name == "output.weight" })
        w.tensors[o].dims = [64, 300, 1, 1]   // a trailing dimension of 1 is still 2-D data, but not the shape we read
        try expectLoadError(w.bytes(), ["output.weight", "shape"])
        // Metadata that disagrees with the tensors.
        w = writer
        w.set("llama.feed_forward_length", .u32(96))
        try expectLoadError(w.bytes(), ["ffn_gate.weight", "expected [64, 96]"])
    }

    @Test("inconsistent head counts are reported, not crashed on")
    func inconsistentHeads() throws {
        for (heads, kv, fragment) in [(UInt32(0), UInt32(0), "positive"), (4, 0, "positive"), (4, 3, "not a multiple"), (0, 2, "positive")] {
            var w = writer
            w.set("llama.attention.head_count", .u32(heads))
            w.set("llama.attention.head_count_kv", .u32(kv))
            if heads == 0 { w.remove("llama.rope.dimension_count") }
            try expectLoadError(w.bytes(), ["inconsistent model configuration", fragment])
        }
        // Sizes stored as u64/i64 can be absurd; they are rejected, not multiplied into an overflow.
        for key in ["llama.attention.head_count", "llama.embedding_length", "llama.feed_forward_length", "llama.block_count",
                    "llama.attention.key_length", "llama.vocab_size", "llama.attention.head_count_kv"] {
            var w = writer
            w.set(key, .u64(1 << 62))
            if key == "llama.attention.head_count" { w.set("llama.attention.head_count_kv", .u64(1 << 62)) }
            try expectLoadError(w.bytes(), ["inconsistent model configuration"])
            w.set(key, .i64(-64))
            try expectLoadError(w.bytes(), ["inconsistent model configuration"])
        }
        var w = writer
        w.set("llama.attention.key_length", .u32(15))
        w.set("llama.rope.dimension_count", .u32(15))
        try expectLoadError(w.bytes(), ["head dimension 15 is odd"])
        w.set("llama.attention.key_length", .u32(0))
        try expectLoadError(w.bytes(), ["inconsistent model configuration", "positive"])
    }

    @Test("corrupt headers and tensor tables: bad values are named")
    func corruptValues() throws {
        var w = writer
        w.set("general.bad_bool", .raw(7, [2]))
        try expectLoadError(w.bytes(), ["general.bad_bool", "bool"])
        w = writer
        w.set("general.bad_type", .raw(13, [0, 0, 0, 0]))
        try expectLoadError(w.bytes(), ["general.bad_type", "unknown value type 13"])
        w = writer
        var deep: GGUFWriter.Value = .array(5, [.i32(1)])
        for _ in 0..<10 { deep = .array(9, [deep]) }
        w.set("general.deep", deep)
        try expectLoadError(w.bytes(), ["general.deep", "nests arrays too deeply"])
        w = writer
        w.set("general.huge_array", .raw(9, [5, 0, 0, 0] + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]))
        try expectLoadError(w.bytes(), ["general.huge_array"])
        w = writer
        w.set("general.huge_string", .raw(8, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]))
        try expectLoadError(w.bytes(), ["general.huge_string"])
        for a: UInt32 in [0, 12] {
            w = writer
            w.set("general.alignment", .u32(a))
            try expectLoadError(w.bytes(), ["general.alignment = \(a)"])
        }
        w = writer
        w.tensors[3].offsetOverride = 8
        try expectLoadError(w.bytes(), [w.tensors[3].name, "not a multiple of the alignment"])
        w = writer
        w.tensors[2].offsetOverride = 1 << 40
        try expectLoadError(w.bytes(), [w.tensors[2].name, "truncated"])
        w = writer
        w.tensors[5].name = w.tensors[4].name
        try expectLoadError(w.bytes(), [w.tensors[4].name, "appears twice"])
        w = writer
        w.tensors[1].dims = [64, 0]
        try expectLoadError(w.bytes(), [w.tensors[1].name, "dimension 1 = 0"])
        w = writer
        w.tensors[1].dims = [64, 2, 2, 2, 2]
        try expectLoadError(w.bytes(), [w.tensors[1].name, "5 dimensions"])
        w = writer
        w.tensors[2].dims = [33, 64]
        try expectLoadError(w.bytes(), [w.tensors[2].name, "not a multiple of its block size 32"])
    }

    @Test("dimensions whose product overflows are rejected as corrupt")
    func overflowingDimensions() throws {
        var w = writer
        w.tensors[1].dims = [1 << 39, 1 << 39, 1 << 39, 1 << 39]
        try expectLoadError(w.bytes(), [w.tensors[1].name, "corrupt"])
        w = writer
        w.tensors[1].dims = [(1 << 40) - 32, 1 << 23]
        try expectLoadError(w.bytes(), [w.tensors[1].name])
    }

    @Test("corrupt tensor and metadata counts")
    func corruptCounts() throws {
        var bytes = writer.bytes()
        bytes.replaceSubrange(8..<16, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        try expectLoadError(bytes, ["corrupt header"])
        bytes = writer.bytes()
        bytes.replaceSubrange(16..<24, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        try expectLoadError(bytes, ["corrupt header"])
    }
}

@Suite("safetensors loading errors")
struct SafetensorsLoadErrorTests {
    let tiny = TinyLlama(.small(seed: 4))

    /// A model directory from the tiny model, with `edit` applied to the writer and config first.
    func directory(_ dir: TempDir, config: [String: Any] = [:], omitConfig: Bool = false,
                   edit: (inout SafetensorsWriter) -> Void = { _ in }) throws {
        var w = tiny.safetensorsWriter(dtype: "F32")
        edit(&w)
        try w.write(to: dir.file("model.safetensors"))
        if !omitConfig {
            let data = try JSONSerialization.data(withJSONObject: tiny.configJSON(extra: config))
            try data.write(to: URL(fileURLWithPath: dir.file("config.json")))
        }
    }

    func error(config: [String: Any] = [:], omitConfig: Bool = false, edit: (inout SafetensorsWriter) -> Void = { _ in }) throws -> String {
        let dir = try TempDir("st-err")
        defer { dir.remove() }
        try directory(dir, config: config, omitConfig: omitConfig, edit: edit)
        return loadError(dir.path)
    }

    @Test("the unmodified directory loads (control)")
    func control() throws {
        let dir = try TempDir("st-ok")
        defer { dir.remove() }
        try directory(dir)
        #expect(try ModelLoader.load(path: dir.path).config.ropeStyle == .halfSplit)
    }

    @Test("missing or invalid config.json")
    func config() throws {
        #expect(try error(omitConfig: true).contains("config.json is missing"))
        let dir = try TempDir("st-err")
        defer { dir.remove() }
        try directory(dir)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: dir.file("config.json")))
        #expect(loadError(dir.path).contains("not a JSON object"))
        #expect(try error(config: ["model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]]).contains("model_type 'gpt2'"))
        #expect(try error(config: ["hidden_size": "64"]).contains("\"hidden_size\" is missing or not an integer"))
        #expect(try error(config: ["num_key_value_heads": 3]).contains("not a multiple of 3 KV heads"))
        #expect(try error(config: ["num_attention_heads": 0]).contains("sizes must be positive"))
        #expect(try error(config: ["head_dim": 0]).contains("sizes must be positive"))
    }

    @Test("bad header, truncated data, tiny file")
    func badFiles() throws {
        let dir = try TempDir("st-bad")
        defer { dir.remove() }
        try directory(dir)
        let good = Array(try Data(contentsOf: URL(fileURLWithPath: dir.file("model.safetensors"))))
        func check(_ bytes: [UInt8], _ fragments: [String]) throws {
            try Data(bytes).write(to: URL(fileURLWithPath: dir.file("model.safetensors")))
            let msg = loadError(dir.path)
            for f in fragments { #expect(msg.contains(f), "\"\(msg)\" should mention \"\(f)\"") }
        }
        try check(SafetensorsWriter.file(header: "{\"a\": [1, 2", data: []), ["model.safetensors", "not a JSON object"])
        try check(SafetensorsWriter.file(header: "[1, 2, 3]", data: []), ["not a JSON object"])
        try check(SafetensorsWriter.file(header: "{\"w\": {\"dtype\": \"F32\", \"shape\": [2]}}", data: [0, 0, 0, 0, 0, 0, 0, 0]),
                  ["'w'", "data_offsets"])
        try check(SafetensorsWriter.file(header: "{\"w\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}}", data: [UInt8](repeating: 0, count: 8)),
                  ["'w'", "unknown dtype Q4"])
        try check(Array(good[..<5]), ["truncated"])
        try check([0xFF, 0xFF, 0, 0, 0, 0, 0, 0] + Array(good[8..<100]), ["header length"])
        try check(Array(good[..<(good.count - 1)]), ["truncated", "lm_head.weight"])
        try check(Array(good[..<(good.count / 2)]), ["truncated"])
        // Shapes whose element count overflows are corrupt, not a crash.
        try check(SafetensorsWriter.file(header: "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], \"data_offsets\": [0, 8]}}",
                                         data: [UInt8](repeating: 0, count: 8)), ["'w'"])
        try check(SafetensorsWriter.file(header: "{\"w\": {\"dtype\": \"F32\", \"shape\": [-2, -1], \"data_offsets\": [0, 8]}}",
                                         data: [UInt8](repeating: 0, count: 8)), ["'w'"])
    }

    @Test("missing tensor, wrong shape, unsupported dtype are named")
    func tensors() throws {
        #expect(try error { $0.tensors.removeAll { $0.name == "model.layers.1.mlp.up_proj.weight" } }
            .contains("model.layers.1.mlp.up_proj.weight is missing"))
        let shape = try error { w in
            let i = w.tensors.firstIndex { $0.name == "model.layers.0.self_attn.k_proj.weight" }!
            w.tensors[i].shape = [64, 32]
        }
        #expect(shape.contains("model.layers.0.self_attn.k_proj.weight") && shape.contains("expected [32, 64]"))
        let dtype = try error { w in
            let i = w.tensors.firstIndex { $0.name == "model.layers.0.mlp.gate_proj.weight" }!
            w.tensors[i].dtype = "I32"
        }
        #expect(dtype.contains("model.layers.0.mlp.gate_proj.weight") && dtype.contains("dtype I32"))
        let norm = try error { w in
            let i = w.tensors.firstIndex { $0.name == "model.norm.weight" }!
            w.tensors[i].shape = [16, 4]
        }
        #expect(norm.contains("model.norm.weight") && norm.contains("expected [64]"))
    }
}

@Suite("corrupt files never crash the loader")
struct LoaderFuzzTests {
    /// Seeded random corruption of a tiny GGUF's header, metadata and tensor table (single bytes, and
    /// whole 4/8-byte fields set to extreme values): every load either succeeds or throws a
    /// `ModelLoadError`; a trap would crash the test process.
    @Test("random header corruption: load or a ModelLoadError, never a crash")
    func randomCorruption() throws {
        let w = TinyLlama(.small(seed: 9)).ggufWriter(TinyWeightTypes(.q4_0))
        let bytes = w.bytes(), end = w.layout().dataStart
        var rng = SeededRandom(seed: 2024)
        let dir = try TempDir("fuzz")
        defer { dir.remove() }
        var failures = 0, loads = 0
        let extremes: [UInt64] = [0, 1, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 32, 1 << 40, 1 << 62, UInt64(Int64.max), .max]
        for i in 0..<600 {
            var b = bytes
            let at = 4 + Int(rng.next() % UInt64(end - 12))
            switch i % 3 {
            case 0: b[at] = UInt8(truncatingIfNeeded: rng.next())
            case 1: withUnsafeBytes(of: UInt32(truncatingIfNeeded: extremes[Int(rng.next() % UInt64(extremes.count))]).littleEndian) {
                        b.replaceSubrange(at..<(at + 4), with: $0) }
            default: withUnsafeBytes(of: extremes[Int(rng.next() % UInt64(extremes.count))].littleEndian) {
                        b.replaceSubrange(at..<(at + 8), with: $0) }
            }
            let path = try dir.write(b, to: "f\(i % 4).gguf")
            do {
                _ = try ModelLoader.load(path: path)
                loads += 1
            } catch is ModelLoadError {
                failures += 1
            } catch {
                Issue.record("mutation \(i) at byte \(at): unexpected error \(error)")
            }
        }
        #expect(failures > 100)
        #expect(failures + loads == 600)
    }
}
