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
    let mut params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
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
    let (cert, key) = leaf(
        &ca,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let mut cfg = config();
    cfg.server.tls_cert_file = write(&d, "server.pem", &cert);
    cfg.server.tls_key_file = write(&d, "server.key", &key);
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
    let (cert, key) = leaf(
        &ca,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client_ca = new_ca("clients CA");
    let mut cfg = config();
    cfg.server.tls_cert_file = write(&d, "server.pem", &cert);
    cfg.server.tls_key_file = write(&d, "server.key", &key);
    cfg.server.tls_client_ca_file = write(&d, "clients-ca.pem", &client_ca.pem);
    let server = TestServer::start(cfg).await;

    let (ccert, ckey) = leaf(&client_ca, &["bot-1"], ExtendedKeyUsagePurpose::ClientAuth);
    let mut client = connect(&server, &ca.pem, Some((&ccert, &ckey)))
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
