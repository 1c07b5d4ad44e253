import Foundation
import MemoryPlanner

/// adapter_config.json of a PEFT LoRA: read with everything loramd does not compute refused as a
/// FormatError (DoRA, rsLoRA, per-module ranks, a subset of layers, biases, ...), never applied
/// wrongly; written with the keys PEFT 0.21 writes, so PEFT loads what loramd saves.
///
/// `target_modules` resolves as PEFT resolves it, against every module name of a
/// the model (`moduleNames`): a list entry matches a name equal to it or ending in `.entry`; a string is a
/// regular expression that must match a whole name (`re.fullmatch`), or PEFT's `all-linear`.
public struct PEFTAdapterConfig: Equatable, Sendable {
    public enum TargetModules: Equatable, Sendable {
        case list([String])
        /// A regular expression over whole module names (ICU syntax; Python-only forms such as
        /// `(?P<name>…)` do not compile and are refused).
        case pattern(String)
    }

    public var rank: Int
    public var alpha: Double
    public var dropout: Double
    public var targetModules: TargetModules
    public var baseModelNameOrPath: String?

    public static let fileName = "adapter_config.json"
    /// The PEFT release whose file layout this follows (written as `peft_version`).
    public static let peftVersion = "0.21.2"
    /// PEFT's default `target_modules` for model_type llama, used when the file has none.
    public static let llamaDefaultTargets = ["q_proj", "v_proj"]

