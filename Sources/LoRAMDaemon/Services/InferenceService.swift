import Foundation
import MemoryPlanner
import RPC
import Runtime

/// Inference: `model/forward`, `generate` and `eval/perplexity`. Each request runs its own
/// session (KV cache and planned workspace) on a shared, read-only model, planned and charged to
/// the budget before anything is allocated and released when it ends; over the budget, OverBudget
/// says the largest request that fits.
struct InferenceService {
    let registry: ObjectRegistry
    let ledger: MemoryLedger

    /// The bytes a session of `capacity` positions holds beyond the weights: its KV cache, and the
    /// placement of its transient buffers (workspace and `logitsRows` rows of logits).
    /// Throws `SizeError` when the capacity is past `SizeLimits.seqLen` or the session's sizes overflow.
    func sessionPlan(_ loaded: LoadedModel, adapter: LoRAAdapter?, capacity: Int, logitsRows: Int) throws -> (kvBytes: Int, placement: BestFitPlacement) {
        let config = loaded.model.config
        // The session's own program: the one InferenceSession runs in.
        let program = try InferenceSession.program(model: loaded.model, capacity: capacity, adapter: adapter, logitsRows: logitsRows)
        // The planned KV cache (checked arithmetic) is the cache the session allocates.
        let kvBytes = KVCache.byteCount(kvHeads: loaded.model.layers.map(\.shape.kvHeads), headDim: config.headDim,
                                        slots: config.modelShape.kvSlots(positions: capacity, chunk: InferenceSession.defaultChunkSize))
        // A placement that fails is an error, never a session charged 0 bytes of workspace.
        return (kvBytes, try BestFitPlacement(program.transientOnly()))
    }

    /// A session for `capacity` positions (with `adapter` applied, if any) holding `logitsRows`
    /// rows of logits, charged to the budget for as long as `body` runs. Over the budget, nothing is
    /// allocated, and OverBudget carries `suggest(largest capacity that fits)` when `minimumCapacity`
    /// (the smallest useful session) fits, else no suggestion.
    func withSession<T>(_ loaded: LoadedModel, adapter: LoRAAdapter? = nil, capacity: Int, logitsRows: Int = 1, request: RequestContext,
                        minimumCapacity: Int? = nil, suggest: ((Int, Int) -> JSONValue)? = nil, ownerTag: String = "",
                        _ body: (InferenceSession) throws -> T) throws -> T {
        // The session runs in its planned arena; the KV cache and the arena are charged before either exists.
        // Capacities come from a request's or a dataset's tokens; past the limits they are InvalidParams.
        let (kvBytes, placement) = try ErrorMapping.translating { try sessionPlan(loaded, adapter: adapter, capacity: capacity, logitsRows: logitsRows) }
        let workspace = placement.peak
        // `ownerTag` tells apart two sessions one request holds at once (model/compare).
        let owner = "request \(request.id)\(ownerTag)"
        do {
            try ledger.charge(Int64(kvBytes + workspace), to: owner,
                              breakdown: .object([("kvCache", .int(Int64(kvBytes))), ("workspace", .int(Int64(workspace)))]))
        } catch let error as RPCError where error.code == .overBudget {
            guard let suggest, let minimum = minimumCapacity, minimum < capacity else { throw error.with("suggestion", .null) }
            let free = ledger.capBytes - ledger.usedBytes
            func bytes(_ c: Int) -> Int {
                // Smaller than a capacity already planned: it plans too.
                guard let plan = try? sessionPlan(loaded, adapter: adapter, capacity: c, logitsRows: min(logitsRows, c)) else { return .max }
                return plan.kvBytes + plan.placement.peak
            }
            // The session's bytes grow with its capacity: the largest capacity that fits, by bisection.
            guard Int64(bytes(minimum)) <= free else { throw error.with("suggestion", .null) }
            var low = minimum, high = capacity - 1
            while low < high {
                let mid = (low + high + 1) / 2
                if Int64(bytes(mid)) <= free { low = mid } else { high = mid - 1 }
            }
            throw error.with("suggestion", suggest(low, loaded.bytes + bytes(low)))
        }
        defer { ledger.release(owner) }
        let arena: PlannedBuffers
        do {
            arena = try PlannedBuffers(placement: placement)
        } catch {
            // Charged, yet the machine would not give the memory: the machine's memory, not the request's fault.
            throw RPCError(.overBudget, "Over budget: the machine could not give the session its planned \(workspace)-byte workspace (\(error))",
                           hint: "Free memory on the machine (other processes), or ask for fewer tokens.",
                           data: [("needBytes", .int(Int64(workspace))), ("capBytes", .int(ledger.capBytes)),
                                  ("breakdown", .object([("kvCache", .int(Int64(kvBytes))), ("workspace", .int(Int64(workspace)))])),
                                  ("suggestion", .null)])
        }
        let session = try InferenceSession(model: loaded.model, capacity: capacity, adapter: adapter, logitsRows: logitsRows, arena: arena)
        return try body(session)
    }

