import Testing
@testable import SiriusTasks

private let noSandbox = ScoringContext()

private func example(_ reference: String) -> TaskExample {
    TaskExample(id: "x", index: 0, input: "", reference: reference)
}

@Suite struct GSM8KExtractionTests {
    func score(_ text: String, _ reference: String) -> ExampleScore {
        GSM8K.score(text, for: example(reference), context: noSandbox)
    }

    @Test func strictReadsTheFirstHashAnswer() {
        #expect(GSM8K.extract("She has 5 + 3 = 8 apples.\n#### 8") == "8")
        #expect(GSM8K.extract("#### 8\n#### 9") == "8")
        let s = score("5 + 3 = 8\n#### 8", "8")
        #expect(s.correct)
        #expect(s.metric("strict-match")?.correct == true)
        #expect(s.metric("flexible-extract")?.answer == "8")
    }

    @Test func commasDollarsAndTrailingPeriodsAreIgnoredOnBothSides() {
        #expect(GSM8K.extract("It costs $1,234.\n#### 1,234.") == "1,234.")
        #expect(score("#### 1,234.", "1,234").correct)
        #expect(score("#### 1234", "1,234").correct)
        // "$" is not in the strict pattern: nothing to read.
        #expect(GSM8K.extract("#### $5") == nil)
        // The flexible pattern keeps "$" and the normalisation drops it.
        let s = score("The total is $5.", "5")
        #expect(!s.metric("strict-match")!.correct)
        #expect(s.metric("flexible-extract")?.answer == "$5.")
        #expect(s.metric("flexible-extract")?.correct == true)
        // Decimals are not numbers-equal, only string-equal, as in lm-eval.
        #expect(!score("#### 5.00", "5").correct)
    }

    @Test func negativeNumbers() {
        #expect(GSM8K.extract("#### -3") == "-3")
        #expect(score("so -3 degrees\n#### -3", "-3").correct)
    }

    @Test func flexibleTakesTheLastNumber() {
        let s = score("First 3 then 4 and finally 42 apples", "42")
        #expect(s.metric("flexible-extract")?.answer == "42")
        #expect(s.metric("flexible-extract")?.correct == true)
        #expect(s.metric("strict-match")?.answer == nil)
        #expect(!s.correct)
        // A lone digit matches the second alternative.
        #expect(score("x is 7", "7").metric("flexible-extract")?.correct == true)
    }

    @Test func noAnswerAtAll() {
        let s = score("I do not know.", "5")
        #expect(s.answer == nil)
        #expect(!s.correct)
        #expect(s.metric("flexible-extract")?.answer == nil)
        #expect(GSM8K.extract("") == nil)
    }

    @Test func unicodeAroundTheAnswer() {
        #expect(GSM8K.extract("Janet’s ducks: 16 − 3 = 13 🦆\n#### 13") == "13")
        #expect(score("Janet’s ducks… 13 🦆", "13").metric("flexible-extract")?.correct == true)
        // Full-width digits are not ASCII digits.
        #expect(GSM8K.extract("#### １３") == nil)
    }

    @Test func textAfterAStopStringIsNotRead() {
        // The next few-shot question the model starts writing is cut off first.
        let s = score("3 + 4 = 7\n#### 7\n\nQuestion: What is 9 + 9?\nAnswer: #### 18", "7")
        #expect(s.correct)
        #expect(s.metric("flexible-extract")?.answer == "7")
        #expect(GSM8K.extract("Question: #### 5") == nil)
        #expect(GSM8K.extract("#### 12<|im_end|>#### 13") == "12")
        #expect(GSM8K.extract("#### 1</s>") == "1")
    }
}

@Suite struct GSM8KCoTExtractionTests {
    func score(_ text: String, _ reference: String) -> ExampleScore {
        GSM8KCoT.score(text, for: example(reference), context: noSandbox)
    }

    @Test func strictNeedsTheAnswerPhrase() {
        #expect(GSM8KCoT.extract("5 + 4 = 9. The answer is 9.") == "9")
        #expect(score("5 + 4 = 9. The answer is 9.", "9").correct)
        #expect(score("The answer is 1,024.", "1024").correct)
        #expect(!score("the answer is 9.", "9").metric("strict-match")!.correct) // case-sensitive regex
        #expect(score("The answer is $9.", "9").metric("strict-match")?.answer == nil)
    }

    @Test func severalAnswerPhrasesTakeTheFirst() {
        let s = score("The answer is 3. Wait, no. The answer is 4.", "4")
        #expect(s.metric("strict-match")?.answer == "3.") // the group also takes the period
        #expect(!s.metric("strict-match")!.correct)
        #expect(s.metric("flexible-extract")?.answer == "4.")
        #expect(s.metric("flexible-extract")?.correct == true)
    }

    @Test func thePatternsDotIsAnyCharacter() {
        // lm-eval's pattern ends in an unescaped ".", so one more character is required and the
        // number gives one up at the very end of the text.
        #expect(GSM8KCoT.extract("The answer is 42") == "4")
        #expect(GSM8KCoT.extract("The answer is 42.\n") == "42") // "." does not match a newline
        #expect(score("The answer is 42.\n", "42").correct)
    }

    @Test func stopsAtQ() {
        let s = score("The answer is\n\nQ: The answer is 5.", "5")
        #expect(s.answer == nil)
        #expect(!s.correct)
    }
}

@Suite struct CommonsenseQAExtractionTests {
    @Test func letterTwoBeforeThePeriod() {
        #expect(CommonsenseQA.extract("Fish live in water. So the answer is sea (b).") == "b")
        #expect(CommonsenseQA.score("So the answer is sea (b).", for: example("B"), context: noSandbox).correct)
        #expect(!CommonsenseQA.score("So the answer is sea (b).", for: example("A"), context: noSandbox).correct)
    }

