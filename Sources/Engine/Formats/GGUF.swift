/// A metadata value of a GGUF file (formats.md §1).
public enum GGUFValue: Sendable, Equatable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    public var intValue: Int? {
        switch self {
        case .uint(let v): v <= UInt64(Int.max) ? Int(v) : nil
        case .int(let v): Int(v)
        default: nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .float(let v): v
        case .uint(let v): Double(v)
        case .int(let v): Double(v)
        default: nil
        }
    }
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var boolValue: Bool? {
        switch self {
        case .bool(let b): b
        case .uint(let v): v != 0
        case .int(let v): v != 0
        default: nil
        }
    }
    public var arrayValue: [GGUFValue]? { if case .array(let a) = self { a } else { nil } }
}

/// One tensor's header entry and where its bytes lie in the mapped file.
public struct GGUFTensorInfo: Sendable {
    public var name: String
    /// ggml order: `dims[0]` is the innermost, contiguous dimension (the row length).
    public var dims: [Int]
    public var type: GGMLType
    /// Absolute byte offset in the file.
    public var fileOffset: Int
    public var byteCount: Int
    public var elementCount: Int { dims.reduce(1, *) }
}

/// A memory-mapped GGUF file (versions 2 and 3): metadata, tensor table, tensor bytes in place.
public final class GGUFFile: @unchecked Sendable {
    public let file: MappedFile
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    public let tensors: [String: GGUFTensorInfo]
    /// Tensor names in file order.
    public let tensorOrder: [String]
    public let alignment: Int
    public let dataOffset: Int

