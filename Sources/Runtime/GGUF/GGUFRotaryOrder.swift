/// The row order llama.cpp's converter gives Q and K of families with LLaMA's rope
/// (`ModelFamilyDescription.ggufPermutesQK`); the tensor names are each family's `layout`.
///
/// `convert_hf_to_gguf.py` (LlamaModel.permute) reorders the rows of q_proj and k_proj within each
/// head from Hugging Face's rotate-half layout (pairs i, i + D/2) to ggml's interleaved one (pairs
/// 2i, 2i + 1): HF row `half·(D/2) + j` becomes GGUF row `2j + half`. Loading undoes it; writing
/// (a model or a LoRA adapter's B) applies it, so llama.cpp computes what transformers computes.
public enum GGUFRotaryOrder {
    /// llama.cpp's LLaMA-3.1 rope scaling: per-frequency divisors of the rotary frequencies.
    public static let ropeFrequencies = "rope_freqs.weight"

    /// For a [heads·D, cols] Q or K weight: the GGUF row that holds Hugging Face row `row`.
    @inline(__always)
    public static func ggufRow(ofHFRow row: Int, headDim: Int) -> Int {
        let half = headDim / 2
        let head = row / headDim, within = row % headDim
        return head * headDim + 2 * (within % half) + within / half
    }
}

extension GGUFRotaryOrder {
    /// The inverse of `ggufRow(ofHFRow:headDim:)`.
    @inline(__always)
    public static func hfRow(ofGGUFRow row: Int, headDim: Int) -> Int {
        let half = headDim / 2
        let head = row / headDim, within = row % headDim
        return head * headDim + (within % 2) * half + within / 2
    }

    /// The rows of a [rows, cols] matrix (a Q or K weight, or a LoRA B on one) moved between the
    /// two orders: `toGGUF` takes Hugging Face's rows to llama.cpp's, otherwise back.
    public static func permutedRows(_ values: [Float], rows: Int, cols: Int, headDim: Int, toGGUF: Bool) -> [Float] {
        precondition(values.count == rows * cols)
        var out = values
        for g in 0..<rows {
            let hf = hfRow(ofGGUFRow: g, headDim: headDim)
            let (from, to) = toGGUF ? (hf, g) : (g, hf)
            out.replaceSubrange(to * cols..<(to + 1) * cols, with: values[from * cols..<(from + 1) * cols])
        }
        return out
    }
}
