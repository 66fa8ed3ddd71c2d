#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Immutable after init, so it is safe to share across threads.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let size: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw ModelLoadError(file: path, problem: "cannot open the file (\(String(cString: strerror(errno))))",
                                 fix: "check the path; `ls -l \(path)` should show a readable file")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ModelLoadError(file: path, problem: "cannot stat the file", fix: "check the path and its permissions")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ModelLoadError(file: path, problem: "not a regular file", fix: "pass the path of a model file, not a directory")
        }
        size = Int(st.st_size)
        guard size > 0 else {
            throw ModelLoadError(file: path, problem: "the file is empty", fix: "download the model file again")
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw ModelLoadError(file: path, problem: "mmap failed (\(String(cString: strerror(errno))))",
                                 fix: "check free memory and address space limits")
        }
        base = UnsafeRawPointer(p)
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), size) }
}

/// A bounds-checked little-endian reader over a byte range, used by the header parsers.
struct ByteCursor {
    let base: UnsafeRawPointer
    let end: Int
    var offset: Int
    let file: String

    init(base: UnsafeRawPointer, size: Int, file: String) {
        self.base = base; self.end = size; self.offset = 0; self.file = file
    }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        guard n >= 0, offset <= end - n else {
            throw ModelLoadError(file: file,
                                 problem: "truncated or corrupt: \(what()) needs \(n) bytes at offset \(offset) but the file has \(end) bytes",
                                 fix: "the file is incomplete or not this format; download it again")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func readF32(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    mutating func readF64(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    mutating func readBytes(_ n: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try need(n, what())
        let b = UnsafeRawBufferPointer(start: base + offset, count: n)
        offset += n
        return b
    }
}
