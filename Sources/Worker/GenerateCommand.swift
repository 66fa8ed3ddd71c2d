import ArgumentParser
import Foundation
import SiriusEngine
import SiriusMethod

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate a continuation of a prompt.",
        discussion: """
            Streams the generated text to stdout, or prints one JSON object with --json.
            Examples:
              sirius-worker generate --prompt 'The capital of France is' --max-new-tokens 16
              sirius-worker generate --chat --prompt 'Write a haiku about the sea.' --temperature 0.7 --seed 1
              sirius-worker generate --prompt-file q.txt --stop 'Q:' --json
              sirius-worker generate --method sirius/griffin@0.5 --period 8 --prompt 'Q: ...' --json
            """)

    @OptionGroup var engine: EngineOptions
    @OptionGroup var methodOptions: MethodOptions
    @Option(help: "The prompt text.") var prompt: String?
    @Option(help: "Read the prompt from this file.") var promptFile: String?
    @Flag(help: "Wrap the prompt as one user message in the model's chat format.") var chat = false
    @Option(help: "Stop after this many new tokens.") var maxNewTokens: Int = 128
    @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Float = 0
    @Option(help: "Keep only the k most likely tokens when sampling (0 = all).") var topK: Int = 0
    @Option(help: "Nucleus sampling: keep the smallest set of tokens with this total probability.") var topP: Float = 1
    @Option(help: "Seed of the sampler.") var seed: UInt64 = 0
    @Option(help: "Stop when this text appears (repeatable); the text is cut before it.") var stop: [String] = []
    @Option(help: "KV cache size in tokens (default: prompt + max new tokens, at most the model's context).") var context: Int?
    @Flag(help: "Print one JSON object instead of streaming text.") var json = false

    func validate() throws {
        guard maxNewTokens >= 1 else { throw ValidationError("--max-new-tokens must be at least 1") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be >= 0") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        guard topK >= 0 else { throw ValidationError("--top-k must be >= 0") }
    }

    func run() throws {
        let text = try textOrFile(prompt, promptFile, name: "prompt")
        let loaded = try LoadedModel(path: engine.model)
        let ids = try loaded.promptIDs(text, chat: chat)
        let limit = loaded.model.config.contextLength
        guard ids.count < limit else {
            throw ValidationError("the prompt has \(ids.count) tokens but the model's context is \(limit): shorten the prompt")
        }
        let method = try methodOptions.spec()
        let capacity = min(limit, context ?? (ids.count + maxNewTokens + method.extraCachePositions + 1))
        guard ids.count < capacity else {
            throw ValidationError("the prompt has \(ids.count) tokens but --context is \(capacity): raise --context (up to \(limit)) or shorten the prompt")
        }
        let t = Transformer(model: loaded.model, capacity: capacity, numerics: engine.numerics, threads: engine.threads)
        let committed = CommittedText(tokenizer: loaded.tokenizer, maxNewTokens: maxNewTokens, stopStrings: stop,
                                      eosIDs: loaded.tokenizer.eosIDs)
        let sampling = SamplingParams(temperature: temperature, topK: topK, topP: topP, seed: seed)
        let stream: ((String) -> Void)? = json ? nil : { piece in
            FileHandle.standardOutput.write(Data(piece.utf8))
        }
        let outcome = try MethodRunner(transformer: t).generate(method, promptIDs: ids, committed: committed,
                                                                 sampling: sampling, onText: stream)
        let r = outcome.generation
        if json {
            var obj: [String: Any] = [
                "prompt_ids": r.promptIDs.map(Int.init),
                "output_ids": r.outputIDs.map(Int.init),
                "text": r.text,
                "stop_reason": r.stopReason.rawValue,
                "timings": [
                    "load_seconds": loaded.loadSeconds,
                    "prefill_seconds": r.timings.prefillSeconds,
                    "decode_seconds": r.timings.decodeSeconds,
                    "decode_tokens": r.timings.decodeTokens,
                    "decode_tokens_per_second": r.timings.decodeTokensPerSecond,
                ],
                "numerics": engine.numerics.rawValue,
                "threads": engine.threads,
                "method": method.name,
            ]
            if method.isSparse { obj["sirius"] = methodJSON(outcome, method: method) }
            try printJSON(obj)
        } else {
            print("")
            var line = String(format: "[%d prompt tokens, %d new, stop: %@; load %.3f s, prefill %.3f s, decode %.1f tok/s",
                              r.promptIDs.count, r.outputIDs.count, r.stopReason.rawValue, loaded.loadSeconds,
                              r.timings.prefillSeconds, r.timings.decodeTokensPerSecond)
            if let d = outcome.modelDensity { line += String(format: "; model density %.3f", d) }
            if let aal = outcome.counters.aal, method.kind == .sirius { line += String(format: "; AAL %.2f/%d", aal, method.period) }
            printErr(line + "]")
        }
    }
}
