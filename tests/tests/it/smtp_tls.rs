//! MAIL-4: SMTP over real TLS. The loopback SMTP server offers STARTTLS with a certificate for
//! `localhost` issued by a private CA made for the test; portal-mail's SMTP transport (STARTTLS
//! required, the default of `smtp://`) delivers through it when it trusts that CA
//! (`TransportOptions::smtp_root_certificates`, the server's `PORTAL_MAIL_CA_FILE`), and refuses
//! to send when it does not, or when the certificate is not for the host it connected to.
//! `smtps://` (implicit TLS) is tested the same way through a TLS front for the server.

use std::time::Duration;

use portal_core::id::MessageId;
use portal_core::mail::{MailKind, Mailbox, OutgoingEmail, SendError};
use portal_core::value::Email;
use portal_mail::{TransportOptions, transport_from_url};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::smtp::SmtpSink;

/// A CA and a server certificate for `localhost` it issued, as PEM files in `dir`: (CA
/// certificate, server certificate, server key) paths and the CA's PEM.
fn private_ca(dir: &std::path::Path) -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Portal test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("a CA certificate");
    let server_key = KeyPair::generate().expect("a server key");
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).expect("server parameters");
    server.distinguished_name.push(DnType::CommonName, "localhost");
    let server_cert = server
        .signed_by(&server_key, &ca_cert, &ca_key)
        .expect("a server certificate");
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("a PEM file");
        path.to_str().expect("a UTF-8 path").to_owned()
    };
    (
        ca_cert.pem(),
        write("server.pem", server_cert.pem()),
        write("server.key", server_key.serialize_pem()),
    )
}

fn email(n: u128) -> OutgoingEmail {
    let address = |s: &str| Email::parse(s).expect("an address");
    OutgoingEmail {
        message_id: format!("{}@localhost", uuid::Uuid::from_u128(n)),
        idempotency_key: MessageId::from_uuid(uuid::Uuid::from_u128(n)).to_string(),
        kind: MailKind::TaskSummary,
        from: Mailbox {
            name: Some("Acme IT".to_owned()),
            email: address("portal@acme.test"),
        },
        reply_to: None,
        to: Mailbox {
            name: None,
            email: address("pat@contoso.test"),
        },
        subject: "Over TLS".to_owned(),
        text: "Sent over STARTTLS.\n".to_owned(),
        html: "<p>Sent over STARTTLS.</p>".to_owned(),
        headers: Vec::new(),
        attachments: Vec::new(),
    }
}

fn options(roots: Vec<Vec<u8>>) -> TransportOptions {
    TransportOptions {
        timeout: Duration::from_secs(10),
        smtp_pool_size: 1,
        smtp_root_certificates: roots,
    }
}

#[tokio::test]
async fn smtp_starttls_delivers_to_a_relay_of_a_trusted_private_ca_and_refuses_others() {
    // mailin's server side builds its rustls configuration with the process's default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("a directory");
    let (ca_pem, cert, key) = private_ca(dir.path());
    let sink = SmtpSink::start_tls(&cert, &key);
    let url = format!("smtp://localhost:{}", sink.port);

    let trusting = transport_from_url(&url, &options(vec![ca_pem.clone().into_bytes()])).expect("a transport");
    trusting.send(&email(1)).await.expect("delivered over STARTTLS");
    let got = sink.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].parsed().subject(), Some("Over TLS"));

    // Without the CA the certificate is not trusted: nothing is sent, and the failure is one
    // to retry (an administrator fixes the trust, the message waits).
    let untrusting = transport_from_url(&url, &options(Vec::new())).expect("a transport");
    match untrusting.send(&email(2)).await {
        Err(SendError::Transient(why)) => assert!(
            why.to_ascii_lowercase().contains("certificate") || why.to_ascii_lowercase().contains("tls"),
            "{why}"
        ),
        other => panic!("an untrusted relay must not get the message: {other:?}"),
    }
    // A trusted certificate for another name: `127.0.0.1` is not `localhost`.
    let wrong_name = transport_from_url(
        &format!("smtp://127.0.0.1:{}", sink.port),
        &options(vec![ca_pem.into_bytes()]),
    )
    .expect("a transport");
    assert!(wrong_name.send(&email(3)).await.is_err());
    assert!(
        sink.take().is_empty(),
        "nothing reached the server in clear or otherwise"
    );

    // A root that is not a certificate is a configuration error, at start-up.
    assert!(transport_from_url(&url, &options(vec![b"not a certificate".to_vec()])).is_err());
}

/// An implicit-TLS front (what `smtps://` talks to, port 465 in real life) for `sink`: it
/// accepts TLS with the certificate and key of these PEM files and passes the plain SMTP
/// dialogue through to the sink. Returns its port.
async fn implicit_tls_front(sink: &SmtpSink, cert: &str, key: &str) -> u16 {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("a certificate file")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(key).expect("a key");
    let config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("a server configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("an address").port();
    let backend = format!("127.0.0.1:{}", sink.port);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let backend = backend.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn smtps_implicit_tls_delivers_to_a_trusted_relay_and_refuses_an_untrusted_one() {
    let dir = tempfile::tempdir().expect("a directory");
    let (ca_pem, cert, key) = private_ca(dir.path());
    let sink = SmtpSink::start();
    let port = implicit_tls_front(&sink, &cert, &key).await;
    let url = format!("smtps://localhost:{port}");

    let trusting = transport_from_url(&url, &options(vec![ca_pem.into_bytes()])).expect("a transport");
    trusting.send(&email(4)).await.expect("delivered over implicit TLS");
    let got = sink.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].parsed().subject(), Some("Over TLS"));

    let untrusting = transport_from_url(&url, &options(Vec::new())).expect("a transport");
    assert!(matches!(untrusting.send(&email(5)).await, Err(SendError::Transient(_))));
    assert!(sink.take().is_empty());
}
