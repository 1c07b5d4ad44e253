import Dispatch
import Foundation
import XCTest
@testable import Runtime

/// `Parallel.ranges` on `lk_parallel`'s pool: every index once, on any thread count, and a
/// region started inside another or from another thread still covers everything.
final class ParallelTests: XCTestCase {
    private func covered(_ count: Int, nested: Bool = false) -> [Int] {
        var hits = [Int](repeating: 0, count: count)
        let lock = NSLock()
        hits.withUnsafeMutableBufferPointer { hits in
            Parallel.ranges(count, costPerItem: 1 << 20) { range in
                for i in range {
                    if nested {
                        var inner = 0
                        Parallel.ranges(8, costPerItem: 1 << 20) { inner += $0.count }
                        lock.lock(); hits[i] += inner / 8; lock.unlock()
                    } else {
                        lock.lock(); hits[i] += 1; lock.unlock()
                    }
                }
            }
        }
        return hits
    }

    func testEveryIndexOnceOnAnyThreadCount() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        for threads in [1, 2, 3, 8] {
            Parallel.threads = threads
            for count in [1, 2, 7, 1000] {
                for _ in 0..<50 { XCTAssertEqual(covered(count), [Int](repeating: 1, count: count), "\(threads) threads, \(count)") }
            }
        }
    }

    func testNestedRegionsAndConcurrentCallersCoverEverything() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        Parallel.threads = 4
        XCTAssertEqual(covered(100, nested: true), [Int](repeating: 1, count: 100))
        let results = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 6)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 6) { caller in
            var ok = true
            for _ in 0..<200 { ok = ok && covered(333) == [Int](repeating: 1, count: 333) }
            results[caller] = ok
        }
        XCTAssertEqual(Array(results), [Bool](repeating: true, count: 6))
    }
}
