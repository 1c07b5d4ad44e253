import XCTest
@testable import MemoryPlanner

/// Malformed programs are refused with an error naming the op and buffer at fault.
final class StepProgramValidationTests: XCTestCase {
    private func error(_ program: StepProgram) -> StepProgram.ValidationError? {
        do { try program.validate(); return nil } catch { return error as? StepProgram.ValidationError }
    }

    func testAWellFormedProgramPasses() throws {
        var p = StepProgram()
        let w = p.buffer("w", kind: .weight, bytes: 64, persistent: true)
        let x = p.buffer("x", kind: .activation, bytes: 64)
        let y = p.buffer("y", kind: .activation, bytes: 64)
        let scratch = p.buffer("scratch", kind: .workspace, bytes: 64)
        p.op("make x", creates: [x], reads: [w])
        p.op("x to y", creates: [y, scratch], reads: [x, w, scratch], releases: [x, scratch])
        p.op("use y", reads: [y])
        XCTAssertNoThrow(try p.validate())
    }

    func testReadBeforeCreation() throws {
        var p = StepProgram()
        let x = p.buffer("layers.0.x", kind: .activation, bytes: 8)
        p.op("early", reads: [x])
        p.op("make", creates: [x])
        let e = try XCTUnwrap(error(p))
        XCTAssertEqual(e.problem, .readBeforeCreation)
        XCTAssertEqual(e.buffer, "layers.0.x")
        XCTAssertEqual(e.op?.index, 0)
        XCTAssertTrue(e.description.contains("\"early\""), e.description)
    }

    func testCreatedTwice() throws {
        var p = StepProgram()
        let x = p.buffer("x", kind: .activation, bytes: 8)
        p.op("a", creates: [x])
        p.op("b", creates: [x])
        XCTAssertEqual(error(p)?.problem, .createdTwice(firstBy: "a"))
        XCTAssertEqual(error(p)?.op?.name, "b")
    }

    func testReadAfterRelease() throws {
        var p = StepProgram()
        let x = p.buffer("x", kind: .activation, bytes: 8)
        p.op("a", creates: [x])
        p.op("b", reads: [x], releases: [x])
        p.op("c", reads: [x])
        XCTAssertEqual(error(p)?.problem, .readAfterRelease(releasedBy: "b"))
        XCTAssertEqual(error(p)?.op?.index, 2)
    }

    func testReleasedTwiceAndBeforeCreation() throws {
        var p = StepProgram()
        let x = p.buffer("x", kind: .activation, bytes: 8)
        p.op("a", creates: [x], releases: [x])
        p.op("b", releases: [x])
        XCTAssertEqual(error(p)?.problem, .releasedTwice(firstBy: "a"))

        var q = StepProgram()
        let y = q.buffer("y", kind: .activation, bytes: 8)
        q.op("a", releases: [y])
        q.op("b", creates: [y])
        XCTAssertEqual(error(q)?.problem, .releasedBeforeCreation)
    }

    func testNeverCreated() throws {
        var p = StepProgram()
        p.buffer("orphan", kind: .workspace, bytes: 8)
        p.op("nothing")
        XCTAssertEqual(error(p), StepProgram.ValidationError(problem: .neverCreated, buffer: "orphan", op: nil))
    }

    func testPersistentBuffersAreNeitherCreatedNorReleased() throws {
        var p = StepProgram()
        let w = p.buffer("w", kind: .weight, bytes: 8, persistent: true)
        p.op("a", creates: [w])
        XCTAssertEqual(error(p)?.problem, .persistentCreatedOrReleased)
    }

    func testBadIndexNegativeBytesAndDuplicateNames() throws {
        var p = StepProgram()
        p.op("a", reads: [3])
        XCTAssertEqual(error(p)?.problem, .indexOutOfRange(3))
        XCTAssertEqual(error(p)?.buffer, "#3")

        var q = StepProgram()
        q.buffer("x", kind: .activation, bytes: -1)
        XCTAssertEqual(error(q)?.problem, .negativeBytes)

        var r = StepProgram()
        r.buffer("x", kind: .activation, bytes: 1)
        r.buffer("x", kind: .gradient, bytes: 1)
        XCTAssertEqual(error(r)?.problem, .duplicateName)
    }

    func testKindsEncodeAsTheirNames() throws {
        let data = try JSONEncoder().encode(BufferKind.allCases)
        XCTAssertEqual(String(decoding: data, as: UTF8.self),
                       #"["weight","adapter","gradient","optimizer","activation","kvCache","workspace"]"#)
    }
}
