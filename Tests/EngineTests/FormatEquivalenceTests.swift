import Foundation
import SiriusEngine
import Testing
import TestSupport

@Suite("GGUF and safetensors copies of one model")
struct FormatEquivalenceTests {
    /// The GGUF copy has permuted Q/K rows and runs interleaved RoPE; the safetensors copy has HF rows
    /// and runs half-split RoPE. Same numbers (F32 or F16 both), so the logits agree up to the summation
    /// order of q·k over the permuted head dimensions.
    @Test("same logits from the GGUF and the safetensors copy", arguments: [("F32", GGMLType.f32), ("F16", .f16), ("BF16", .bf16)], [false, true])
    func sameLogits(dtype: (String, GGMLType), tied: Bool) throws {
        let tiny = TinyLlama(.small(tied: tied, seed: 55))
        let dir = try TempDir("equiv")
        defer { dir.remove() }
        let ggufPath = try dir.write(tiny.ggufWriter(TinyWeightTypes(layers: dtype.1, embedding: dtype.1, output: dtype.1, norms: dtype.1)).bytes(), to: "m.gguf")
        let stDir = dir.file("hf")
        try FileManager.default.createDirectory(atPath: stDir, withIntermediateDirectories: true)
        try tiny.writeSafetensors(to: stDir, dtype: dtype.0)
        let g = try ModelLoader.load(path: ggufPath)
        let s = try ModelLoader.load(path: stDir)
        #expect(g.config.ropeStyle == .interleaved && s.config.ropeStyle == .halfSplit)
        var gc = g.config, sc = s.config
        gc.ropeStyle = .halfSplit
        #expect(gc == sc, "the two copies load to the same configuration (up to RoPE style)")

        let tokens = TinyLlama.tokens(10, vocab: tiny.spec.vocab, seed: 6)
        KernelSelection.shared.stable {
            let tg = Transformer(model: g, capacity: 16), ts = Transformer(model: s, capacity: 16)
            let lg = tg.logits(tokens, start: 0, all: true), ls = ts.logits(tokens, start: 0, all: true)
            for i in tokens.indices {
                let d = Compare.relDiff(lg[i], ls[i])
                #expect(d <= Tol.exact, "\(dtype.0) tied=\(tied) position \(i): \(d)")
            }
            // Decoding too.
            let dg = Transformer(model: g, capacity: 16), ds = Transformer(model: s, capacity: 16)
            for (i, tok) in tokens.enumerated() {
                #expect(Compare.relDiff(dg.logits([tok], start: i)[0], ds.logits([tok], start: i)[0]) <= Tol.exact)
            }
            // Layer 0 is bit-identical up to the permutation: the GGUF copy's rotated key at dimension
            // 2i / 2i+1 of a head is the HF copy's at i / i + headDim/2 (same products, same sums).
            let kg = tg.cache.snapshot(layer: 0), ks = ts.cache.snapshot(layer: 0)
            let hd = tiny.spec.headDim, half = hd / 2
            var mismatches = 0
            for base in stride(from: 0, to: ks.keys.count, by: hd) {
                for i in 0..<half {
                    if kg.keys[base + 2 * i].bitPattern != ks.keys[base + i].bitPattern { mismatches += 1 }
                    if kg.keys[base + 2 * i + 1].bitPattern != ks.keys[base + i + half].bitPattern { mismatches += 1 }
                }
            }
            #expect(mismatches == 0, "\(mismatches) layer-0 key values differ beyond the permutation")
            let sameV = Compare.bitsEqual(kg.values, ks.values)
            #expect(sameV, "layer-0 values (not permuted) are identical")
        }
    }

