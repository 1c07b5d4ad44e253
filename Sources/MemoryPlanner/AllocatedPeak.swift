import Foundation

/// The most bytes jemalloc counts allocated across the process (`stats.allocated`) while some work
/// runs, less the count when it started: sampled every `interval` by a thread of its own (and at
/// every `sample()`), so a peak inside a training step is seen, not only the counts between steps.
///
/// What it includes: every allocation of every thread meanwhile, at its size class, and what
/// jemalloc's thread caches hold (counted as allocated until flushed); not memory mapped outside
/// jemalloc (OpenBLAS's own buffers, the model file's mapping). A peak shorter than `interval`
/// between two samples can be missed. A sample costs ~36 µs (a debug build; jemalloc's stats
/// refresh walks every arena): at 1 ms, under 4% of one core while it runs.
public final class AllocatedPeak: @unchecked Sendable {
    public let baseline: Int
    private let lock = NSLock()
    private var highest: Int
    private var running = true
    private var thread: Thread?

    public init(interval: TimeInterval = 0.001) {
        baseline = Jemalloc.allocatedBytes ?? 0
        highest = baseline
        let thread = Thread { [weak self] in
            while let self, self.isRunning {
                self.sample()
                Thread.sleep(forTimeInterval: interval)
            }
        }
        self.thread = thread
        thread.start()
    }

    private var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }

    /// Takes a sample now.
    public func sample() {
        guard let now = Jemalloc.allocatedBytes else { return }
        lock.lock()
        highest = max(highest, now)
        lock.unlock()
    }

    /// The peak so far above the baseline.
    public var peakBytes: Int { lock.lock(); defer { lock.unlock() }; return highest - baseline }

    /// Stops sampling (after one last sample) and returns the peak above the baseline.
    @discardableResult
    public func stop() -> Int {
        sample()
        lock.lock()
        running = false
        lock.unlock()
        return peakBytes
    }

    deinit { running = false }
}
