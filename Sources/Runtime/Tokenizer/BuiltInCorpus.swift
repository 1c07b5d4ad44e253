import MemoryPlanner

extension TokenizerBuilder {
    /// A built-in English corpus of about 70 KB: sentences generated from word lists by a seeded
    /// generator, so it is the same on every machine and release. Every listed word appears in
    /// several forms (plurals, tenses, capitalized), with numbers, prices, dates, contractions,
    /// quotes and a little code: enough merges for vocabularies up to 4,912 tokens (4,096 needs
    /// 3,837 of them).
    public static var builtInCorpus: String { BuiltInCorpus.text }

    /// More text of the same kind, as paragraphs: another `seed` gives other sentences from the
    /// same grammar and words, so a held-out split never repeats the training one.
    public static func corpusParagraphs(seed: UInt64, bytes: Int) -> [String] {
        BuiltInCorpus.paragraphs(seed: seed, bytes: bytes)
    }
}

/// The generator behind `TokenizerBuilder.builtInCorpus`.
enum BuiltInCorpus {
    static let seed: UInt64 = 0x4C6F_5241_4D64_2025
    static let text: String = paragraphs(seed: seed, bytes: 70_000).joined(separator: "\n\n") + "\n"

    static let nouns = words("""
        account act adventure afternoon age air airport animal answer apple area arm army art article \
        attention aunt author baby back bag ball band bank bar basket bath battle beach bean bear bed \
        bee bell bench bicycle bird birthday blanket boat body bone book border bottle bowl box boy \
        brain branch bread breakfast brick bridge brother brush bucket building bus butter button cabin \
        cake camera camp candle cap captain car card carpet cart castle cat cave chain chair chance \
        chapter cheese cherry chicken child church circle city class clock cloud coach coast coat \
        coffee coin college color company computer cook corner cottage country cousin cow cup \
        curtain customer dance daughter day deer desert desk dinner doctor dog doll door dragon \
        dream dress drink driver drum duck dust eagle ear earth egg elephant engine evening eye face \
        factory family farm farmer father feather fence field finger fire fish flag floor flower fog \
        food foot forest fork fox friend frog fruit game garden gate gift girl glass glove goat gold \
        grape grass group guest guitar hall hammer hand harbor hat head heart hill history hole home \
        honey horse hospital hotel hour house idea island jacket jar jelly job journey judge juice \
        key king kitchen kite knee knife lake lamp language lawyer leaf lesson letter library light \
        lion list lunch machine magazine map market meadow meal meeting memory message metal \
        minute mirror moment money monkey month moon morning mother mountain mouse mouth museum \
        music nail name nation neighbor nest net night noise nose note number nurse ocean office oil \
        orange owner page pain painter pair pan paper parent park party path pencil people pepper \
        person piano picture pie pig pillow pilot pipe planet plant plate player pocket poem pond \
        potato pot power prince princess problem queen question rabbit radio rain river road robot \
        rock roof room root rope rose rule sailor salt sand school science sea season seat secret \
        seed shadow sheep shelf ship shirt shoe shop shoulder sign silver singer sister skin sky \
        snake snow soldier son song sound soup space spoon spring square stair star station stone \
        storm story stove street student sugar summer sun supper table tail teacher team tent test \
        thing thought thunder ticket tiger time toe tomato tongue tool tooth top tower town toy \
        track train tree truck uncle valley village voice wagon wall war watch water wave weather \
        week wheel whistle wind window wing winter wolf woman wood word world writer yard year \
        zebra zoo algorithm battery cable channel database engineer folder gradient kernel ladder \
        layer matrix model network packet parameter pattern printer process program project \
        protocol request server signal system tensor theory thread token vector version
        """)

    static let irregularPlurals: [String: String] = [
        "child": "children", "foot": "feet", "tooth": "teeth", "mouse": "mice", "woman": "women",
        "person": "people", "people": "people", "sheep": "sheep", "deer": "deer", "fish": "fish",
        "leaf": "leaves", "knife": "knives", "wolf": "wolves", "shelf": "shelves", "potato": "potatoes",
        "tomato": "tomatoes", "matrix": "matrices",
    ]

