import Foundation

/// One tensor in a safetensors file: PyTorch shape order (outermost first), bytes in place.
public struct SafetensorsTensor: @unchecked Sendable {
    public var name: String
    public var dtype: String
    public var shape: [Int]
    public var data: UnsafeRawPointer
    public var byteCount: Int
    public var file: MappedFile

    public var ggmlType: GGMLType? {
        switch dtype {
        case "F32": .f32
        case "F16": .f16
        case "BF16": .bf16
        default: nil
        }
    }
}

/// A safetensors checkpoint: a single `*.safetensors` file or a sharded set with
/// `model.safetensors.index.json` (formats.md §2).
public final class SafetensorsCheckpoint: @unchecked Sendable {
    public let tensors: [String: SafetensorsTensor]
    public let files: [MappedFile]

    /// Opens every safetensors file of `directory` (via the index when present).
    public init(directory: String) throws {
        let fm = FileManager.default
        let indexPath = directory + "/model.safetensors.index.json"
        var names: [String] = []
        if fm.fileExists(atPath: indexPath) {
            guard let data = fm.contents(atPath: indexPath),
                  let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = obj["weight_map"] as? [String: String] else {
                throw ModelLoadError(file: indexPath, problem: "not a valid index: no \"weight_map\" object of name → file",
                                     fix: "restore the index file from the model's repository")
            }
            names = Array(Set(map.values)).sorted()
        } else {
            let all = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
            names = all.filter { $0.hasSuffix(".safetensors") }.sorted()
        }
        guard !names.isEmpty else {
            throw ModelLoadError(file: directory, problem: "no *.safetensors files found",
                                 fix: "pass a directory that holds config.json and the model's safetensors files, or a .gguf file")
        }
        var table: [String: SafetensorsTensor] = [:]
        var mapped: [MappedFile] = []
        for n in names {
            let f = try MappedFile(path: directory + "/" + n)
            mapped.append(f)
            for t in try Self.parse(f) {
                guard table[t.name] == nil else {
                    throw ModelLoadError(file: f.path, problem: "tensor '\(t.name)' also appears in another shard", fix: "check the checkpoint's files")
                }
                table[t.name] = t
            }
        }
        tensors = table
        files = mapped
    }

    static func parse(_ f: MappedFile) throws -> [SafetensorsTensor] {
        var c = ByteCursor(base: f.base, size: f.size, file: f.path)
        let n = try c.read(UInt64.self, "the header length")
        guard n > 1, n <= UInt64(f.size - 8) else {
            throw ModelLoadError(file: f.path, problem: "header length \(n) does not fit in a file of \(f.size) bytes",
                                 fix: "the file is truncated or not safetensors; download it again")
        }
        let header = try c.readBytes(Int(n), "the JSON header")
        guard let obj = try? JSONSerialization.jsonObject(with: Data(header)) as? [String: Any] else {
            throw ModelLoadError(file: f.path, problem: "the header is not a JSON object", fix: "the file is corrupt; download it again")
        }
        let dataStart = 8 + Int(n)
        var out: [SafetensorsTensor] = []
        for (name, v) in obj where name != "__metadata__" {
            guard let d = v as? [String: Any], let dtype = d["dtype"] as? String,
                  let shape = d["shape"] as? [Int], let offs = d["data_offsets"] as? [Int], offs.count == 2 else {
                throw ModelLoadError(file: f.path, problem: "tensor '\(name)' lacks dtype, shape or data_offsets", fix: "the file is corrupt; download it again")
            }
            let width: Int
            switch dtype {
            case "F32", "I32", "U32": width = 4
            case "F16", "BF16", "I16", "U16": width = 2
            case "F64", "I64", "U64": width = 8
            case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2": width = 1
            default:
                throw ModelLoadError(file: f.path, problem: "tensor '\(name)' has unknown dtype \(dtype)", fix: "convert the checkpoint to F32, F16 or BF16")
            }
            // Negative or overflowing shapes are corrupt (checked so that they cannot trap).
            var count = 1
            for d in shape {
                let (p, o) = count.multipliedReportingOverflow(by: d)
                guard d >= 0, !o else {
                    throw ModelLoadError(file: f.path, problem: "tensor '\(name)' has an invalid shape \(shape)", fix: "the file is corrupt; download it again")
                }
                count = p
            }
            let (size, o) = count.multipliedReportingOverflow(by: width)
            guard !o, offs[0] >= 0, offs[1] >= offs[0], offs[1] - offs[0] == size,
                  offs[1] <= f.size - dataStart else {
                throw ModelLoadError(file: f.path,
                                     problem: "tensor '\(name)' (\(dtype) \(shape)) spans bytes \(offs) but needs \(o ? "more than \(Int.max)" : "\(size)") within a file of \(f.size) bytes",
                                     fix: "the file is truncated or corrupt; download it again")
            }
            out.append(SafetensorsTensor(name: name, dtype: dtype, shape: shape, data: f.base + dataStart + offs[0],
                                         byteCount: offs[1] - offs[0], file: f))
        }
        return out
    }
}
