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

    /// Commits one token. Returns the newly visible text ("" when none). Text that could be the start
    /// of a stop string is held back until it is known not to be one, so streamed pieces always add up
    /// to the final `text`. Does nothing once finished.
    @discardableResult
    public func append(_ id: Int32) -> String {
        guard stopReason == nil else { return "" }
        ids.append(id)
        if eosIDs.contains(id) {
            stopReason = .eos
            return flush()
        }
        if let d = detokenizer {
            let piece = d.append(id)
            if !piece.isEmpty {
                let before = text.utf8.count
                text += piece
                if let cut = findStop(from: max(0, before - maxStopLength)) {
                    text = String(decoding: text.utf8.prefix(cut), as: UTF8.self)
                    stopReason = .stop
                    return release(upTo: cut)
                }
            }
        }
        if ids.count >= maxNewTokens {
            stopReason = .length
            return flush()
        }
        return release(upTo: text.utf8.count - heldBack())
    }

    /// Marks the generation as ended for a reason outside the text (context full).
    public func finish(_ reason: StopReason) -> String {
        guard stopReason == nil else { return "" }
        stopReason = reason
        return flush()
    }

    /// UTF-8 bytes of `text` already returned to the caller.
    private var released = 0

    private func release(upTo end: Int) -> String {
        guard end > released else { return "" }
        let piece = String(decoding: text.utf8.dropFirst(released).prefix(end - released), as: UTF8.self)
        released = end
        return piece
    }

    private func flush() -> String {
        if let d = detokenizer { text += d.finish() }
        return release(upTo: text.utf8.count)
    }

    /// Length of the longest end of `text` that is a proper beginning of some stop string.
    private func heldBack() -> Int {
        guard maxStopLength > 1 else { return 0 }
        let tail = Array(text.utf8.suffix(maxStopLength - 1))
        var best = 0
        for s in stopStrings {
            let pat = Array(s.utf8)
            var k = min(pat.count - 1, tail.count)
            while k > best {
                if tail[(tail.count - k)...].elementsEqual(pat[0..<k]) { best = k; break }
                k -= 1
            }
        }
        return best
    }

    /// UTF-8 offset of the earliest stop string that starts at or after `from` (only the tail of the
    /// text, where a new stop string can appear, is scanned).
    private func findStop(from: Int) -> Int? {
        guard !stopStrings.isEmpty else { return nil }
        let tail = Array(text.utf8.dropFirst(from))
        var best: Int?
        for s in stopStrings {
            let pat = Array(s.utf8)
            guard tail.count >= pat.count else { continue }
            var i = 0
            while i + pat.count <= tail.count {
                if tail[i] == pat[0] && tail[i..<(i + pat.count)].elementsEqual(pat) {
                    if best == nil || from + i < best! { best = from + i }
                    break
                }
                i += 1
            }
        }
        return best
    }
}
