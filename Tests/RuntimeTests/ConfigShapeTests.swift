import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// The one config parser as the planner reads it: config.json to `ModelShape` (widths, family
/// layout, parameter counts), errors naming the field, absurd sizes refused before anything is
/// sized by them, unsupported families named with the supported ones, and every family's presets
/// at their published parameter counts. (These were the planner's own parser's tests, before
/// `memory/plan` and `loramd plan` read config.json through `ModelConfig`.)
final class ConfigShapeTests: XCTestCase {
    func shape(_ fields: [String: Any]) throws -> ModelShape {
        try ModelConfig(json: try JSONSerialization.data(withJSONObject: fields)).modelShape
    }

    /// The FormatError `fields` gets, its problem text.
    func problem(_ fields: [String: Any], file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try shape(fields)
            XCTFail("no error", file: file, line: line)
            return ""
        } catch {
            guard let error = error as? FormatError else { XCTFail("\(error)", file: file, line: line); return "" }
            XCTAssertEqual(error.file, "config.json", file: file, line: line)
            return error.problem
        }
    }

    let llama2_13BConfig: [String: Any] = [
        "hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
        "num_attention_heads": 40, "vocab_size": 32000, "tie_word_embeddings": false,
    ]

    func testGoldenTinyConfig() throws {
        let shape = try ModelConfig(directory: Fixtures.tinyModel).modelShape
        XCTAssertEqual(shape.hidden, 64)
        XCTAssertEqual(shape.layers, Array(repeating: .init(heads: 4, kvHeads: 2, intermediate: 176), count: 2))
        XCTAssertEqual(shape.headDim, 16)
        XCTAssertEqual(shape.vocab, 512)
        XCTAssertFalse(shape.tiedEmbeddings)
        XCTAssertEqual(shape.layout, .decoder)
        XCTAssertEqual(try shape.parameterCount, 2 * 512 * 64 + 64 + 2 * (2 * 64 + 2 * 64 * 64 + 2 * 32 * 64 + 3 * 176 * 64))
    }

    func testDefaultsForKVHeadsAndHeadDim() throws {
        XCTAssertEqual(try shape(llama2_13BConfig), .llama2_13B)
        var fields = llama2_13BConfig
        fields["num_key_value_heads"] = NSNull()
        fields["head_dim"] = NSNull()
        XCTAssertEqual(try shape(fields), .llama2_13B)
        fields["tie_word_embeddings"] = true
        XCTAssertTrue(try shape(fields).tiedEmbeddings)
    }

    func testLoRAMLayerOverride() throws {
        let pruned = try ModelShape.llama31_70B.structurallyPruned(ratio: 0.85)
        let fields: [String: Any] = [
            "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256, "tie_word_embeddings": false,
            "loram": ["layers": pruned.layers.map {
                ["num_attention_heads": $0.heads, "num_key_value_heads": $0.kvHeads, "intermediate_size": $0.intermediate]
            }],
        ]
        XCTAssertEqual(try shape(fields), pruned)
        XCTAssertEqual(try shape(fields).parameterCount, 17_849_982_976)
    }

    func testMissingAndMistypedFieldsAreNamed() throws {
        for field in ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"] {
            var fields = llama2_13BConfig
            fields[field] = nil
            XCTAssertEqual(problem(fields), "missing required field \(field)")
        }
        for (field, value, text) in [("hidden_size", "5120" as Any, "hidden_size must be a number"),
                                     ("num_hidden_layers", true, "num_hidden_layers must be a number"),
                                     ("hidden_size", 51.5, "hidden_size must be a positive integer, got 51.5"),
                                     ("tie_word_embeddings", 1, "tie_word_embeddings must be true or false"),
                                     ("num_key_value_heads", 7, "num_attention_heads 40 is not a multiple of num_key_value_heads 7"),
                                     ("vocab_size", 0, "vocab_size must be a positive integer, got 0")] {
            var fields = llama2_13BConfig
            fields[field] = value
            XCTAssertEqual(problem(fields), text, field)
        }
        var fields = llama2_13BConfig
        fields["loram"] = ["layers": [["num_attention_heads": 14, "num_key_value_heads": 14]]]
        XCTAssertEqual(problem(fields), "loram.layers has 1 entries for 40 layers")
        fields["num_hidden_layers"] = 1
        XCTAssertEqual(problem(fields), "missing required field loram.layers[0].intermediate_size")
        XCTAssertThrowsError(try ModelConfig(json: Data("[1]".utf8)))
        XCTAssertThrowsError(try ModelConfig(json: Data("{".utf8)))
    }

    /// Absurd counts are refused naming the field, before a list of layers is made for them
    /// (1e15 layers was an allocation abort).
    func testAbsurdConfigsAreRefusedByField() throws {
        let base: [String: Any] = ["hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                                   "num_attention_heads": 32, "num_key_value_heads": 1, "head_dim": 128, "vocab_size": 32000]
        let rows: [(String, Any, String)] = [
            ("num_hidden_layers", 1e15, "num_hidden_layers"), ("num_hidden_layers", 4e18, "num_hidden_layers"),
            ("num_attention_heads", 1e15, "num_attention_heads"), ("hidden_size", 1e15, "hidden_size"),
            ("intermediate_size", 1e15, "intermediate_size"), ("vocab_size", 1e15, "vocab_size"), ("head_dim", 1e15, "head_dim"),
            ("loram", ["layers": Array(repeating: ["num_attention_heads": 1e15, "num_key_value_heads": 1, "intermediate_size": 8], count: 32)],
             "num_attention_heads"),
        ]
        for (key, value, field) in rows {
            var config = base
            config[key] = value
            let text = problem(config)
            XCTAssertTrue(text.contains(field), "\(key) \(value): \(text)")
        }
        XCTAssertNoThrow(try shape(base))
    }

    func testUnsupportedFamiliesAreNamedWithTheSupportedOnes() throws {
        var fields = llama2_13BConfig
        fields["architectures"] = ["Phi3ForCausalLM"]
        XCTAssertEqual(problem(fields), "architecture Phi3ForCausalLM is not supported; loramd runs LlamaForCausalLM, MistralForCausalLM, "
                       + "Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM")
        fields["architectures"] = nil
        fields["model_type"] = "qwen2_moe"
        XCTAssertEqual(problem(fields), "model_type 'qwen2_moe' is not supported; loramd runs llama, mistral, qwen2, qwen3, gemma3")
        fields["model_type"] = "qwen2"
        XCTAssertEqual(try shape(fields).layout, Qwen2.layout)
    }

    /// Published parameter counts: Qwen2.5-7B 7.62B (its model card), Qwen2.5-0.5B 0.49B and
    /// 1.5B 1.54B, Qwen3-8B 8.19B, Gemma-3-270m 268M, Gemma-3-27B's text model ~27B (the card's 27B
    /// counts the 0.4B vision tower too). How fast each answers is measured, not asserted
    /// (bench/results/plan-presets-2026-12-08.txt); the bound here is for a hang.
    func testFamilyPresetsHaveTheirPublishedParameterCounts() throws {
        let expected: [(String, Double, Double)] = [
            ("qwen2.5-0.5b", 0.494e9, 0.005e9), ("qwen2.5-1.5b", 1.544e9, 0.005e9), ("qwen2.5-7b", 7.616e9, 0.01e9),
            ("qwen2.5-72b", 72.7e9, 0.1e9), ("qwen3-8b", 8.19e9, 0.01e9), ("qwen3-32b", 32.76e9, 0.05e9),
            ("gemma-3-270m", 268.1e6, 0.5e6), ("gemma-3-27b", 27.0e9, 0.1e9),
        ]
        for (name, count, tolerance) in expected {
            let start = Date()
            let shape = try XCTUnwrap(try ModelRegistry.presetShape(named: name), name)
            XCTAssertEqual(Double(try shape.parameterCount), count, accuracy: tolerance, name)
            let seconds = Date().timeIntervalSince(start)
            XCTAssertLessThan(seconds, 60, "\(name): a hang")
            print("\(name): \(try shape.parameterCount) parameters in \(seconds) s")
        }
        XCTAssertEqual(try ModelRegistry.presetShape(named: "Qwen2.5-7B")?.layout, Qwen2.layout)
        XCTAssertNil(try ModelRegistry.presetShape(named: "phi-3"))
    }

    /// Gemma 3 270M at 32k positions: the 3 global layers' caches hold every position, the 15
    /// sliding ones their window of 512 and a prefill chunk (767), and the plan charges that: 19%
    /// of what 18 full caches take.
    func testASlidingLayersCacheHoldsItsWindowAndAChunk() throws {
        let shape = try XCTUnwrap(try ModelRegistry.presetShape(named: "gemma-3-270m"))
        XCTAssertEqual(shape.windows.compactMap { $0 }, Array(repeating: 512, count: 15))
        let slots = shape.kvSlots(positions: 32768, chunk: StepProgramBuilder.inferenceChunk)
        XCTAssertEqual(slots.filter { $0 == 32768 }.count, 3)
        XCTAssertEqual(slots.filter { $0 == 512 + 255 }.count, 15)
        let program = try StepProgramBuilder.generation(shape, Workload(kind: .generate, seqLen: 32000, newTokens: 768))
        let kv = try XCTUnwrap(program.buffers.first { $0.kind == .kvCache }).bytes
        XCTAssertEqual(kv, 2 * 1 * 256 * 4 * (3 * 32768 + 15 * 767))
        XCTAssertEqual(kv, KVCache.byteCount(kvHeads: Array(repeating: 1, count: 18), headDim: 256, slots: slots))
    }

    /// PEFT target_modules are matched against the family's module names: Gemma's four layer
    /// norms and its q/k norms are modules (a pattern on them adapts nothing loramd can), its
    /// projections the same seven as LLaMA's.
    func testPEFTTargetsResolveAgainstTheFamilysModules() throws {
        let names = PEFTAdapterConfig.moduleNames(layerCount: 1, layout: Gemma3.layout)
        for name in ["model.layers.0.pre_feedforward_layernorm", "model.layers.0.post_feedforward_layernorm",
                     "model.layers.0.self_attn.q_norm", "model.layers.0.mlp.gate_proj"] {
            XCTAssertTrue(names.contains(name), name)
        }
        func resolve(_ pattern: String) throws -> Set<LoRATarget> {
            let object: [String: Any] = ["peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": pattern]
            return try PEFTAdapterConfig(json: JSONSerialization.data(withJSONObject: object)).resolveTargets(layerCount: 2, layout: Gemma3.layout)
        }
        XCTAssertEqual(try resolve(#".*\.(q|v)_proj"#), [.q, .v])
        XCTAssertThrowsError(try resolve(#".*feedforward_layernorm"#))
    }
}
