/// Why a generation ended.
public enum StopReason: String, Sendable, Codable {
    /// The model produced one of its end-of-sequence / end-of-turn ids.
    case eos
    /// A stop string appeared in the committed text (the text is cut before it).
    case stop
    /// `maxNewTokens` were generated.
    case length
    /// The context window is full.
    case context
}

/// The committed output of a generation, token by token, with the stop rules applied exactly once,
/// whatever decoder produced the tokens (sirius-method.md §11 "Stopping"): EOS ends it (the EOS id is
/// kept in `ids`, not in `text`), a stop string ends it (text cut before the stop string; tokens after
/// the one that completed it are not committed), and so does the token limit.
public final class CommittedText {
    public let maxNewTokens: Int
    public let stopStrings: [String]
    public let eosIDs: Set<Int32>
    public private(set) var ids: [Int32] = []
    public private(set) var text = ""
    public private(set) var stopReason: StopReason?
    private let detokenizer: StreamingDetokenizer?
    private let maxStopLength: Int

    /// - Parameter tokenizer: needed for text and stop strings; without one only ids are kept.
    public init(tokenizer: Tokenizer?, maxNewTokens: Int, stopStrings: [String] = [], eosIDs: Set<Int32>) {
        self.maxNewTokens = maxNewTokens
        self.stopStrings = stopStrings.filter { !$0.isEmpty }
        self.eosIDs = eosIDs
        detokenizer = tokenizer.map { StreamingDetokenizer(tokenizer: $0, skipSpecial: true) }
        maxStopLength = self.stopStrings.map(\.utf8.count).max() ?? 0
        ids.reserveCapacity(maxNewTokens + 1)
    }

    public var isFinished: Bool { stopReason != nil }

    /// Commits one token. Returns the newly visible text ("" when none). Does nothing once finished.
    @discardableResult
    public func append(_ id: Int32) -> String {
        guard stopReason == nil else { return "" }
        ids.append(id)
        if eosIDs.contains(id) {
            stopReason = .eos
            return flush()
        }
        var piece = ""
        if let d = detokenizer {
            piece = d.append(id)
            if !piece.isEmpty {
                let before = text.utf8.count
                text += piece
                if let cut = findStop(from: max(0, before - maxStopLength)) {
                    let visible = text.utf8.count - before
                    text = String(decoding: text.utf8.prefix(cut), as: UTF8.self)
                    stopReason = .stop
                    let keep = max(0, cut - before)
                    return keep < visible ? String(decoding: piece.utf8.prefix(keep), as: UTF8.self) : piece
                }
            }
        }
        if ids.count >= maxNewTokens {
            stopReason = .length
            return piece + flush()
        }
        return piece
    }

    /// Marks the generation as ended for a reason outside the text (context full).
    public func finish(_ reason: StopReason) -> String {
        guard stopReason == nil else { return "" }
        stopReason = reason
        return flush()
    }

    private func flush() -> String {
        guard let d = detokenizer else { return "" }
        let rest = d.finish()
        text += rest
        return rest
    }

    /// UTF-8 offset of the earliest stop string that starts at or after `from`.
    private func findStop(from: Int) -> Int? {
        guard !stopStrings.isEmpty else { return nil }
        let bytes = Array(text.utf8)
        var best: Int?
        for s in stopStrings {
            let pat = Array(s.utf8)
            guard bytes.count >= pat.count else { continue }
            var i = max(0, from)
            while i + pat.count <= bytes.count {
                if bytes[i] == pat[0] && bytes[i..<(i + pat.count)].elementsEqual(pat) {
                    if best == nil || i < best! { best = i }
                    break
                }
                i += 1
            }
        }
        return best
    }
}
