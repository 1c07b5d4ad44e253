import Foundation

/// Polls the client process named by `initialize`'s `processId`; when it is gone the daemon is
/// an orphan and ends as if its input had closed. (A pipe's end of input usually says so first;
/// this catches clients that leave the pipe open in a child they forgot.)
final class ParentProcessWatcher: @unchecked Sendable {
    private let timer: DispatchSourceTimer

    init(pid: Int32, interval: TimeInterval = 1, onGone: @escaping () -> Void) {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "loramd.parent-watch"))
        var fired = false
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler {
            guard !fired, !Self.isAlive(pid) else { return }
            fired = true
            onGone()
        }
        timer.resume()
    }

    func stop() { timer.cancel() }

    /// kill(pid, 0) fails with ESRCH only when no such process exists (EPERM means it exists).
    static func isAlive(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno != ESRCH
    }
}