    public var path: String { file.path }

    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let path = file.path
        var c = ByteCursor(base: file.base, size: file.size, file: path)
        let magic = try c.read(UInt32.self, "the magic number")
        guard magic == 0x4655_4747 else {
            throw ModelLoadError(file: path, problem: "not a GGUF file (magic 0x\(String(magic, radix: 16)), expected 0x46554747 'GGUF')",
                                 fix: "pass a .gguf model file, or a directory with config.json and *.safetensors")
        }
        version = try c.read(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            throw ModelLoadError(file: path, problem: "GGUF version \(version) is not supported (only 2 and 3)",
                                 fix: "convert the model with a current llama.cpp convert_hf_to_gguf.py")
        }
        let nTensors = try c.read(UInt64.self, "the tensor count")
        let nKV = try c.read(UInt64.self, "the metadata count")
        // Every entry takes at least 8+4 bytes; a count larger than the file allows is corruption.
        guard nKV < UInt64(file.size / 12 + 1), nTensors < UInt64(file.size / 16 + 1) else {
            throw ModelLoadError(file: path, problem: "corrupt header: \(nKV) metadata entries and \(nTensors) tensors cannot fit in \(file.size) bytes",
                                 fix: "download the file again")
        }
        var meta: [String: GGUFValue] = [:]
        meta.reserveCapacity(Int(nKV))
        for i in 0..<Int(nKV) {
            let key = try Self.readString(&c, "metadata key #\(i)")
            let type = try c.read(UInt32.self, "the type of metadata '\(key)'")
            meta[key] = try Self.readValue(&c, type: type, key: key, depth: 0)
        }
        metadata = meta
        let align = meta["general.alignment"]?.intValue ?? 32
        guard align > 0, align % 8 == 0 else {
            throw ModelLoadError(file: path, problem: "general.alignment = \(align) is not a positive multiple of 8", fix: "fix or regenerate the file")
        }
        alignment = align
        var infos: [(String, [Int], UInt32, UInt64)] = []
        infos.reserveCapacity(Int(nTensors))
        for i in 0..<Int(nTensors) {
            let name = try Self.readString(&c, "tensor name #\(i)")
            let nd = try c.read(UInt32.self, "dimension count of tensor '\(name)'")
            guard nd >= 1, nd <= 4 else {
                throw ModelLoadError(file: path, problem: "tensor '\(name)' has \(nd) dimensions (1 to 4 allowed)", fix: "the file is corrupt; download it again")
            }
            var dims: [Int] = []
            for d in 0..<Int(nd) {
                let v = try c.read(UInt64.self, "dimension \(d) of tensor '\(name)'")
                guard v > 0, v < (1 << 40) else {
                    throw ModelLoadError(file: path, problem: "tensor '\(name)' has dimension \(d) = \(v)", fix: "the file is corrupt; download it again")
                }
                dims.append(Int(v))
            }
            let t = try c.read(UInt32.self, "type of tensor '\(name)'")
            let off = try c.read(UInt64.self, "offset of tensor '\(name)'")
            infos.append((name, dims, t, off))
        }
        let headerEnd = c.offset
        dataOffset = (headerEnd + align - 1) / align * align
        var table: [String: GGUFTensorInfo] = [:]
        var order: [String] = []
        for (name, dims, t, off) in infos {
            guard let type = GGMLType(rawValue: t) else {
                throw ModelLoadError(file: path, problem: "tensor '\(name)' has ggml type \(t), which this engine does not know",
                                     fix: "use a file quantised to one of \(GGMLType.supportedNames)")
            }
            guard let g = type.blockGeometry else {
                throw ModelLoadError(file: path, problem: "tensor '\(name)' has ggml type \(type) (\(t)), which this engine cannot read",
                                     fix: "use a file quantised to one of \(GGMLType.supportedNames)")
            }
            guard dims[0] % g.elements == 0 else {
                throw ModelLoadError(file: path, problem: "tensor '\(name)' of type \(type) has rows of \(dims[0]) elements, not a multiple of its block size \(g.elements)",
                                     fix: "the file is corrupt; download it again")
            }
            // Element and byte counts of a corrupt table can overflow: check them instead of trapping.
            var n = 1
            for d in dims {
                let (p, o) = n.multipliedReportingOverflow(by: d)
                guard !o else {
                    throw ModelLoadError(file: path, problem: "corrupt: tensor '\(name)' has dimensions \(dims), too many elements", fix: "the file is corrupt; download it again")
                }
                n = p
            }
            let (bytes, o) = (n / g.elements).multipliedReportingOverflow(by: g.bytes)
            guard !o, bytes <= file.size else {
                throw ModelLoadError(file: path, problem: "corrupt or truncated: tensor '\(name)' (\(type) \(dims)) needs more bytes than the file's \(file.size)",
                                     fix: "the file is corrupt or incomplete; download it again")
            }
            guard off % UInt64(align) == 0 else {
                throw ModelLoadError(file: path, problem: "tensor '\(name)' offset \(off) is not a multiple of the alignment \(align)", fix: "the file is corrupt; download it again")
            }
            guard off < UInt64(file.size), dataOffset + Int(off) + bytes <= file.size else {
                throw ModelLoadError(file: path, problem: "truncated: tensor '\(name)' needs \(bytes) bytes at data offset \(off) but the file has \(file.size) bytes",
                                     fix: "the download is incomplete; fetch the file again")
            }
            let abs = dataOffset + Int(off)
            guard table[name] == nil else {
                throw ModelLoadError(file: path, problem: "tensor '\(name)' appears twice", fix: "the file is corrupt; regenerate it")
            }
            table[name] = GGUFTensorInfo(name: name, dims: dims, type: type, fileOffset: abs, byteCount: bytes)
            order.append(name)
        }
        tensors = table
        tensorOrder = order
    }

    public func data(of t: GGUFTensorInfo) -> UnsafeRawPointer { file.base + t.fileOffset }

    static func readString(_ c: inout ByteCursor, _ what: @autoclosure () -> String) throws -> String {
        let n = try c.read(UInt64.self, "the length of \(what())")
        guard n <= UInt64(c.end) else {
            throw ModelLoadError(file: c.file, problem: "corrupt: \(what()) claims \(n) bytes", fix: "the file is corrupt; download it again")
        }
        let b = try c.readBytes(Int(n), what())
        return String(decoding: b, as: UTF8.self)
    }

    static func readValue(_ c: inout ByteCursor, type: UInt32, key: String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint(UInt64(try c.read(UInt8.self, key)))
        case 1: return .int(Int64(try c.read(Int8.self, key)))
        case 2: return .uint(UInt64(try c.read(UInt16.self, key)))
        case 3: return .int(Int64(try c.read(Int16.self, key)))
        case 4: return .uint(UInt64(try c.read(UInt32.self, key)))
        case 5: return .int(Int64(try c.read(Int32.self, key)))
        case 6: return .float(Double(try c.readF32(key)))
        case 7:
            let b = try c.read(UInt8.self, key)
            guard b <= 1 else {
                throw ModelLoadError(file: c.file, problem: "metadata '\(key)' is a bool with byte value \(b)", fix: "the file is corrupt; regenerate it")
            }
            return .bool(b == 1)
        case 8: return .string(try readString(&c, "metadata '\(key)'"))
        case 9:
            guard depth < 8 else {
                throw ModelLoadError(file: c.file, problem: "metadata '\(key)' nests arrays too deeply", fix: "the file is corrupt; regenerate it")
            }
            let et = try c.read(UInt32.self, "element type of '\(key)'")
            let n = try c.read(UInt64.self, "element count of '\(key)'")
            guard n <= UInt64(c.end - c.offset) else {
                throw ModelLoadError(file: c.file, problem: "truncated or corrupt: metadata array '\(key)' claims \(n) elements", fix: "download the file again")
            }
            var out: [GGUFValue] = []
            out.reserveCapacity(Int(n))
            for _ in 0..<Int(n) { out.append(try readValue(&c, type: et, key: key, depth: depth + 1)) }
            return .array(out)
        case 10: return .uint(try c.read(UInt64.self, key))
        case 11: return .int(try c.read(Int64.self, key))
        case 12: return .float(try c.readF64(key))
        default:
            throw ModelLoadError(file: c.file, problem: "metadata '\(key)' has unknown value type \(type)", fix: "the file is corrupt or from a newer GGUF version")
        }
    }
}
