import Foundation
import SiriusEngine

/// Little-endian byte sink shared by the writers.
public struct ByteWriter {
    public var bytes: [UInt8] = []
    public init() {}
    public mutating func int<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes += $0 }
    }
    public mutating func f32(_ v: Float) { int(v.bitPattern) }
    public mutating func f64(_ v: Double) { int(v.bitPattern) }
    public mutating func string(_ s: String) {
        let u = Array(s.utf8)
        int(UInt64(u.count))
        bytes += u
    }
    public mutating func pad(to alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }
}

/// Writes GGUF files (formats.md §1): any version number, metadata of every value type (arrays nest),
/// `general.alignment` padding, and tensors of any ggml type id with caller-supplied bytes.
public struct GGUFWriter {
    public indirect enum Value {
        case u8(UInt8), i8(Int8), u16(UInt16), i16(Int16), u32(UInt32), i32(Int32), f32(Float), bool(Bool)
        case string(String)
        /// Element type id (0...12) and elements (each must be of that type).
        case array(UInt32, [Value])
        case u64(UInt64), i64(Int64), f64(Double)
        /// A raw type id followed by raw bytes (to write invalid files).
        case raw(UInt32, [UInt8])

        public var typeID: UInt32 {
            switch self {
            case .u8: 0; case .i8: 1; case .u16: 2; case .i16: 3; case .u32: 4; case .i32: 5; case .f32: 6
            case .bool: 7; case .string: 8; case .array: 9; case .u64: 10; case .i64: 11; case .f64: 12
            case .raw(let t, _): t
            }
        }

        public static func strings(_ a: [String]) -> Value { .array(8, a.map { .string($0) }) }
        public static func floats(_ a: [Float]) -> Value { .array(6, a.map { .f32($0) }) }
        public static func int32s(_ a: [Int32]) -> Value { .array(5, a.map { .i32($0) }) }
    }

    public struct Tensor {
        public var name: String
        /// ggml order: dims[0] is the row length.
        public var dims: [Int]
        public var type: UInt32
        public var data: [UInt8]
        /// Overrides the offset written in the tensor table (to write invalid files).
        public var offsetOverride: UInt64?
        public init(name: String, dims: [Int], type: UInt32, data: [UInt8], offsetOverride: UInt64? = nil) {
            self.name = name; self.dims = dims; self.type = type; self.data = data; self.offsetOverride = offsetOverride
        }
    }

    public var version: UInt32 = 3
    public var magic: UInt32 = 0x4655_4747
    /// Alignment of the tensor data; written as `general.alignment` (u32) unless nil (then 32, unwritten).
    public var alignment: Int?
    public var metadata: [(String, Value)] = []
    public var tensors: [Tensor] = []

    public init() {}

    public mutating func set(_ key: String, _ value: Value) {
        metadata.removeAll { $0.0 == key }
        metadata.append((key, value))
    }
    public mutating func remove(_ key: String) { metadata.removeAll { $0.0 == key } }

    public mutating func add(_ name: String, dims: [Int], type: GGMLType, data: [UInt8]) {
        tensors.append(Tensor(name: name, dims: dims, type: type.rawValue, data: data))
    }

    /// A float tensor stored as `type` (quantised with `RefQuant`); `shape` is PyTorch order `[rows, cols]`
    /// or `[n]`.
    public mutating func add(_ name: String, floats: [Float], shape: [Int], type: GGMLType) {
        let cols = shape.last!, rows = shape.count == 1 ? 1 : shape[0]
        add(name, dims: shape.reversed(), type: type, data: RefQuant.quantize(floats, rows: rows, cols: cols, as: type))
    }

    /// Where each section starts in `bytes()` (for tests that cut a file at chosen points).
    public struct Layout { public var metadataStart = 0, tensorTableStart = 0, dataStart = 0, end = 0 }

    public func bytes() -> [UInt8] { build().0 }
    public func layout() -> Layout { build().1 }

