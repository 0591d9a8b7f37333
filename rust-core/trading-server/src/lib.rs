//! The Rust engine's gRPC server: the `trading.v1` contract (`proto/trading.proto`) with the
//! semantics of `docs/GRPC.md`. A thin layer: it converts requests to `chan-core` types, calls
//! the core (`analyze`, `Session`), and builds the answers straight from the engine's state.
//!
//! - [`service`]: the `Trading` service (Analyze, Stream, `GetSnapshot`, `GetInfo`, configuration)
//!   and the `Replica` service (`CatchUp`, `CloseSessions`, Apply);
//! - [`auth`]: bearer tokens and roles (client, operator);
//! - [`codec`]: prost's codec, refusing undecodable requests as `INVALID_ARGUMENT`;
//! - [`wire`]: the messages with plain doubles, written by hand to send `-0.0`;
//! - [`sessions`]: streaming sessions with their exactly-once bookkeeping;
//! - [`convert`]: messages to and from `chan-core` types;
//! - [`status`]: errors as gRPC statuses (`google.rpc.BadRequest` details);
//! - [`health`]: `grpc.health.v1` with the protocol's Watch semantics;
//! - [`probe`]: a `grpc.health.v1` `Check` client (`trading-engine probe`, the health checks);
//! - [`server`]: binding, TLS, serving and graceful shutdown;
//! - [`log`]: one JSON line per call on stderr.
//!
//! # Decisions where `docs/GRPC.md` is silent
//!
//! - Checks run in this order: token, size, configuration overrides, columns, bars (symbol and
//!   timeframe before the configuration for an open). Nothing of a rejected request is applied.
//! - Size: `N` is the request message's protobuf size (`encoded_len`, the canonical encoding's
//!   size), checked on every unary request and every stream message. A stream's first message
//!   over the limit ends the stream with `RESOURCE_EXHAUSTED`; a later one is answered in-band.
//!   Beyond twice the limit the transport refuses the message itself, also with
//!   `RESOURCE_EXHAUSTED` (tonic's own `OUT_OF_RANGE` is rewritten: [`status::transport_limit`]).
//! - Columns: lengths are compared with `time`'s; each differing column is a violation
//!   `bars.<column>` with description `has N values, bars.time has M`; the status message is
//!   `invalid bars: columns of different lengths: bars.<column> has N values, bars.time has M`.
//!   A request without `bars` is an empty series.
//! - Bad names: violations `open.symbol` / `open.timeframe` (`symbol` / `timeframe` for
//!   `GetSnapshot`), status message `invalid session name: <field>: <description>; ...`.
//!   Timeframe digits may have leading zeros (`01m` is valid and a different session from `1m`).
//! - `NOT_FOUND` message: `session <symbol>/<timeframe> not found` (the name shown by
//!   `chan_core::display::shown`, as every user text in messages and logs).
//! - `Replica.CatchUp`: an entry's bar messages are checked in order as a stream checks them
//!   (the number first, then the bar's presence and op, then the core's rules), all before any
//!   is applied; the first refusal is the entry's error. Refused entries report the session's
//!   `last_seq` and `bars` as they stand (0 when there is none); a bad name is reported as
//!   `shown(symbol)/shown(timeframe)`. Name violations in-band carry `reason = ""`,
//!   `index = -1`; a fresh entry with `after_seq != 0` is `invalid catch-up: after_seq must be 0
//!   for a fresh session, got A`. An entry with no bars changes nothing (not even the replay
//!   window).
//! - `Replica.Apply`: each message is handled by the code a stream's bar message goes through
//!   (the session looked up, marked used and locked per message; no stream is attached). An
//!   absent `session` or `bar` reads as its default (a bad name; number 0). A bad name is
//!   in-band `INVALID_ARGUMENT` with the open's message and violations (`open.symbol`,
//!   `open.timeframe`, `reason = ""`, `index = -1`); an unknown session in-band `NOT_FOUND`
//!   `session <symbol>/<timeframe> not found`; both answers carry the message's `seq`. A
//!   request over `server.max_message_bytes` is answered in full, every message with the
//!   in-band `RESOURCE_EXHAUSTED` of the size and nothing applied (the stream stays open); an
//!   undecodable request ends the stream with `INVALID_ARGUMENT`. One log line per request
//!   (`messages` added), none per message.
//! - `server.max_sessions` full of sessions with streams attached: `RESOURCE_EXHAUSTED`
//!   `the engine holds server.max_sessions (N) sessions, each with a stream attached`. A
//!   session's use (for the eviction order) is its open, resume, stream messages, snapshots and
//!   catch-ups.
//! - A stream whose session was closed (`Replica.CloseSessions`) ends with `NOT_FOUND` at its
//!   next message.
//! - A number older than the replay window: `FAILED_PRECONDITION` with the gap's message,
//!   `expected sequence L+1, got N`, and `expected_seq = L + 1`.
//! - The duplicate check comes first: a number already applied is a replay or `ABORTED` whatever
//!   its content. For `L + 1`, a message without a bar or with `OP_UNSPECIFIED` is an in-band
//!   `INVALID_ARGUMENT` (the number is not consumed). `REPLACE_LAST` on a session without bars
//!   is in-band `FAILED_PRECONDITION` (`replace_last: the session has no bar to replace`,
//!   `expected_seq = L + 1`). In-band bar violations carry `field = bars[<i>].<field>` with `i`
//!   the bar's index in the session, `reason` = the rule, `index` = `i`.
//! - After the open, a message with neither `open` nor `bar`, or a second `open`, ends the stream
//!   with `INVALID_ARGUMENT`.
//! - A stream whose session was replaced by another stream's open (`resume = false`) ends with
//!   `ABORTED` at its next message: its bars would otherwise go to a session nobody can see.
//! - Unary `BadRequest` violations set `field` and `description` only (the rule is the
//!   description's prefix).
//! - Graceful shutdown: open streams are calls in flight: they are served until the client ends
//!   them or the grace period is over. Health `Watch` streams send `NOT_SERVING`, then end.
//! - Logs: health calls are logged at debug level (probes come every second); other calls at
//!   info, with `message` added when the status is not OK (`CatchUp` adds `sessions` and
//!   `bars`). The token's scheme `Bearer` is matched without regard to case; the tokens are
//!   compared in constant time.
//! - TLS: `server.tls_cert_file` and `server.tls_key_file` go together, and
//!   `server.tls_client_ca_file` needs both; anything else stops the server before it listens.

pub mod auth;
pub mod codec;
pub mod convert;
pub mod health;
pub mod log;
pub mod probe;
pub mod server;
pub mod service;
pub mod sessions;
pub mod status;
pub mod wire;

/// The generated `trading.v1` messages, server and client.
// Generated by tonic-prost-build from proto/trading.proto: not ours to restyle.
#[allow(clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("trading.v1");
    pub use crate::wire::{Bar, MacdPoint, Pivot, Point, Repair, Signal};
}

/// The name every answer carries in its `engine` field.
pub const ENGINE: &str = "rust";
/// The protocol `GetInfo` reports.
pub const PROTOCOL: &str = "trading.v1";
/// The crate version `GetInfo` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The gRPC service name of the contract, as the health service knows it.
pub const SERVICE_NAME: &str = "trading.v1.Trading";

pub use server::{bind, serve, shutdown_signal, EngineServer, ServerError};
