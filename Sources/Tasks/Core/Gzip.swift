import CZlib
import Foundation

/// Reads gzip (RFC 1952) data with the system zlib (Debian `zlib1g-dev`; Foundation has no gzip on
/// Linux). Every member of a multi-member file is decompressed, in order; zero bytes after the last
/// member (tar-style padding) are ignored. Data files only: the whole input and output are in memory.
public enum Gzip {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// The data does not start with gzip's magic bytes.
        case notGzip
        /// The data ends inside a member (header, compressed data or trailer).
        case truncated
        /// zlib rejected the data; `String` is zlib's reason (e.g. "incorrect data check" for a CRC-32 mismatch).
        case corrupt(String)
        /// Non-zero bytes after a complete member that are not another gzip member.
        case trailingGarbage(offset: Int)
        /// zlib itself failed (out of memory, version mismatch): a machine problem, not the file's.
        case zlib(code: Int32, message: String)

        public var description: String {
            switch self {
            case .notGzip: return "not a gzip stream (it does not start with the gzip magic bytes 1f 8b)"
            case .truncated: return "truncated gzip stream (the data ends before the stream does)"
            case .corrupt(let why): return "corrupt gzip data (zlib: \(why))"
            case .trailingGarbage(let offset): return "bytes at offset \(offset), after a complete gzip member, are not another gzip member"
            case .zlib(let code, let message): return "zlib failed (code \(code)): \(message)"
            }
        }
    }

    /// Decompresses every member of a gzip file.
    public static func decompress(_ data: Data) throws -> Data {
        let input = [UInt8](data)
        guard input.count >= 2, input[0] == 0x1f, input[1] == 0x8b else {
            // An empty file, or one cut after the first magic byte, is a truncated gzip file.
            throw input.isEmpty || input == [0x1f] ? Failure.truncated : Failure.notGzip
        }
        var stream = z_stream()
        let initStatus = inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard initStatus == Z_OK else { throw Failure.zlib(code: initStatus, message: message(of: stream, status: initStatus)) }
        defer { inflateEnd(&stream) }

        var output = Data()
        let chunk = 1 << 16
        var buffer = [UInt8](repeating: 0, count: chunk)
        try input.withUnsafeBufferPointer { inBuf in
            let base = UnsafeMutablePointer(mutating: inBuf.baseAddress!)
            // zlib counts input in 32-bit `uInt`s: feed at most that much at a time.
            func feed(from offset: Int) {
                stream.next_in = base + offset
                stream.avail_in = UInt32(min(inBuf.count - offset, Int(UInt32.max)))
            }
            feed(from: 0)
            try buffer.withUnsafeMutableBufferPointer { outBuf in
                while true {
                    if stream.avail_in == 0 { feed(from: stream.next_in - base) }
                    stream.next_out = outBuf.baseAddress
                    stream.avail_out = UInt32(chunk)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    output.append(outBuf.baseAddress!, count: chunk - Int(stream.avail_out))
                    switch status {
                    case Z_OK:
                        continue
                    case Z_STREAM_END:
                        // One member done: skip zero padding, then either the end or another member.
                        var offset = stream.next_in - base
                        while offset < inBuf.count && inBuf[offset] == 0 { offset += 1 }
                        if offset == inBuf.count { return }
                        guard inBuf[offset] == 0x1f, offset + 1 == inBuf.count || inBuf[offset + 1] == 0x8b else {
                            throw Failure.trailingGarbage(offset: offset)
                        }
                        let reset = inflateReset(&stream)
                        guard reset == Z_OK else { throw Failure.zlib(code: reset, message: message(of: stream, status: reset)) }
                        feed(from: offset)
                    case Z_BUF_ERROR:
                        // No progress with fresh output space: zlib wants input that is not there.
                        if stream.next_in - base == inBuf.count { throw Failure.truncated }
                    case Z_DATA_ERROR, Z_NEED_DICT:
                        throw Failure.corrupt(message(of: stream, status: status))
                    default:
                        throw Failure.zlib(code: status, message: message(of: stream, status: status))
                    }
                }
            }
        }
        return output
    }

    private static func message(of stream: z_stream, status: Int32) -> String {
        if let msg = stream.msg { return String(cString: msg) }
        if let text = zError(status) { return String(cString: text) }
        return "status \(status)"
    }
}
