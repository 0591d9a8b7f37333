//! Helpers of the gRPC tests: an in-process server on 127.0.0.1 port 0, clients, real samples,
//! stream connections, and a client-side mirror that applies update messages.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chan_core::document::{
    DegreeDoc, Document, FractalDoc, MacdDoc, PenDoc, PivotDoc, Point, SegmentDoc, SignalDoc,
};
use chan_core::fractal::FractalKind;
use chan_core::kline::Repair;
use chan_core::signal::{Edge, Side};
use chan_core::timestamp::parse_time;
use chan_core::{Bar, Direction, EngineConfig};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};
use trading_config::FileConfig;
use trading_server::pb;
use trading_server::pb::trading_client::TradingClient;
use trading_server::ServerError;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The default configuration with a short shutdown grace period (a test that stops its server
/// with a stream still open does not wait the default 5 s).
pub fn config() -> FileConfig {
    let mut c = FileConfig::default();
    c.server.shutdown_grace_ms = 200;
    c
}

/// A server running in this process until [`TestServer::stop`].
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), ServerError>>,
}

impl TestServer {
    /// Starts a server with `cfg` on 127.0.0.1, any free port.
    pub async fn start(cfg: FileConfig) -> Self {
        let listener = trading_server::bind("127.0.0.1", 0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(trading_server::serve(cfg, listener, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            handle,
        }
    }

    /// Starts a server with the test configuration.
    pub async fn default() -> Self {
        Self::start(config()).await
    }

    pub async fn client(&self) -> TradingClient<Channel> {
        TradingClient::new(self.channel().await).max_decoding_message_size(usize::MAX)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Starts the graceful shutdown (without waiting for it).
    pub fn begin_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Shuts down and waits for the server to finish.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        self.begin_stop();
        self.handle.await.unwrap()
    }
}

/// The bars of a CSV file of `tests/data` (`time,open,high,low,close,volume`).
pub fn sample(name: &str) -> Vec<Bar> {
    let text = std::fs::read_to_string(repo().join("tests/data").join(name)).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let x = |i: usize| f[i].trim().parse::<f64>().unwrap();
            Bar::new(parse_time(f[0]).unwrap(), x(1), x(2), x(3), x(4), x(5))
        })
        .collect()
}

/// Bars as columns.
pub fn columns(bars: &[Bar]) -> pb::Bars {
    pb::Bars {
        time: bars.iter().map(|b| b.time).collect(),
        open: bars.iter().map(|b| b.open).collect(),
        high: bars.iter().map(|b| b.high).collect(),
        low: bars.iter().map(|b| b.low).collect(),
        close: bars.iter().map(|b| b.close).collect(),
        volume: bars.iter().map(|b| b.volume).collect(),
    }
}

pub fn bar_msg(b: &Bar) -> pb::Bar {
    pb::Bar {
        time: b.time,
        open: b.open,
        high: b.high,
        low: b.low,
        close: b.close,
        volume: b.volume,
    }
}

pub fn analyze_request(bars: &[Bar], config: Option<pb::EngineConfig>) -> pb::AnalyzeRequest {
    pb::AnalyzeRequest {
        bars: Some(columns(bars)),
        config,
        with_macd: false,
    }
}

