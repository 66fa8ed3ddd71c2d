import Foundation

/// A worker's decoded results that the coordinator has not acknowledged yet, kept on disk (§4.4,
/// T7/T8): a result is written here — one file per result, flushed with fsync, then renamed into
/// place and the directory flushed — before it is sent, and removed when its ACK arrives. A worker
/// restarted with the same id finds the files and sends them again, so a worker killed after
/// decoding loses nothing.
///
/// Files are `<hash>.result` (JSON: the run id and the `ResultMessage`). A file that cannot be read
/// back (a crash in the middle of a write leaves only a `.tmp`, which is ignored) is renamed
/// `<name>.corrupt` and reported, never silently dropped.
public final class ResultSpool {
    public struct Entry: Codable, Sendable, Equatable {
        public var runId: String
        public var configHash: String
        public var message: ResultMessage
    }

    public let directory: URL
    private var files: [String: Entry] = [:]

    /// Opens (creating, mode 0700) the spool directory and reads what an earlier process left.
    /// `log` hears about unreadable files.
    public init(directory: URL, log: (String) -> Void = { _ in }) throws {
        self.directory = directory
        let fm = FileManager.default
        do {
            try fm.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw SpoolError("cannot create the result spool \(directory.path): \(error.localizedDescription) (choose another with --spool-dir)")
        }
        guard access(directory.path, W_OK) == 0 else {
            throw SpoolError("the result spool \(directory.path) is not writable (fix its permissions or choose another with --spool-dir)")
        }
        let names = (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names.sorted() {
            let url = directory.appendingPathComponent(name)
            if name.hasSuffix(".tmp") { try? fm.removeItem(at: url); continue }
            guard name.hasSuffix(".result") else { continue }
            if let data = try? Data(contentsOf: url), let e = try? JSONDecoder().decode(Entry.self, from: data) {
                files[name] = e
            } else {
                try? fm.moveItem(at: url, to: url.appendingPathExtension("corrupt"))
                log("result spool: \(url.path) is unreadable; kept as \(name).corrupt")
            }
        }
    }

    /// Results waiting for an ACK, of every run.
    public var entries: [Entry] { files.keys.sorted().map { files[$0]! } }

    public var count: Int { files.count }

    /// Stores one result durably (returns once it is on disk).
    public func append(runId: String, configHash: String, _ message: ResultMessage) throws {
        let name = Self.fileName(runId: runId, key: message.key)
        let entry = Entry(runId: runId, configHash: configHash, message: message)
        let data = try JSONEncoder().encode(entry)
        let tmp = directory.appendingPathComponent(name + ".tmp")
        try Self.writeSynced(data, to: tmp)
        guard rename(tmp.path, directory.appendingPathComponent(name).path) == 0 else {
            throw SpoolError("cannot rename \(tmp.path) into the result spool: \(String(cString: strerror(errno)))")
        }
        Self.syncDirectory(directory)
        files[name] = entry
    }

    /// Forgets an acknowledged result.
    public func remove(runId: String, key: ResultKey) {
        let name = Self.fileName(runId: runId, key: key)
        guard files.removeValue(forKey: name) != nil else { return }
        unlink(directory.appendingPathComponent(name).path)
    }

    static func fileName(runId: String, key: ResultKey) -> String {
        String(format: "%016llx", StableHasher.hash(runId, key.task, key.exampleId, key.method)) + ".result"
    }

    private static func writeSynced(_ data: Data, to url: URL) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SpoolError("cannot write \(url.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try data.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SpoolError("cannot write \(url.path): \(String(cString: strerror(errno))) (is the disk full?)")
                }
                off += n
            }
        }
        guard fsync(fd) == 0 else { throw SpoolError("cannot flush \(url.path): \(String(cString: strerror(errno)))") }
    }

    private static func syncDirectory(_ url: URL) {
        let fd = open(url.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}

public struct SpoolError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}