    @Test("GGUF reader: every metadata value type, nested arrays, alignment and tensor offsets round-trip", arguments: [nil, 64, 8] as [Int?])
    func ggufReaderRoundTrip(alignment: Int?) throws {
        var w = GGUFWriter()
        w.alignment = alignment
        w.set("t.u8", .u8(200)); w.set("t.i8", .i8(-100)); w.set("t.u16", .u16(65000)); w.set("t.i16", .i16(-30000))
        w.set("t.u32", .u32(4_000_000_000)); w.set("t.i32", .i32(-2_000_000_000)); w.set("t.f32", .f32(1.5e-3))
        w.set("t.bool.t", .bool(true)); w.set("t.bool.f", .bool(false)); w.set("t.string", .string("héllo ✓"))
        w.set("t.u64", .u64(UInt64.max)); w.set("t.i64", .i64(Int64.min)); w.set("t.f64", .f64(-2.718281828459045))
        w.set("t.empty", .string(""))
        w.set("t.arr.str", .strings(["a", "", "ccc"]))
        w.set("t.arr.f32", .floats([1, -2.5, .infinity]))
        w.set("t.arr.nested", .array(9, [.array(5, [.i32(1), .i32(-2)]), .array(8, [.string("x")]), .array(0, [])]))
        w.set("t.arr.empty", .array(10, []))
        var rng = SeededRandom(seed: 4)
        let blobs: [(String, [Int], GGMLType, Int)] = [("a", [3], .f32, 12), ("b", [32, 2], .q8_0, 68), ("c", [5, 1, 3], .f16, 30),
                                                        ("d", [256, 2], .q4_K, 288), ("e", [7], .bf16, 14)]
        for (name, dims, type, size) in blobs {
            w.add(name, dims: dims, type: type, data: (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        }
        let dir = try TempDir("rt")
        defer { dir.remove() }
        let path = try dir.write(w.bytes(), to: "rt.gguf")
        let f = try GGUFFile(path: path)
        let m = f.metadata
        #expect(f.version == 3)
        #expect(f.alignment == (alignment ?? 32))
        #expect(f.dataOffset % f.alignment == 0 && f.dataOffset == w.layout().dataStart)
        #expect(m["t.u8"] == .uint(200) && m["t.i8"] == .int(-100) && m["t.u16"] == .uint(65000) && m["t.i16"] == .int(-30000))
        #expect(m["t.u32"] == .uint(4_000_000_000) && m["t.i32"] == .int(-2_000_000_000))
        #expect(m["t.f32"] == .float(Double(Float(1.5e-3))))
        #expect(m["t.bool.t"] == .bool(true) && m["t.bool.f"] == .bool(false))
        #expect(m["t.string"] == .string("héllo ✓") && m["t.empty"] == .string(""))
        #expect(m["t.u64"] == .uint(UInt64.max) && m["t.i64"] == .int(Int64.min) && m["t.f64"] == .float(-2.718281828459045))
        #expect(m["t.arr.str"] == .array([.string("a"), .string(""), .string("ccc")]))
        #expect(m["t.arr.f32"] == .array([.float(1), .float(-2.5), .float(.infinity)]))
        #expect(m["t.arr.nested"] == .array([.array([.int(1), .int(-2)]), .array([.string("x")]), .array([])]))
        #expect(m["t.arr.empty"] == .array([]))
        #expect(m["t.u64"]?.intValue == nil, "UInt64.max does not fit in Int")
        #expect(f.tensorOrder == blobs.map(\.0))
        for (i, (name, dims, type, size)) in blobs.enumerated() {
            let t = try #require(f.tensors[name])
            #expect(t.dims == dims && t.type == type && t.byteCount == size)
            #expect((t.fileOffset - f.dataOffset) % f.alignment == 0)
            let stored = Array(UnsafeRawBufferPointer(start: f.data(of: t), count: size))
            #expect(stored == w.tensors[i].data, "tensor \(name) bytes")
        }
    }

    @Test("GGUF version 2 files load too")
    func ggufVersion2() throws {
        let tiny = TinyLlama(.small(seed: 2))
        var w = tiny.ggufWriter(TinyWeightTypes(.q4_0))
        w.version = 2
        let dir = try TempDir("v2")
        defer { dir.remove() }
        let m = try ModelLoader.load(path: try dir.write(w.bytes(), to: "v2.gguf"))
        let ref = tiny.ggufReference(TinyWeightTypes(.q4_0))
        let tokens = TinyLlama.tokens(5, vocab: tiny.spec.vocab, seed: 1)
        #expect(Compare.relDiff(Transformer(model: m, capacity: 8).logits(tokens, start: 0)[0], ref.logits(tokens)[4]) <= Tol.exact)
    }
}
