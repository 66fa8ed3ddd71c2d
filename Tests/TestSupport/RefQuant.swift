import SiriusEngine

/// Plain Swift quantisers and dequantisers for the weight types the engine supports (formats.md §3).
/// Written independently of the C kernels so they can serve as the tests' oracle; the dequantisers are
/// themselves checked against gguf-py's on random blocks (DequantizationTests).
///
/// The quantisers are deliberately simple (round to nearest with per-block scales), not llama.cpp's
/// error-minimising searches: any valid block bytes will do for the tests, as long as the weights they
/// encode are close to the float weights they came from.
public enum RefQuant {
    // MARK: halves

    public static func half(_ f: Float) -> UInt16 { Float16(f).bitPattern }
    public static func float(half h: UInt16) -> Float { Float(Float16(bitPattern: h)) }

    static func readHalf(_ b: [UInt8], _ at: Int) -> Float {
        float(half: UInt16(b[at]) | UInt16(b[at + 1]) << 8)
    }
    static func writeHalf(_ h: UInt16, into b: inout [UInt8], at: Int) {
        b[at] = UInt8(h & 0xFF); b[at + 1] = UInt8(h >> 8)
    }
    /// A float rounded to half precision (what a stored fp16 scale really is).
    static func roundedToHalf(_ f: Float) -> Float { Float(Float16(f)) }

    static func nearest(_ x: Float) -> Int { Int(x.rounded(.toNearestOrEven)) }

    // MARK: quantise

    /// Encodes `rows × cols` floats (row-major) as `type`; rows are independent (blocks never span rows).
    public static func quantize(_ x: [Float], rows: Int, cols: Int, as type: GGMLType) -> [UInt8] {
        precondition(x.count == rows * cols)
        guard let g = type.blockGeometry, cols % g.elements == 0 else { preconditionFailure("\(type) rows of \(cols)") }
        var out: [UInt8] = []
        out.reserveCapacity(rows * cols / g.elements * g.bytes)
        for r in 0..<rows {
            for b in 0..<(cols / g.elements) {
                let start = r * cols + b * g.elements
                out += quantizeBlock(Array(x[start..<(start + g.elements)]), type)
            }
        }
        return out
    }

    static func quantizeBlock(_ x: [Float], _ type: GGMLType) -> [UInt8] {
        switch type {
        case .f32:
            let u = x[0].bitPattern
            return [UInt8(u & 0xFF), UInt8((u >> 8) & 0xFF), UInt8((u >> 16) & 0xFF), UInt8(u >> 24)]
        case .f16:
            let h = half(x[0])
            return [UInt8(h & 0xFF), UInt8(h >> 8)]
        case .bf16:
            // Round to nearest even on the upper 16 bits (finite inputs only).
            let u = x[0].bitPattern
            let r = (u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16
            return [UInt8(r & 0xFF), UInt8(r >> 8)]
        case .q4_0: return q4_0(x)
        case .q4_1: return q4_1(x)
        case .q5_0: return q5_0(x)
        case .q8_0: return q8_0(x)
        case .q4_K: return q4_K(x)
        case .q6_K: return q6_K(x)
        default: preconditionFailure("no reference quantiser for \(type)")
        }
    }

    static func q4_0(_ x: [Float]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 18)
        let amax = x.map(abs).max()!
        let dh = half(amax / 7)
        writeHalf(dh, into: &b, at: 0)
        let d = float(half: dh)
        for j in 0..<16 {
            let lo = d == 0 ? 8 : min(15, max(0, nearest(x[j] / d) + 8))
            let hi = d == 0 ? 8 : min(15, max(0, nearest(x[j + 16] / d) + 8))
            b[2 + j] = UInt8(lo | hi << 4)
        }
        return b
    }

