/// A request to quantize that cannot be served as asked; `field` names the parameter at fault.
public struct QuantizationError: Error, CustomStringConvertible {
    public let field: String
    public let problem: String

    public init(field: String, _ problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { "\(field): \(problem)" }
}
