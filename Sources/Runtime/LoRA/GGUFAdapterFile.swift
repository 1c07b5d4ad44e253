import Foundation

/// A LoRA adapter as a GGUF file that llama.cpp loads beside its base model (`--lora`), laid out as
/// llama.cpp's convert_lora_to_gguf.py writes it:
/// - metadata `general.architecture` llama, `general.type` adapter, `adapter.type` lora,
///   `adapter.lora.alpha` (llama.cpp scales by alpha / r, r read off lora_a);
/// - per adapted linear `blk.N.<name>.weight.lora_a` with GGUF dimensions [in, r] (PEFT's A [r, in])
///   and `.lora_b` [r, out] (PEFT's B [out, r]), F32;
/// - B's rows of q_proj and k_proj in llama.cpp's rotary order, as its converter permutes them, so
///   the adapter matches a base GGUF made by that converter (and `LlamaModel.saveGGUF`).
public enum GGUFAdapterFile {
    /// The name used when the target is a folder.
    public static let defaultFileName = "adapter.gguf"

    public static func save(_ adapter: LoRAAdapter, config: LlamaConfig, to url: URL, name: String = "loramd adapter") throws {
        if adapter.lmHead != nil && config.tiedEmbeddings {
            throw FormatError(file: url.lastPathComponent, "an adapter on lm_head of a model with tied embeddings has no tensor to attach to in llama.cpp (its base GGUF has no output.weight)")
        }
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("llama"))
        writer.set("general.type", .string("adapter"))
        writer.set("general.name", .string(name))
        writer.set("adapter.type", .string("lora"))
        writer.set("adapter.lora.alpha", .float32(Float(adapter.alpha)))

        func add(_ base: String, _ pair: LoRAPair, permuteHeadDim: Int?) throws {
            let a = pair.a.toArray()
            var b = pair.b.toArray()
            if let headDim = permuteHeadDim {
                let original = b, r = pair.b.cols
                for g in 0..<pair.b.rows {
                    let source = GGUFLlamaNames.hfRow(ofGGUFRow: g, headDim: headDim)
                    b.replaceSubrange(g * r..<(g + 1) * r, with: original[source * r..<(source + 1) * r])
                }
            }
            try writer.addTensor(base + ".lora_a", dimensions: [pair.a.cols, pair.a.rows], values: a, as: .f32)
            try writer.addTensor(base + ".lora_b", dimensions: [pair.b.cols, pair.b.rows], values: b, as: .f32)
        }
        for (i, pairs) in adapter.layers.enumerated() {
            for target in LoRATarget.layerTargets {
                guard let pair = pairs[target] else { continue }
                let hf = target.modulePath(layer: i).replacingOccurrences(of: "model.layers.\(i).", with: "")
                try add(GGUFLlamaNames.linear(i, hf: hf)!, pair, permuteHeadDim: target == .q || target == .k ? config.headDim : nil)
            }
        }
        if let lmHead = adapter.lmHead { try add(GGUFLlamaNames.output, lmHead, permuteHeadDim: nil) }
        try writer.write(to: url)
    }
}
