import Foundation
import MemoryPlanner
import Runtime

/// `loramd plan`: a memory-plan dry run from the command line, for people asking "will this model
/// train on my card, and how?". The same planner as `memory/plan`; optionally the picture as SVG.
/// Exit status: 0 planned (and fits, when --cap is given), 3 planned but DOES NOT FIT under --cap,
/// 2 bad usage or an unreadable config, 1 a plan past loramd's limits.
enum PlanCommand {
    static let doesNotFit: Int32 = 3

    static let usage = """
    usage: loramd plan (--preset NAME | --config FILE|MODEL.gguf) [--train | --generate] [--seq N] [--micro-batch N]
                       [--lora-r N] [--full] [--base f32|bf16|f16|nf4] [--nf4] [--prune RATIO] [--checkpointing]
                       [--activations f32|bf16] [--new-tokens N] [--cap SIZE] [--search] [--paper] [--svg FILE] [--json]

    --config    a Hugging Face model's config.json (the file) or a GGUF model file
    --cap SIZE  bytes, or a number with K M G T (binary: 18G = 18 GiB), KiB MiB GiB TiB, or KB MB GB TB (decimal)
    exit status 0 planned (fits, with --cap), 3 DOES NOT FIT under --cap, 2 bad usage or an unreadable config, 1 a plan past loramd's limits
    presets: \(ModelShape.presets.map(\.name).joined(separator: ", "))
    example: loramd plan --preset llama-3.1-70b --prune 0.85 --nf4 --seq 512 --cap 20GiB --search --svg plan.svg
    """

