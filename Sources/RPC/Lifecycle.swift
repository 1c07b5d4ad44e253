/// Where the connection is in the LSP lifecycle.
public enum LifecycleState: Equatable, Sendable {
    /// Before `initialize`: requests get ServerNotInitialized, notifications but `exit` are dropped.
    case uninitialized
    case running
    /// After `shutdown`: every request gets InvalidRequest; `exit` then exits with 0.
    case shuttingDown
    /// `exit`, end of input or the client process gone: nothing more is read or written.
    case exited(code: Int32)

    /// Exit code the process leaves with when the client goes now: 0 only after `shutdown`.
    var exitCode: Int32 { self == .shuttingDown ? 0 : 1 }
}
