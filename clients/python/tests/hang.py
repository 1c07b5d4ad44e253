"""How long a test waits before it calls something a hang.

Waits in tests are about hangs, never speed: on a busy 2-core machine a debug daemon's training
step took 21-23 s where an idle one takes 3 s. Timeouts that a test *expects* to expire (a
request that never ends, a 10 s sleep given 0.3 s) stay short: they test the timeout itself.
"""

HANG = 600.0
