import CKernels
import Foundation
import SiriusEngine
import Testing
import TestSupport

/// tools/make_dequant_fixtures.py: random raw blocks and gguf-py's dequantisation of them.
struct DequantFixture: Decodable {
    struct Case: Decodable {
        var type: String
        var ggml_type: UInt32
        var block_elements: Int
        var block_bytes: Int
        var blocks: Int
        var bytes_hex: String
        var values_bits: [UInt32]

        var bytes: [UInt8] {
            let u = Array(bytes_hex.utf8)
            func nib(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }
            return stride(from: 0, to: u.count, by: 2).map { nib(u[$0]) << 4 | nib(u[$0 + 1]) }
        }
        var values: [Float] { values_bits.map(Float.init(bitPattern:)) }
        var count: Int { blocks * block_elements }
    }
    var cases: [Case]

    static func load() throws -> DequantFixture {
        try JSONDecoder().decode(DequantFixture.self, from: Data(contentsOf: fixtureURL("dequant/dequant.json")))
    }
}

func fixtureURL(_ relative: String) throws -> URL {
    let base = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    return base.appendingPathComponent(relative)
}

/// Bit-exact equality, except that any NaN matches any NaN (a signalling NaN may be quieted by a
/// hardware conversion in numpy; its payload is not part of the format's semantics).
func sameFloats(_ a: [Float], _ b: [Float]) -> (ok: Bool, firstMismatch: Int?) {
    guard a.count == b.count else { return (false, nil) }
    for i in a.indices {
        if a[i].isNaN && b[i].isNaN { continue }
        if a[i].bitPattern != b[i].bitPattern { return (false, i) }
    }
    return (true, nil)
}

@Suite("Dequantisation against gguf-py")
struct DequantizationTests {
    static let expectedTypes: Set<String> = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K", "Q6_K"]

    @Test("the fixture covers every supported type, with gguf-py's block geometry")
    func fixtureCoversSupportedTypes() throws {
        let f = try DequantFixture.load()
        #expect(Set(f.cases.map(\.type)) == Self.expectedTypes)
        #expect(Set(f.cases.map(\.type)) == Set(GGMLType.allCases.filter(\.isSupportedForCompute).map(\.description)))
        for c in f.cases {
            let t = try #require(GGMLType(rawValue: c.ggml_type))
            #expect(t.description == c.type)
            let g = try #require(t.blockGeometry)
            #expect(g.elements == c.block_elements && g.bytes == c.block_bytes, "\(c.type)")
            #expect(c.bytes.count == c.blocks * c.block_bytes)
            #expect(c.values.count == c.count)
            #expect(ck_type_supported(Int32(c.ggml_type)) == 1)
        }
    }

    @Test("ck_dequantize equals gguf-py bit for bit on random blocks", arguments: ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K", "Q6_K"])
    func kernelDequantizeMatchesGGUFPy(type: String) throws {
        let c = try #require(try DequantFixture.load().cases.first { $0.type == type })
        let bytes = c.bytes
        var out = [Float](repeating: .nan, count: c.count)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { ck_dequantize(Int32(c.ggml_type), src.baseAddress!, $0.baseAddress!, Int64(c.count)) }
        }
        let r = sameFloats(out, c.values)
        #expect(r.ok, "\(type): first mismatch at \(r.firstMismatch.map(String.init) ?? "?"): \(r.firstMismatch.map { "\(out[$0]) vs \(c.values[$0])" } ?? "")")
        // Scales really vary and values are not all zero (the fixture is not degenerate).
        #expect(Set(c.values_bits).count > c.count / 4)
    }

