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
        #expect(r.wallSeconds >= 1 && r.wallSeconds < 2.5, "\(r.wallSeconds)")
    }

    @Test func aSleepingProgramTimesOut() {
        let quick = PythonSandbox(timeLimit: 1)
        let r = quick.run("import time\ntime.sleep(60)\n")
        #expect(r.outcome == .timedOut)
        #expect(r.wallSeconds < 2.5)
    }

    @Test func unboundedAllocationFails() {
        // Growing without bound: MemoryError at the address-space limit, or the time limit on a
        // slow machine (page faults are expensive in some containers); a failure either way.
        let r = sandbox.run("x = []\nwhile True:\n    x.append(bytearray(10 << 20))\n")
        #expect(!r.passed)
        #expect(r.outcome == .failed || r.outcome == .timedOut, "\(r.summary)")
        #expect(r.wallSeconds < 4.5)
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

    /// With the Python guard off, a program can start a grandchild; the process-group kill must
    /// still take it down.
    @Test func grandchildrenDieWithTheProgram() throws {
        var c = PythonSandbox.Configuration()
        c.timeLimit = 1.5
        c.disableDestructiveFunctions = false
        let program = """
        import subprocess, sys, time
        p = subprocess.Popen(['sleep', '300'])
        print(p.pid, flush=True)
        time.sleep(300)
        """
        let r = PythonSandbox(configuration: c).run(program)
        #expect(r.outcome == .timedOut)
        let pid = try #require(pid_t(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        // Gone, or at most a zombie waiting for its new parent to reap it.
        var alive = false
        for _ in 0..<20 {
            alive = processIsRunning(pid)
            if !alive { break }
            usleep(50_000)
        }
        #expect(!alive, "grandchild \(pid) still running")
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