    static let verbs = words("""
        accept add admire agree allow answer appear arrive ask attack bake balance bathe beg behave \
        belong boil borrow bounce brush bump burn call calm camp carry cause change chase cheer \
        chew clap clean climb close collect comb compare complain connect consider cook copy count \
        cover crash crawl cross cry cycle dance decide deliver depend describe destroy develop \
        discover divide doubt drag dream dress drop dry earn enjoy enter escape examine excite \
        explain explore face fail fasten fetch fill film finish fix float flood flow fold follow \
        form gather glow grab greet guard guess hammer hand hang happen harm hate heat help hope \
        hunt hurry identify ignore imagine improve include increase inform inspect invent invite \
        jog join joke jump kick kiss knock land last laugh learn lift like listen live load lock \
        look love manage march mark marry match measure melt mend miss mix move nod notice obey \
        offer open order organize own pack paint park pass pause peel pick plan plant play please \
        point polish pour practice pray prefer prepare present pretend print promise protect pull \
        pump punch push question race rain reach record reduce refuse relax remember remove repair \
        repeat reply report rescue return rub rush sail save scream search serve settle share shave \
        shiver shop shout sign skip slip smell smile sneeze solve sort spark spell spill spoil start \
        stay step stir stop store study succeed suggest supply support surprise surround talk taste \
        test thank touch trace trade train travel treat trust try turn type unlock use visit wait \
        walk wander want warn wash watch wave whisper wink wish wonder work worry wrap yawn yell \
        compile compute debug deploy download encode decode index measure optimize parse predict \
        query sample shuffle tokenize update upload validate
        """)

    static let irregularPast: [String: String] = [
        "begin": "began", "break": "broke", "bring": "brought", "build": "built", "buy": "bought",
        "catch": "caught", "choose": "chose", "come": "came", "draw": "drew", "drink": "drank",
        "drive": "drove", "eat": "ate", "fall": "fell", "feel": "felt", "fight": "fought", "find": "found",
        "fly": "flew", "forget": "forgot", "give": "gave", "go": "went", "grow": "grew", "hear": "heard",
        "hide": "hid", "hold": "held", "keep": "kept", "know": "knew", "leave": "left", "lose": "lost",
        "make": "made", "meet": "met", "pay": "paid", "read": "read", "ride": "rode", "ring": "rang",
        "run": "ran", "say": "said", "see": "saw", "sell": "sold", "send": "sent", "sing": "sang",
        "sit": "sat", "sleep": "slept", "speak": "spoke", "spend": "spent", "stand": "stood",
        "swim": "swam", "take": "took", "teach": "taught", "tell": "told", "think": "thought",
        "throw": "threw", "understand": "understood", "wake": "woke", "wear": "wore", "win": "won",
        "write": "wrote",
    ]

    static let adjectives = words("""
        able angry ancient anxious bad beautiful best better big bitter black blue bold brave bright \
        broad broken brown busy calm careful cheap clean clear clever close cold common cool correct \
        crazy curious dark dear deep delicate different difficult dirty dry early easy empty equal \
        exact excellent fair famous fancy fast fat fierce fine first flat fresh friendly full funny \
        gentle giant glad golden good grand gray great green happy hard healthy heavy helpful high \
        hollow honest hot huge hungry important jolly kind large late lazy light little lively \
        lonely long loud lovely low lucky magic main modern narrow near neat nervous new nice noisy \
        odd old open orange ordinary other pale perfect plain pleasant polite poor popular pretty \
        proud purple quick quiet rapid rare ready real red rich right rough round sad safe sharp \
        short shy silent silly simple slow small smart smooth soft solid special steep strange \
        strong sudden sweet tall tame thick thin tidy tiny tired tough true ugly useful warm weak \
        wet white whole wide wild wise wonderful wooden young yellow digital linear local random \
        sparse parallel binary global remote
        """)

    static let adverbs = words("""
        always almost badly boldly briefly calmly carefully certainly clearly closely correctly \
        daily easily eagerly early exactly finally gently gladly happily honestly kindly lately \
        loudly luckily merely nearly neatly never often partly perfectly politely quickly quietly \
        rarely really recently seldom silently simply slowly smoothly softly sometimes soon \
        suddenly surely swiftly today together tomorrow truly usually warmly weekly wisely yesterday
        """)