    /// Charges model/forward's reply until it is written, or refuses it with OverBudget saying
    /// what would fit: base64 instead of JSON, or the last row only. The session it is built from
    /// must fit beside it, so both are weighed here, before either is charged.
    func chargeReply(of loaded: LoadedModel, adapter: LoRAAdapter?, ids: Int, rows: Int, encoding: LogitsReply.Encoding,
                     context: RequestContext) throws {
        let vocab = loaded.model.config.vocabSize
        func session(rows: Int) throws -> (kv: Int, workspace: Int) {
            let plan = try sessionPlan(loaded, adapter: adapter, capacity: ids, logitsRows: rows)
            return (plan.kvBytes, plan.placement.peak)
        }
        func need(rows: Int, _ encoding: LogitsReply.Encoding) throws -> Int {
            let s = try session(rows: rows)
            return s.kv + s.workspace + LogitsReply.estimatedBytes(rows: rows, vocab: vocab, encoding: encoding)
        }
        let bytes = LogitsReply.estimatedBytes(rows: rows, vocab: vocab, encoding: encoding)
        let free = ledger.capBytes - ledger.usedBytes
        guard Int64(try need(rows: rows, encoding)) <= free else {
            var suggestion = JSONValue.null
            if encoding == .json, Int64(try need(rows: rows, .base64)) <= free {
                suggestion = InferenceService.suggestion("logitsEncoding", .string("base64"), peakBytes: loaded.bytes + (try need(rows: rows, .base64)))
            } else if rows > 1, Int64(try need(rows: 1, encoding)) <= free {
                suggestion = InferenceService.suggestion("logits", .string("last"), peakBytes: loaded.bytes + (try need(rows: 1, encoding)))
            }
            let s = try session(rows: rows)
            throw RPCError(.overBudget, "Over budget: the reply of \(rows) rows of \(vocab) logits as \(encoding.rawValue) needs up to \(bytes) bytes beside its session's \(s.kv + s.workspace), \(max(0, free)) of \(ledger.capBytes) are free",
                           hint: "Ask for logits \"last\" or fewer ids, or logitsEncoding \"base64\" (about 5.3 bytes a logit instead of up to \(LogitsReply.jsonBytesPerFloat)); or raise hbmCapBytes.",
                           data: [("needBytes", .int(ledger.usedBytes + Int64(bytes + s.kv + s.workspace))), ("capBytes", .int(ledger.capBytes)),
                                  ("breakdown", .object([("reply", .int(Int64(bytes))), ("kvCache", .int(Int64(s.kv))), ("workspace", .int(Int64(s.workspace)))])),
                                  ("suggestion", suggestion)])
        }
        let owner = "request \(context.id) reply"
        try ledger.charge(Int64(bytes), to: owner, breakdown: .object([("reply", .int(Int64(bytes)))]))
        context.whenAnswered { [ledger] in ledger.release(owner) }
    }

    static func suggestion(_ field: String, _ value: JSONValue, peakBytes: Int) -> JSONValue {
        .object([("changes", .object([(field, value)])), ("peakBytes", .int(Int64(peakBytes)))])
    }

    /// An OverBudget suggestion: the one setting to change, and the peak with it.
    static func suggestion(_ field: String, _ value: Int, peakBytes: Int) -> JSONValue {
        .object([("changes", .object([(field, .int(Int64(value)))])), ("peakBytes", .int(Int64(peakBytes)))])
    }

