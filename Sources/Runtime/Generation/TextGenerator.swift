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