    static let names = words("""
        Alice Amelia Anna Arthur Ben Bella Carlos Charlotte Chloe Daniel David Diana Edward Elena \
        Emily Emma Ethan Felix Fiona George Grace Hannah Harry Henry Isaac Isabel Jack James Jane \
        Julia Kate Leo Liam Lily Lucas Lucy Maria Mark Martin Mia Nina Noah Oliver Olivia Oscar \
        Paul Peter Rosa Ruby Sam Sara Sofia Thomas Tom Victor Violet William Zoe
        """)

    static let places = words("""
        Paris London Berlin Madrid Rome Vienna Prague Lisbon Dublin Oslo Tokyo Kyoto Seoul Delhi \
        Cairo Lagos Nairobi Sydney Boston Chicago Denver Austin Seattle Toronto Montreal Lima \
        Bogota Santiago Athens Istanbul Warsaw Munich Zurich Geneva Brussels Amsterdam Stockholm \
        Helsinki Edinburgh Venice Florence
        """)

    static let prepositions = words("about above across after against along among around at before behind below beneath beside between beyond by during from in inside into near of off on onto over past through toward under until upon with within without")
    static let determiners = words("the a this that every each one another some any no my your his her our their")
    static let pronouns = words("he she they we you it I")
    static let conjunctions = words("and but so because while although when after before until since unless")

    private static func words(_ list: String) -> [String] {
        list.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    }

    // MARK: Morphology

    private static func endsWithConsonantY(_ word: String) -> Bool {
        guard word.hasSuffix("y"), word.count > 1 else { return false }
        return !"aeiou".contains(word[word.index(word.endIndex, offsetBy: -2)])
    }

    static func plural(_ noun: String) -> String {
        if let irregular = irregularPlurals[noun] { return irregular }
        if endsWithConsonantY(noun) { return noun.dropLast() + "ies" }
        if ["s", "x", "z", "ch", "sh"].contains(where: noun.hasSuffix) { return noun + "es" }
        return noun + "s"
    }

    static func thirdPerson(_ verb: String) -> String {
        if endsWithConsonantY(verb) { return verb.dropLast() + "ies" }
        if ["s", "x", "z", "ch", "sh", "o"].contains(where: verb.hasSuffix) { return verb + "es" }
        return verb + "s"
    }

    static func past(_ verb: String) -> String {
        if let irregular = irregularPast[verb] { return irregular }
        if verb.hasSuffix("e") { return verb + "d" }
        if endsWithConsonantY(verb) { return verb.dropLast() + "ied" }
        return verb + "ed"
    }

    static func gerund(_ verb: String) -> String {
        if verb.hasSuffix("ie") { return verb.dropLast(2) + "ying" }
        if verb.hasSuffix("e") && !verb.hasSuffix("ee") && verb.count > 2 { return verb.dropLast() + "ing" }
        return verb + "ing"
    }

    static func capitalized(_ word: String) -> String {
        guard let first = word.first else { return word }
        return first.uppercased() + word.dropFirst()
    }

    // MARK: Generation

    /// SplitMix64 draws, so the corpus never depends on the platform.
    struct Generator {
        var random: SplitMix64
        init(state: UInt64) { random = SplitMix64(seed: state) }
        mutating func next() -> UInt64 { random.next() }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    }

