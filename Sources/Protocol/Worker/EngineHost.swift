import Foundation

/// Owns the engine on a dedicated thread, so that a long `prepare` or decode never delays the
/// I/O thread's heartbeats (§3b "heartbeat false positives", T19).
final class EngineHost: @unchecked Sendable {
    struct Job: Sendable {
        var leaseId: Int64
        var attempt: Int
        var model: String
        var request: ExampleRequest
    }

    enum Output: Sendable {
        case done(Job, ExampleOutcome, engine: String, device: String)
        case failed(Job, FailureClass, String)
        case skipped(Job)
        /// The engine could not be created or prepared for this run: the worker leaves.
        case fatal(String)
        /// `SimulatedCrash`: the worker must die like a killed process.
        case crashed(String)
    }

    let jobs = BlockingQueue<Job>()
    let outputs = BlockingQueue<Output>()
    private let cancelled = Locked<Set<Int64>>([])
    private let paused = Locked(false)
    private let stopping = Locked(false)
    private let busy = Locked(false)
    let state = Locked<WorkerState>(.loading)
    private let finished = BlockingQueue<Bool>()

    func start(factory: @escaping EngineFactory, waker: any Waker) {
        let t = Thread { [self] in
            self.loop(factory: factory, waker: waker)
            self.finished.push(true)
        }
        t.name = "sirius-engine"
        t.stackSize = 8 << 20
        t.start()
    }

    func cancel(lease: Int64) { cancelled.withLock { _ = $0.insert(lease) } }
    func setPaused(_ p: Bool) { paused.withLock { $0 = p } }
    /// Stops after the example in progress; queued jobs are reported as skipped.
    func stop() { stopping.withLock { $0 = true }; jobs.wake() }
    /// True when no example is being decoded and none is queued.
    var isIdle: Bool { !busy.current && jobs.count == 0 }
    func waitFinished(timeoutMs: Int) -> Bool { finished.pop(timeoutMs: timeoutMs) != nil }

    private func loop(factory: EngineFactory, waker: any Waker) {
        let engine: any EvaluationEngine
        do {
            engine = try factory()
        } catch {
            outputs.push(.fatal("engine could not be created: \(error)"))
            waker.wake()
            return
        }
        state.withLock { $0 = .idle }
        var prepared: (String, MethodSpec)? = nil
        while !stopping.current {
            guard let job = jobs.pop(timeoutMs: 200) else { continue }
            busy.withLock { $0 = true }
            defer { busy.withLock { $0 = false } }
            while paused.current && !stopping.current && !cancelled.current.contains(job.leaseId) {
                Thread.sleep(forTimeInterval: 0.01)
            }
            if stopping.current || cancelled.current.contains(job.leaseId) {
                outputs.push(.skipped(job)); waker.wake(); continue
            }
            do {
                if prepared == nil || prepared!.0 != job.model || prepared!.1 != job.request.method {
                    state.withLock { $0 = .loading }
                    try engine.prepare(model: job.model, method: job.request.method)
                    prepared = (job.model, job.request.method)
                }
                state.withLock { $0 = .running }
                let outcome = try engine.run(job.request)
                outputs.push(.done(job, outcome, engine: engine.name, device: engine.device))
            } catch let e as EngineFailure where e.errorClass == .fatalConfig {
                outputs.push(.fatal(e.message))
                waker.wake()
                return
            } catch let e as EngineFailure {
                outputs.push(.failed(job, e.errorClass, e.message))
            } catch let e as SimulatedCrash {
                outputs.push(.crashed("simulated crash on \(e.exampleId)"))
                waker.wake()
                return
            } catch {
                outputs.push(.failed(job, .engineError, String(describing: error)))
            }
            state.withLock { $0 = .idle }
            waker.wake()
        }
        for job in jobs.drain() { outputs.push(.skipped(job)) }
        waker.wake()
    }
}
