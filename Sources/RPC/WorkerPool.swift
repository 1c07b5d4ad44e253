import Foundation

/// At most `maxThreads` handler threads and the queue of requests waiting for one, so that a
/// flood of requests queues instead of becoming a thread each. Threads start on demand (with the
/// handler stack size) and end after a while idle. A job still queued can be withdrawn, which is
/// how a request cancelled before it starts is answered at once without running.
final class WorkerPool: @unchecked Sendable {
    /// One queued unit of work; identity is what `withdraw` looks for. A worker calls `body(false)`;
    /// whoever withdraws the job may call `body(true)` itself.
    final class Job: @unchecked Sendable {
        let name: String
        let body: (_ withdrawn: Bool) -> Void
        init(name: String, body: @escaping (_ withdrawn: Bool) -> Void) {
            self.name = name
            self.body = body
        }
    }

    let maxThreads: Int
    private let stackSize: Int
    private let idleTimeout: TimeInterval
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var threads = 0
    private var idle = 0
    private var running = 0
    private var peakRunning = 0
    private var held = false

    init(maxThreads: Int, stackSize: Int, idleTimeout: TimeInterval = 10) {
        precondition(maxThreads > 0, "a pool needs a thread")
        self.maxThreads = maxThreads
        self.stackSize = stackSize
        self.idleTimeout = idleTimeout
    }

    /// Jobs running now, and the most that ever ran at once.
    var runningCount: Int { condition.lock(); defer { condition.unlock() }; return running }
    var peakRunningCount: Int { condition.lock(); defer { condition.unlock() }; return peakRunning }
    var queuedCount: Int { condition.lock(); defer { condition.unlock() }; return queue.count }

    func submit(_ job: Job) {
        condition.lock()
        queue.append(job)
        // An idle thread already woken for an earlier job is not free for this one: start another
        // whenever the queue outgrows the idle threads.
        let startThread = queue.count > idle && threads < maxThreads
        if startThread { threads += 1 } else { condition.signal() }
        condition.unlock()
        if startThread {
            let thread = Thread { [self] in work() }
            thread.stackSize = stackSize
            thread.name = "loramd worker"
            thread.start()
        }
    }

    /// Removes `job` if no thread has taken it yet; true when it was removed (it will never run).
    func withdraw(_ job: Job) -> Bool {
        condition.lock(); defer { condition.unlock() }
        guard let index = queue.firstIndex(where: { $0 === job }) else { return false }
        queue.remove(at: index)
        return true
    }

    /// Starts no further job (the connection is ending); queued jobs stay until withdrawn.
    func hold() { condition.lock(); held = true; condition.unlock() }

    private func work() {
        condition.lock()
        while true {
            if !held && !queue.isEmpty {
                let job = queue.removeFirst()
                running += 1
                peakRunning = max(peakRunning, running)
                condition.unlock()
                Thread.current.name = job.name
                job.body(false)
                condition.lock()
                running -= 1
                continue
            }
            idle += 1
            let signalled = condition.wait(until: Date(timeIntervalSinceNow: idleTimeout))
            idle -= 1
            if !signalled && (held || queue.isEmpty) {
                threads -= 1
                condition.unlock()
                return
            }
        }
    }
}