/// The analysis message as the core's document: the same fields.
pub fn to_document(a: &pb::Analysis) -> Document {
    let point = |p: &Option<pb::Point>| {
        let p = p.as_ref().expect("a point");
        Point {
            index: p.index,
            time: p.time,
            price: p.price,
        }
    };
    let dir = |d: i32| match pb::Direction::try_from(d).unwrap() {
        pb::Direction::Up => Direction::Up,
        pb::Direction::Down => Direction::Down,
        pb::Direction::Unspecified => panic!("no direction"),
    };
    let pen = |p: &pb::Pen, is_final: Option<bool>| PenDoc {
        direction: dir(p.direction),
        start: point(&p.start),
        end: point(&p.end),
        is_final,
    };
    let opt = |x: &f64| (!x.is_nan()).then_some(*x);
    let segment = |s: &pb::Segment| SegmentDoc {
        direction: dir(s.direction),
        start: point(&s.start),
        end: point(&s.end),
        first_pen: s.first_pen,
        last_pen: s.last_pen,
        confirmed: s.confirmed,
        gap: s.gap,
    };
    let pivot = |z: &pb::Pivot| PivotDoc {
        segment: z.segment,
        first_pen: z.first_pen,
        last_pen: z.last_pen,
        zd: z.zd,
        zg: z.zg,
        dd: z.dd,
        gg: z.gg,
        start: point(&z.start),
        end: point(&z.end),
        confirmed: z.confirmed,
    };
    let signal = |s: &pb::Signal| {
        let p = point(&s.point);
        SignalDoc {
            kind: u8::try_from(s.r#type).expect("a point type"),
            side: match pb::Side::try_from(s.side).unwrap() {
                pb::Side::Buy => Side::Buy,
                pb::Side::Sell => Side::Sell,
                pb::Side::Unspecified => panic!("no side"),
            },
            pen: s.pen,
            index: p.index,
            time: p.time,
            price: p.price,
            is_final: s.r#final,
            pivot: s.pivot,
            zd: s.zd,
            zg: s.zg,
            // NaN in the message where the document shows null (not a finite number).
            entering_strength: s.entering_strength.filter(|x| x.is_finite()),
            leaving_strength: s.leaving_strength.filter(|x| x.is_finite()),
            ratio: s.ratio.filter(|x| x.is_finite()),
            follows: s.follows,
            edge: match pb::PivotEdge::try_from(s.edge).unwrap() {
                pb::PivotEdge::Unspecified => None,
                pb::PivotEdge::Zd => Some(Edge::Zd),
                pb::PivotEdge::Zg => Some(Edge::Zg),
            },
        }
    };
    Document {
        bars: a.bars as usize,
        merged_bars: a.merged_bars as usize,
        fractals: a
            .fractals
            .iter()
            .map(|f| {
                let p = point(&f.point);
                FractalDoc {
                    kind: match pb::FractalKind::try_from(f.kind).unwrap() {
                        pb::FractalKind::Top => FractalKind::Top,
                        pb::FractalKind::Bottom => FractalKind::Bottom,
                        pb::FractalKind::Unspecified => panic!("no kind"),
                    },
                    merged_index: f.merged_index,
                    index: p.index,
                    time: p.time,
                    price: p.price,
                }
            })
            .collect(),
        degrees: a
            .degrees
            .iter()
            .map(|d| DegreeDoc {
                degree: d.degree,
                segments: d.segments.iter().map(segment).collect(),
                pivots: d.pivots.iter().map(pivot).collect(),
                signals: d.signals.iter().map(signal).collect(),
            })
            .collect(),
        pens: a.pens.iter().map(|p| pen(p, Some(p.r#final))).collect(),
        forming_pen: a.forming_pen.as_ref().map(|p| {
            assert!(!p.r#final, "the forming pen is never final");
            pen(p, None)
        }),
        segments: a.segments.iter().map(segment).collect(),
        pivots: a.pivots.iter().map(pivot).collect(),
        signals: a.signals.iter().map(signal).collect(),
        macd: a.macd.as_ref().map(|m| MacdDoc {
            dif: m.dif.iter().map(opt).collect(),
            dea: m.dea.iter().map(opt).collect(),
            histogram: m.histogram.iter().map(opt).collect(),
        }),
        repairs: a
            .repairs
            .iter()
            .map(|r| Repair {
                index: r.index as usize,
                old_high: r.old_high,
                old_low: r.old_low,
                new_high: r.new_high,
                new_low: r.new_low,
            })
            .collect(),
        config: config_of(a.config.as_ref().expect("the configuration")),
    }
}

/// A configuration message with every field set, read back (a field not set fails).
pub fn config_of(c: &pb::EngineConfig) -> EngineConfig {
    let v = c.validation.as_ref().unwrap();
    let m = c.macd.as_ref().unwrap();
    let p = c.pen.as_ref().unwrap();
    let s = c.segment.as_ref().unwrap();
    let g = c.signal.as_ref().unwrap();
    let name = |x: &Option<String>| serde_json::Value::String(x.clone().unwrap());
    let mut e = EngineConfig::default();
    e.validation.allow_non_positive_prices = v.allow_non_positive_prices.unwrap();
    e.validation.repair = v.repair.unwrap();
    e.macd.fast_period = m.fast_period.unwrap();
    e.macd.slow_period = m.slow_period.unwrap();
    e.macd.signal_period = m.signal_period.unwrap();
    e.macd.histogram_scale = m.histogram_scale.unwrap();
    e.macd.seed = serde_json::from_value(name(&m.seed)).unwrap();
    e.pen.definition = serde_json::from_value(name(&p.definition)).unwrap();
    e.pen.strict_validation = p.strict_validation.unwrap();
    e.segment.feature_sequence_strict = s.feature_sequence_strict.unwrap();
    e.segment.handle_inclusion = s.handle_inclusion.unwrap();
    e.signal.strength = serde_json::from_value(name(&g.strength)).unwrap();
    e.signal.divergence_rate = g.divergence_rate.unwrap();
    e.signal.min_pivots = g.min_pivots.unwrap();
    e.structure.degrees = c.structure.as_ref().unwrap().degrees.unwrap();
    e
}

/// One stream: requests in, answers out.
#[derive(Debug)]
pub struct Conn {
    pub tx: mpsc::Sender<pb::StreamRequest>,
    pub rx: Streaming<pb::StreamResponse>,
}

pub fn open_msg(symbol: &str, timeframe: &str, resume: bool) -> pb::StreamRequest {
    pb::StreamRequest {
        kind: Some(pb::stream_request::Kind::Open(pb::OpenSession {
            symbol: symbol.into(),
            timeframe: timeframe.into(),
            config: None,
            with_macd: false,
            resume,
        })),
    }
}

pub fn bar_req(seq: u64, op: pb::Op, b: &Bar) -> pb::StreamRequest {
    pb::StreamRequest {
        kind: Some(pb::stream_request::Kind::Bar(pb::BarMessage {
            seq,
            op: op as i32,
            bar: Some(bar_msg(b)),
        })),
    }
}

impl Conn {
    /// Starts a stream (nothing sent yet).
    pub async fn start(client: &mut TradingClient<Channel>) -> Result<Self, Status> {
        let (tx, rx) = mpsc::channel(64);
        let rx = client.stream(ReceiverStream::new(rx)).await?.into_inner();
        Ok(Self { tx, rx })
    }

    /// Starts a stream and sends `first`; the first answer or the stream's status.
    pub async fn first(
        client: &mut TradingClient<Channel>,
        first: pb::StreamRequest,
    ) -> Result<(Self, pb::StreamResponse), Status> {
        let mut c = Self::start(client).await?;
        let r = c.request(first).await?;
        Ok((c, r))
    }

    /// Opens (or resumes) a session: the connection and the `Opened` answer.
    pub async fn open(
        client: &mut TradingClient<Channel>,
        open: pb::StreamRequest,
    ) -> Result<(Self, pb::Opened), Status> {
        let (c, r) = Self::first(client, open).await?;
        assert_eq!(r.seq, 0);
        assert_eq!(r.engine, "rust");
        match r.kind {
            Some(pb::stream_response::Kind::Opened(o)) => Ok((c, o)),
            other => panic!("not an opened answer: {other:?}"),
        }
    }

    /// Sends one message and reads one answer (or the stream's end status).
    pub async fn request(&mut self, m: pb::StreamRequest) -> Result<pb::StreamResponse, Status> {
        self.tx.send(m).await.expect("the stream is open");
        match self.rx.message().await? {
            Some(r) => Ok(r),
            None => Err(Status::unknown("the stream ended without an answer")),
        }
    }

    pub async fn bar(&mut self, seq: u64, op: pb::Op, b: &Bar) -> pb::StreamResponse {
        let r = self.request(bar_req(seq, op, b)).await.unwrap();
        assert_eq!(r.seq, seq);
        assert_eq!(r.engine, "rust");
        r
    }
}

pub fn update_of(r: &pb::StreamResponse) -> &pb::Update {
    match &r.kind {
        Some(pb::stream_response::Kind::Update(u)) => u,
        other => panic!("not an update: {other:?}"),
    }
}

pub fn error_of(r: &pb::StreamResponse) -> &pb::StreamError {
    match &r.kind {
        Some(pb::stream_response::Kind::Error(e)) => e,
        other => panic!("not an error: {other:?}"),
    }
}

/// A client's copy of a session's analysis, kept by applying update messages (§12.7).
#[derive(Debug, Default)]
pub struct Mirror {
    pub bars: u64,
    pub merged_bars: u64,
    pub fractals: Vec<pb::Fractal>,
    pub pens: Vec<pb::Pen>,
    pub segments: Vec<pb::Segment>,
    pub pivots: Vec<pb::Pivot>,
    pub signals: Vec<pb::Signal>,
    pub last_pen: Option<pb::Pen>,
    pub forming_pen: Option<pb::Pen>,
    pub tail: pb::Tail,
}

fn splice<T: Clone>(list: &mut Vec<T>, from: u64, items: &[T]) {
    assert!(
        from as usize <= list.len(),
        "a splice starts inside the list"
    );
    list.truncate(from as usize);
    list.extend_from_slice(items);
}

impl Mirror {
    pub fn apply(&mut self, u: &pb::Update) {
        self.bars = u.bars;
        self.merged_bars = u.merged_bars;
        let f = u.fractals.as_ref().unwrap();
        splice(&mut self.fractals, f.from, &f.items);
        let p = u.pens.as_ref().unwrap();
        splice(&mut self.pens, p.from, &p.items);
        let s = u.segments.as_ref().unwrap();
        splice(&mut self.segments, s.from, &s.items);
        let z = u.pivots.as_ref().unwrap();
        splice(&mut self.pivots, z.from, &z.items);
        let g = u.signals.as_ref().unwrap();
        splice(&mut self.signals, g.from, &g.items);
        self.last_pen = u.last_pen;
        self.forming_pen = u.forming_pen;
        if let Some(t) = &u.tail {
            self.tail = t.clone();
        }
    }

    /// Asserts that the mirror equals `a` (an analysis without MACD series).
    pub fn assert_equals(&self, a: &pb::Analysis) {
        assert_eq!(self.bars, a.bars);
        assert_eq!(self.merged_bars, a.merged_bars);
        assert_eq!(self.fractals, a.fractals);
        let mut pens = self.pens.clone();
        pens.extend(self.last_pen);
        assert_eq!(pens, a.pens);
        assert_eq!(self.forming_pen, a.forming_pen);
        let mut segments = self.segments.clone();
        segments.extend(self.tail.segments.iter().copied());
        assert_eq!(segments, a.segments);
        let mut pivots = self.pivots.clone();
        pivots.extend(self.tail.pivots.iter().copied());
        assert_eq!(pivots, a.pivots);
        let mut signals = self.signals.clone();
        signals.extend(self.tail.signals.iter().copied());
        assert_eq!(signals, a.signals);
    }
}

/// The `google.rpc.BadRequest` field violations of a status, as `(field, description)`.
pub fn violations(s: &Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    s.get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}
