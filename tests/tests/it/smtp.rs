//! A real SMTP server on loopback for the mail tests: `mailin-embedded` on `127.0.0.1:0`, keeping
//! every message it accepted (envelope and the raw RFC 5322 bytes).

use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};

use mailin_embedded::{Handler, Response, Server, SslConfig, response};

/// One accepted message.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) to: Vec<String>,
    pub(crate) data: Vec<u8>,
}

impl Received {
    /// The parsed message.
    pub(crate) fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parseable RFC 5322 message")
    }
}

#[derive(Clone, Default)]
struct Capture {
    inbox: Arc<Mutex<Vec<Received>>>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Capture {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Received {
                to: std::mem::take(&mut self.to),
                data: std::mem::take(&mut self.data),
            });
        response::OK
    }
}

/// The server: its port and what it received. Its thread lives until the test binary ends
/// (`mailin-embedded` has no shutdown).
pub(crate) struct SmtpSink {
    pub(crate) port: u16,
    inbox: Arc<Mutex<Vec<Received>>>,
}

impl SmtpSink {
    pub(crate) fn start() -> Self {
        Self::start_with(SslConfig::None)
    }

    /// A server that offers STARTTLS with the certificate chain and key of these PEM files.
    pub(crate) fn start_tls(cert_path: &str, key_path: &str) -> Self {
        Self::start_with(SslConfig::SelfSigned {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        })
    }

    fn start_with(ssl: SslConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("an address").port();
        let handler = Capture::default();
        let inbox = handler.inbox.clone();
        let mut server = Server::new(handler);
        server
            .with_name("localhost")
            .with_ssl(ssl)
            .expect("the TLS set-up")
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Self { port, inbox }
    }

    /// The URL of a transport that sends here.
    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// Takes what arrived since the last call.
    pub(crate) fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.inbox.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
