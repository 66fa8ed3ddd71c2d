import CKernels

/// A weight matrix of `rows` × `cols` (PyTorch `[out, in]`), each row `cols` elements long and stored
/// contiguously in its ggml type. Quantised matrices stay quantised: rows are dequantised on the fly.
public struct WeightMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let rowBytes: Int
    public let data: UnsafeRawPointer
    /// Keeps the storage (`MappedFile` or an owned buffer) alive.
    let owner: AnyObject

    public init(type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer, owner: AnyObject) {
        precondition(type.isSupportedForCompute, "unsupported weight type \(type)")
        self.type = type; self.rows = rows; self.cols = cols
        self.rowBytes = type.rowBytes(elements: cols)!
        self.data = data; self.owner = owner
    }

    public var byteCount: Int { rows * rowBytes }

    public func row(_ r: Int) -> UnsafeRawPointer { data + r * rowBytes }

    /// Dequantise row `r` into `out` (`cols` floats).
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        ck_dequantize(Int32(type.rawValue), row(r), out, Int64(cols))
    }

    /// All rows as floats (tests and tools; never on the decode path).
    public func dequantized() -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        out.withUnsafeMutableBufferPointer { b in
            ck_dequantize_rows(Int32(type.rawValue), data, rowBytes, Int64(cols), 0, Int64(rows), b.baseAddress!)
        }
        return out
    }
}

/// Owned, 64-byte aligned storage for weights made at load time (converted or repacked tensors).
public final class WeightBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let size: Int
    public init(size: Int) {
        self.size = size
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 64)
    }
    deinit { pointer.deallocate() }
}
