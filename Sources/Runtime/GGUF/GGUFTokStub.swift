import Foundation
// Placeholder until the GGUF tokenizer lands: a GGUF's tokenizer is refused, not guessed.
extension Tokenizer {
    public convenience init(ggufMetadata: [String: GGUFValue], fileName: String) throws {
        throw FormatError(file: fileName, "reading a tokenizer from GGUF metadata is not implemented yet")
    }
}