    /// Draws every word of a list once (in a shuffled order) before repeating any, so all of
    /// them reach the corpus.
    struct Deck {
        private let items: [String]
        private var order: [Int] = []
        init(_ items: [String]) { self.items = items }
        mutating func draw(_ g: inout Generator) -> String {
            if order.isEmpty {
                order = Array(items.indices)
                for k in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(k, g.below(k + 1)) }
            }
            return items[order.removeLast()]
        }
    }

    static func paragraphs(seed: UInt64, bytes: Int) -> [String] {
        var g = Generator(state: seed)
        var nounDeck = Deck(nouns), verbDeck = Deck(verbs + Array(irregularPast.keys).sorted())
        var adjectiveDeck = Deck(adjectives), adverbDeck = Deck(adverbs)
        var nameDeck = Deck(names), placeDeck = Deck(places)

        func noun() -> String { nounDeck.draw(&g) }
        func nounPhrase() -> String {
            let n = noun()
            let pluralForm = g.chance(35)
            var phrase = pluralForm ? plural(n) : n
            if g.chance(60) { phrase = adjectiveDeck.draw(&g) + " " + phrase }
            let determiner = pluralForm ? g.pick(["the", "some", "many", "our", "their", "these", "those", "two", "several"])
                                        : g.pick(determiners)
            return determiner + " " + phrase
        }
        func number() -> String {
            switch g.below(6) {
            case 0: return String(1800 + g.below(226))
            case 1: return String(g.below(100))
            case 2: return String(g.below(10_000))
            case 3: return String(g.below(1_000_000))
            case 4: return "\(g.below(100)).\(g.below(10))\(g.below(10))"
            default: return String(g.below(1000))
            }
        }

        var sentences: [String] = []
        func sentence() -> String {
            let verb = verbDeck.draw(&g)
            switch g.below(14) {
            case 0:
                return capitalized(nounPhrase()) + " \(past(verb)) " + nounPhrase() + " \(g.pick(prepositions)) " + nounPhrase() + "."
            case 1:
                return "\(nameDeck.draw(&g)) \(past(verb)) \(number()) \(plural(noun())) in \(placeDeck.draw(&g)) in \(1800 + g.below(226))."
            case 2:
                return "Why did \(nameDeck.draw(&g)) \(verb) " + nounPhrase() + "?"
            case 3:
                return "\"\(capitalized(g.pick(pronouns))) \(past(verb)) \(nounPhrase()) \(adverbDeck.draw(&g)),\" said \(nameDeck.draw(&g))."
            case 4:
                return "It's \(adjectiveDeck.draw(&g)), isn't it? \(nameDeck.draw(&g)) doesn't \(verb) \(plural(noun())) \(adverbDeck.draw(&g))."
            case 5:
                return "In \(placeDeck.draw(&g)), \(plural(noun())) are \(adverbDeck.draw(&g)) \(adjectiveDeck.draw(&g))."
            case 6:
                return "\(nameDeck.draw(&g)) was \(gerund(verb)) \(nounPhrase()) when \(g.pick(pronouns)) \(past(verbDeck.draw(&g))) \(nounPhrase())."
            case 7:
                return "The \(noun()) costs $\(g.below(500)).\(g.below(10))\(g.below(10)), and the \(noun()) costs \(number()) euros."
            case 8:
                return "We'll \(verb) the \(noun()), \(noun()), and \(noun()) \(g.pick(["today", "tomorrow", "next week", "on Monday", "on Friday"]))!"
            case 9:
                return "\(capitalized(g.pick(conjunctions))) \(g.pick(pronouns)) \(thirdPerson(verb)) \(nounPhrase()), \(nounPhrase()) \(past(verbDeck.draw(&g))) \(adverbDeck.draw(&g))."
            case 10:
                return "On \(g.pick(["January", "March", "May", "July", "September", "November"])) \(1 + g.below(28)), \(1900 + g.below(126)), \(nameDeck.draw(&g)) and \(nameDeck.draw(&g)) \(past(verb)) \(number()) \(plural(noun()))."
            case 11:
                let n = noun(), v = verbDeck.draw(&g)
                return "    \(v)_\(n)(\(n)s[\(g.below(64))], \(g.below(1024))) // \(gerund(v)) the \(n)"
            case 12:
                return "They're \(gerund(verb)) \(nounPhrase()); I've \(past(verbDeck.draw(&g))) \(nounPhrase()) (\(number()) times)."
            default:
                return "\(capitalized(adverbDeck.draw(&g))), \(nounPhrase()) \(thirdPerson(verb)) \(g.pick(prepositions)) \(nounPhrase()) \(g.pick(conjunctions)) \(nounPhrase()) \(thirdPerson(verbDeck.draw(&g)))."
            }
        }

        var paragraphs: [String] = []
        var size = 0
        while size < bytes {
            sentences.removeAll()
            for _ in 0..<(3 + g.below(4)) { sentences.append(sentence()) }
            let paragraph = sentences.joined(separator: g.chance(20) ? "\n" : " ")
            size += paragraph.utf8.count + 2
            paragraphs.append(paragraph)
        }
        return paragraphs
    }
}
