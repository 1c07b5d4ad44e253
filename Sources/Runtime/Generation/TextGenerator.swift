import Foundation

/// Turns token ids into text as they are generated, holding back incomplete UTF-8 (the tokenizer's
/// streaming decoder conforms).
public protocol IncrementalTextDecoder: AnyObject {
    func append(_ id: Int) -> String
    func flush() -> String
}

/// The generation loop: prefill the prompt, then sample token after token with the KV cache until
/// `maxTokens`, an EOS id or a stop string. Text streams out through `onText` in pieces that are
/// final: a piece that might be the start of a stop string is held back until it is not.
public struct TextGenerator {
    public struct Options: Sendable {
        public var maxTokens: Int
        public var sampler = Sampler.Settings()
        public var stop: [String] = []
        public var eosTokenIds: Set<Int> = []
        public init(maxTokens: Int) { self.maxTokens = maxTokens }
    }

    public enum FinishReason: String, Sendable { case length, stop, eos, cancelled }

    public struct Output: Sendable {
        public var text = ""
        public var ids: [Int] = []
        public var finishReason = FinishReason.length
        public var promptTokens = 0
        public var prefillSeconds = 0.0
        public var decodeSeconds = 0.0
        public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
        /// Tokens after the first (which the prefill produces) over the time spent producing them.
        public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(max(0, ids.count - 1)) / decodeSeconds : 0 }
    }

    /// Raised by `checkpoint` to stop; the output so far comes with it.
    public struct Stopped: Error {
        public let underlying: Error
        public let partial: Output
    }

    public let session: InferenceSession

    public init(session: InferenceSession) { self.session = session }

    public func generate(prompt: [Int], options: Options, decoder: IncrementalTextDecoder,
                         onText: (String) -> Void = { _ in }, checkpoint: () throws -> Void = {}) throws -> Output {
        precondition(!prompt.isEmpty, "a prompt needs at least one token")
        let vocab = session.model.config.vocabSize
        var output = Output()
        output.promptTokens = prompt.count
        output.ids.reserveCapacity(min(options.maxTokens, session.cache.capacity))
        let sampler = Sampler(vocabSize: vocab, settings: options.sampler)
        let logits = session.logitsRow
        var stream = StopStringFilter(stops: options.stop)

        session.reset()
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            try session.forward(prompt, logits: .last(logits), checkpoint: checkpoint)
        } catch let error as InferenceSession.Failure {
            throw error
        } catch {
            output.finishReason = .cancelled
            throw Stopped(underlying: error, partial: output)
        }
        let prefillEnd = DispatchTime.now().uptimeNanoseconds
        output.prefillSeconds = Double(prefillEnd - start) / 1e9

        while output.ids.count < options.maxTokens {
            let id = sampler.next(logits, count: vocab)
            output.ids.append(id)
            if options.eosTokenIds.contains(id) {
                output.finishReason = .eos
                break
            }
            let (emit, stopped) = stream.push(decoder.append(id))
            if !emit.isEmpty { output.text += emit; onText(emit) }
            if stopped { output.finishReason = .stop; break }
            guard output.ids.count < options.maxTokens else { break }
            do {
                try checkpoint()
                try session.forward([id], logits: .last(logits))
            } catch let error as InferenceSession.Failure {
                // The cache is full: the context ends here, as `length` would.
                _ = error
                break
            } catch {
                output.finishReason = .cancelled
                output.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - prefillEnd) / 1e9
                throw Stopped(underlying: error, partial: output)
            }
        }
        if output.finishReason != .stop {
            let (emit, stopped) = stream.finish(decoder.flush())
            if !emit.isEmpty { output.text += emit; onText(emit) }
            if stopped { output.finishReason = .stop }
        }
        output.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - prefillEnd) / 1e9
        return output
    }
}

/// Text in, text out, minus everything from the first stop string on. Holds back the tail that
/// could still become a stop string, and releases it once it cannot.
struct StopStringFilter {
    let stops: [String]
    private var pending = ""

    init(stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

    /// Adds `piece`; returns the text now safe to emit and whether a stop string was found.
    mutating func push(_ piece: String) -> (String, Bool) {
        pending += piece
        guard !stops.isEmpty else { defer { pending = "" }; return (pending, false) }
        if let cut = stops.compactMap({ pending.range(of: $0)?.lowerBound }).min() {
            defer { pending = "" }
            return (String(pending[..<cut]), true)
        }
        let hold = stops.map { Self.overlap(pending, $0) }.max() ?? 0
        let safe = pending.index(pending.endIndex, offsetBy: -hold)
        defer { pending = String(pending[safe...]) }
        return (String(pending[..<safe]), false)
    }

    /// The rest at the end of generation.
    mutating func finish(_ piece: String) -> (String, Bool) {
        let (emit, stopped) = push(piece)
        defer { pending = "" }
        return stopped ? (emit, true) : (emit + pending, false)
    }

    /// The length (in Characters) of the longest suffix of `text` that is a proper prefix of `stop`.
    static func overlap(_ text: String, _ stop: String) -> Int {
        let maximum = min(text.count, stop.count - 1)
        guard maximum > 0 else { return 0 }
        for length in stride(from: maximum, through: 1, by: -1) where text.hasSuffix(stop.prefix(length)) {
            return length
        }
        return 0
    }
}
