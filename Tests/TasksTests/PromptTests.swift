import Foundation
import Testing
@testable import SiriusTasks

/// The prompt for a fixed example of each task equals a committed string.
@Suite struct PromptTests {
    @Test func gsm8kFewShotFromTrain() throws {
        let task = try TestData.load(GSM8K.self)
        let e = task.examples[0]
        #expect(e.id == "test/0")
        #expect(e.reference == "13")
        let p = try task.prompt(for: e, options: PromptOptions(runSeed: 0, numFewshot: 2))
        // Exemplars train[0], train[1] (checked against an independent Python SplitMix64/FNV-1a).
        #expect(p.text == """
            Question: Tom has 3 apples and buys 2 more. How many apples does he have?
            Answer: Tom has 3 + 2 = <<3+2=5>>5 apples.
            #### 5

            Question: A box holds 4 pens. How many pens are in 3 boxes?
            Answer: 3 boxes hold 3 * 4 = <<3*4=12>>12 pens.
            #### 12

            Question: Janet’s ducks lay 16 eggs per day. She eats 3. How many are left?
            Answer:
            """)
        #expect(p.segments.count == 1)
        #expect(!p.addBOS)
        #expect(!p.chat)
        // Another run seed draws train[3], train[2].
        let other = try task.prompt(for: e, options: PromptOptions(runSeed: 1, numFewshot: 2))
        #expect(other.text.hasPrefix("Question: A cat sleeps 12 hours a day."))
        #expect(other.text.contains("Question: Sara had $1,200"))
        // Zero-shot.
        #expect(try task.prompt(for: e, options: PromptOptions(numFewshot: 0)).text
                == "Question: Janet’s ducks lay 16 eggs per day. She eats 3. How many are left?\nAnswer:")
    }

    @Test func gsm8kDefaultFiveShotNeedsEnoughTrainingItems() throws {
        let task = try TestData.load(GSM8K.self)
        #expect(throws: TaskError.self) { try task.prompt(for: task.examples[0], options: PromptOptions()) }
    }

    @Test func gsm8kCoT() throws {
        let task = try TestData.load(GSM8KCoT.self)
        let p = try task.prompt(for: task.examples[1], options: PromptOptions())
        #expect(p.text == """
            Q: There are 15 trees. After planting there are 21. How many were planted?
            A: 21 - 15 = 6. The answer is 6.

            Q: Leah had 32 chocolates and ate 10. How many are left?
            A: 32 - 10 = 22. The answer is 22.

            Q: What is 2 + 2?
            A:
            """)
        #expect(!p.addBOS)
        #expect(task.examples[1].reference == "4")
        let one = try task.prompt(for: task.examples[1], options: PromptOptions(numFewshot: 1))
        #expect(one.text.hasSuffix("The answer is 6.\n\nQ: What is 2 + 2?\nA:"))
        #expect(!one.text.contains("Leah"))
        #expect(throws: TaskError.self) { try task.prompt(for: task.examples[1], options: PromptOptions(numFewshot: 9)) }
    }

    @Test func csqa() throws {
        let task = try TestData.load(CommonsenseQA.self)
        let e = task.examples[0]
        #expect(e.id == "csqa-1")
        #expect(e.reference == "B")
        let p = try task.prompt(for: e, options: PromptOptions())
        #expect(p.segments == [
            """
            Q: Where would you find a fish?
            Options: (a) tree (b) sea (c) sky (d) desk (e) moon
            A: Fish live in water. So the answer is sea (b).

            Q: What do you use to cut paper?
            Options: (a) scissors (b) spoon (c) cup (d) pillow (e) sock
            A: Scissors cut paper. So the answer is scissors (a).


            """,
            "Q: Where do you keep milk cold?\nOptions: (a) oven (b) fridge (c) desk (d) car (e) shelf\nA:",
        ])
        #expect(p.addBOS)
        let oneShot = try task.prompt(for: e, options: PromptOptions(numFewshot: 1))
        #expect(oneShot.segments[0].hasSuffix("So the answer is sea (b).\n\n"))
        #expect(!oneShot.segments[0].contains("scissors"))
        #expect(throws: TaskError.self) { try task.prompt(for: e, options: PromptOptions(numFewshot: 6)) }
    }

    @Test func strategyQA() throws {
        let task = try TestData.load(StrategyQA.self)
        let e = task.examples[0]
        #expect(e.id == "strategyqa/0")
        #expect(e.reference == "no")
        #expect(task.examples[1].reference == "yes")
        let p = try task.prompt(for: e, options: PromptOptions())
        #expect(p.segments[0] == TestData.strategyqaPrompt)
        #expect(p.segments[1] == "Q: Yes or No: Could a snail outrun a cheetah?\nA:")
        #expect(p.addBOS)
    }

    @Test func dateDropsTheFirstTen() throws {
        let task = try TestData.load(DateUnderstanding.self)
        #expect(task.examples.count == 2)
        let e = task.examples[0]
        #expect(e.id == "date_understanding/10")
        #expect(e.index == 0)
        #expect(e.reference == "03/12/2020")
        let p = try task.prompt(for: e, options: PromptOptions())
        #expect(p.segments == [TestData.datePrompt, "Q: Today is 03/11/2020. What is the date tomorrow in MM/DD/YYYY?\nA:"])
    }

    @Test func sportsDropsTheFirstTen() throws {
        let task = try TestData.load(SportsUnderstanding.self)
        #expect(task.examples.count == 2)
        let e = task.examples[0]
        #expect(e.id == "sports_understanding/10")
        #expect(e.reference == "plausible")
        #expect(task.examples[1].reference == "implausible")
        let p = try task.prompt(for: e, options: PromptOptions())
        #expect(p.segments[1] == """
            Q: Determine whether the following statement or statements are plausible or implausible:
            Statement: Player 10 dunked
            Plausible/implausible?
            A:
            """)
        #expect(p.text == TestData.sportsPrompt + p.segments[1])
    }

    @Test func humanEval() throws {
        let task = try TestData.load(HumanEval.self)
        let e = task.examples[0]
        #expect(e.id == "Toy/0")
        let p = try task.prompt(for: e, options: PromptOptions())
        #expect(p.text == "def add(a: int, b: int) -> int:\n    \"\"\" Return the sum of a and b.\n    >>> add(2, 3)\n    5\n    \"\"\"")
        #expect(p.addBOS)
        #expect(HumanEval.generationLimit == .totalTokens(512))
        #expect(HumanEval.generationLimit.maxNewTokens(promptTokens: 500) == 12)
        #expect(throws: TaskError.self) { try task.prompt(for: e, options: PromptOptions(numFewshot: 3)) }
    }

    @Test func chatIsCarriedNotApplied() throws {
        let task = try TestData.load(StrategyQA.self)
        let p = try task.prompt(for: task.examples[0], options: PromptOptions(chat: true))
        #expect(p.chat)
        #expect(p.text.hasSuffix("Q: Yes or No: Could a snail outrun a cheetah?\nA:"))
        #expect(p.rendered { "<user>\($0)</user>" }.hasPrefix("<user>Q: Yes or No: Can a fish"))
        let raw = try task.prompt(for: task.examples[0], options: PromptOptions())
        #expect(raw.rendered { "<user>\($0)</user>" } == raw.text)
    }

    @Test func requestCarriesStopsAndLimits() throws {
        let task = try TestData.load(CommonsenseQA.self)
        let r = try task.request(for: task.examples[1], options: PromptOptions())
        #expect(r.task == "csqa")
        #expect(r.exampleID == "csqa-2")
        #expect(r.stopStrings == ["Q:"])
        #expect(r.limit == .newTokens(256))
        #expect(GSM8K.stopStrings == ["Question:", "</s>", "<|im_end|>"])
        #expect(GSM8KCoT.stopStrings == ["Q:", "</s>", "<|im_end|>"])
    }
}

/// The prompt is a pure function of (task, example id, run seed).
@Suite struct DeterminismTests {
    @Test func promptsDoNotDependOnOrderOrInstance() throws {
        let a = try TestData.load(GSM8K.self)
        let b = try TestData.load(GSM8K.self)
        let options = PromptOptions(runSeed: 7, numFewshot: 3)
        let forward = try a.examples.map { try a.prompt(for: $0, options: options).text }
        let backward = try b.examples.reversed().map { try b.prompt(for: $0, options: options).text }
        #expect(forward == Array(backward.reversed()))
        // Calling again (after other calls) gives the same prompt.
        #expect(try a.prompt(for: a.examples[0], options: options).text == forward[0])
    }

    @Test func seedsAreStableAcrossProcesses() {
        // Fixed values: FNV-1a of "a", SplitMix64(0).next(), and the derived example seed.
        #expect(FNV1a64.hash("a") == 0xaf63_dc4c_8601_ec8c)
        var g = SplitMix64(seed: 0)
        #expect(g.next() == 0xe220_a839_7b1d_cdaf)
        #expect(ExampleSeed.derive(task: "gsm8k", exampleID: "test/0", runSeed: 0) == 0x18d1_0878_eeda_c3e2)
        #expect(ExampleSeed.derive(task: "gsm8k", exampleID: "test/0", runSeed: 1) != ExampleSeed.derive(task: "gsm8k", exampleID: "test/0", runSeed: 0))
        #expect(ExampleSeed.derive(task: "gsm8k", exampleID: "test/1", runSeed: 0) != ExampleSeed.derive(task: "gsm8k-cot", exampleID: "test/1", runSeed: 0))
    }

    @Test func sampleIndicesAreDistinctAndUniform() {
        var g = SplitMix64(seed: 42)
        var counts = [Int](repeating: 0, count: 10)
        for _ in 0..<2000 {
            let s = g.sampleIndices(3, from: 10)
            #expect(Set(s).count == 3)
            for i in s { counts[i] += 1 }
        }
        #expect(counts.allSatisfy { $0 > 450 && $0 < 750 }) // expected 600 each
    }

    @Test func contentHashIsStable() throws {
        let a = try TestData.load(CommonsenseQA.self)
        let b = try TestData.load(CommonsenseQA.self)
        #expect(a.examples.map(\.contentHash) == b.examples.map(\.contentHash))
        #expect(a.examples[0].contentHash != a.examples[1].contentHash)
    }
}
