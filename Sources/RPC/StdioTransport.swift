import Foundation

/// Runs an `RPCServer` on the process's stdin and stdout: a reader thread feeds stdin to the
/// server in whatever chunks `read` returns, and end of input ends the connection. Only protocol
/// messages go to stdout; logs go to stderr.
public enum StdioTransport {
    /// Never returns: the server's `onExit` ends the process.
    public static func run(router: Router, options: RPCServer.Options = .init()) -> Never {
        // A client that closes our stdout must not kill us with SIGPIPE mid-cleanup.
        signal(SIGPIPE, SIG_IGN)
        let server = RPCServer(router: router, sink: FileDescriptorSink(fd: STDOUT_FILENO), options: options)
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if n > 0 {
                    server.receive(buffer[0..<n])
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    server.inputEnded()
                    return
                }
            }
        }
        reader.name = "loramd stdin"
        reader.start()
        while true { sleep(3600) }
    }
}
