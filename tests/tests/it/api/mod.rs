//! The `/api/v1` JSON API over real HTTP on `127.0.0.1:0`: two tenants served by host name, staff
//! sessions, and a client that speaks for one of them.

mod access;
mod auth;
mod bad_input;
mod contact_work;
mod contacts;
mod demo;
mod flow;
mod mail;
mod notifications;
mod walk;

use std::net::SocketAddr;
use std::sync::Arc;

use portal_core::auth::Password;
use portal_core::id::TenantId;
use portal_core::storage::Storage;
use portal_server::AppState;
use portal_server::app::{OsEntropy, ServerSettings};
use portal_server::setup;
use portal_tests::harness::{TestClock, TestStore};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Host of tenant A.
pub(crate) const HOST_A: &str = "acme.test";
/// Host of tenant B.
pub(crate) const HOST_B: &str = "globex.test";
/// The administrators' password in every test tenant.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A server with two tenants, each with an administrator who has every permission.
pub(crate) struct World {
    pub(crate) addr: SocketAddr,
    pub(crate) state: AppState,
    pub(crate) clock: Arc<TestClock>,
    pub(crate) tenant_a: TenantId,
    pub(crate) tenant_b: TenantId,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

pub(crate) const ADMIN_A: &str = "admin@acme.test";
pub(crate) const ADMIN_B: &str = "admin@globex.test";

impl World {
    /// Starts the server over `storage` with tenants A and B (and A as the default tenant of
    /// local hosts).
    pub(crate) async fn start(storage: Arc<dyn Storage>) -> Self {
        let clock = Arc::new(TestClock::new());
        let mut state = AppState::with_parts(
            storage,
            clock.clone(),
            Arc::new(OsEntropy),
            Arc::new(portal_tests::harness::test_master_key()),
            ServerSettings::default(),
        );
        let password = || Password::new(PASSWORD).expect("a valid password");
        let a = setup::create_tenant(
            &state,
            "Acme IT",
            "Europe/London",
            &[HOST_A.to_owned()],
            ADMIN_A,
            "Ada Admin",
            password(),
        )
        .await
        .expect("tenant A");
        let b = setup::create_tenant(
            &state,
            "Globex MSP",
            "UTC",
            &[HOST_B.to_owned()],
            ADMIN_B,
            "Bo Admin",
            password(),
        )
        .await
        .expect("tenant B");
        state.settings.default_tenant = Some(a.tenant.id);
        // Links open directly unless a test turns forwarded-link protection on (CON-5 tests do).
        for t in [a.tenant.id, b.tenant.id] {
            set_link_protection(&state, t, false).await;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let addr = listener.local_addr().expect("the listener's address");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = state.clone();
        let task = tokio::spawn(async move {
            portal_server::serve(listener, served, async {
                let _ = stopped.await;
            })
            .await
        });
        Self {
            addr,
            state,
            clock,
            tenant_a: a.tenant.id,
            tenant_b: b.tenant.id,
            stop,
            task,
        }
    }

    /// A client of `host` with no session.
    pub(crate) fn client(&self, host: &str) -> Api {
        let http = reqwest::Client::builder()
            .resolve(host, self.addr)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client");
        Api {
            base: format!("http://{host}:{}", self.addr.port()),
            http,
            token: None,
            csrf: None,
            cookie: None,
        }
    }

    /// A client of `host` signed in as `email`.
    pub(crate) async fn signed_in(&self, host: &str, email: &str) -> Api {
        let mut api = self.client(host);
        api.sign_in(email, PASSWORD).await;
        api
    }

    /// Stops the server and checks it shut down cleanly.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the server task does not panic")
            .expect("the server shuts down cleanly");
    }
}

/// A response: status, headers and the JSON body (`null` when there is none).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    /// The `ETag` as sent.
    pub(crate) fn etag(&self) -> String {
        self.headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("an ETag: {self:?}"))
            .to_owned()
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub(crate) fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        self.body
    }

    /// Asserts an error answer with `status` and `code`.
    #[track_caller]
    pub(crate) fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["error"]["code"], code, "{}", self.body);
        assert!(
            self.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
    }
}

/// Turns a tenant's forwarded-link protection (CON-5) on or off, as its settings would.
pub(crate) async fn set_link_protection(state: &AppState, tenant: TenantId, on: bool) {
    let current = state
        .storage
        .get_tenant(tenant)
        .await
        .expect("storage")
        .expect("the tenant");
    let mut next = current.clone();
    next.settings.forwarded_link_protection = on;
    next.version += 1;
    state
        .storage
        .commit_outcome(
            tenant,
            &portal_core::outcome::Outcome {
                writes: vec![portal_core::outcome::Write::UpdateTenant {
                    tenant: next,
                    expected_version: current.version,
                }],
                ..Default::default()
            },
        )
        .await
        .expect("storage")
        .expect("the update");
}

/// A client of one host, with or without a bearer session.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) token: Option<String>,
    pub(crate) csrf: Option<String>,
    /// A `Cookie` header sent with every request.
    pub(crate) cookie: Option<String>,
}

impl Api {
    /// Signs in with a bearer session.
    pub(crate) async fn sign_in(&mut self, email: &str, password: &str) {
        let body = self
            .call(
                Method::POST,
                "/api/v1/auth/sign-in",
                Some(&json!({ "email": email, "password": password })),
                None,
            )
            .await
            .expect(200);
        self.token = body["token"].as_str().map(str::to_owned);
        self.csrf = body["csrf_token"].as_str().map(str::to_owned);
    }

    /// Sends a request with the bearer token, a JSON body and an `If-Match`.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<&Value>, if_match: Option<&str>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(v) = if_match {
            req = req.header("if-match", v);
        }
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let res = req.send().await.expect("the request is sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("a JSON body ({e}): {text}"))
        };
        Reply { status, headers, body }
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, Some(body), None).await
    }

    pub(crate) async fn post_if(&self, path: &str, body: &Value, etag: &str) -> Reply {
        self.call(Method::POST, path, Some(body), Some(etag)).await
    }

    pub(crate) async fn put_if(&self, path: &str, body: &Value, etag: &str) -> Reply {
        self.call(Method::PUT, path, Some(body), Some(etag)).await
    }
}

/// Runs `scenario` on SQLite and, when reachable, on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($sqlite:ident, $postgres:ident, $scenario:path) => {
        #[tokio::test]
        async fn $sqlite() {
            let store = portal_tests::harness::sqlite().await;
            $scenario(&store).await;
            store.cleanup().await;
        }

        #[tokio::test]
        async fn $postgres() {
            let Some(store) = portal_tests::harness::postgres().await else {
                return;
            };
            $scenario(&store).await;
            store.cleanup().await;
        }
    };
}

/// The store's world.
pub(crate) async fn world(store: &TestStore) -> World {
    World::start(store.storage.clone()).await
}
