import Foundation
import Testing
@testable import SiriusTasks

#if canImport(Glibc)
import Glibc
#endif

/// These run a real `python3` (the project's CI installs it).
@Suite(.serialized) struct SandboxTests {
    let sandbox = PythonSandbox(timeLimit: 3)

    @Test func aPassingProgram() {
        let r = sandbox.run("def f(x):\n    return x * 2\nassert f(2) == 4\nprint('hello')\n")
        #expect(r.outcome == .passed, "\(r.summary) \(r.stderr)")
        #expect(r.stdout == "hello\n")
        #expect(r.passed)
    }

    @Test func aFailedAssertion() {
        let r = sandbox.run("assert 1 == 2, 'nope'\n")
        #expect(r.outcome == .failed)
        #expect(r.summary == "failed: AssertionError: nope")
    }

    @Test func aSyntaxError() {
        let r = sandbox.run("def f(:\n")
        #expect(r.outcome == .failed)
        #expect(r.summary.contains("SyntaxError"))
    }

    @Test func anInfiniteLoopTimesOutAndIsKilled() {
        let quick = PythonSandbox(timeLimit: 1)
        let r = quick.run("while True:\n    pass\n")
        #expect(r.outcome == .timedOut)
        #expect(!r.passed)
        // Killed at the limit, not at the program's end (never): the bound is loose so that a loaded
        // machine's slow process start cannot fail it.
        #expect(r.wallSeconds >= 1 && r.wallSeconds < 20, "\(r.wallSeconds)")
    }

    @Test func aSleepingProgramTimesOut() {
        let quick = PythonSandbox(timeLimit: 1)
        let r = quick.run("import time\ntime.sleep(60)\n")
        #expect(r.outcome == .timedOut)
        #expect(r.wallSeconds >= 1 && r.wallSeconds < 20, "killed at the limit, long before the 60 s sleep ends: \(r.wallSeconds)")
    }

    @Test func unboundedAllocationFails() {
        // Growing without bound: MemoryError at the address-space limit, or the time limit on a
        // slow machine (page faults are expensive in some containers); a failure either way.
        let r = sandbox.run("x = []\nwhile True:\n    x.append(bytearray(10 << 20))\n")
        #expect(!r.passed)
        #expect(r.outcome == .failed || r.outcome == .timedOut, "\(r.summary)")
        #expect(r.wallSeconds < 20, "ended by the limits: \(r.wallSeconds)")
        // One allocation beyond the limit fails at once.
        let big = sandbox.run("x = bytearray(2 << 30)\n")
        #expect(big.outcome == .failed)
        #expect(big.summary.contains("MemoryError"), "\(big.summary)")
    }

    @Test func osExitZeroIsAFailure() {
        let r = sandbox.run("import os\nos._exit(0)\n")
        #expect(r.outcome == .exitedEarly)
        #expect(!r.passed)
        let partial = sandbox.run("print('half')\nimport os\nos._exit(0)\nassert False\n")
        #expect(!partial.passed)
    }

    @Test func sysExitIsAFailure() {
        #expect(!sandbox.run("import sys\nsys.exit(0)\n").passed)
        #expect(!sandbox.run("exit()\n").passed)
    }

    @Test func printingTheMarkerShapeDoesNotPass() {
        // The success marker is a per-run nonce the program never sees.
        let r = sandbox.run("import os\nprint('\\n' + 'A' * 72)\nos._exit(0)\n")
        #expect(!r.passed)
    }

    @Test func forkAndDestructiveCallsAreDisabled() {
        #expect(!sandbox.run("import os\nos.fork()\n").passed)
        #expect(!sandbox.run("import subprocess\nsubprocess.run(['true'])\n").passed)
        #expect(!sandbox.run("import os\nos.system('true')\n").passed)
        #expect(!sandbox.run("import shutil\nshutil.rmtree('/nonexistent')\n").passed)
        #expect(!sandbox.run("import os\nos.kill(1, 9)\n").passed)
    }

    @Test func aCrashIsAFailure() {
        let r = sandbox.run("import ctypes\nctypes.string_at(0)\n")
        #expect(r.outcome == .signalled)
        #expect(!r.passed)
    }

    @Test func floodingOutputIsBounded() {
        var c = PythonSandbox.Configuration()
        c.fileSizeLimit = 1 << 20
        c.timeLimit = 3
        let r = PythonSandbox(configuration: c).run("while True:\n    print('x' * 1000)\n")
        #expect(!r.passed)
        #expect(r.stdout.utf8.count <= c.outputCapture)
    }

    @Test func environmentHasNoInheritedSecrets() {
        setenv("SIRIUS_TEST_SECRET", "hunter2", 1)
        defer { unsetenv("SIRIUS_TEST_SECRET") }
        let r = sandbox.run("import os\nassert 'SIRIUS_TEST_SECRET' not in os.environ, 'leak'\nprint(sorted(os.environ))\nassert os.environ['HOME'] == os.getcwd()\n")
        #expect(r.passed, "\(r.summary)")
    }