    func build() -> ([UInt8], Layout) {
        var w = ByteWriter()
        var layout = Layout()
        var meta = metadata
        if let a = alignment, !meta.contains(where: { $0.0 == "general.alignment" }) {
            meta.insert(("general.alignment", .u32(UInt32(a))), at: 0)
        }
        let align = alignment ?? 32
        w.int(magic)
        w.int(version)
        w.int(UInt64(tensors.count))
        w.int(UInt64(meta.count))
        layout.metadataStart = w.bytes.count
        for (k, v) in meta {
            w.string(k)
            w.int(v.typeID)
            Self.write(v, &w)
        }
        layout.tensorTableStart = w.bytes.count
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += t.data.count
            offset = (offset + align - 1) / align * align
        }
        for (t, off) in zip(tensors, offsets) {
            w.string(t.name)
            w.int(UInt32(t.dims.count))
            for d in t.dims { w.int(UInt64(d)) }
            w.int(t.type)
            w.int(t.offsetOverride ?? UInt64(off))
        }
        w.pad(to: align)
        layout.dataStart = w.bytes.count
        for t in tensors {
            w.bytes += t.data
            w.pad(to: align)
        }
        layout.end = w.bytes.count
        return (w.bytes, layout)
    }

    static func write(_ v: Value, _ w: inout ByteWriter) {
        switch v {
        case .u8(let x): w.int(x)
        case .i8(let x): w.int(x)
        case .u16(let x): w.int(x)
        case .i16(let x): w.int(x)
        case .u32(let x): w.int(x)
        case .i32(let x): w.int(x)
        case .f32(let x): w.f32(x)
        case .bool(let x): w.int(UInt8(x ? 1 : 0))
        case .string(let s): w.string(s)
        case .array(let et, let items):
            w.int(et)
            w.int(UInt64(items.count))
            for i in items {
                precondition(i.typeID == et, "array element of type \(i.typeID) in an array of \(et)")
                write(i, &w)
            }
        case .u64(let x): w.int(x)
        case .i64(let x): w.int(x)
        case .f64(let x): w.f64(x)
        case .raw(_, let b): w.bytes += b
        }
    }

    public func write(to path: String) throws {
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
    }
}

/// Writes a safetensors file (formats.md §2): u64 header length, JSON header padded with spaces to a
/// multiple of 8, then the tensor bytes in order.
public struct SafetensorsWriter {
    public struct Tensor {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var data: [UInt8]
    }
    public var tensors: [Tensor] = []
    public var metadata: [String: String] = ["format": "pt"]

    public init() {}

    public mutating func add(_ name: String, dtype: String, shape: [Int], data: [UInt8]) {
        tensors.append(Tensor(name: name, dtype: dtype, shape: shape, data: data))
    }

    /// A float tensor as F32, F16 or BF16 (`shape` in PyTorch order).
    public mutating func add(_ name: String, floats: [Float], shape: [Int], dtype: String) {
        let type: GGMLType = switch dtype {
        case "F32": .f32
        case "F16": .f16
        case "BF16": .bf16
        default: preconditionFailure("dtype \(dtype)")
        }
        add(name, dtype: dtype, shape: shape, data: RefQuant.quantize(floats, rows: 1, cols: floats.count, as: type))
    }

    public func headerJSON() -> String {
        var entries: [String] = []
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
            entries.append("\"__metadata__\":{\(m)}")
        }
        var off = 0
        for t in tensors {
            entries.append("\"\(t.name)\":{\"dtype\":\"\(t.dtype)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(off),\(off + t.data.count)]}")
            off += t.data.count
        }
        return "{" + entries.joined(separator: ",") + "}"
    }

    public func bytes() -> [UInt8] { Self.file(header: headerJSON(), data: tensors.flatMap(\.data)) }

    /// A safetensors file with a given header text (padded with spaces) and data bytes.
    public static func file(header: String, data: [UInt8]) -> [UInt8] {
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var w = ByteWriter()
        w.int(UInt64(h.count))
        w.bytes += h
        w.bytes += data
        return w.bytes
    }

    public func write(to path: String) throws {
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
    }
}

/// A fresh directory under the system temporary directory, removed by `remove()`.
public struct TempDir: Sendable {
    public let path: String
    public init(_ tag: String = "sirius-test") throws {
        path = NSTemporaryDirectory() + "/\(tag)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    public func file(_ name: String) -> String { path + "/" + name }
    public func write(_ bytes: [UInt8], to name: String) throws -> String {
        let p = file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }
    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}