    func forward(_ params: ForwardParams, context: RequestContext) throws -> RawJSON {
        let loaded = try registry.model(params.modelId)
        let adapter = try registry.appliedAdapter(params.adapterId, on: loaded)
        guard !params.ids.isEmpty else { throw RPCError.invalidParams(field: "ids", "must not be empty") }
        try Daemon.checkIds(params.ids, vocabSize: loaded.model.config.vocabSize, field: "ids")
        let all: Bool
        switch params.logits ?? "last" {
        case "last": all = false
        case "all": all = true
        case let other: throw RPCError.invalidParams(field: "logits", "must be \"last\" or \"all\", got \"\(other)\"")
        }
        let encodings = LogitsReply.Encoding.allCases.map(\.rawValue)
        guard let encoding = LogitsReply.Encoding(rawValue: params.logitsEncoding ?? "json") else {
            throw RPCError.invalidParams(field: "logitsEncoding", "must be \(encodings.joined(separator: " or ")), got \"\(params.logitsEncoding ?? "")\"")
        }
        let vocab = loaded.model.config.vocabSize
        let rows = all ? params.ids.count : 1
        try chargeReply(of: loaded, adapter: adapter, ids: params.ids.count, rows: rows, encoding: encoding, context: context)
        return try ErrorMapping.translating {
            // The logits rows live in the session's arena (planned with it); only the reply copies them.
            try withSession(loaded, adapter: adapter, capacity: params.ids.count, logitsRows: rows, request: context) { session in
                let logits = session.logits
                try session.forward(params.ids, logits: all ? .all(logits) : .last(logits), checkpoint: context.checkCancelled)
                return LogitsReply.build(logits, rows: rows, vocab: vocab, encoding: encoding)
            }
        }
    }

    func generate(_ params: GenerateParams, context: RequestContext) throws -> GenerateResult {
        let loaded = try registry.model(params.modelId)
        let adapter = try registry.appliedAdapter(params.adapterId, on: loaded)
        guard (1...1_000_000).contains(params.maxTokens) else {
            throw RPCError.invalidParams(field: "maxTokens", "must be between 1 and 1000000, got \(params.maxTokens)")
        }
        if let t = params.temperature, !(t >= 0 && t.isFinite) { throw RPCError.invalidParams(field: "temperature", "must be >= 0") }
        if let p = params.topP, !(p > 0 && p <= 1) { throw RPCError.invalidParams(field: "topP", "must be in (0, 1]") }
        if let k = params.topK, k < 1 { throw RPCError.invalidParams(field: "topK", "must be >= 1") }
        let prompt: [Int]
        switch (params.prompt, params.ids) {
        case (let text?, nil):
            prompt = try loaded.requireTokenizer().encode(text, addSpecialTokens: params.addBos ?? true)
            if let bad = prompt.first(where: { $0 >= loaded.model.config.vocabSize }) {
                throw RPCError.invalidParams(field: "prompt", "encodes to id \(bad), a token the tokenizer adds past the model's vocabulary of \(loaded.model.config.vocabSize)")
            }
        case (nil, let ids?):
            try Daemon.checkIds(ids, vocabSize: loaded.model.config.vocabSize, field: "ids")
            prompt = ids
        case (nil, nil): throw RPCError.invalidParams(field: "prompt", "is required (or give 'ids')")
        default: throw RPCError.invalidParams(field: "ids", "give 'prompt' or 'ids', not both")
        }
        guard !prompt.isEmpty else { throw RPCError.invalidParams(field: "prompt", "encodes to no tokens") }
        var options = TextGenerator.Options(maxTokens: params.maxTokens)
        options.sampler = Sampler.Settings(temperature: params.temperature ?? 0, topK: params.topK, topP: params.topP,
                                           seed: params.seed ?? 0)
        options.stop = params.stop ?? []
        options.eosTokenIds = loaded.eosTokenIds
        let decoder: IncrementalTextDecoder = loaded.tokenizer?.makeStreamingDecoder(skipSpecialTokens: true) ?? NoTextDecoder()
        return try ErrorMapping.translating {
            try withSession(loaded, adapter: adapter, capacity: prompt.count + params.maxTokens, request: context,
                            minimumCapacity: prompt.count + 1,
                            suggest: { capacity, peak in InferenceService.suggestion("maxTokens", capacity - prompt.count, peakBytes: peak) }) { session in
                do {
                    let output = try TextGenerator(session: session).generate(
                        prompt: prompt, options: options, decoder: decoder,
                        onText: { piece in context.progress?.report(fields: [("text", .string(piece))]) },
                        checkpoint: context.checkCancelled)
                    return GenerateResult(output)
                } catch let stopped as TextGenerator.Stopped {
                    // The partial output travels with the cancellation.
                    let partial = GenerateResult(stopped.partial)
                    throw RPCError.requestCancelled.with("partial", .object([
                        ("text", .string(partial.text)), ("ids", .array(partial.ids.map { .int(Int64($0)) })),
                        ("finishReason", .string("cancelled"))]))
                }
            }
        }
    }

