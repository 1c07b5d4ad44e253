import Foundation
import Runtime

/// `loramd make-model`: a random LLaMA checkpoint in the Hugging Face layout, with a byte-level
/// BPE tokenizer trained on a built-in corpus, so the README, tests and benchmarks need no download.
enum MakeModelCommand {
    static let usage = """
    usage: loramd make-model --out DIR [--preset tiny|small] [--family NAME] [--seed N] [--dtype f32|bf16|f16] [--tied] [--std X]
           loramd make-model --gguf FILE [--gguf-type F32|F16|BF16|Q8_0|Q4_0|Q4_1|Q5_0|Q5_1] [same options]

    Writes config.json, generation_config.json, model.safetensors, tokenizer.json and
    tokenizer_config.json: a random model (LlamaForCausalLM, or --family's: llama, mistral, qwen2,
    qwen3, gemma3) that loads like any Hugging Face checkpoint.
    With --gguf, the same model as one GGUF file as llama.cpp's converter writes it (tokenizer in
    its metadata; linears and embeddings in --gguf-type, default F16; norms F32).
      tiny   2 layers, hidden 64, 4 heads / 2 kv heads, MLP 176, vocab 512 (the golden model's shape)
      small  8 layers, hidden 512, 8 heads / 4 kv heads, MLP 1408, vocab 4096 (about 28M parameters)
    """

    static func run(_ arguments: [String]) -> Int32 {
        var preset = ModelMaker.Preset.tiny
        var out: String?
        var initialization = ModelMaker.Initialization()
        var dtype = TensorDType.f32
        var tied = false
        var gguf: String?
        var family = ModelFamily(Llama.self)
        var ggufType = GGUFTensorType.f16
        let ggufTypes: [String: GGUFTensorType] = ["F32": .f32, "F16": .f16, "BF16": .bf16, "Q8_0": .q8_0, "Q4_0": .q4_0,
                                                   "Q4_1": .q4_1, "Q5_0": .q5_0, "Q5_1": .q5_1]
        var rest = arguments[...]
        func fail(_ message: String) -> Int32 {
            FileHandle.standardError.write(Data("loramd make-model: \(message)\n\n\(usage)\n".utf8))
            return 2
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--help", "-h": print(usage); return 0
            case "--tied": tied = true
            case "--preset", "--out", "--seed", "--dtype", "--std", "--gguf", "--gguf-type", "--family":
                guard let value = rest.popFirst() else { return fail("\(argument) needs a value") }
                switch argument {
                case "--preset":
                    guard let p = ModelMaker.Preset(rawValue: value) else { return fail("unknown preset '\(value)'") }
                    preset = p
                case "--out": out = value
                case "--family":
                    guard let f = ModelRegistry.family(named: value) else { return fail("unknown family '\(value)'; known: \(ModelRegistry.supportedNames)") }
                    family = f
                case "--gguf": gguf = value
                case "--gguf-type":
                    guard let t = ggufTypes[value.uppercased()] else { return fail("--gguf-type must be one of \(ggufTypes.keys.sorted().joined(separator: ", "))") }
                    ggufType = t
                case "--seed":
                    guard let s = UInt64(value) else { return fail("--seed needs a non-negative integer") }
                    initialization.seed = s
                case "--std":
                    guard let s = Float(value), s > 0 else { return fail("--std needs a positive number") }
                    initialization.std = s
                default:
                    guard let d = Daemon.weightDTypes[value] else { return fail("--dtype must be f32, bf16 or f16") }
                    dtype = d
                }
            default: return fail("unknown argument '\(argument)'")
            }
        }
        guard out != nil || gguf != nil else { return fail("--out DIR or --gguf FILE is required") }
        var config = preset.config
        config.tiedEmbeddings = tied
        do {
            config = try ModelMaker.config(config, family: family)
            let start = Date()
            let tokenizer = try TokenizerBuilder.byteLevelBPE(corpus: TokenizerBuilder.builtInCorpus, vocabularySize: config.vocabSize)
            let model = ModelMaker.randomModel(config: config, initialization: initialization, dtype: dtype)
            if let out {
                let directory = URL(fileURLWithPath: out)
                // Whole or not at all, and only over an empty folder or an earlier model (OutputRule).
                try AtomicDirectory.write(to: directory, rule: .modelFolder) { try ModelMaker.write(model, tokenizerJSON: tokenizer, to: $0) }
                print(String(format: "made %@ model: %d parameters, %.1f MB as %@, in %@ (%.1f s)", preset.rawValue, model.parameterCount,
                             Double(model.byteCount) / 1e6, dtype.rawValue, directory.path, Date().timeIntervalSince(start)))
            }
            if let gguf {
                let file = URL(fileURLWithPath: gguf)
                let metadata = try Tokenizer(tokenizerJSON: tokenizer).ggufMetadata()
                try model.saveGGUF(to: file, type: ggufType, tokenizer: metadata, name: "loramd-\(preset.rawValue)")
                print(String(format: "made %@ model: %d parameters, as GGUF %@ in %@ (%.1f s)", preset.rawValue, model.parameterCount,
                             ggufType.name, file.path, Date().timeIntervalSince(start)))
            }
            return 0
        } catch {
            FileHandle.standardError.write(Data("loramd make-model: \(error)\n".utf8))
            return 1
        }
    }
}
