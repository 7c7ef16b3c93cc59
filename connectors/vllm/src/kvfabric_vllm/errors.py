"""One error type for the connector: a kvfabric error code (the node's KvError codes) and a message."""

from __future__ import annotations

import grpc

ERROR_CODE_KEY = "kvfabric-error-code"


class KvfabricError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def from_rpc_error(err: grpc.RpcError, what: str) -> KvfabricError:
    """The node's code (trailing metadata kvfabric-error-code) and message, or the gRPC status when there is none."""
    code = None
    trailing = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == ERROR_CODE_KEY:
            code = value
    status = err.code() if hasattr(err, "code") else None
    if code is None:
        code = status.name if status is not None else "INTERNAL"
    details = err.details() if hasattr(err, "details") else str(err)
    return KvfabricError(code, f"{what}: {details}")