    static func run(_ arguments: [String]) -> Int32 {
        var shape: ModelShape?
        var workload = Workload(kind: .train, microBatch: 1, seqLen: 512, lora: .init(r: 8, targets: LoRATarget.decoder), baseDType: .bf16)
        var pruning: Pruning?
        var cap: Int?
        var search = false, paper = false, json = false
        var svg: String?
        var rest = arguments[...]
        func fail(_ message: String) -> Int32 {
            FileHandle.standardError.write(Data("loramd plan: \(message)\n\n\(usage)\n".utf8))
            return 2
        }
        func value(_ flag: String) -> String? { rest.popFirst() }
        while let flag = rest.popFirst() {
            switch flag {
            case "--help", "-h": print(usage); return 0
            case "--train": workload.kind = .train
            case "--generate": workload.kind = .generate
            case "--full": workload.lora = nil
            case "--nf4": workload.baseDType = .nf4
            case "--checkpointing": workload.checkpointing = true
            case "--search": search = true
            case "--paper": paper = true
            case "--json": json = true
            default:
                guard let text = value(flag) else { return fail("\(flag) needs a value") }
                switch flag {
                case "--preset":
                    guard let s = try? ModelRegistry.presetShape(named: text) else {
                        return fail("unknown preset '\(text)'; known: \(ModelRegistry.presetNames.joined(separator: ", "))")
                    }
                    shape = s
                case "--config" where GGUFFile.hasMagic(URL(fileURLWithPath: text)):
                    do { shape = try DecoderModel.config(gguf: try GGUFFile(url: URL(fileURLWithPath: text))).modelShape } catch { return fail("\(error)") }
                case "--config":
                    guard let data = FileManager.default.contents(atPath: text) else { return fail("cannot read \(text)") }
                    do { shape = try ModelConfig(json: data).modelShape } catch { return fail("\(error)") }
                case "--seq": guard let n = Int(text), n > 0 else { return fail("--seq needs a positive integer") }; workload.seqLen = n
                case "--micro-batch": guard let n = Int(text), n > 0 else { return fail("--micro-batch needs a positive integer") }; workload.microBatch = n
                case "--new-tokens": guard let n = Int(text), n >= 0 else { return fail("--new-tokens needs an integer") }; workload.newTokens = n
                case "--lora-r": guard let n = Int(text), n > 0 else { return fail("--lora-r needs a positive integer") }; workload.lora = .init(r: n, targets: LoRATarget.decoder)
                case "--activations":
                    guard let a = Workload.ActivationDType(rawValue: text) else { return fail("--activations must be f32 or bf16") }
                    workload.activationDType = a
                case "--base": guard let b = Workload.BaseDType(rawValue: text) else { return fail("--base must be f32, bf16, f16 or nf4") }; workload.baseDType = b
                case "--prune": guard let r = Double(text) else { return fail("--prune needs a ratio") }; pruning = .structured(ratio: r)
                case "--cap": guard let c = parseBytes(text) else { return fail("--cap takes bytes or a size like 18G, 20GiB, 24GB") }; cap = c
                case "--svg": svg = text
                default: return fail("unknown argument '\(flag)'")
                }
            }
        }
        guard let shape else { return fail("give --preset or --config") }
        if let cap, UInt64(cap) > ProcessInfo.processInfo.physicalMemory {
            // Planning for another machine is fine; a cap this one cannot hold should not pass unnoticed.
            FileHandle.standardError.write(Data(String(format: "loramd plan: note: --cap %.2f GiB is more than this machine's %.2f GiB of memory (planned as given)\n",
                                                       Double(cap) / Double(1 << 30), Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30)).utf8))
        }
        do {
            let plan = try MemoryPlan(original: shape, pruning: pruning, workload: workload)
            let peak = paper ? plan.paperBytes : plan.peakBytes
            let status = cap.map { peak > $0 ? doesNotFit : 0 } ?? 0
            let suggestion = search && cap != nil && peak > cap! && !paper
                ? PlanSearch.fit(original: shape, pruning: pruning, workload: workload, capBytes: cap!) : nil
            if let svg {
                try AtomicFile.write(Data(PlanPicture.svg(plan.placement).utf8), to: URL(fileURLWithPath: svg))
            }
            if json {
                var object: [String: Any] = ["peakBytes": peak, "lowerBoundBytes": paper ? peak : plan.lowerBoundBytes,
                                             "parameters": ["original": plan.accounting.original, "carrier": plan.accounting.pruned],
                                             "breakdown": Dictionary(uniqueKeysWithValues: plan.breakdown.map { ($0.key.rawValue, $0.value) })]
                if let cap { object["fits"] = peak <= cap; object["capBytes"] = cap }
                if let suggestion { object["suggestion"] = ["changes": Dictionary(uniqueKeysWithValues: suggestion.changes), "peakBytes": suggestion.plan.peakBytes] }
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]), as: UTF8.self))
                return status
            }
            func gib(_ bytes: Int) -> String { String(format: "%8.2f GiB", Double(bytes) / Double(1 << 30)) }
            print("model      \(plan.accounting.original.formatted()) parameters; carrier \(plan.accounting.pruned.formatted())" +
                  String(format: " (%.2fx fewer%@)", workload.baseDType == .nf4 ? plan.accounting.qloramReduction : plan.accounting.loramReduction,
                         workload.baseDType == .nf4 ? ", counted as the paper counts 4-bit" : ""))
            print("workload   \(workload.kind.rawValue), micro-batch \(workload.microBatch) x \(workload.seqLen) tokens, " +
                  (workload.lora.map { "LoRA r \($0.r)" } ?? "full-parameter") + ", base \(workload.baseDType.rawValue)" +
                  (workload.checkpointing ? ", layer checkpointing" : "") +
                  (workload.activationDType == .bf16 ? ", bf16 activations" : ""))
            print("peak      \(gib(peak))  (\(paper ? "paper accounting: parameter storage only" : String(format: "lower bound %@, peak/bound %.4f", gib(plan.lowerBoundBytes), plan.placement.ratio)))")
            if !paper {
                for kind in BufferKind.allCases where (plan.breakdown[kind] ?? 0) > 0 {
                    print("  \(kind.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(gib(plan.breakdown[kind]!))")
                }
            }
            if let cap {
                print(peak <= cap ? "fits       under \(gib(cap))" : "DOES NOT FIT under \(gib(cap))")
            }
            if let suggestion {
                print("suggestion \(suggestion.changes.map { "\($0.0)=\($0.1)" }.joined(separator: ", ")) -> peak \(gib(suggestion.plan.peakBytes))")
            } else if search, let cap, peak > cap, !paper {
                print("suggestion none: no checkpointing, micro-batch, 4-bit or pruning change fits")
            }
            if let svg { print("picture    \(svg)") }
            return status
        } catch {
            FileHandle.standardError.write(Data("loramd plan: \(error)\n".utf8))
            return 1
        }
    }

    /// "21474836480", "18G" (= 18GiB: one letter is binary, as in ulimit, docker and qemu),
    /// "20GiB", "24GB" (decimal), "512MiB", "1.5T"; units in any case. The Python CLI's
    /// parse_bytes reads the same sizes.
    static func parseBytes(_ text: String) -> Int? {
        let units: [(String, Double)] = [("TIB", 0x1p40), ("GIB", 0x1p30), ("MIB", 0x1p20), ("KIB", 0x1p10),
                                         ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3),
                                         ("T", 0x1p40), ("G", 0x1p30), ("M", 0x1p20), ("K", 0x1p10), ("B", 1)]
        let upper = text.uppercased()
        for (suffix, scale) in units where upper.hasSuffix(suffix) {
            // Past 2^62 bytes no cap means anything (and Int(_:) would trap past Int.max).
            guard let number = Double(upper.dropLast(suffix.count)), number.isFinite, number > 0, number * scale < 0x1p62,
                  Int(number * scale) > 0 else { return nil }
            return Int(number * scale)
        }
        return Int(text).flatMap { $0 > 0 ? $0 : nil }
    }
}