    public init(rank: Int, alpha: Double, dropout: Double, targets: Set<LoRATarget>, baseModelNameOrPath: String? = nil) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        targetModules = .list(LoRATarget.allCases.filter(targets.contains).map(\.rawValue))
        self.baseModelNameOrPath = baseModelNameOrPath
    }

    public init(directory: URL) throws {
        try self.init(json: try FormatError.contents(of: Self.fileName, in: directory))
    }

    public init(json data: Data) throws {
        let file = Self.fileName
        let object = try FormatError.jsonObject(data, file: file)
        func present(_ key: String) -> Any? {
            guard let value = object[key], !(value is NSNull) else { return nil }
            return value
        }
        func isSet(_ value: Any?) -> Bool {
            switch value {
            case .none, is NSNull: return false
            case let list as [Any]: return !list.isEmpty
            case let dictionary as [String: Any]: return !dictionary.isEmpty
            case let string as String: return !string.isEmpty
            case let other?: return ConfigFields.isBoolean(other) ? (other as! Bool) : true
            }
        }

        guard let peftType = present("peft_type") as? String else { throw FormatError(file: file, "missing peft_type") }
        guard peftType == "LORA" else { throw FormatError(file: file, "peft_type \(peftType) is not supported; loramd applies LORA adapters") }
        if let task = present("task_type") {
            guard task as? String == "CAUSAL_LM" else { throw FormatError(file: file, "task_type \(task) is not supported; loramd runs CAUSAL_LM") }
        }
        if let bias = present("bias") {
            guard bias as? String == "none" else { throw FormatError(file: file, "bias \"\(bias)\" is not supported; only \"none\" is (no bias terms are trained)") }
        }
        let unsupported: [(key: String, what: String)] = [
            ("use_dora", "DoRA"), ("use_rslora", "rsLoRA scaling (alpha / sqrt(r))"), ("fan_in_fan_out", "fan_in_fan_out (Conv1D weights)"),
            ("lora_bias", "a bias on lora_B"), ("use_qalora", "QA-LoRA"), ("use_bdlora", "BD-LoRA"),
            ("rank_pattern", "per-module ranks"), ("alpha_pattern", "per-module alphas"),
            ("layers_to_transform", "adapting a subset of layers"), ("modules_to_save", "fully trained extra modules"),
            ("exclude_modules", "excluded modules"), ("target_parameters", "LoRA on parameters"),
            ("layer_replication", "layer replication"), ("trainable_token_indices", "trainable tokens"),
            ("alora_invocation_tokens", "activated LoRA"), ("arrow_config", "Arrow routing"), ("kasa_config", "KaSA"),
            ("velora_config", "VeLoRA"), ("monteclora_config", "MonteCLoRA"),
        ]
        for (key, what) in unsupported where isSet(object[key]) {
            throw FormatError(file: file, "\(key) is set: \(what) is not supported by loramd")
        }
        if let initialization = present("init_lora_weights"), !ConfigFields.isBoolean(initialization), initialization as? String != "gaussian" {
            // pissa, olora, loftq, corda, ... change the base weights as well; the adapter alone is not the model.
            throw FormatError(file: file, "init_lora_weights \"\(initialization)\" is not supported: that initialisation also changes the base weights")
        }

        let fields = ConfigFields(object, file: file)
        let r = try fields.optionalPositiveInt("r") ?? 8
        // The rank sizes every factor and the budget's charge: within SizeLimits before either.
        try ModelConfig.sizeChecked(file: file) { try SizeLimits.check(r, atMost: SizeLimits.loraRank, "r") }
        rank = r
        alpha = try fields.optionalDouble("lora_alpha") ?? 8
        let dropoutValue = try fields.number("lora_dropout") ?? 0
        guard dropoutValue >= 0, dropoutValue < 1 else { throw FormatError(file: file, "lora_dropout must be in [0, 1), got \(dropoutValue)") }
        dropout = dropoutValue
        switch present("target_modules") {
        case .none: targetModules = .list(Self.llamaDefaultTargets)
        case let pattern as String: targetModules = .pattern(pattern)
        case let list as [Any]:
            targetModules = .list(try list.map {
                guard let name = $0 as? String else { throw FormatError(file: file, "target_modules must be a list of strings or one string") }
                return name
            })
        default: throw FormatError(file: file, "target_modules must be a list of strings or one string")
        }
        baseModelNameOrPath = present("base_model_name_or_path") as? String
    }

    /// Every module name of a model of `layout`'s family with `layerCount` layers, as PyTorch's
    /// `named_modules()` lists them (the root excluded, as PEFT skips it): the linears and each
    /// norm (Qwen3's and Gemma's per-head norms inside self_attn, Gemma's four layer norms).
    public static func moduleNames(layerCount: Int, layout: ModelLayout = .decoder) -> [String] {
        let norms = layout.layer.filter {
            if case .norm = $0.role { return true }
            if case .headNorm = $0.role { return true }
            return false
        }.map { String($0.hf.dropLast(".weight".count)) }
        var names = ["model", "model.embed_tokens", "model.layers"]
        for i in 0..<layerCount {
            let p = "model.layers.\(i)"
            names += [p, "\(p).self_attn"] + [LoRATarget.q, .k, .v, .o].map { $0.modulePath(layer: i) }
            names += ["\(p).mlp"] + [LoRATarget.gate, .up, .down].map { $0.modulePath(layer: i) } + ["\(p).mlp.act_fn"]
            names += norms.map { "\(p).\($0)" }
        }
        return names + ["model.norm", "model.rotary_emb", "lm_head"]
    }

    /// The longest `target_modules` pattern read; PEFT's are a few dozen characters.
    public static let maxPatternLength = 1024
    /// How long a pattern may take to match against every module name. A pattern with nested
    /// repetition (`(.*.*)*q`) backtracks exponentially: ICU would run for minutes, uninterruptibly.
    public static let patternTimeLimit: TimeInterval = 0.5

    /// The targets `target_modules` selects in a model of `layerCount` layers. Refused: an entry
    /// or pattern matching no module, a match on anything but the seven projections and lm_head
    /// (PEFT would adapt an embedding or fail), and a projection matched in some layers only;
    /// a pattern longer than `maxPatternLength` or slower than `patternTimeLimit`. `checkpoint`
    /// runs while a pattern matches; what it throws (a cancellation) ends the matching.
    public func resolveTargets(layerCount: Int, layout: ModelLayout = .decoder, checkpoint: () throws -> Void = {}) throws -> Set<LoRATarget> {
        let file = Self.fileName
        let names = Self.moduleNames(layerCount: layerCount, layout: layout)
        var matched: [String] = []
        switch targetModules {
        case .pattern("all-linear"):
            // PEFT's shorthand: every linear except the output layer.
            return Set(LoRATarget.layerTargets)
        case .pattern(let pattern):
            guard pattern.count <= Self.maxPatternLength else {
                throw FormatError(file: file, "target_modules is a pattern of \(pattern.count) characters; loramd reads patterns up to \(Self.maxPatternLength) (list the modules instead)")
            }
            guard (try? NSRegularExpression(pattern: pattern)) != nil,
                  let whole = try? NSRegularExpression(pattern: "^(?:\(pattern))\\z") else {
                throw FormatError(file: file, "target_modules \"\(pattern)\" is not a regular expression loramd can read")
            }
            let deadline = Date(timeIntervalSinceNow: Self.patternTimeLimit)
            for name in names {
                guard let hit = try Self.fullMatch(whole, name, deadline: deadline, checkpoint: checkpoint) else {
                    throw FormatError(file: file, "target_modules \"\(pattern)\" takes over \(Self.patternTimeLimit) s to match the model's \(names.count) module names (nested repetition such as (a+)+ backtracks exponentially); simplify it or list the modules")
                }
                if hit { matched.append(name) }
            }
            guard !matched.isEmpty else { throw FormatError(file: file, "target_modules \"\(pattern)\" matches no module of the model") }
        case .list(let entries):
            guard !entries.isEmpty else { throw FormatError(file: file, "target_modules is empty") }
            for entry in entries {
                let hits = names.filter { $0 == entry || $0.hasSuffix("." + entry) }
                guard !hits.isEmpty else {
                    throw FormatError(file: file, "target_modules names \"\(entry)\", which is not a module of the model (loramd adapts \(LoRATarget.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                matched += hits
            }
        }
        var linears: [String: (LoRATarget, Int)] = [LoRATarget.lmHead.modulePath(layer: 0): (.lmHead, 0)]
        for i in 0..<layerCount {
            for target in LoRATarget.layerTargets { linears[target.modulePath(layer: i)] = (target, i) }
        }
        var layersOf: [LoRATarget: Set<Int>] = [:]
        for name in matched {
            guard let (target, layer) = linears[name] else {
                throw FormatError(file: file, "target_modules selects \(name), which is not one of the linears loramd adapts (\(LoRATarget.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            layersOf[target, default: []].insert(layer)
        }
        for (target, layers) in layersOf where target != .lmHead && layers.count != layerCount {
            throw FormatError(file: file, "target_modules selects \(target.rawValue) in layers \(layers.sorted()) only; loramd adapts a projection in every layer or in none")
        }
        return Set(layersOf.keys)
    }

    /// Whether `regex` matches `name`; nil when `deadline` passes first. ICU reports progress
    /// every few thousand backtracking steps, where the time and `checkpoint` are looked at.
    static func fullMatch(_ regex: NSRegularExpression, _ name: String, deadline: Date, checkpoint: () throws -> Void) throws -> Bool? {
        var found = false, late = false
        var interruption: Error?
        withoutActuallyEscaping(checkpoint) { checkpoint in
            regex.enumerateMatches(in: name, options: [.reportProgress], range: NSRange(name.startIndex..., in: name)) { result, flags, stop in
                if result != nil {
                    found = true
                    stop.pointee = true
                } else if flags.contains(.progress) {
                    do { try checkpoint() } catch { interruption = error; stop.pointee = true }
                    if Date() > deadline { late = true; stop.pointee = true }
                }
            }
        }
        if let interruption { throw interruption }
        return found ? true : late ? nil : false
    }

    /// The JSON PEFT 0.21 writes for a LoRA on a causal LM.
    public func jsonObject() -> [String: Any] {
        let null = NSNull()
        let targets: Any
        switch targetModules {
        case .list(let names): targets = names
        case .pattern(let pattern): targets = pattern
        }
        let alphaValue: Any = alpha.rounded() == alpha && abs(alpha) < 1e15 ? Int(alpha) as Any : alpha as Any
        return [
            "alora_invocation_tokens": null, "alpha_pattern": [String: Any](), "arrow_config": null, "auto_mapping": null,
            "base_model_name_or_path": baseModelNameOrPath.map { $0 as Any } ?? null, "bias": "none", "corda_config": null,
            "ensure_weight_tying": false, "eva_config": null, "exclude_modules": null, "fan_in_fan_out": false,
            "inference_mode": true, "init_lora_weights": true, "kasa_config": null, "layer_replication": null,
            "layers_pattern": null, "layers_to_transform": null, "loftq_config": [String: Any](), "lora_alpha": alphaValue,
            "lora_bias": false, "lora_dropout": dropout, "lora_ga_config": null, "megatron_config": null,
            "megatron_core": "megatron.core", "modules_to_save": null, "monteclora_config": null, "peft_type": "LORA",
            "peft_version": Self.peftVersion, "qalora_group_size": 16, "r": rank, "rank_pattern": [String: Any](),
            "revision": null, "target_modules": targets, "target_parameters": null, "task_type": "CAUSAL_LM",
            "trainable_token_indices": null, "use_bdlora": null, "use_dora": false, "use_qalora": false,
            "use_rslora": false, "velora_config": null,
        ]
    }

    public func jsonData() throws -> Data {
        try JSONSerialization.data(withJSONObject: jsonObject(), options: [.prettyPrinted, .sortedKeys])
    }
}