    @Test("WeightMatrix.dequantized and dequantizeRow equal gguf-py (rows of whole blocks)",
          arguments: ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K", "Q6_K"])
    func weightMatrixMatchesGGUFPy(type: String) throws {
        let c = try #require(try DequantFixture.load().cases.first { $0.type == type })
        let t = try #require(GGMLType(rawValue: c.ggml_type))
        // Two rows of (blocks / 2) blocks each: exercises the row stride.
        let rows = 2, cols = c.count / rows
        let buffer = WeightBuffer(size: c.bytes.count)
        c.bytes.withUnsafeBytes { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let m = WeightMatrix(type: t, rows: rows, cols: cols, data: UnsafeRawPointer(buffer.pointer), owner: buffer)
        #expect(m.rowBytes * rows == c.bytes.count)
        #expect(sameFloats(m.dequantized(), c.values).ok, "\(type) dequantized()")
        var row = [Float](repeating: 0, count: cols)
        row.withUnsafeMutableBufferPointer { m.dequantizeRow(1, into: $0.baseAddress!) }
        #expect(sameFloats(row, Array(c.values[cols...])).ok, "\(type) dequantizeRow(1)")
    }

    @Test("the tests' own reference dequantiser (RefQuant) equals gguf-py too",
          arguments: ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K", "Q6_K"])
    func referenceDequantizerMatchesGGUFPy(type: String) throws {
        let c = try #require(try DequantFixture.load().cases.first { $0.type == type })
        let t = try #require(GGMLType(rawValue: c.ggml_type))
        #expect(sameFloats(RefQuant.dequantize(c.bytes, type: t, count: c.count), c.values).ok)
    }

    @Test("the reference quantisers encode random weights within their format's error bound",
          arguments: [(GGMLType.q4_0, Float(0.09)), (.q4_1, 0.075), (.q5_0, 0.04), (.q8_0, 0.006), (.q4_K, 0.12), (.q6_K, 0.02),
                      (.f16, 0.001), (.bf16, 0.004), (.f32, 0)])
    func quantiserRoundTrip(type: GGMLType, bound: Float) {
        var rng = SeededRandom(seed: 7)
        let x = (0..<1024).map { _ in rng.nextUnit() * 2 - 1 }
        let y = RefQuant.dequantize(RefQuant.quantize(x, rows: 2, cols: 512, as: type), type: type, count: x.count)
        // Bounds: half a quantisation step of a [-1, 1] block (Q4_0: 1/7/2 ≈ 0.071, Q4_1: 2/15/2 ≈ 0.067,
        // Q8_0: 1/127/2 ≈ 0.004), plus fp16 rounding of the scales; K-quants add the rounding of their
        // 6-/8-bit sub-block scales. Loose on purpose: this only guards against a broken encoder.
        #expect(Compare.maxAbsDiff(x, y) <= bound, "\(type): \(Compare.maxAbsDiff(x, y))")
        if type != .f32 { #expect(Compare.maxAbsDiff(x, y) > 0) }
    }
}

@Suite("fp16 conversion")
struct HalfConversionTests {
    @Test("ck_f16_to_f32 widens all 65536 halves exactly as Swift's Float16 does")
    func widenEveryHalf() {
        var mismatches: [UInt16] = []
        for h in 0...UInt16.max {
            let mine = ck_f16_to_f32(h), swift = Float(Float16(bitPattern: h))
            if swift.isNaN {
                // NaN stays NaN with its sign and payload (shifted into the top of the float mantissa).
                if !(mine.isNaN && mine.sign == swift.sign
                     && mine.bitPattern & 0x003F_E000 == UInt32(h & 0x1FF) << 13) { mismatches.append(h) }
            } else if mine.bitPattern != swift.bitPattern {
                mismatches.append(h)
            }
        }
        #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(8).map { String($0, radix: 16) })")
    }

    @Test("ck_f32_to_f16 rounds to nearest even like Float16(Float): halves, midpoints, subnormals, overflow, inf, nan")
    func narrowing() {
        var inputs: [Float] = [0, -0, 1, -1, 65504, 65519.996, 65520, -65520, 1e10, .infinity, -.infinity,
                               .greatestFiniteMagnitude, .leastNonzeroMagnitude, 1e-8, -1e-8, 5.960464e-08,
                               2.9802322e-08, 2.9802326e-08, 8.940697e-08, 6.1035156e-05, 6.1035152e-05, 6.097555e-05]
        // Every finite half, and the midpoints (ties) and near-midpoints between neighbours.
        for h in UInt16(0)..<0x7C00 {
            let a = Float(Float16(bitPattern: h)), b = Float(Float16(bitPattern: h + 1))
            let mid = (a + b) / 2    // exact in float
            inputs += [a, -a, mid, -mid, mid.nextUp, mid.nextDown]
        }
        var rng = SeededRandom(seed: 11)
        for _ in 0..<20000 { inputs.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))) }
        var bad: [Float] = []
        for f in inputs {
            let mine = ck_f32_to_f16(f), swift = Float16(f).bitPattern
            if f.isNaN {
                if !(Float16(bitPattern: mine).isNaN && (mine & 0x8000) == (swift & 0x8000)) { bad.append(f) }
            } else if mine != swift {
                bad.append(f)
            }
        }
        #expect(bad.isEmpty, "\(bad.count) mismatches, e.g. \(bad.prefix(6).map { String($0.bitPattern, radix: 16) })")
        // And the round trip half → float → half is the identity on every non-NaN half.
        for h in 0...UInt16.max where !Float16(bitPattern: h).isNaN {
            if ck_f32_to_f16(ck_f16_to_f32(h)) != h { bad.append(Float(h)) }
        }
        #expect(bad.isEmpty)
    }
}
