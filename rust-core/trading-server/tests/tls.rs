//! TLS and mutual TLS: a CA, a server certificate and client certificates made at run time.

mod common;

use std::path::PathBuf;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use trading_server::pb;
use trading_server::pb::trading_client::TradingClient;

/// A certificate authority.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A certificate signed by `ca`: (certificate PEM, key PEM).
fn leaf(ca: &Ca, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let mut params = CertificateParams::new(
        names
            .iter()
            .map(std::string::ToString::to_string)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A fresh directory for this test's files.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("trading-server-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(d: &std::path::Path, name: &str, text: &str) -> String {
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// The test config serving TLS with a certificate of `ca` for localhost and 127.0.0.1, its files
/// in `d`.
fn serving_tls(d: &std::path::Path, ca: &Ca) -> trading_config::FileConfig {
    let (cert, key) = leaf(
        ca,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let mut cfg = config();
    cfg.server.tls_cert_file = write(d, "server.pem", &cert);
    cfg.server.tls_key_file = write(d, "server.key", &key);
    cfg
}

async fn connect(
    server: &TestServer,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<TradingClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(format!("https://127.0.0.1:{}", server.addr.port()))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(TradingClient::new(channel))
}

/// Whether a call through `client` (if it connected) succeeds.
async fn works(client: Result<TradingClient<Channel>, tonic::transport::Error>) -> bool {
    match client {
        Ok(mut c) => c.get_info(pb::InfoRequest {}).await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn tls_serves_and_plaintext_fails() {
    let d = dir("tls");
    let ca = new_ca("test CA");
    let cfg = serving_tls(&d, &ca);
    let server = TestServer::start(cfg).await;

    let mut client = connect(&server, &ca.pem, None).await.unwrap();
    let info = client
        .get_info(pb::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.engine, "rust");
    let bars = sample("BTCUSD-BITSTAMP_30m.csv");
    let a = client
        .analyze(analyze_request(&bars, None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.analysis.unwrap().bars, bars.len() as u64);
    // A client that trusts another CA, and a plaintext client, get nowhere.
    let other = new_ca("another CA");
    assert!(!works(connect(&server, &other.pem, None).await).await);
    let plain = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        assert!(TradingClient::new(ch)
            .get_info(pb::InfoRequest {})
            .await
            .is_err());
    }
    server.stop().await.unwrap();
    std::fs::remove_dir_all(&d).unwrap();
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let d = dir("mtls");
    let ca = new_ca("test CA");
    let client_ca = new_ca("clients CA");
    let mut cfg = serving_tls(&d, &ca);
    cfg.server.tls_client_ca_file = write(&d, "clients-ca.pem", &client_ca.pem);
    let server = TestServer::start(cfg).await;

    let (client_cert, client_key) =
        leaf(&client_ca, &["bot-1"], ExtendedKeyUsagePurpose::ClientAuth);
    let mut client = connect(&server, &ca.pem, Some((&client_cert, &client_key)))
        .await
        .unwrap();
    let info = client
        .get_info(pb::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.protocol, "trading.v1");
    // Streams work over mutual TLS too.
    let (mut conn, opened) = Conn::open(&mut client, open_msg("BTC", "30m", false))
        .await
        .unwrap();
    assert_eq!(opened.session, "BTC/30m");
    let bars = sample("BTCUSD-BITSTAMP_30m.csv");
    let r = conn.bar(1, pb::Op::Append, &bars[0]).await;
    assert_eq!(update_of(&r).bars, 1);

    // No client certificate, or one from another CA: refused.
    assert!(!works(connect(&server, &ca.pem, None).await).await);
    let stranger = new_ca("stranger CA");
    let (scert, skey) = leaf(&stranger, &["bot-2"], ExtendedKeyUsagePurpose::ClientAuth);
    assert!(!works(connect(&server, &ca.pem, Some((&scert, &skey))).await).await);
    server.stop().await.unwrap();
    std::fs::remove_dir_all(&d).unwrap();
}

/// The probe connects as the `client` section says: SERVING over TLS with the right CA; a TLS
/// failure (another CA, a wrong name, TLS on one side only, no client certificate under mutual
/// TLS) is exit status 4, distinct from no answer (3).
#[tokio::test]
async fn the_probe_uses_tls_and_names_tls_failures() {
    use std::time::Duration;
    use trading_server::probe::{check, client_tls, Probe};
    let d = dir("probe");
    let ca = new_ca("test CA");
    let client_ca = new_ca("clients CA");
    let mut cfg = serving_tls(&d, &ca);
    let server = TestServer::start(cfg.clone()).await;
    cfg.server.tls_client_ca_file = write(&d, "clients-ca.pem", &client_ca.pem);
    let mutual = TestServer::start(cfg.clone()).await;
    let plain = TestServer::default().await;
    let t = Duration::from_secs(3);
    let at = |s: &TestServer| format!("127.0.0.1:{}", s.addr.port());

    let mut client = config();
    client.client.tls_ca_file = write(&d, "ca.pem", &ca.pem);
    client.client.tls_server_name = "localhost".into();
    let tls = || client_tls(&client).unwrap();
    let p = check(&at(&server), "", t, tls()).await;
    assert_eq!((p.exit_code(), p.word().as_str()), (0, "SERVING"), "{p:?}");

    let mut wrong_name = client.clone();
    wrong_name.client.tls_server_name = "engine.example".into();
    let p = check(&at(&server), "", t, client_tls(&wrong_name).unwrap()).await;
    assert_eq!(p.exit_code(), 4, "{p:?}");

    let mut other = client.clone();
    let stranger = new_ca("another CA");
    other.client.tls_ca_file = write(&d, "other.pem", &stranger.pem);
    let p = check(&at(&server), "", t, client_tls(&other).unwrap()).await;
    assert!(matches!(p, Probe::TlsFailure(_)), "{p:?}");
    assert_eq!(p.word(), "TLS_FAILURE");

    // TLS on one side only, either way.
    let p = check(&at(&server), "", t, None).await;
    assert_eq!(p.exit_code(), 4, "{p:?}");
    let p = check(&at(&plain), "", t, tls()).await;
    assert_eq!(p.exit_code(), 4, "{p:?}");

    // Mutual TLS: without a client certificate refused (4); with one from the CA, served.
    let p = check(&at(&mutual), "", t, tls()).await;
    assert_eq!(p.exit_code(), 4, "{p:?}");
    let (client_cert, client_key) =
        leaf(&client_ca, &["bot-1"], ExtendedKeyUsagePurpose::ClientAuth);
    let mut with_cert = client.clone();
    with_cert.client.tls_cert_file = write(&d, "client.pem", &client_cert);
    with_cert.client.tls_key_file = write(&d, "client.key", &client_key);
    let p = check(&at(&mutual), "", t, client_tls(&with_cert).unwrap()).await;
    assert_eq!(p.exit_code(), 0, "{p:?}");

    // A closed port is still "no answer" with TLS on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = check(&format!("127.0.0.1:{port}"), "", t, tls()).await;
    assert_eq!(p.exit_code(), 3, "{p:?}");

    // A certificate without its key is a configuration error naming the key.
    let mut half = client.clone();
    half.client.tls_cert_file = "c.pem".into();
    let e = client_tls(&half).unwrap_err();
    assert!(e.to_string().contains("client.tls_key_file"), "{e}");
    for s in [server, mutual, plain] {
        s.stop().await.unwrap();
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// A free port on 127.0.0.1 (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `server.health_port`: beside a main port with mutual TLS and tokens, a plaintext listener
/// without tokens serving `grpc.health.v1.Health` only, with the main port's statuses: SERVING,
/// then `NOT_SERVING` from the start of a graceful shutdown (Watch sends it, then ends); any other
/// call there is `UNIMPLEMENTED`. Off by default.
#[tokio::test]
async fn the_health_port_serves_health_alone_in_plaintext() {
    use tokio_stream::StreamExt;
    use tonic::Code;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let d = dir("health-port");
    let ca = new_ca("test CA");
    let mut cfg = serving_tls(&d, &ca);
    cfg.server.tls_client_ca_file = write(&d, "clients-ca.pem", &new_ca("clients CA").pem);
    cfg.server.auth_token = "client-secret".into();
    cfg.server.operator_token = "operator-secret".into();
    let health_port = free_port();
    cfg.server.health_port = u32::from(health_port);
    let mut server = TestServer::start(cfg).await;

    // `serve` binds the health port in its task: wait for it.
    let mut tries = 0;
    let plain = loop {
        match Channel::from_shared(format!("http://127.0.0.1:{health_port}"))
            .unwrap()
            .connect()
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                tries += 1;
                assert!(tries < 100, "the health port does not listen: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    let mut health = HealthClient::new(plain.clone());
    let request = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    for service in ["", "trading.v1.Trading"] {
        let r = health.check(request(service)).await.unwrap().into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    assert_eq!(
        health.check(request("no.such")).await.unwrap_err().code(),
        Code::NotFound
    );
    // Nothing but health: the contract's calls are unknown there, with or without a token.
    let bars = sample("BTCUSD-BITSTAMP_30m.csv");
    let mut trading = TradingClient::new(plain.clone());
    let e = trading
        .analyze(analyze_request(&bars[..100], None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    let mut with_token = tonic::Request::new(pb::InfoRequest {});
    with_token
        .metadata_mut()
        .insert("authorization", "Bearer operator-secret".parse().unwrap());
    let e = trading.get_info(with_token).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    // The main port still wants TLS: plaintext gets no answer there.
    let main_plain = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = main_plain {
        assert!(HealthClient::new(ch).check(request("")).await.is_err());
    }

    // A graceful shutdown: the health port's watchers see NOT_SERVING, then the stream ends.
    let mut watch = health
        .watch(request("trading.v1.Trading"))
        .await
        .unwrap()
        .into_inner();
    let status = |r: Option<Result<tonic_health::pb::HealthCheckResponse, tonic::Status>>| {
        r.expect("an answer").expect("not an error").status
    };
    assert_eq!(status(watch.next().await), ServingStatus::Serving as i32);
    server.begin_stop();
    assert_eq!(status(watch.next().await), ServingStatus::NotServing as i32);
    assert!(watch.next().await.is_none());
    server.stop().await.unwrap();
    // It stopped with the server.
    let again = Channel::from_shared(format!("http://127.0.0.1:{health_port}"))
        .unwrap()
        .connect()
        .await;
    assert!(again.is_err(), "the health port still listens");
    std::fs::remove_dir_all(&d).unwrap();
}

/// `server.health_port` is 0 by default: no second listener. Set to the server's own port, the
/// server refuses to start, naming the key.
#[tokio::test]
async fn the_health_port_is_off_by_default_and_never_the_main_port() {
    let server = trading_server::EngineServer::bind(config(), Some(0))
        .await
        .unwrap();
    assert!(server.health_addr().is_none());
    let port = free_port();
    let mut cfg = config();
    cfg.server.health_port = u32::from(port);
    let e = trading_server::EngineServer::bind(cfg.clone(), Some(port))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("server.health_port"), "{e}");
    let server = trading_server::EngineServer::bind(cfg, Some(0))
        .await
        .unwrap();
    assert_eq!(server.health_addr().map(|a| a.port()), Some(port));
}