    @Test func theWorkingDirectoryIsFreshAndRemoved() throws {
        let r = sandbox.run("import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))\nopen('junk.txt', 'w').write('x')\n")
        #expect(r.passed)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let cwd = try #require(lines.first)
        #expect(lines.count >= 2)
        #expect(!FileManager.default.fileExists(atPath: cwd))
        let second = sandbox.run("import os\nprint(os.getcwd())\n")
        #expect(second.stdout.trimmingCharacters(in: .whitespacesAndNewlines) != cwd)
    }

    /// With the Python guard off, a program can start a grandchild; the kill at the time limit
    /// must still take it down (the grandchild is found by its unique argument: inside the PID
    /// namespace its pid means nothing out here).
    @Test func grandchildrenDieWithTheProgram() throws {
        var c = PythonSandbox.Configuration()
        c.timeLimit = 1.5
        c.disableDestructiveFunctions = false
        let marker = "\(300 + Int.random(in: 0..<1000)).\(Int.random(in: 100..<999))"
        let program = """
        import subprocess, sys, time
        p = subprocess.Popen(['sleep', '\(marker)'])
        time.sleep(300)
        """
        let r = PythonSandbox(configuration: c).run(program)
        #expect(r.outcome == .timedOut)
        #expect(waitUntilGone(marker), "a `sleep \(marker)` is still running")
    }

    // MARK: Isolation (bubblewrap): each attack is tried with the Python guard off, so that only
    // the namespaces stand in its way; each program passes only if its attack worked.

    /// The guard off: what bubblewrap alone contains.
    static let unguarded: PythonSandbox = {
        var c = PythonSandbox.Configuration()
        c.disableDestructiveFunctions = false
        c.timeLimit = 3
        return PythonSandbox(configuration: c)
    }()

    @Test func bubblewrapIsAvailableForTheseTests() {
        // No silent pass: without bubblewrap every isolation test below would fail for that reason.
        #expect(Self.unguarded.isolationProblem() == nil, "\(Self.unguarded.isolationProblem()?.description ?? "")")
    }

    @Test func writingOutsideTheWorkDirectoryLeavesNothingOnTheMachine() throws {
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-escape-\(UUID().uuidString)")
        let r = Self.unguarded.run("""
        import os
        try:
            open('\(outside.path)', 'w').write('escaped')
        except OSError:
            pass
        for p in ('/usr/sirius-escape', '/etc/sirius-escape', '/sirius-escape'):
            try:
                open(p, 'w').write('escaped')
                print('wrote', p)
                break
            except OSError:
                pass
        else:
            raise SystemExit('nothing outside the work directory was writable')
        """)
        #expect(!r.passed, "\(r.stdout)")
        #expect(!FileManager.default.fileExists(atPath: outside.path))
        for p in ["/usr/sirius-escape", "/etc/sirius-escape", "/sirius-escape"] {
            #expect(!FileManager.default.fileExists(atPath: p), "\(p)")
        }
    }

