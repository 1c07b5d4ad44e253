/// What the runtime does at an op of a step program. The planner orders the ops and sizes their
/// buffers; the runtime walks the same ops in the same order and runs each op's task, so the plan
/// is the schedule, not a picture of it.
public enum StepTask: Codable, Hashable, Sendable {
    /// Token embeddings into the first layer's input (and the step-long workspaces).
    case embed
    /// A layer's attention block, x → x + o(attention(norm(x))); `recompute`: again, from the
    /// kept layer input, just before its backward (layer checkpointing).
    case attentionForward(layer: Int, recompute: Bool)
    /// A layer's MLP block, x → x + down(swiglu(norm(x))); when recomputing, the output (the next
    /// layer's input, already used) is not written again.
    case mlpForward(layer: Int, recompute: Bool)
    /// Final norm, lm_head and cross-entropy in blocks of rows, and their backward.
    case loss
    case mlpBackward(layer: Int)
    case attentionBackward(layer: Int)
    /// The embedding's gradient from the first layer's input gradient.
    case embedBackward
    /// AdamW over the accumulated gradients (once per optimizer step, after every micro-batch).
    case optimizer
    /// A generation's prompt in chunks, and its decode steps.
    case prefill, decode
}