    /// Perplexity of the model (with the adapter) on the dataset's rows of `seqLen` tokens.
    func perplexity(_ params: PerplexityParams, context: RequestContext) throws -> PerplexityResult {
        let loaded = try registry.model(params.modelId)
        let adapter = try registry.appliedAdapter(params.adapterId, on: loaded)
        let seqLen = params.seqLen ?? min(1024, loaded.model.config.maxPositionEmbeddings)
        guard seqLen >= 2 else { throw RPCError.invalidParams(field: "seqLen", "must be at least 2") }
        if let n = params.maxSamples, n < 1 { throw RPCError.invalidParams(field: "maxSamples", "must be at least 1") }
        let dataset = try DatasetReader.read(params.dataset, field: "dataset", model: loaded)
        var sequences = dataset.sequences(seqLen: seqLen)
        if let n = params.maxSamples { sequences = Array(sequences.prefix(n)) }
        // Refused before a session is planned or run, as train/create refuses such data: no
        // row with a label to predict (a shifted loss needs two tokens and a label).
        if let problem = DataLoader.problem(examples: sequences, mode: .truncate, seqLen: seqLen) {
            throw RPCError.invalidParams(field: "dataset", "\(dataset.url.lastPathComponent) \(problem)")
        }
        return try ErrorMapping.translating {
            let capacity = sequences.map(\.ids.count).max() ?? 1
            // One prefill chunk of logits rows at a time, in the session's arena.
            let rows = min(capacity, InferenceSession.defaultChunkSize)
            let result = try withSession(loaded, adapter: adapter, capacity: capacity, logitsRows: rows, request: context,
                                         minimumCapacity: 2, suggest: { c, peak in InferenceService.suggestion("seqLen", c, peakBytes: peak) }) { session in
                try Perplexity.evaluate(session, sequences: sequences, checkpoint: context.checkCancelled)
            }
            // What the check above lets through has a label; a run that counts none is the daemon's fault.
            guard result.tokens > 0 else { throw RPCError.internalError("perplexity counted no token of \(sequences.count) rows with labels") }
            return PerplexityResult(loss: result.loss, perplexity: result.perplexity, tokens: result.tokens, sequences: sequences.count)
        }
    }
}

extension InferenceService {
    struct ForwardParams: Decodable {
        var modelId: String
        var adapterId: String?
        var ids: [Int]
        var logits: String?
        var logitsEncoding: String?
    }

    struct GenerateParams: Decodable {
        var modelId: String
        var adapterId: String?
        var prompt: String?
        var ids: [Int]?
        @Size<SizeBounds.NewTokens> var maxTokens: Int
        var temperature: Double?
        var topP: Double?
        @SizeIfGiven<SizeBounds.TopK> var topK: Int?
        var seed: UInt64?
        var stop: [String]?
        var addBos: Bool?
    }

    struct GenerateResult: Encodable {
        struct Usage: Encodable { var promptTokens: Int; var completionTokens: Int }
        struct Timing: Encodable { var prefillTokensPerSecond: Double; var decodeTokensPerSecond: Double; var prefillSeconds: Double; var decodeSeconds: Double }
        var text: String
        var ids: [Int]
        var finishReason: String
        var usage: Usage
        var timing: Timing
    }

    struct PerplexityParams: Decodable {
        var modelId: String
        var adapterId: String?
        var dataset: DatasetParam
        @SizeIfGiven<SizeBounds.SeqLen> var seqLen: Int?
        @SizeIfGiven<SizeBounds.Samples> var maxSamples: Int?
    }

    struct PerplexityResult: WireResult {
        var loss: Double
        var perplexity: Double
        var tokens: Int
        var sequences: Int
    }
}

extension InferenceService.GenerateResult {
    init(_ output: TextGenerator.Output) {
        self.init(text: output.text, ids: output.ids, finishReason: output.finishReason.rawValue,
                  usage: .init(promptTokens: output.promptTokens, completionTokens: output.ids.count),
                  timing: .init(prefillTokensPerSecond: output.prefillTokensPerSecond, decodeTokensPerSecond: output.decodeTokensPerSecond,
                                prefillSeconds: output.prefillSeconds, decodeSeconds: output.decodeSeconds))
    }
}

/// For checkpoints without a tokenizer: ids only, no text.
final class NoTextDecoder: IncrementalTextDecoder {
    func append(_ id: Int) -> String { "" }
    func flush() -> String { "" }
}

extension StreamingDecoder: IncrementalTextDecoder {}
