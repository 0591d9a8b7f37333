"""The Python engine's gRPC server (``trading-system serve python``): the ``trading.v1`` contract
(``proto/trading.proto``) with the semantics of ``docs/GRPC.md``, answer for answer as the Rust
server gives them but for ``engine = "python"``. grpcio asyncio over the pure-Python engine.

- :mod:`.requests`: a request's bars and configuration, refused as the contract says when bad
  (the conversions themselves: :mod:`trading_system.convert`);
- :mod:`.status`: errors as gRPC statuses with ``google.rpc.BadRequest`` details;
- :mod:`.sessions`: streaming sessions with their exactly-once bookkeeping;
- :mod:`.service`: the ``Trading`` and ``Replica`` services;
- :mod:`.health`: ``grpc.health.v1``;
- :mod:`.auth`: the bearer-token interceptor;
- :mod:`.drain`: the interceptor that drains calls before a shutdown;
- :mod:`.log`: one JSON line per call and stream message on stderr;
- :mod:`.app`: binding, TLS, serving and graceful shutdown.

The modules import grpcio; the rest of the package does not need it.
"""

ENGINE = "python"
"""The name every answer carries in its ``engine`` field."""
PROTOCOL = "trading.v1"
"""The protocol ``GetInfo`` reports."""
SERVICE_NAME = "trading.v1.Trading"
"""The gRPC service name of the contract, as the health service knows it."""
REPLICA_SERVICE_NAME = "trading.v1.Replica"
"""The service the monitor keeps a standby level with (CatchUp, CloseSessions) and feeds its
clients' bars through (Apply)."""