    static func q4_1(_ x: [Float]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 20)
        let mn = x.min()!, mx = x.max()!
        let dh = half((mx - mn) / 15), mh = half(mn)
        writeHalf(dh, into: &b, at: 0)
        writeHalf(mh, into: &b, at: 2)
        let d = float(half: dh), m = float(half: mh)
        func q(_ v: Float) -> Int { d == 0 ? 0 : min(15, max(0, nearest((v - m) / d))) }
        for j in 0..<16 { b[4 + j] = UInt8(q(x[j]) | q(x[j + 16]) << 4) }
        return b
    }

    /// Q5_0: a half scale, 32 high bits, 16 bytes of low nibbles; values (q − 16)·d, q in 0…31.
    static func q5_0(_ x: [Float]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 22)
        let amax = x.map(abs).max()!
        let dh = half(amax / 15)
        writeHalf(dh, into: &b, at: 0)
        let d = float(half: dh)
        var qh: UInt32 = 0
        func q(_ v: Float) -> Int { d == 0 ? 16 : min(31, max(0, nearest(v / d) + 16)) }
        for j in 0..<16 {
            let lo = q(x[j]), hi = q(x[j + 16])
            b[6 + j] = UInt8((lo & 0xF) | (hi & 0xF) << 4)
            qh |= UInt32(lo >> 4) << UInt32(j) | UInt32(hi >> 4) << UInt32(j + 16)
        }
        for k in 0..<4 { b[2 + k] = UInt8((qh >> UInt32(8 * k)) & 0xFF) }
        return b
    }

    static func q8_0(_ x: [Float]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 34)
        let amax = x.map(abs).max()!
        let dh = half(amax / 127)
        writeHalf(dh, into: &b, at: 0)
        let d = float(half: dh)
        for j in 0..<32 {
            let q = d == 0 ? 0 : min(127, max(-127, nearest(x[j] / d)))
            b[2 + j] = UInt8(bitPattern: Int8(q))
        }
        return b
    }

    static func q4_K(_ x: [Float]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 144)
        var scale = [Float](repeating: 0, count: 8), minv = [Float](repeating: 0, count: 8)
        for j in 0..<8 {
            let s = x[(32 * j)..<(32 * j + 32)]
            let mn = min(0, s.min()!), mx = s.max()!
            scale[j] = (mx - mn) / 15
            minv[j] = -mn
        }
        let dh = half(scale.max()! / 63), dminh = half(minv.max()! / 63)
        writeHalf(dh, into: &b, at: 0)
        writeHalf(dminh, into: &b, at: 2)
        let d = float(half: dh), dmin = float(half: dminh)
        var sc = [Int](repeating: 0, count: 8), m = [Int](repeating: 0, count: 8)
        for j in 0..<8 {
            sc[j] = d == 0 ? 0 : min(63, max(0, nearest(scale[j] / d)))
            m[j] = dmin == 0 ? 0 : min(63, max(0, nearest(minv[j] / dmin)))
        }
        // Pack 8 six-bit scales and mins into 12 bytes (the inverse of formats.md §3's unpacking).
        for j in 0..<4 {
            b[4 + j] = UInt8((sc[j] & 63) | ((sc[j + 4] >> 4) << 6))
            b[4 + j + 4] = UInt8((m[j] & 63) | ((m[j + 4] >> 4) << 6))
            b[4 + j + 8] = UInt8((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4))
        }
        func q(_ i: Int) -> Int {
            let j = i / 32
            let ds = d * Float(sc[j]), dm = dmin * Float(m[j])
            return ds == 0 ? 0 : min(15, max(0, nearest((x[i] + dm) / ds)))
        }
        for c in 0..<4 {
            for l in 0..<32 { b[16 + 32 * c + l] = UInt8(q(64 * c + l) | q(64 * c + 32 + l) << 4) }
        }
        return b
    }

    static func q6_K(_ x: [Float]) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 210)
        var scale = [Float](repeating: 0, count: 16)
        for g in 0..<16 { scale[g] = x[(16 * g)..<(16 * g + 16)].map(abs).max()! / 31 }
        let dh = half(scale.max()! / 127)
        writeHalf(dh, into: &b, at: 208)
        let d = float(half: dh)
        var sc = [Int](repeating: 0, count: 16)
        for g in 0..<16 {
            sc[g] = d == 0 ? 0 : min(127, max(-128, nearest(scale[g] / d)))
            b[192 + g] = UInt8(bitPattern: Int8(sc[g]))
        }
        func q(_ i: Int) -> Int {
            let ds = d * Float(sc[i / 16])
            return (ds == 0 ? 0 : min(31, max(-32, nearest(x[i] / ds)))) + 32
        }
        for h in 0..<2 {
            for l in 0..<32 {
                let q1 = q(128 * h + l), q2 = q(128 * h + l + 32), q3 = q(128 * h + l + 64), q4 = q(128 * h + l + 96)
                b[64 * h + l] = UInt8((q1 & 0xF) | (q3 & 0xF) << 4)
                b[64 * h + l + 32] = UInt8((q2 & 0xF) | (q4 & 0xF) << 4)
                b[128 + 32 * h + l] = UInt8((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6)
            }
        }
        return b
    }

    // MARK: dequantise

    /// Decodes `bytes` holding `count` elements of `type` (a whole number of blocks).
    public static func dequantize(_ bytes: [UInt8], type: GGMLType, count: Int) -> [Float] {
        guard let g = type.blockGeometry, count % g.elements == 0, bytes.count >= count / g.elements * g.bytes else {
            preconditionFailure("\(count) elements of \(type) in \(bytes.count) bytes")
        }
        var out: [Float] = []
        out.reserveCapacity(count)
        for i in 0..<(count / g.elements) {
            let blk = Array(bytes[(i * g.bytes)..<((i + 1) * g.bytes)])
            out += dequantizeBlock(blk, type)
        }
        return out
    }

    static func dequantizeBlock(_ b: [UInt8], _ type: GGMLType) -> [Float] {
        switch type {
        case .f32:
            return [Float(bitPattern: UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24)]
        case .f16:
            return [readHalf(b, 0)]
        case .bf16:
            return [Float(bitPattern: (UInt32(b[0]) | UInt32(b[1]) << 8) << 16)]
        case .q4_0:
            let d = readHalf(b, 0)
            var y = [Float](repeating: 0, count: 32)
            for j in 0..<16 {
                y[j] = Float(Int(b[2 + j] & 0x0F) - 8) * d
                y[j + 16] = Float(Int(b[2 + j] >> 4) - 8) * d
            }
            return y
        case .q4_1:
            let d = readHalf(b, 0), m = readHalf(b, 2)
            var y = [Float](repeating: 0, count: 32)
            for j in 0..<16 {
                y[j] = Float(b[4 + j] & 0x0F) * d + m
                y[j + 16] = Float(b[4 + j] >> 4) * d + m
            }
            return y
        case .q5_0:
            let d = readHalf(b, 0)
            let qh = UInt32(b[2]) | UInt32(b[3]) << 8 | UInt32(b[4]) << 16 | UInt32(b[5]) << 24
            var y = [Float](repeating: 0, count: 32)
            for j in 0..<16 {
                let lo = Int(b[6 + j] & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
                let hi = Int(b[6 + j] >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
                y[j] = Float(lo - 16) * d
                y[j + 16] = Float(hi - 16) * d
            }
            return y
        case .q8_0:
            let d = readHalf(b, 0)
            return (0..<32).map { Float(Int8(bitPattern: b[2 + $0])) * d }
        case .q4_K:
            let d = readHalf(b, 0), dmin = readHalf(b, 2)
            let s = Array(b[4..<16])
            func scaleMin(_ j: Int) -> (Int, Int) {
                if j < 4 { return (Int(s[j] & 63), Int(s[j + 4] & 63)) }
                return (Int(s[j + 4] & 0x0F) | Int(s[j - 4] >> 6) << 4, Int(s[j + 4] >> 4) | Int(s[j] >> 6) << 4)
            }
            var y = [Float](repeating: 0, count: 256)
            for c in 0..<4 {
                let (sc1, m1) = scaleMin(2 * c), (sc2, m2) = scaleMin(2 * c + 1)
                let d1 = d * Float(sc1), dm1 = dmin * Float(m1)
                let d2 = d * Float(sc2), dm2 = dmin * Float(m2)
                for l in 0..<32 {
                    let q = b[16 + 32 * c + l]
                    y[64 * c + l] = d1 * Float(q & 0x0F) - dm1
                    y[64 * c + 32 + l] = d2 * Float(q >> 4) - dm2
                }
            }
            return y
        case .q6_K:
            let d = readHalf(b, 208)
            var y = [Float](repeating: 0, count: 256)
            for h in 0..<2 {
                for l in 0..<32 {
                    let lo0 = Int(b[64 * h + l]), lo1 = Int(b[64 * h + l + 32]), hi = Int(b[128 + 32 * h + l])
                    let q = [(lo0 & 0xF) | (hi & 3) << 4, (lo1 & 0xF) | ((hi >> 2) & 3) << 4,
                             (lo0 >> 4) | ((hi >> 4) & 3) << 4, (lo1 >> 4) | ((hi >> 6) & 3) << 4]
                    for k in 0..<4 {
                        let sc = Float(Int8(bitPattern: b[192 + 8 * h + l / 16 + 2 * k]))
                        y[128 * h + l + 32 * k] = d * sc * Float(q[k] - 32)
                    }
                }
            }
            return y
        default:
            preconditionFailure("no reference dequantiser for \(type)")
        }
    }
}
