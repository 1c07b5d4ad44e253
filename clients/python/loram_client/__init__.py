"""loram_client: a Python client for loramd, the LoRAM daemon.

The daemon speaks JSON-RPC 2.0 over stdio with Language Server Protocol framing; this
package spawns it and gives blocking and future-based calls, progress and notification
callbacks, and one exception class per error code of the RPC contract. Standard library
only.

    from loram_client import Loram

    with Loram() as loram:                     # LoramClient plus one typed method per RPC
        model = loram.load_model("/tmp/small")["modelId"]
        for piece in loram.generate(model, "Hello", max_tokens=32, stream=True):
            print(piece, end="")

``LoramClient`` is the transport alone (``request``, ``request_async``, ``notify``); the
``loram`` command line is loram_client.cli.
"""

from ._version import __version__
from .api import ALL_TARGETS, DECODER_TARGETS, Loram, dataset
from .client import DEBUG_METHODS_FLAG, LoramClient
from .errors import (
    ERROR_CLASSES,
    CallbackDeadlock,
    ClientError,
    DaemonExited,
    DaemonNotFound,
    FormatError,
    InternalError,
    InvalidParams,
    InvalidRequest,
    LoramError,
    MethodNotFound,
    NotFound,
    OverBudget,
    LoramIOError,
    ParseError,
    ProtocolError,
    RequestCancelled,
    RequestTimeout,
    ServerNotInitialized,
    ShapeMismatch,
    error_from_response,
)
from .framing import FrameReader, FrameWriter, FramingError, encode_frame
from .future import RequestFuture
from .locate import find_daemon
from .progress import new_token
from .results import Generation, MemoryPlan, PlanBuffer, PlanSuggestion, decode_logits
from .streaming import GenerationStream

__all__ = [
    "__version__",
    "LoramClient",
    "Loram",
    "dataset",
    "DECODER_TARGETS",
    "ALL_TARGETS",
    "MemoryPlan",
    "PlanBuffer",
    "PlanSuggestion",
    "decode_logits",
    "Generation",
    "GenerationStream",
    "RequestFuture",
    "DEBUG_METHODS_FLAG",
    "find_daemon",
    "new_token",
    "FrameReader",
    "FrameWriter",
    "FramingError",
    "encode_frame",
    "ERROR_CLASSES",
    "error_from_response",
    "LoramError",
    "ParseError",
    "InvalidRequest",
    "MethodNotFound",
    "InvalidParams",
    "InternalError",
    "ServerNotInitialized",
    "RequestCancelled",
    "NotFound",
    "FormatError",
    "ShapeMismatch",
    "OverBudget",
    "LoramIOError",
    "ClientError",
    "DaemonNotFound",
    "DaemonExited",
    "RequestTimeout",
    "ProtocolError",
    "CallbackDeadlock",
]
