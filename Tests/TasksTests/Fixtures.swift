import Foundation
@testable import SiriusTasks

/// A small data directory in the layout of `../shared/data`, written to a fresh temporary
/// directory: hand-made items, never the real benchmarks.
enum TestData {
    static let gsm8kTrain = #"""
    {"question": "Tom has 3 apples and buys 2 more. How many apples does he have?", "answer": "Tom has 3 + 2 = <<3+2=5>>5 apples.\n#### 5"}
    {"question": "A box holds 4 pens. How many pens are in 3 boxes?", "answer": "3 boxes hold 3 * 4 = <<3*4=12>>12 pens.\n#### 12"}
    {"question": "Sara had $1,200 and spent $200. How much is left?", "answer": "She has 1,200 - 200 = <<1200-200=1000>>1,000 dollars left.\n#### 1,000"}
    {"question": "A cat sleeps 12 hours a day. How many hours in 2 days?", "answer": "12 * 2 = <<12*2=24>>24 hours.\n#### 24"}

    """#

    static let gsm8kTest = #"""
    {"question": "Janet\u2019s ducks lay 16 eggs per day. She eats 3. How many are left?", "answer": "16 - 3 = <<16-3=13>>13\n#### 13"}
    {"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}

    """#

    /// The shape of lm-eval 0.4.2's gsm8k-cot.yaml, with two exemplars.
    static let gsm8kCoTYAML = #"""
    group:
      - chain_of_thought
    task: gsm8k_cot
    doc_to_text: "Q: There are 15 trees. After planting there are 21. How many were planted?\nA: 21 - 15 = 6. The answer is 6.\n\n\
    Q: Leah had 32 chocolates and ate 10. How many are left?\nA: 32 - 10 = 22. The answer is 22.\n\n\
    Q: {{question}}\nA:"
    doc_to_target: "{{answer.split('####')[-1].strip()}}"
    num_fewshot: 0

    """#

    static let csqa = #"""
    {"id": "csqa-1", "question": "Where do you keep milk cold?", "question_concept": "milk", "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["oven", "fridge", "desk", "car", "shelf"]}, "answerKey": "B"}
    {"id": "csqa-2", "question": "What do people aim to do at work?", "question_concept": "people", "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["complete job", "learn from each other", "kill animals", "wear hats", "talk to each other"]}, "answerKey": "A"}

    """#

    /// Two exemplars; the first has a literal `\n` and a backslash, which the reference removed.
    static let csqaPrompt = #"""
    Q: Where would you find a fish?\n
    Options: (a) tree (b) sea (c) sky (d) desk (e) moon
    A: Fish live in water\. So the answer is sea (b).

    Q: What do you use to cut paper?
    Options: (a) scissors (b) spoon (c) cup (d) pillow (e) sock
    A: Scissors cut paper. So the answer is scissors (a).


    """#

    static let strategyqaPrompt = """
    Q: Yes or No: Can a fish climb a tree?
    A: Fish have no legs. So the answer is no.

    Q: Yes or No: Is water wet?
    A: Water makes things wet. So the answer is yes.


    """

    static let datePrompt = """
    Q: Today is 01/02/2000. What is the date tomorrow in MM/DD/YYYY?
    A: Tomorrow is 01/03/2000. So the answer is 01/03/2000.

    Q: Today is 3/1/1999. What is the date yesterday in MM/DD/YYYY?
    A: Yesterday is 2/28/1999. So the answer is 2/28/1999.


    """

    static let sportsPrompt = """
    Q: Determine whether the following statement or statements are plausible or implausible: Statement: Lionel Messi scored a touchdown Plausible/implausible? 
    A: Messi plays soccer. So the answer is implausible. 

    Q: Determine whether the following statement or statements are plausible or implausible: Statement: LeBron James dunked Plausible/implausible? 
    A: LeBron plays basketball. So the answer is plausible. 


    """

    static let strategyqaJSON = #"""
    {"canary": "test", "name": "strategyqa", "examples": [
      {"input": "Could a snail outrun a cheetah?", "target_scores": {"Yes": 0, "No": 1}, "target": "No. Snails are slow."},
      {"input": "Is ice frozen water?", "target_scores": {"Yes": 1, "No": 0}, "target": "Yes. Ice is frozen water."}
    ]}
    """#

    /// Twelve items: the first ten are dropped, as in the reference runs.
    static var dateJSON: String {
        var examples: [String] = []
        for i in 0..<12 {
            let day = String(format: "%02d", i + 1)
            examples.append(#"{"input": "Today is 03/\#(day)/2020. What is the date tomorrow in MM/DD/YYYY?", "target_scores": {"03/\#(String(format: "%02d", i + 2))/2020": 1, "01/01/1999": 0}}"#)
        }
        return #"{"name": "date_understanding", "examples": ["# + examples.joined(separator: ",\n") + "]}"
    }

    static var sportsJSON: String {
        var examples: [String] = []
        for i in 0..<12 {
            let plausible = i % 2 == 0
            examples.append(#"{"input": "Player \#(i) \#(plausible ? "dunked" : "threw a touchdown")", "target_scores": {"plausible": \#(plausible ? 1 : 0), "implausible": \#(plausible ? 0 : 1)}}"#)
        }
        return #"{"name": "sports_understanding", "task_prefix": "Determine whether the following statement or statements are plausible or implausible:", "example_input_prefix": "\nStatement: ", "example_output_prefix": "\nPlausible/implausible? ", "examples": ["# + examples.joined(separator: ",\n") + "]}"
    }

    /// Three problems in HumanEval's format (hand-written; the gzip copy is `GzipFixtures`).
    static let humanEvalJSONL = #"""
    {"task_id": "Toy/0", "prompt": "def add(a: int, b: int) -> int:\n    \"\"\" Return the sum of a and b.\n    >>> add(2, 3)\n    5\n    \"\"\"\n", "entry_point": "add", "canonical_solution": "    return a + b\n", "test": "\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"}
    {"task_id": "Toy/1", "prompt": "from typing import List\n\n\ndef evens(xs: List[int]) -> List[int]:\n    \"\"\" Keep the even numbers, in order.\n    >>> evens([1, 2, 3, 4])\n    [2, 4]\n    \"\"\"\n", "entry_point": "evens", "canonical_solution": "    return [x for x in xs if x % 2 == 0]\n", "test": "\n\ndef check(candidate):\n    assert candidate([1, 2, 3, 4]) == [2, 4]\n    assert candidate([]) == []\n"}
    {"task_id": "Toy/2", "prompt": "def shout(s: str) -> str:\n    \"\"\" Upper-case s and add '!'.\n    >>> shout('h\u00e9')\n    'H\u00c9!'\n    \"\"\"\n  \n", "entry_point": "shout", "canonical_solution": "    return s.upper() + '!'\n", "test": "\n\ndef check(candidate):\n    assert candidate('h\u00e9') == 'H\u00c9!'\n"}
    """#

    /// Writes the whole layout into a fresh temporary directory.
    static func makeDirectory(omitting omitted: Set<String> = []) throws -> DataDirectory {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sirius-tasks-test-\(UUID().uuidString)")
        let files: [String: Data] = [
            "gsm8k/train.jsonl": Data(gsm8kTrain.utf8),
            "gsm8k/test.jsonl": Data(gsm8kTest.utf8),
            "cot-prompts/gsm8k-cot.yaml": Data(gsm8kCoTYAML.utf8),
            "commonsense_qa/dev_rand_split.jsonl": Data(csqa.utf8),
            "cot-prompts/csqa_cot_prompts_5shot.txt": Data(csqaPrompt.utf8),
            "cot-prompts/strategyqa_cot_prompts_5shot.txt": Data(strategyqaPrompt.utf8),
            "cot-prompts/date_cot_prompts_5shot.txt": Data(datePrompt.utf8),
            "cot-prompts/sports_cot_prompts_5shot.txt": Data(sportsPrompt.utf8),
            "bigbench/strategyqa/task.json": Data(strategyqaJSON.utf8),
            "bigbench/date_understanding/task.json": Data(dateJSON.utf8),
            "bigbench/sports_understanding/task.json": Data(sportsJSON.utf8),
            "humaneval/HumanEval.jsonl.gz": Data(base64Encoded: GzipFixtures.humanEvalLevel9)!,
        ]
        for (path, data) in files where !omitted.contains(path) {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try data.write(to: url)
        }
        return DataDirectory(root)
    }

    static func load<T: BenchmarkTask>(_ type: T.Type) throws -> T {
        try T.load(TaskConfiguration(dataDirectory: try makeDirectory()))
    }
}
