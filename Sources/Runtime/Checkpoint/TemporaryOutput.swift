import Foundation

/// The temporary names outputs are built under before they are renamed into place:
/// `.loramd-tmp-<name>-<pid>-<random>`, beside the destination. Hidden, recognisable, and owned:
/// the pid says which process writes it, so one left by a killed daemon can be told from one a
/// live daemon is still writing, and removed.
public enum TemporaryOutput {
    public static let prefix = ".loramd-tmp-"

    /// A fresh temporary name beside `destination` (`tag` marks an old output moved aside).
    static func url(for destination: URL, tag: String = "") -> URL {
        // Room for the prefix, pid and random part within NAME_MAX (255).
        let name = String(decoding: destination.lastPathComponent.utf8.prefix(160), as: UTF8.self)
        let random = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return destination.deletingLastPathComponent().appendingPathComponent("\(prefix)\(name)\(tag)-\(getpid())-\(random)")
    }

    /// The pid in a temporary name, or nil when `name` is not one.
    static func owner(of name: String) -> pid_t? {
        guard name.hasPrefix(prefix) else { return nil }
        let parts = name.split(separator: "-")
        guard parts.count >= 3 else { return nil }
        return pid_t(parts[parts.count - 2])
    }

    /// Left behind by a process that is gone: its pid is not running (or is a zombie), or the
    /// process running under that pid now started after the temporary was last changed (the pid
    /// was reused). A live writer's temporary, this process's included, is never stale. A pid
    /// reused within 2 s of the last change is missed here and caught by a later clean-up.
    static func isStale(_ url: URL) -> Bool {
        guard let pid = owner(of: url.lastPathComponent), pid > 0 else { return false }
        if pid == getpid() { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        guard let process = ProcessStatus(pid: pid) else { return false }
        if process.isZombie { return true }
        var status = stat()
        guard lstat(url.path, &status) == 0, let started = process.startTime else { return false }
        return started > Double(status.st_mtim.tv_sec) + 2
    }

    /// Removes the stale temporaries directly in `directory`; returns their names.
    @discardableResult
    public static func removeStale(in directory: URL) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        var removed: [String] = []
        for name in names where name.hasPrefix(prefix) {
            let url = directory.appendingPathComponent(name)
            if isStale(url) {
                try? FileManager.default.removeItem(at: url)
                removed.append(name)
            }
        }
        return removed
    }

    /// What /proc says of a process (Linux); nil where there is no /proc.
    struct ProcessStatus {
        let isZombie: Bool
        /// Seconds since the epoch.
        let startTime: Double?

        init?(pid: pid_t) {
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat"),
                  let text = String(data: data, encoding: .utf8), let close = text.lastIndex(of: ")") else { return nil }
            // After the command name: state (field 3), ..., starttime (field 22, clock ticks after boot).
            let fields = text[text.index(after: close)...].split(separator: " ")
            isZombie = fields.first == "Z" || fields.first == "X"
            guard fields.count > 19, let ticks = Double(fields[19]), let boot = Self.bootTime else { startTime = nil; return }
            startTime = boot + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
        }

        static let bootTime: Double? = {
            guard let data = FileManager.default.contents(atPath: "/proc/stat"), let text = String(data: data, encoding: .utf8) else { return nil }
            return text.split(separator: "\n").first { $0.hasPrefix("btime ") }.flatMap { Double($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) }
        }()
    }
}