    @Test func theMachinesFilesAreNotReadable() throws {
        // Secrets in a temporary directory and in the home directory, this package's own files, and
        // the system's account files: none may be read.
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("sirius-secret-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: false)
        defer { try? fm.removeItem(at: dir) }
        let secret = dir.appendingPathComponent("secret.txt")
        try Data("hunter2".utf8).write(to: secret)
        let homeSecret = fm.homeDirectoryForCurrentUser.appendingPathComponent(".sirius-secret-\(UUID().uuidString)")
        try Data("hunter2".utf8).write(to: homeSecret)
        defer { try? fm.removeItem(at: homeSecret) }
        let ownFile = fm.currentDirectoryPath + "/Package.swift"
        #expect(fm.fileExists(atPath: ownFile))
        for path in [secret.path, homeSecret.path, ownFile, "/etc/shadow", "/etc/passwd"] {
            let r = Self.unguarded.run("open('\(path)', 'rb').read()\n")
            #expect(!r.passed, "\(path) was readable")
        }
        // Listing the home directory shows at most the interpreter's installation, never the secret.
        let listing = Self.unguarded.run("""
        import os
        p = '\(fm.homeDirectoryForCurrentUser.path)'
        assert '\(homeSecret.lastPathComponent)' in (os.listdir(p) if os.path.isdir(p) else []), 'not visible'
        """)
        #expect(!listing.passed)
    }

    @Test func noNetworkNotEvenLoopback() throws {
        // A listening socket on this machine's loopback: the program must not reach it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        try #require(bound == 0 && listen(fd, 4) == 0)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let r = Self.unguarded.run("""
        import socket
        socket.create_connection(('127.0.0.1', \(port)), timeout=1).close()
        """)
        #expect(!r.passed)
        #expect(r.stderr.contains("Error"), "\(r.stderr)")
        _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        let accepted = accept(fd, nil, nil)
        if accepted >= 0 { close(accepted) }
        #expect(accepted < 0, "the sandboxed program connected to port \(port)")
        let dns = Self.unguarded.run("import socket\nsocket.getaddrinfo('pypi.org', 443)\n")
        #expect(!dns.passed)
    }

    @Test func otherProcessesCannotBeSeenOrSignalled() throws {
        let me = getpid()
        let r = Self.unguarded.run("""
        import os
        os.kill(\(me), 0)
        """)
        #expect(!r.passed, "the sandbox could signal the test process")
        let parent = Self.unguarded.run("""
        import os, signal, time
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(0.2)
        pids = [p for p in os.listdir('/proc') if p.isdigit()]
        assert len(pids) > 3, pids
        """)
        #expect(!parent.passed, "\(parent.stdout) \(parent.stderr)")
        #expect(processIsRunning(me))
    }

    @Test func aBoundedForkBombIsContainedAndLeavesNothing() throws {
        // 200 sleeping children (a bounded bomb, so the test machine stays usable), then the time
        // limit: every one of them must be gone.
        let marker = "\(400 + Int.random(in: 0..<1000)).\(Int.random(in: 100..<999))"
        var c = PythonSandbox.Configuration()
        c.disableDestructiveFunctions = false
        c.timeLimit = 2
        let r = PythonSandbox(configuration: c).run("""
        import os, time
        for _ in range(200):
            if os.fork() == 0:
                os.execvp('sleep', ['sleep', '\(marker)'])
        time.sleep(60)
        """)
        #expect(r.outcome == .timedOut, "\(r.summary)")
        #expect(waitUntilGone(marker), "`sleep \(marker)` processes outlived the sandbox")
    }

    @Test func aBackgroundProcessDoesNotOutliveTheProgram() throws {
        let marker = "\(500 + Int.random(in: 0..<1000)).\(Int.random(in: 100..<999))"
        let r = Self.unguarded.run("""
        import subprocess
        subprocess.Popen(['sleep', '\(marker)'], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        """)
        #expect(r.passed, "\(r.summary)")
        #expect(waitUntilGone(marker), "`sleep \(marker)` outlived the program")
    }

    @Test func withoutBubblewrapEveryRunIsRefusedWithTheFix() {
        var c = PythonSandbox.Configuration()
        c.bubblewrap = "/nonexistent/bwrap"
        let sandbox = PythonSandbox(configuration: c)
        let problem = sandbox.isolationProblem()
        #expect(problem?.description.contains("--unsafe-code-execution") == true)
        #expect(problem?.description.contains("apt-get install bubblewrap") == true)
        let r = sandbox.run("print('hello')\n")
        #expect(r.outcome == .error)
        #expect(r.summary.contains("not isolated"), "\(r.summary)")
        c.isolation = .none
        #expect(PythonSandbox(configuration: c).isolationProblem() == nil)
        #expect(PythonSandbox(configuration: c).run("print('hello')\n").passed)
    }

    @Test func concurrentRunsAreIndependent() {
        let results = Locked<[Int: Bool]>([:])
        DispatchQueue.concurrentPerform(iterations: 6) { i in
            let ok = sandbox.run("assert \(i) % 2 == 0\n").passed
            results.withLock { $0[i] = ok }
        }
        let got = results.withLock { $0 }
        #expect(got == [0: true, 1: false, 2: true, 3: false, 4: true, 5: false])
    }

    @Test func humanEvalScoringEndToEnd() throws {
        let task = try TestData.load(HumanEval.self)
        #expect(task.examples.count == 3)
        let context = ScoringContext(sandbox: sandbox)
        for e in task.examples {
            let s = HumanEval.score(HumanEval.canonicalCompletion(for: e), for: e, context: context)
            #expect(s.correct, "\(e.id): \(s.detail ?? "")")
        }
        let add = task.examples[0]
        #expect(HumanEval.score("\n    return a - b\n", for: add, context: context).correct == false)
        #expect(HumanEval.score("\n    return a + b\n\ndef add(a, b):\n    return 0\n", for: add, context: context).correct)
        let loop = HumanEval.score("\n    while True:\n        pass\n", for: add, context: ScoringContext(sandbox: PythonSandbox(timeLimit: 1)))
        #expect(!loop.correct)
        #expect(loop.detail?.contains("timed out") == true)
    }
}

/// Processes (not zombies) whose command line has `argument` as one of its arguments.
func processes(withArgument argument: String) -> [pid_t] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { name -> pid_t? in
        guard let pid = pid_t(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
        let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return args.contains(argument) && processIsRunning(pid) ? pid : nil
    }
}

/// Waits up to 2 s for every process with `argument` to be gone.
func waitUntilGone(_ argument: String) -> Bool {
    for _ in 0..<40 {
        if processes(withArgument: argument).isEmpty { return true }
        usleep(50_000)
    }
    return false
}

/// True when `pid` exists and is not a zombie.
func processIsRunning(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    #if os(Linux)
    if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
       let close = stat.lastIndex(of: ")") {
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }
    #endif
    return true
}
