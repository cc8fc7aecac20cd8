//! The reference server over real HTTP on `127.0.0.1:0`, on SQLite and on PostgreSQL.

use std::sync::Arc;

use portal_core::storage::Storage;
use portal_server::config::DatabaseUrl;
use portal_server::storage::{self, Backend, ConnectError};
use portal_server::{AppState, error::Json};
use portal_tests::harness;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running on a free local port until [`Running::stop`].
struct Running {
    base: String,
    client: reqwest::Client,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start(storage: Arc<dyn Storage>) -> Self {
        Self::start_router(portal_server::router(AppState::new(storage))).await
    }

    async fn start_router(router: axum::Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let addr = listener.local_addr().expect("the listener's address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            stop,
            task,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let status = res.status();
        (status, res.json().await.expect("a JSON body"))
    }

    async fn post(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.post(format!("{}{path}", self.base)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = req.send().await.expect("POST");
        let status = res.status();
        (status, res.json().await.expect("a JSON body"))
    }

    /// Stops the server and checks that it shut down cleanly.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the server task does not panic")
            .expect("the server shuts down cleanly");
    }
}

/// Asserts the error shape `{"error": {"code", "message", "details"}}` with `code`.
fn assert_error(body: &Value, code: &str) {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error.get("details").is_some(), "{body}");
    assert_eq!(body.as_object().map(serde_json::Map::len), Some(1), "{body}");
}

/// Health, readiness, and the error shape of what is not a route, on one backend.
async fn health_readiness_and_errors(server: &Running) {
    assert_eq!(
        server.get("/healthz").await,
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    assert_eq!(
        server.get("/readyz").await,
        (StatusCode::OK, json!({ "status": "ready" }))
    );

    let (status, body) = server.get("/api/v1/no-such-thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "route_not_found");
    assert_eq!(body["error"]["details"], Value::Null);

    let (status, body) = server.post("/healthz", None, "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "method_not_allowed");

    let big = vec![b' '; portal_server::app::MAX_BODY_BYTES + 1];
    let (status, body) = server.post("/healthz", Some("application/json"), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");
}

#[tokio::test]
async fn http_health_readiness_and_errors_on_sqlite() {
    let store = harness::sqlite().await;
    let server = Running::start(store.storage.clone()).await;
    health_readiness_and_errors(&server).await;
    server.stop().await;
    store.cleanup().await;
}

#[tokio::test]
async fn http_health_readiness_and_errors_on_postgres() {
    let Some(store) = harness::postgres().await else { return };
    let server = Running::start(store.storage.clone()).await;
    health_readiness_and_errors(&server).await;

    // Dropping the database under the running server: liveness holds, readiness reports it.
    store.cleanup().await;
    assert_eq!(server.get("/healthz").await.0, StatusCode::OK);
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_error(&body, "database_unavailable");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        !message.contains("portal_test_"),
        "a 5xx body names no internals: {body}"
    );
    server.stop().await;
}

/// The methods an OpenAPI path item may document.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// A path of the document with its `{parameters}` filled with the nil UUID.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str("00000000-0000-0000-0000-000000000000");
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn http_the_openapi_document_lists_every_route_and_each_answers() {
    let store = harness::sqlite().await;
    let server = Running::start(store.storage.clone()).await;

    let (status, doc) = server.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0", "an OpenAPI 3.1 document");
    assert_eq!(doc["info"]["title"], "Portal engine API");
    assert_eq!(
        doc,
        serde_json::to_value(portal_server::openapi()).expect("the document serialises")
    );

    let paths = doc["paths"].as_object().expect("the document has paths");
    let mut walked = 0;
    for (path, item) in paths {
        let item = item.as_object().expect("a path item");
        for method in METHODS.iter().filter(|m| item.contains_key(**m)) {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let res = server
                .client
                .request(method.clone(), format!("{}{}", server.base, concrete(path)))
                .send()
                .await
                .expect("the request is sent");
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert!(
                status != StatusCode::NOT_FOUND || body["error"]["code"] != "route_not_found",
                "{method} {path} is documented but not routed: {body}"
            );
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {body}");
            walked += 1;
        }
    }
    assert!(walked >= 2, "{doc}");

    for (path, codes) in [("/healthz", &["200"][..]), ("/readyz", &["200", "503"][..])] {
        let responses = &doc["paths"][path]["get"]["responses"];
        for code in codes {
            let schema = &responses[code]["content"]["application/json"]["schema"]["$ref"];
            assert!(schema.is_string(), "GET {path} documents {code} with a body: {doc}");
        }
    }
    assert_eq!(
        doc["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object(), "{doc}");

    server.stop().await;
    store.cleanup().await;
}

#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Payload {
    name: String,
    count: u32,
}

async fn echo(Json(payload): Json<Payload>) -> Json<Payload> {
    Json(payload)
}

#[tokio::test]
async fn http_json_bodies_that_do_not_parse_get_their_codes() {
    let router = axum::Router::new().route("/echo", axum::routing::post(echo));
    let server = Running::start_router(router).await;
    let json = Some("application/json");

    let (status, body) = server.post("/echo", json, r#"{"name":"a","count":3}"#).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "name": "a", "count": 3 })));

    let (status, body) = server.post("/echo", json, r#"{"name":"a","#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "malformed_json");

    for wrong in [
        r#"{"name":"a","count":"three"}"#,
        r#"{"name":"a"}"#,
        r#"{"name":"a","count":-1}"#,
        "[]",
    ] {
        let (status, body) = server.post("/echo", json, wrong).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong}");
        assert_error(&body, "invalid_body");
    }

    let (status, body) = server
        .post("/echo", Some("text/plain"), r#"{"name":"a","count":3}"#)
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&body, "unsupported_media_type");
    server.stop().await;
}

#[tokio::test]
async fn http_an_unknown_database_scheme_is_refused_by_name() {
    let url = DatabaseUrl::parse("mysql://portal:s3cret@db.example/portal").expect("a URL with a scheme");
    let Err(err) = storage::connect(&url).await else {
        panic!("a mysql URL must not connect to anything")
    };
    assert!(
        matches!(&err, ConnectError::UnsupportedScheme { scheme, .. } if scheme == "mysql"),
        "{err:?}"
    );
    let message = err.to_string();
    for expected in ["`mysql:`", "sqlite:", "postgres:"] {
        assert!(message.contains(expected), "{message}");
    }
    assert!(!message.contains("s3cret"), "{message}");
}

#[tokio::test]
async fn http_migrate_connects_to_the_backend_the_scheme_names() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("portal.db").display())).expect("a URL");
    let (storage, backend) = storage::connect(&url).await.expect("SQLite connects and migrates");
    assert_eq!(backend, Backend::Sqlite);
    let server = Running::start(storage).await;
    assert_eq!(server.get("/readyz").await.0, StatusCode::OK);
    server.stop().await;
}
