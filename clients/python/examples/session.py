#!/usr/bin/env python3
"""A first session with loramd: spawn it, initialize, list what is loaded, watch a cancellable
job's progress, cancel another, and shut down cleanly.

This is the README's first command until the runtime lands: it shows the daemon working end to
end through the Python client. (Loading a model, training and the LoRAM pipeline arrive with the
runtime; see docs/rpc.md, "Implementation status".)
"""
import sys
import time

from loram_client import LoramClient, RequestCancelled


def main() -> int:
    with LoramClient(debug_methods=True) as client:
        info, device = client.server_info, client.device
        print(f"{info['name']} {info['version']} on {device['kind']}: {device['threads']} threads, "
              f"budget {device['hbmCapBytes'] / 2**30:.1f} GiB of {device['memoryBytes'] / 2**30:.1f} GiB")
        print("methods:", ", ".join(client.capabilities["methods"]))
        listing = client.request("model/list")
        print(f"loaded: {len(listing['models'])} models, {len(listing['adapters'])} adapters, "
              f"{len(listing['jobs'])} jobs; memory {listing['memory']}")

        def show(value):
            if value["kind"] == "report":
                print(f"\r  progress {value.get('percentage', 0):5.1f}%", end="", flush=True)
            elif value["kind"] == "end":
                print()

        print("a 1.5 s job with progress, while other requests keep being answered:")
        slow = client.request_async("debug/sleep", {"ms": 1500}, on_progress=show)
        start = time.monotonic()
        client.request("model/list")
        print(f"  model/list answered after {1000 * (time.monotonic() - start):.0f} ms")
        slow.result(timeout=30)

        doomed = client.request_async("debug/sleep", {"ms": 60000})
        time.sleep(0.2)
        start = time.monotonic()
        doomed.cancel_request()
        try:
            doomed.result(timeout=10)
        except RequestCancelled as error:
            print(f"cancelled a 60 s job in {1000 * (time.monotonic() - start):.0f} ms: {error.hint}")
    print("daemon shut down cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
