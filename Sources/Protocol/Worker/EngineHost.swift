import Foundation

/// Owns the engine on a dedicated thread, so that a long `prepare` or decode never delays the
/// I/O thread's heartbeats (§3b "heartbeat false positives", T19).
final class EngineHost: @unchecked Sendable {
    struct Job: Sendable {
        var leaseId: Int64
        var attempt: Int
        var model: String
        var configHash: String = ""
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

    func cancel(lease: Int64) { cancelled.withLock { _ = $0.insert(lease) }; jobs.wake() }
    func setPaused(_ p: Bool) { paused.withLock { $0 = p } }
    /// Stops taking new examples; the ones in flight finish, queued jobs are reported as skipped.
    func stop() { stopping.withLock { $0 = true }; jobs.wake() }
    /// True when no example is being decoded and none is queued.
    var isIdle: Bool { !busy.current && jobs.count == 0 }
    /// Jobs queued and not yet started (the agent asks for more work when few are left).
    var queued: Int { jobs.count }
    func waitFinished(timeoutMs: Int) -> Bool { finished.pop(timeoutMs: timeoutMs) != nil }

    /// Keeps up to the engine's batch size of examples in flight: admits queued jobs into free slots,
    /// steps the engine, reports each example as it finishes. A timing-sample example runs alone (the
    /// engine pauses the others, see `EvaluationEngine.admit`); others join the waiting batch meanwhile,
    /// so it is full again when the sample finishes, but the next sample waits for this one.
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
        var prepared: String? = nil
        var inFlight: [Int: Job] = [:]
        var nextTag = 0
        var held: Job? = nil         // taken from the queue, waiting for the batch to drain (new model) or a sample to finish
        var sampleTag: Int? = nil    // the timing sample in flight, decoded alone while the others wait
        func report(_ o: Output) { outputs.push(o); waker.wake() }
        while true {
            let stop = stopping.current
            if let t = sampleTag, inFlight[t] == nil { sampleTag = nil }
            // Admit.
            while !stop && inFlight.count < engine.batchSize {
                guard let job = held ?? (inFlight.isEmpty ? jobs.pop(timeoutMs: 200) : jobs.popNow()) else { break }
                held = nil
                if cancelled.current.contains(job.leaseId) { report(.skipped(job)); continue }
                let sample = job.request.timingSample == true
                if (prepared != job.model || (sample && sampleTag != nil)) && !inFlight.isEmpty { held = job; break }
                do {
                    if prepared != job.model {
                        state.withLock { $0 = .loading }
                        try engine.prepare(model: job.model)
                        prepared = job.model
                    }
                    try engine.admit(job.request, tag: nextTag)
                    inFlight[nextTag] = job
                    nextTag += 1
                    if sample { sampleTag = nextTag - 1 }
                } catch let e as EngineFailure where e.errorClass == .fatalConfig {
                    report(.fatal(e.message))
                    return
                } catch let e as EngineFailure {
                    report(.failed(job, e.errorClass, e.message))
                } catch {
                    report(.failed(job, .engineError, String(describing: error)))
                }
            }
            // Examples of cancelled leases leave the batch.
            let gone = cancelled.current
            for (tag, job) in inFlight where gone.contains(job.leaseId) {
                engine.cancel(tag: tag)
                inFlight[tag] = nil
                report(.skipped(job))
            }
            if inFlight.isEmpty {
                busy.withLock { $0 = false }
                state.withLock { $0 = .idle }
                if stop { break }
                continue
            }
            if paused.current && !stop {
                Thread.sleep(forTimeInterval: 0.01)
                continue
            }
            busy.withLock { $0 = true }
            state.withLock { $0 = .running }
            do {
                for (tag, result) in try engine.step() {
                    guard let job = inFlight.removeValue(forKey: tag) else { continue }
                    switch result {
                    case .success(let outcome): report(.done(job, outcome, engine: engine.name, device: engine.device))
                    case .failure(let e) where e.errorClass == .fatalConfig: report(.fatal(e.message)); return
                    case .failure(let e): report(.failed(job, e.errorClass, e.message))
                    }
                }
            } catch let e as SimulatedCrash {
                report(.crashed("simulated crash on \(e.exampleId)"))
                return
            } catch {
                for (_, job) in inFlight { report(.failed(job, .engineError, String(describing: error))) }
                for tag in inFlight.keys { engine.cancel(tag: tag) }
                inFlight.removeAll()
            }
        }
        if let held { report(.skipped(held)) }
        for job in jobs.drain() { report(.skipped(job)) }
        busy.withLock { $0 = false }
    }
}
