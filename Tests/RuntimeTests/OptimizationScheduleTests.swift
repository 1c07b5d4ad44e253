import XCTest
@testable import Runtime

/// Learning-rate schedules against transformers' LambdaLR (Tests/Fixtures/optimizer/schedules.json):
/// the lr of every optimizer step, bit for bit.
final class OptimizationScheduleTests: XCTestCase {
    func testEveryStepMatchesTransformers() throws {
        let text = try String(contentsOf: OptimizerFixtures.root.appendingPathComponent("schedules.json"), encoding: .utf8)
        let cases = try XCTUnwrap(OptimizerFixtures.object(text)["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 18)
        for spec in cases {
            let warmup = spec["warmupSteps"] as! Int, total = spec["totalSteps"] as! Int
            let schedule: LearningRateSchedule
            switch spec["kind"] as! String {
            case "constant": schedule = .constant(warmupSteps: warmup)
            case "linear": schedule = .linear(warmupSteps: warmup, totalSteps: total)
            case "cosine": schedule = .cosine(warmupSteps: warmup, totalSteps: total)
            default: return XCTFail("unknown kind \(spec["kind"]!)")
            }
            let base = try OptimizerFixtures.double(spec["baseLR"])
            for (step, expected) in try (spec["lrs"] as! [Any]).map(OptimizerFixtures.double).enumerated() {
                XCTAssertEqual(schedule.lr(base: base, step: step), expected, "\(schedule) base \(base) step \(step)")
            }
        }
    }

    func testShapes() {
        XCTAssertEqual(LearningRateSchedule.constant(warmupSteps: 0).multiplier(step: 0), 1)
        XCTAssertEqual(LearningRateSchedule.linear(warmupSteps: 2, totalSteps: 6).multiplier(step: 0), 0)
        XCTAssertEqual(LearningRateSchedule.linear(warmupSteps: 2, totalSteps: 6).multiplier(step: 1), 0.5)
        XCTAssertEqual(LearningRateSchedule.linear(warmupSteps: 2, totalSteps: 6).multiplier(step: 4), 0.5)
        XCTAssertEqual(LearningRateSchedule.cosine(warmupSteps: 0, totalSteps: 10).multiplier(step: 5), 0.5, accuracy: 1e-15)
        XCTAssertEqual(LearningRateSchedule.cosine(warmupSteps: 0, totalSteps: 10).multiplier(step: 10), 0)
        // Past the end the cosine rises again, as transformers' does (a job never steps that far).
        XCTAssertGreaterThan(LearningRateSchedule.cosine(warmupSteps: 0, totalSteps: 10).multiplier(step: 12), 0)
        XCTAssertEqual(LearningRateSchedule.linear(warmupSteps: 0, totalSteps: 10).multiplier(step: 12), 0)
    }
}
