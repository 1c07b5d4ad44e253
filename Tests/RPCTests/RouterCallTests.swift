import XCTest
@testable import RPC

/// `Router.call`: a registered method run in-process, as pipeline methods compose the daemon's own.
final class RouterCallTests: XCTestCase {
    struct AddParams: Decodable { var a: Int; var b: Int }
    struct Sum: Encodable { var sum: Int }

    func testCallsDecodeParamsEncodeResultsAndThrowAsTheMethodDoes() throws {
        let router = Router()
        var sawProgress: Bool?
        router.register("math/add") { (p: AddParams, context) -> Sum in
            sawProgress = context.progress != nil
            return Sum(sum: p.a + p.b)
        }
        let context = RequestContext(id: .number(7), method: "pipeline/run", cancellation: CancellationToken(),
                                     progress: nil, notifier: { _, _ in })
        XCTAssertEqual(try router.call("math/add", .object([("a", .int(2)), ("b", .int(40))]), context: context.withoutProgress()),
                       .object([("sum", .int(42))]))
        XCTAssertEqual(sawProgress, false)
        // A bad field is InvalidParams naming it, as over the wire; an unknown method is MethodNotFound.
        XCTAssertThrowsError(try router.call("math/add", .object([("a", .string("x"))]), context: context)) { error in
            XCTAssertEqual((error as? RPCError)?.code, .invalidParams)
        }
        XCTAssertThrowsError(try router.call("math/sub", .object([]), context: context)) { error in
            XCTAssertEqual((error as? RPCError)?.code, .methodNotFound)
        }
    }
}
