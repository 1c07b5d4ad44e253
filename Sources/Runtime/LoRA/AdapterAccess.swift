import Foundation

/// Readers (inference requests) and the one writer (a training job's optimizer step) of an
/// adapter's weights take turns: a forward pass never sees half an update.
public final class ReadWriteLock: @unchecked Sendable {
    private var lock = pthread_rwlock_t()

    public init() { pthread_rwlock_init(&lock, nil) }
    deinit { pthread_rwlock_destroy(&lock) }

    public func reading<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(&lock)
        defer { pthread_rwlock_unlock(&lock) }
        return try body()
    }

    public func writing<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(&lock)
        defer { pthread_rwlock_unlock(&lock) }
        return try body()
    }
}
