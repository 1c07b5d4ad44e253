/// llama.cpp's tensor names for the LLaMA architecture and the row order its converter gives Q and K.
///
/// `convert_hf_to_gguf.py` (LlamaModel.permute) reorders the rows of q_proj and k_proj within each
/// head from Hugging Face's rotate-half layout (pairs i, i + D/2) to ggml's interleaved one (pairs
/// 2i, 2i + 1): HF row `half·(D/2) + j` becomes GGUF row `2j + half`. Loading undoes it; writing
/// (a model or a LoRA adapter's B) applies it, so llama.cpp computes what transformers computes.
public enum GGUFLlamaNames {
    public static let embedding = "token_embd.weight"
    public static let finalNorm = "output_norm.weight"
    public static let output = "output.weight"
    /// llama.cpp's LLaMA-3.1 rope scaling: per-frequency divisors of the rotary frequencies.
    public static let ropeFrequencies = "rope_freqs.weight"

    /// GGUF name (without `blk.N.` and `.weight`) of each decoder linear, by its Hugging Face name.
    public static let linears: [(hf: String, gguf: String)] = [
        ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ]

    public static func layer(_ index: Int, _ name: String) -> String { "blk.\(index).\(name).weight" }

    public static func inputNorm(_ index: Int) -> String { layer(index, "attn_norm") }
    public static func postAttentionNorm(_ index: Int) -> String { layer(index, "ffn_norm") }

    /// The GGUF name of decoder linear `hf` ("self_attn.q_proj") of layer `index`.
    public static func linear(_ index: Int, hf: String) -> String? {
        linears.first { $0.hf == hf }.map { layer(index, $0.gguf) }
    }

    /// For a [heads·D, cols] Q or K weight: the GGUF row that holds Hugging Face row `row`.
    @inline(__always)
    public static func ggufRow(ofHFRow row: Int, headDim: Int) -> Int {
        let half = headDim / 2
        let head = row / headDim, within = row % headDim
        return head * headDim + 2 * (within % half) + within / half
    }
}

extension GGUFLlamaNames {
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
