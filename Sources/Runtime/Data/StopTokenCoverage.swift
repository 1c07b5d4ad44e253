import Foundation

extension Dataset {
    /// How many examples would teach the model to stop: those with an EOS id at a position that
    /// carries loss (label ≠ -100), within the first `seqLen` positions when given (truncation
    /// cuts off what lies beyond).
    ///
    /// A prompt_completion completion is encoded without special tokens, so it ends in EOS only
    /// when its text spells the EOS token (e.g. "</s>"). If no example does, a fine-tuned model
    /// never learns to stop and generates until `maxTokens`: the training job warns. With
    /// `trainOnInputs` the prompt's positions count too (a prompt rarely holds an EOS).
    public func examplesTeachingEOS(eosIds: Set<Int>, seqLen: Int? = nil) -> Int {
        examples.reduce(0) { count, example in
            let labels = seqLen.map { example.labels.prefix($0) } ?? example.labels[...]
            return count + (labels.contains { $0 != Self.ignoreIndex && eosIds.contains($0) } ? 1 : 0)
        }
    }

    /// True when this is a prompt_completion dataset and at least one completion contains EOS
    /// where it is learned (see `examplesTeachingEOS`); other formats answer true (no warning).
    public func completionsContainEOS(eosIds: Set<Int>, seqLen: Int? = nil) -> Bool {
        format != .promptCompletion || examplesTeachingEOS(eosIds: eosIds, seqLen: seqLen) > 0
    }
}
