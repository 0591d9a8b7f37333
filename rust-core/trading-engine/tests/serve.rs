//! `trading-engine serve` and `trading-engine config` as a user runs them: the real binary, real
//! signals, real gRPC over loopback.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

use serde_json::Value;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use trading_server::pb;
use trading_server::pb::trading_client::TradingClient;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn engine() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trading-engine"));
    c.current_dir(repo());
    c
}

/// A running `trading-engine serve`.
struct Served {
    child: Child,
    addr: SocketAddr,
    stderr: ChildStderr,
}

/// Starts the server and waits for its `listening on HOST:PORT` line.
fn serve(args: &[&str]) -> Served {
    let mut child = engine()
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("not the listening line: {line:?}"))
        .parse()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    Served {
        child,
        addr,
        stderr,
    }
}

impl Served {
    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a child's pid and a signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// Waits for the exit; the exit code and the log lines.
    fn finish(mut self) -> (Option<i32>, Vec<Value>) {
        let status = self.child.wait().unwrap();
        let mut text = String::new();
        self.stderr.read_to_string(&mut text).unwrap();
        let lines = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (status.code(), lines)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn bar(seq: u64, t: i64, p: f64) -> pb::StreamRequest {
    pb::StreamRequest {
        kind: Some(pb::stream_request::Kind::Bar(pb::BarMessage {
            seq,
            op: pb::Op::Append as i32,
            bar: Some(pb::Bar {
                time: t,
                open: p,
                high: p + 1.0,
                low: p - 1.0,
                close: p,
                volume: 10.0,
            }),
        })),
    }
}

/// SIGTERM: health `NOT_SERVING` first, the call in flight (an open stream) completes, exit 0;
/// one JSON log line per call and stream message.
#[test]
fn sigterm_drains_in_flight_calls_and_exits_0() {
    // A long grace period: the stream must still be served after the signal however slow
    // the machine; the process exits as soon as the stream ends, not after the grace period.
    let served = serve(&["--port", "0", "--set", "server.shutdown_grace_ms=120000"]);
    let addr = served.addr;
    runtime().block_on(async {
        let ch = channel(addr).await;
        let mut health = HealthClient::new(ch.clone());
        let mut watch = health
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let status = |r: Option<Result<tonic_health::pb::HealthCheckResponse, tonic::Status>>| {
            r.expect("an answer").expect("not an error").status
        };
        assert_eq!(status(watch.next().await), ServingStatus::Serving as i32);

        let mut client = TradingClient::new(ch);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut answers = client
            .stream(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        tx.send(pb::StreamRequest {
            kind: Some(pb::stream_request::Kind::Open(pb::OpenSession {
                symbol: "BTC".into(),
                timeframe: "1m".into(),
                config: None,
                with_macd: false,
                resume: false,
            })),
        })
        .await
        .unwrap();
        let opened = answers.message().await.unwrap().unwrap();
        assert_eq!((opened.seq, opened.engine.as_str()), (0, "rust"));
        tx.send(bar(1, 0, 100.0)).await.unwrap();
        assert_eq!(answers.message().await.unwrap().unwrap().seq, 1);

        served.signal(libc::SIGTERM);
        // Health says NOT_SERVING first, then the watch ends.
        assert_eq!(status(watch.next().await), ServingStatus::NotServing as i32);
        assert!(watch.next().await.is_none());
        // The stream in flight goes on until the client ends it.
        tx.send(bar(2, 60_000, 101.0)).await.unwrap();
        let r = answers.message().await.unwrap().unwrap();
        assert_eq!(r.seq, 2);
        match r.kind {
            Some(pb::stream_response::Kind::Update(u)) => assert_eq!(u.bars, 2),
            other => panic!("not an update: {other:?}"),
        }
        drop(tx);
        assert!(answers.message().await.unwrap().is_none());
    });
    let (code, lines) = served.finish();
    assert_eq!(code, Some(0));
    for l in &lines {
        assert_eq!(l["engine"], "rust", "{l}");
        assert!(l["ts"].as_str().unwrap().ends_with('Z'), "{l}");
        assert!(l["level"].is_string(), "{l}");
    }
    let calls: Vec<&Value> = lines.iter().filter(|l| l.get("method").is_some()).collect();
    for l in &calls {
        for key in ["session", "seq", "latency_ms", "status"] {
            assert!(l.get(key).is_some(), "{key} in {l}");
        }
        assert!(l["latency_ms"].is_number(), "{l}");
    }
    let stream: Vec<(Value, Value, Value)> = calls
        .iter()
        .filter(|l| l["method"] == "Stream")
        .map(|l| (l["session"].clone(), l["seq"].clone(), l["status"].clone()))
        .collect();
    assert_eq!(
        stream,
        [0, 1, 2].map(|s| (Value::from("BTC/1m"), Value::from(s), Value::from("OK")))
    );
    assert!(
        lines.iter().any(|l| l["signal"] == "SIGTERM"),
        "the signal is logged"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["message"], "stopped");
}

/// SIGINT stops an idle server with exit 0; a second server on the same port is refused.
#[test]
fn sigint_and_a_port_in_use() {
    let first = serve(&["--port", "0", "--config", "config/default.yaml"]);
    let port = first.addr.port().to_string();
    let out = engine().args(["serve", "--port", &port]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "never said it listens");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");
    assert!(err.to_lowercase().contains("in use"), "{err}");
    // The first server is unaffected.
    runtime().block_on(async {
        let mut client = TradingClient::new(channel(first.addr).await);
        let info = client
            .get_info(pb::InfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.engine, "rust");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    });
    first.signal(libc::SIGINT);
    let (code, lines) = first.finish();
    assert_eq!(code, Some(0));
    let info = lines.iter().find(|l| l["method"] == "GetInfo").unwrap();
    assert_eq!(info["status"], "OK");
    assert_eq!(info["session"], Value::Null);
    assert!(lines.iter().any(|l| l["signal"] == "SIGINT"));
}

/// Bad configurations stop the server before it listens.
#[test]
fn serve_refuses_bad_configuration() {
    let out = engine()
        .args(["serve", "--port", "0", "--set", "server.replay_window=0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.replay_window"));
    let out = engine()
        .args(["serve", "--port", "0", "--set", "logging.level=loud"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("logging.level"));
    let out = engine()
        .args([
            "serve",
            "--port",
            "0",
            "--set",
            "server.tls_cert_file=cert.pem",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.tls_key_file"));
}

/// `config` prints every key of the parsed configuration (and the presets) as JSON.
#[test]
fn config_prints_the_parsed_configuration() {
    let out = engine()
        .args([
            "config",
            "--config",
            "config/default.yaml",
            "--set",
            "server.rust_port=0",
            "--set",
            "macd.seed=sma",
            "--presets",
            "config/macd_params.yaml",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut expected = trading_config::FileConfig::default();
    expected.server.rust_port = 0;
    expected.macd.seed = chan_core::config::MacdSeed::Sma;
    assert_eq!(v["config"], serde_json::to_value(&expected).unwrap());
    assert_eq!(v["config"]["server"]["max_message_bytes"], 67_108_864);
    assert_eq!(v["presets"]["presets"]["talib"]["seed"], "sma");
    // Without --presets: the configuration alone.
    let out = engine().arg("config").output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({ "config": serde_json::to_value(trading_config::FileConfig::default()).unwrap() })
    );
    let out = engine()
        .args(["config", "--set", "server.python_port=70000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.python_port"));
}

/// Runs `trading-engine probe ARGS`: the exit code, stdout and stderr.
fn probe(args: &[&str]) -> (Option<i32>, String, String) {
    let out = engine().arg("probe").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `probe` (the containers' health check): 0 and `ADDR SERVICE SERVING` against a running
/// server, at an address given or taken from the configuration; 1 for a service the server does
/// not know; 3 against a closed port.
#[test]
fn probe_checks_health_over_grpc() {
    let served = serve(&["--port", "0", "--config", "config/default.yaml"]);
    let addr = served.addr.to_string();
    let (code, out, err) = probe(&["--address", &addr]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, format!("{addr} trading.v1.Trading SERVING\n"));
    // The default address: server.host:server.rust_port of the configuration (here 0.0.0.0,
    // as in a container: probed on the loopback address).
    let port = format!("server.rust_port={}", served.addr.port());
    let (code, out, _) = probe(&[
        "--config",
        "config/default.yaml",
        "--set",
        &port,
        "--set",
        "server.host=0.0.0.0",
        "--service",
        "",
        "--timeout-ms",
        "5000",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        format!("127.0.0.1:{} \"\" SERVING\n", served.addr.port())
    );
    let (code, out, _) = probe(&["--address", &addr, "--service", "no.such.Service"]);
    assert_eq!(code, Some(1));
    assert_eq!(out, format!("{addr} no.such.Service SERVICE_UNKNOWN\n"));
    served.signal(libc::SIGTERM);
    assert_eq!(served.finish().0, Some(0));

    // The server is gone: its port is closed.
    let (code, out, err) = probe(&["--address", &addr]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert_eq!(out, format!("{addr} trading.v1.Trading UNREACHABLE\n"));
    assert!(err.starts_with(&format!("error: {addr}: ")), "{err}");
    // A configuration that cannot be read: 2, not a health status.
    let (code, out, _) = probe(&["--config", "no/such/file.yaml"]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
}
