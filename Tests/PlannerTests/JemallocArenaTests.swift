import CJemalloc
import XCTest
@testable import MemoryPlanner

/// Proves jemalloc is linked and that the arena the planner builds on works as designed.
final class JemallocArenaTests: XCTestCase {
    func testVersionIsReadThroughMallctl() throws {
        let version = try XCTUnwrap(Jemalloc.version)
        // Debian 12 ships 5.3.0; any 5.x has the arena API we use.
        XCTAssertTrue(version.hasPrefix("5."), version)
    }

    func testMallocxInADedicatedArena() throws {
        let arena = try JemallocArena()
        XCTAssertGreaterThan(arena.index, 0, "arena 0 is jemalloc's default, ours is a new one")
        let bytes = 3 << 20
        let pointer = try XCTUnwrap(arena.allocate(bytes: bytes, alignment: 4096))
        defer { arena.deallocate(pointer) }
        XCTAssertEqual(Int(bitPattern: pointer) % 4096, 0, "the requested alignment holds")
        XCTAssertGreaterThanOrEqual(arena.usableSize(pointer), bytes)

        // The extent belongs to our arena: jemalloc says so for the pointer.
        var owner: UInt32 = .max
        var size = MemoryLayout<UInt32>.size
        var query: UnsafeMutableRawPointer? = pointer
        XCTAssertEqual(mallctl("arenas.lookup", &owner, &size, &query, MemoryLayout<UnsafeMutableRawPointer?>.size), 0)
        XCTAssertEqual(owner, arena.index)

        // The memory is real and writable end to end.
        let floats = pointer.bindMemory(to: Float.self, capacity: bytes / 4)
        for i in stride(from: 0, to: bytes / 4, by: 1024) { floats[i] = Float(i) }
        XCTAssertEqual(floats[bytes / 4 - 1024], Float(bytes / 4 - 1024))
    }

    func testTheArenasCountersSeeExactlyItsAllocations() throws {
        let arena = try JemallocArena()
        XCTAssertEqual(arena.allocatedBytes, 0)
        let big = try XCTUnwrap(arena.allocate(bytes: 64 << 20))
        let small = try XCTUnwrap(arena.allocate(bytes: 100))
        XCTAssertEqual(arena.allocatedBytes, arena.usableSize(big) + arena.usableSize(small))
        arena.deallocate(big)
        arena.deallocate(small)
        XCTAssertEqual(arena.allocatedBytes, 0)
        XCTAssertNotNil(Jemalloc.allocatedBytes, "the process-wide counter is readable too")
    }
}
