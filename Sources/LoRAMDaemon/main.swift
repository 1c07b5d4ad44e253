import Foundation
import RPC

/// `loramd`: the LoRAM daemon. JSON-RPC 2.0 with LSP framing on stdin/stdout; logs on stderr.
let usage = """
usage: loramd [--stdio] [--debug-methods] [--max-message-bytes N]
       loramd make-model --out DIR [--preset tiny|small] [...]   (see loramd make-model --help)
       loramd make-dataset --out DIR [...]                        (train/eval text; see loramd make-dataset --help)
       loramd plan --preset llama-3.1-70b [...]                   (memory-plan dry run; see loramd plan --help)
       loramd --help | --version

loramd trains LoRA adapters on a pruned (and optionally 4-bit) copy of a LLaMA, Mistral,
Qwen2/2.5, Qwen3 or Gemma 3 model and serves them with the original (LoRAM, "Train Small,
Infer Large"). It speaks JSON-RPC 2.0 with Language Server Protocol framing on stdin/stdout;
editors, notebooks and scripts spawn it.
The protocol is described in docs/rpc.md.

options:
  --stdio                 talk over stdin/stdout (the default)
  --debug-methods         also serve debug/echo, debug/sleep, debug/log and debug/fail
  --max-message-bytes N   refuse (and skip) message bodies larger than N bytes (default 268435456)
  --help                  print this help
  --version               print the version
"""

switch CommandLine.arguments.dropFirst().first {
case "make-model": exit(MakeModelCommand.run(Array(CommandLine.arguments.dropFirst(2))))
case "make-dataset": exit(MakeDatasetCommand.run(Array(CommandLine.arguments.dropFirst(2))))
case "plan": exit(PlanCommand.run(Array(CommandLine.arguments.dropFirst(2))))
default: break
}

var settings = Daemon.Settings()
var options = RPCServer.Options()
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--help", "-h":
        print(usage)
        exit(0)
    case "--version":
        print("loramd \(LoRAMDVersion.current) (rpc contract \(LoRAMDVersion.contract))")
        exit(0)
    case "--stdio":
        break
    case "--debug-methods":
        settings.debugMethods = true
    case "--max-message-bytes":
        guard let value = arguments.popFirst(), let bytes = Int(value), bytes > 0 else {
            FileHandle.standardError.write(Data("loramd: --max-message-bytes needs a positive integer\n".utf8))
            exit(2)
        }
        options.maxContentLength = bytes
    default:
        FileHandle.standardError.write(Data("loramd: unknown argument '\(argument)'\n\n\(usage)\n".utf8))
        exit(2)
    }
}

let daemon = Daemon(settings: settings)
StdioTransport.run(router: daemon.router, options: options)
