import Foundation
import SiriusEngine
import SiriusMethod
import SiriusProtocol

/// The Sirius engine behind `sirius-worker join --engine sirius`: one model, one transformer and a
/// `BatchDecoder` (up to `batchSize` examples in flight, a shared-prefix KV cache), created and used on
/// the worker's engine thread only.
final class SiriusEvaluationEngine: EvaluationEngine {
    let name = "sirius"
    let device: String
    let threads: Int
    let numerics: Numerics
    let batchSize: Int
    /// Byte budget of the prefix cache (nil: no prefix cache).
    let prefixCacheBytes: Int?
    let log: (String) -> Void
    private var loaded: LoadedModel?
    private var modelPath: String?
    private var decoder: BatchDecoder?
    private var running: [Int: (seq: DecodeSequence, request: ExampleRequest)] = [:]
    /// Examples that finished without a pass (nothing to generate), returned by the next `step`.
    private var ready: [(tag: Int, result: Result<ExampleOutcome, EngineFailure>)] = []
    private var finishedCount = 0
    /// KV-cache positions per sequence at most (prompt, generation and one Sirius period).
    static let maxContext = 4096

    init(threads: Int, numerics: Numerics, batchSize: Int, prefixCacheBytes: Int?, log: @escaping (String) -> Void = { _ in }) {
        self.threads = threads
        self.numerics = numerics
        self.batchSize = max(1, batchSize)
        self.prefixCacheBytes = prefixCacheBytes
        self.log = log
        device = "cpu (\(threads) thread\(threads == 1 ? "" : "s"), \(numerics.rawValue))"
    }

    var inFlight: Int { running.count + ready.count }

    func prepare(model: String) throws {
        // "smollm2-135m-instruct" (the runs' default model reference) names the development model.
        let aliases = ["", "default", "smollm2-135m-instruct"]
        let path = aliases.contains(model.lowercased()) ? EngineOptions.defaultModel : (model as NSString).expandingTildeInPath
        guard modelPath != path else { return }
        do {
            loaded = try LoadedModel(path: path)
        } catch {
            throw EngineFailure(.fatalConfig, "cannot load model: \(error)")
        }
        modelPath = path
        let t = Transformer(model: loaded!.model, capacity: 1, numerics: numerics, threads: threads)
        let chunk = BatchDecoder.defaultPromptChunk
        decoder = BatchDecoder(transformer: t, prefixCache: prefixCacheBytes.map { PrefixCache(chunk: chunk, budgetBytes: $0) },
                               promptChunk: chunk)
    }

    func admit(_ request: ExampleRequest, tag: Int) throws {
        guard let loaded, let decoder else { throw EngineFailure(.engineError, "admit before prepare") }
        let method = request.method
        do { try method.validate() } catch {
            // Every example of this method would fail the same way: leave the run with the reason.
            throw EngineFailure(.fatalConfig, "\(error)")
        }
        if request.chat == true && loaded.tokenizer.chatFormat == nil {
            throw EngineFailure(.fatalConfig, "the task asks for the chat format, but the model \(modelPath ?? "") has no chat template this engine recognises (ChatML, Llama-3, Llama-2); use an instruct model's GGUF")
        }
        let ids = try loaded.encode(segments: request.promptSegments ?? [request.prompt], addBOS: request.addBOS,
                                    chat: request.chat ?? false)
        var maxNew = request.maxNewTokens
        if let total = request.maxTotalTokens { maxNew = min(maxNew, total - ids.count) }
        let extra = method.extraCachePositions
        let cap = min(loaded.model.config.contextLength, Self.maxContext)
        guard ids.count + 1 + extra <= cap else {
            throw EngineFailure(.engineError, "prompt of \(ids.count) tokens does not fit the \(cap)-token context"
                                + (extra > 0 ? " with the \(extra) positions a Sirius period reserves" : "")
                                + " (model context \(loaded.model.config.contextLength), capped at \(Self.maxContext))")
        }
        maxNew = max(0, min(maxNew, cap - ids.count - extra - 1))
        guard maxNew > 0 else {
            ready.append((tag, .success(ExampleOutcome(text: "", promptTokens: ids.count, generatedTokens: 0, stopReason: "length",
                                                        execution: execution(alone: true, reused: 0)))))
            return
        }
        let committed = CommittedText(tokenizer: loaded.tokenizer, maxNewTokens: maxNew, stopStrings: request.stop,
                                      eosIDs: loaded.tokenizer.eosIDs)
        do {
            // A timing sample runs alone; the others wait meanwhile (the batch is not drained).
            let seq = try decoder.admit(method: method, promptIDs: ids, committed: committed, solo: request.timingSample == true)
            running[tag] = (seq, request)
        } catch {
            throw EngineFailure(.engineError, "\(error)")
        }
    }

    func step() throws -> [(tag: Int, result: Result<ExampleOutcome, EngineFailure>)] {
        var out = ready
        ready.removeAll()
        guard let decoder, !running.isEmpty else { return out }
        let finished = decoder.step()
        guard !finished.isEmpty else { return out }
        for (tag, item) in running where finished.contains(where: { $0 === item.seq }) {
            running[tag] = nil
            let o = MethodOutcome(item.seq, config: decoder.transformer.config)
            let g = o.generation
            out.append((tag, .success(ExampleOutcome(
                text: g.text, promptTokens: g.promptIDs.count, generatedTokens: g.outputIDs.count, stopReason: g.stopReason.rawValue,
                counters: o.counters, modelDensity: o.modelDensity, paramDensity: o.paramDensity, timings: o.timings,
                execution: execution(alone: !item.seq.sharedPasses, reused: o.reusedPromptTokens)))))
            finishedCount += 1
            if finishedCount % 50 == 0, let pc = decoder.prefixCache { log(prefixCacheLine(pc)) }
        }
        return out
    }

    func cancel(tag: Int) {
        if let item = running.removeValue(forKey: tag) { decoder?.remove(item.seq) }
        ready.removeAll { $0.tag == tag }
    }

    private func execution(alone: Bool, reused: Int) -> ExecutionInfo {
        ExecutionInfo(numerics: numerics.rawValue, threads: threads, batchSize: batchSize, decodedAlone: alone,
                      reusedPromptTokens: reused)
    }

    func prefixCacheLine(_ pc: PrefixCache) -> String {
        String(format: "prefix cache: %d hits, %d misses; %d of %d prompt tokens reused (%.1f %%); %d entries, %.1f MiB",
               pc.hits, pc.misses, pc.reusedTokens, pc.promptTokens,
               100 * Double(pc.reusedTokens) / Double(max(1, pc.promptTokens)), pc.entryCount, Double(pc.bytes) / 1_048_576)
    }
}
