import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import MemoryPlanner

/// The plan picture is well-formed, self-contained SVG with one rectangle per buffer.
final class PlanPictureTests: XCTestCase {
    private final class Counter: NSObject, XMLParserDelegate {
        var bufferRects = 0, titles = 0, lines = 0
        var titleText = [String]()
        private var inTitle = false
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            if name == "rect" && attributes["class"] == "buffer" { bufferRects += 1 }
            if name == "line" { lines += 1 }
            if name == "title" { titles += 1; inTitle = true; titleText.append("") }
        }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "title" { inTitle = false }
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if inTitle { titleText[titleText.count - 1] += string }
        }
    }

    private func parse(_ svg: String) throws -> Counter {
        let parser = XMLParser(data: Data(svg.utf8))
        let counter = Counter()
        parser.delegate = counter
        XCTAssertTrue(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
        return counter
    }

    func testATrainingStepsPictureHasOneRectanglePerBuffer() throws {
        let placement = try BestFitPlacement(TracePrograms.transformerTraining(layers: 2))
        let svg = PlanPicture.svg(placement)
        let counter = try parse(svg)
        XCTAssertEqual(counter.bufferRects, placement.program.buffers.count)
        XCTAssertEqual(counter.titles, placement.program.buffers.count)
        XCTAssertTrue(counter.titleText.contains { $0.hasPrefix("layers.1.attn.scores (activation)") }, "\(counter.titleText.prefix(3))")
        XCTAssertGreaterThanOrEqual(counter.lines, 4, "two axes, the peak and the lower bound")
        XCTAssertTrue(svg.contains("lower bound"))
        for kind in BufferKind.allCases { XCTAssertTrue(svg.contains(">\(kind.rawValue)</text>"), "legend names \(kind)") }
        XCTAssertFalse(svg.contains("<script"))
        XCTAssertFalse(svg.contains("href"), "nothing external")
    }

    func testNamesAreEscaped() throws {
        var p = StepProgram()
        let a = p.buffer("a<b & \"c\" 'd'>", kind: .workspace, bytes: 10)
        let w = p.buffer("w", kind: .weight, bytes: 0, persistent: true)
        p.op("op", creates: [a], reads: [w], releases: [a])
        let counter = try parse(PlanPicture.svg(try BestFitPlacement(p)))
        XCTAssertEqual(counter.bufferRects, 2)
        XCTAssertTrue(counter.titleText.contains { $0.hasPrefix("a<b & \"c\" 'd'> (workspace)") }, "\(counter.titleText)")
        XCTAssertNoThrow(try parse(PlanPicture.svg(try BestFitPlacement(StepProgram()))))
    }

    func testBytesReadLikeAPersonWouldWriteThem() {
        XCTAssertEqual(PlanPicture.bytes(100), "100 B")
        XCTAssertEqual(PlanPicture.bytes(64 << 10), "64.0 KiB")
        XCTAssertEqual(PlanPicture.bytes(3 << 29), "1.5 GiB")
    }
}