    @Test func caseInsensitivePinAndFirstOccurrence() {
        #expect(CommonsenseQA.extract("SO THE ANSWER IS SEA (B). So the answer is tree (a).") == "b")
    }

    @Test func readsWhateverIsTwoBeforeThePeriod() {
        // Faithful to the reference: no parenthesised letter, still a character.
        #expect(CommonsenseQA.extract("So the answer is fridge.") == "g")
        #expect(CommonsenseQA.extract("So the answer is (e) madagascar, i.e. (e).") == " ") // the "." of "i.e"
    }

    @Test func noPinOrNoPeriodIsNoAnswer() {
        #expect(CommonsenseQA.extract("I think (b).") == nil)
        #expect(CommonsenseQA.extract("So the answer is (b)") == nil)
        #expect(!CommonsenseQA.score("", for: example("A"), context: noSandbox).correct)
    }

    @Test func unicodeCountsScalars() {
        #expect(CommonsenseQA.extract("So the answer is café (ç).") == "ç")
        #expect(CommonsenseQA.extract("So the answer is 🐟 (b).") == "b")
    }

    @Test func answerCutByTheStopString() {
        #expect(CommonsenseQA.extract("So the answer is Q: (b).") == nil)
        #expect(CommonsenseQA.extract("So the answer is sky (a).\n\nQ: Where? So the answer is (b).") == "a")
    }
}

@Suite struct PinnedPhraseExtractionTests {
    @Test func strategyQA() {
        #expect(StrategyQA.extract("Snails are slow. So the answer is no.") == "no")
        #expect(StrategyQA.score("So the answer is Yes.", for: example("yes"), context: noSandbox).correct)
        #expect(!StrategyQA.score("So the answer is yes, probably.", for: example("yes"), context: noSandbox).correct)
        #expect(StrategyQA.extract("The answer is yes.") == nil)
        #expect(StrategyQA.extract("So the answer is yes. So the answer is no.") == "yes")
        #expect(StrategyQA.extract("So the answer is yes") == nil)
    }

    @Test func sports() {
        #expect(SportsUnderstanding.extract("Messi plays soccer. So the answer is implausible. ") == "implausible")
        #expect(SportsUnderstanding.score("So the answer is plausible.", for: example("plausible"), context: noSandbox).correct)
        #expect(!SportsUnderstanding.score("So the answer is implausible.", for: example("plausible"), context: noSandbox).correct)
        #expect(SportsUnderstanding.extract("So the answer is plausible\nQ: x. So the answer is implausible.") == nil)
    }

    @Test func dateExtractionStopsAtTheFirstPeriod() {
        #expect(DateUnderstanding.extract("So the answer is 05/01/2021.") == "05/01/2021")
        // "5.1.2021" has periods: only "5" is read.
        #expect(DateUnderstanding.extract("So the answer is 5.1.2021.") == "5")
    }

    @Test func dateMatchingIgnoresOneLeadingZeroPerField() {
        #expect(DateUnderstanding.datesMatch("05/01/2021", "05/01/2021"))
        #expect(DateUnderstanding.datesMatch("5/1/2021", "05/01/2021"))
        #expect(DateUnderstanding.datesMatch("05/1/2021", "5/01/2021"))
        #expect(!DateUnderstanding.datesMatch("005/01/2021", "05/01/2021"))
        #expect(!DateUnderstanding.datesMatch("05/01/21", "05/01/2021"))
        #expect(!DateUnderstanding.datesMatch("05/01", "05/01/2021"))
        #expect(!DateUnderstanding.datesMatch("may 1, 2021", "05/01/2021"))
        #expect(!DateUnderstanding.datesMatch("05//2021", "05/01/2021"))
        let s = DateUnderstanding.score("So the answer is 5/2/2021.", for: example("05/02/2021"), context: noSandbox)
        #expect(s.correct)
        #expect(s.answer == "5/2/2021")
    }
}

@Suite struct HumanEvalExtractionTests {
    @Test func cutsAtTheFirstStopWord() {
        let completion = "\n    return a + b\n\n\ndef other():\n    pass\n"
        #expect(HumanEval.extract(completion) == "\n    return a + b\n\n")
        #expect(HumanEval.extract("\n    return 1\nif __name__ == '__main__':\n    x") == "\n    return 1")
        #expect(HumanEval.extract("\n    return 1\n# done") == "\n    return 1")
        #expect(HumanEval.extract("\n    return 1\n```\nThat's it") == "\n    return 1")
        #expect(HumanEval.extract("\n    return 1<file_sep>junk") == "\n    return 1")
        // Indented "if"/"#" are part of the body.
        #expect(HumanEval.extract("\n    if a:\n        # c\n        return 1\n") == "\n    if a:\n        # c\n        return 1\n")
    }

    @Test func programLayout() throws {
        let e = TaskExample(id: "t", index: 0, input: "def f():\n    \"\"\"doc\"\"\"\n", reference: "    return 1\n",
                            fields: ["prompt": "def f():\n    \"\"\"doc\"\"\"\n", "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"])
        let program = try #require(HumanEval.program(completion: "\n    return 1\ndef g(): pass", for: e))
        #expect(program == "def f():\n    \"\"\"doc\"\"\"\n    return 1\n\ndef check(c):\n    assert c() == 1\n\ncheck(f)")
        #expect(HumanEval.canonicalCompletion(for: e) == "\n    return 1\n")
    }
}
