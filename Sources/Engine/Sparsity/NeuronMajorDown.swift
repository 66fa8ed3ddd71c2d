import CKernels

/// Neuron-major copies of every layer's down projection (`[D][hidden]`), made once per model, so a
/// sparse step reads only the active neurons' columns (formats.md §4: a down column is spread across
/// every row and quant block). Float sources are copied exactly; quantised ones become Q8_0.
public final class NeuronMajorDown: @unchecked Sendable {
    public let layers: [WeightMatrix]
    private let buffers: [WeightBuffer]

    public init(model: LanguageModel) {
        let c = model.config
        var ms: [WeightMatrix] = []
        var bs: [WeightBuffer] = []
        let d = c.intermediateSize, h = c.hiddenSize
        var full = [Float](repeating: 0, count: d * h)
        var col = [Float](repeating: 0, count: h)
        for layer in model.layers {
            let down = layer.down   // [hidden][D]
            let type: GGMLType = (down.type == .f32 || h % 32 != 0) ? .f32 : (down.type == .f16 || down.type == .bf16 ? down.type : .q8_0)
            full.withUnsafeMutableBufferPointer { f in
                ck_dequantize_rows(Int32(down.type.rawValue), down.data, down.rowBytes, Int64(d), 0, Int64(h), f.baseAddress!)
            }
            let rowBytes = type.rowBytes(elements: h)!
            let buf = WeightBuffer(size: rowBytes * d)
            for j in 0..<d {
                for r in 0..<h { col[r] = full[r * d + j] }
                let dst = buf.pointer + j * rowBytes
                switch type {
                case .q8_0: col.withUnsafeBufferPointer { ck_quantize_row_q8_0($0.baseAddress!, Int64(h), dst) }
                case .f16: for r in 0..<h { dst.storeBytes(of: ck_f32_to_f16(col[r]), toByteOffset: 2 * r, as: UInt16.self) }
                case .bf16: for r in 0..<h { dst.storeBytes(of: UInt16(col[r].bitPattern >> 16), toByteOffset: 2 * r, as: UInt16.self) }
                default: col.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: rowBytes) }
                }
            }
            bs.append(buf)
            ms.append(WeightMatrix(type: type, rows: d, cols: h, data: UnsafeRawPointer(buf.pointer), owner: buf))
        }
        layers = ms
        buffers = bs
    }
}

