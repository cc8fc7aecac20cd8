//! NFR-3 over HTTP: bad input of every kind gets its 4xx and stable code, never a 5xx.

use portal_tests::harness::TestStore;
use reqwest::Method;
use serde_json::json;

use super::{ADMIN_A, HOST_A, world};
use crate::on_both_backends;

async fn bad_input_gets_its_code(store: &TestStore) {
    let w = world(store).await;
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let raw = |body: &'static str, content_type: &'static str| {
        admin
            .http
            .post(format!("{}/api/v1/companies", admin.base))
            .bearer_auth(admin.token.clone().unwrap_or_default())
            .header("content-type", content_type)
            .body(body)
    };
    for (body, content_type, status, code) in [
        (r#"{"name": "#, "application/json", 400, "malformed_json"),
        (r#"{"name": 42}"#, "application/json", 422, "invalid_body"),
        (r#"{}"#, "application/json", 422, "invalid_body"),
        (r#"{"name": ""}"#, "application/json", 422, "invalid_body"),
        (r#"{"name": "line\nbreak"}"#, "application/json", 422, "invalid_body"),
        (r#"{"name": "Contoso"}"#, "text/plain", 415, "unsupported_media_type"),
    ] {
        let res = raw(body, content_type).send().await.expect("sent");
        assert_eq!(res.status().as_u16(), status, "{body}");
        let v: serde_json::Value = res.json().await.expect("json");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
    }
    // A string over its limit, an unknown enum value, a list over its limit, a body over 1 MiB.
    admin
        .post("/api/v1/companies", &json!({ "name": "x".repeat(10_000) }))
        .await
        .expect_error(422, "invalid_body");
    let robot = json!({ "name": "T", "phases": [ { "name": "P", "tasks": [
        { "key": "a", "title": "A", "owner": "robot", "evidence": "none" } ] } ] });
    admin
        .post("/api/v1/templates", &robot)
        .await
        .expect_error(422, "invalid_body");
    let tasks: Vec<_> = (0..2_001)
        .map(|i| json!({ "key": format!("t{i}"), "title": "T", "owner": "msp", "evidence": "none" }))
        .collect();
    let huge = json!({ "name": "T", "phases": [ { "name": "P", "tasks": tasks } ] });
    admin
        .post("/api/v1/templates", &huge)
        .await
        .expect_error(422, "too_many");
    let padding = "x".repeat(1024 * 1024 + 1);
    admin
        .post("/api/v1/companies", &json!({ "name": padding }))
        .await
        .expect_error(413, "payload_too_large");
    // Bad paths, queries, cursors and `If-Match`.
    admin.get("/api/v1/portals/123").await.expect_error(400, "invalid_path");
    admin
        .get("/api/v1/portals?status=dormant")
        .await
        .expect_error(400, "invalid_query");
    admin
        .get("/api/v1/portals?limit=-1")
        .await
        .expect_error(400, "invalid_query");
    admin
        .get("/api/v1/templates?cursor=%%%")
        .await
        .expect_error(400, "invalid_cursor");
    admin
        .get("/api/v1/templates?cursor=abc")
        .await
        .expect_error(400, "invalid_cursor");
    let c = admin
        .post("/api/v1/companies", &json!({ "name": "Contoso" }))
        .await
        .expect(201);
    let path = format!("/api/v1/companies/{}", c["id"].as_str().expect("id"));
    for bad in ["*", "W/\"1\"", "\"1\", \"2\"", "one"] {
        admin
            .call(Method::PUT, &path, Some(&json!({ "name": "X" })), Some(bad))
            .await
            .expect_error(400, "invalid_if_match");
    }
    // A limit over the cap is capped, not refused.
    let page = admin.get("/api/v1/companies?limit=100000").await.expect(200);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    w.stop().await;
}

on_both_backends!(
    api_bad_input_gets_its_code_on_sqlite,
    api_bad_input_gets_its_code_on_postgres,
    bad_input_gets_its_code
);
