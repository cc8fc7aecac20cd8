//! Tenants by host (BRD-2) and staff sessions (AUTH-6) over HTTP.

use chrono::Duration;
use portal_core::auth::{SIGN_IN_LIMIT_PER_ACCOUNT, STAFF_SESSION_LIFETIME};
use portal_tests::harness::TestStore;
use reqwest::Method;
use serde_json::json;

use super::{ADMIN_A, ADMIN_B, HOST_A, HOST_B, PASSWORD, world};
use crate::on_both_backends;

async fn hosts_and_sessions(store: &TestStore) {
    let w = world(store).await;

    // An unknown host is no tenant's; a local host falls back to the default tenant (A).
    let stranger = w.client("unknown.test");
    stranger
        .post(
            "/api/v1/auth/sign-in",
            &json!({ "email": ADMIN_A, "password": PASSWORD }),
        )
        .await
        .expect_error(404, "unknown_host");
    let mut local = w.client("localhost");
    local.sign_in(ADMIN_A, PASSWORD).await;
    let me = local.get("/api/v1/auth/session").await.expect(200);
    assert_eq!(me["user"]["email"], ADMIN_A);
    assert!(
        me["user"]["permissions"].as_array().is_some_and(|p| p.len() == 9),
        "{me}"
    );

    // Wrong password and unknown account answer the same.
    let anon = w.client(HOST_A);
    let wrong = anon
        .post(
            "/api/v1/auth/sign-in",
            &json!({ "email": ADMIN_A, "password": "not the password" }),
        )
        .await;
    wrong.expect_error(401, "invalid_credentials");
    let unknown = anon
        .post(
            "/api/v1/auth/sign-in",
            &json!({ "email": "nobody@acme.test", "password": PASSWORD }),
        )
        .await;
    unknown.expect_error(401, "invalid_credentials");
    assert_eq!(wrong.body, unknown.body);
    // A's administrator does not exist at B's host.
    w.client(HOST_B)
        .post(
            "/api/v1/auth/sign-in",
            &json!({ "email": ADMIN_A, "password": PASSWORD }),
        )
        .await
        .expect_error(401, "invalid_credentials");
    // Bad bodies.
    anon.post(
        "/api/v1/auth/sign-in",
        &json!({ "email": "not an email", "password": "x" }),
    )
    .await
    .expect_error(422, "invalid_body");
    anon.post("/api/v1/auth/sign-in", &json!({ "email": ADMIN_A }))
        .await
        .expect_error(422, "invalid_body");

    // Sign in: a token, a CSRF token, an HttpOnly SameSite=Lax cookie, no caching.
    let signed = anon
        .post(
            "/api/v1/auth/sign-in",
            &json!({ "email": ADMIN_A, "password": PASSWORD }),
        )
        .await;
    assert_eq!(signed.status.as_u16(), 200, "{}", signed.body);
    let cookie = signed.headers["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(cookie.starts_with("portal_session="), "{cookie}");
    for part in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no Secure on a plain-http public URL: {cookie}"
    );
    assert_eq!(signed.headers["cache-control"], "no-store");
    let token = signed.body["token"].as_str().expect("a token").to_owned();
    let csrf = signed.body["csrf_token"].as_str().expect("a CSRF token").to_owned();
    assert_eq!(token.len(), 43, "32 bytes, base64url");

    // The bearer token works on its tenant's host and nowhere else.
    let mut bearer = w.client(HOST_A);
    bearer.token = Some(token.clone());
    bearer.get("/api/v1/auth/session").await.expect(200);
    let mut elsewhere = w.client(HOST_B);
    elsewhere.token = Some(token.clone());
    elsewhere
        .get("/api/v1/auth/session")
        .await
        .expect_error(401, "invalid_session");

    // The cookie works too; an unsafe cookie request needs the CSRF token.
    let cookie_get = |extra: Option<(&'static str, String)>, method: Method, path: &'static str| {
        let mut req = anon
            .http
            .request(method, format!("{}{path}", anon.base))
            .header("cookie", format!("portal_session={token}"));
        if let Some((k, v)) = extra {
            req = req.header(k, v);
        }
        req
    };
    let res = cookie_get(None, Method::GET, "/api/v1/auth/session")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status().as_u16(), 200);
    let res = cookie_get(None, Method::POST, "/api/v1/companies")
        .json(&json!({ "name": "Contoso" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status().as_u16(), 403);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "csrf_token_invalid", "{body}");
    let res = cookie_get(
        Some(("x-csrf-token", "wrong".to_owned())),
        Method::POST,
        "/api/v1/companies",
    )
    .json(&json!({ "name": "Contoso" }))
    .send()
    .await
    .expect("sent");
    assert_eq!(res.status().as_u16(), 403);
    let res = cookie_get(Some(("x-csrf-token", csrf.clone())), Method::POST, "/api/v1/companies")
        .json(&json!({ "name": "Contoso" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status().as_u16(), 201);

    // Missing, malformed and unknown sessions.
    let nobody = w.client(HOST_A);
    nobody
        .get("/api/v1/companies")
        .await
        .expect_error(401, "unauthenticated");
    let r = nobody.get("/api/v1/companies").await;
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let mut forged = w.client(HOST_A);
    forged.token = Some("not-a-token".to_owned());
    forged
        .get("/api/v1/companies")
        .await
        .expect_error(401, "invalid_session");
    forged.token = Some("A".repeat(43));
    forged
        .get("/api/v1/companies")
        .await
        .expect_error(401, "invalid_session");

    // Sign-out ends the session at once; the cookie is cleared.
    let out = bearer.call(Method::POST, "/api/v1/auth/sign-out", None, None).await;
    assert_eq!(out.status.as_u16(), 204);
    assert!(out.headers["set-cookie"].to_str().expect("ascii").contains("Max-Age=0"));
    bearer
        .get("/api/v1/auth/session")
        .await
        .expect_error(401, "invalid_session");

    // Sessions expire.
    let b_admin = w.signed_in(HOST_B, ADMIN_B).await;
    b_admin.get("/api/v1/auth/session").await.expect(200);
    w.clock.advance(STAFF_SESSION_LIFETIME + Duration::minutes(1));
    b_admin
        .get("/api/v1/auth/session")
        .await
        .expect_error(401, "session_expired");

    // The stored session is keyed by the token's SHA-256, not by the token.
    let local_token = local.token.clone().expect("a token");
    let parsed = portal_core::auth::SecretToken::parse(&local_token).expect("a token");
    let stored = w
        .state
        .storage
        .staff_session(w.tenant_a, &parsed.hash())
        .await
        .expect("storage");
    assert!(stored.is_some_and(
        |s| s.token_hash != portal_core::auth::TokenHash(local_token.as_bytes()[..32].try_into().expect("32"))
    ));
    w.stop().await;
}

async fn sign_in_is_rate_limited(store: &TestStore) {
    let w = world(store).await;
    let anon = w.client(HOST_A);
    for _ in 0..SIGN_IN_LIMIT_PER_ACCOUNT {
        anon.post(
            "/api/v1/auth/sign-in",
            &json!({ "email": ADMIN_A, "password": "wrong password!" }),
        )
        .await
        .expect_error(401, "invalid_credentials");
    }
    // Over the limit even the right password is refused, with a Retry-After.
    let r = anon
        .post(
            "/api/v1/auth/sign-in",
            &json!({ "email": ADMIN_A, "password": PASSWORD }),
        )
        .await;
    r.expect_error(429, "too_many_attempts");
    let retry: i64 = r.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&retry), "{retry}");
    // Another account from the same address is still let in (the address limit is higher).
    portal_server::setup::create_user(
        &w.state,
        w.tenant_a,
        "tess@acme.test",
        "Tess Tech",
        &["Administrator".to_owned()],
        portal_core::auth::Password::new(PASSWORD).expect("valid"),
    )
    .await
    .expect("a second user");
    w.signed_in(HOST_A, "tess@acme.test").await;
    // The next window lets the account in again.
    w.clock.advance(Duration::minutes(16));
    w.signed_in(HOST_A, ADMIN_A).await;
    w.stop().await;
}

on_both_backends!(
    api_hosts_and_sessions_on_sqlite,
    api_hosts_and_sessions_on_postgres,
    hosts_and_sessions
);
on_both_backends!(
    api_sign_in_is_rate_limited_on_sqlite,
    api_sign_in_is_rate_limited_on_postgres,
    sign_in_is_rate_limited
);

/// `If-Match` on updates (API-3) and another tenant's ids, on the company routes.
async fn optimistic_concurrency_and_other_tenants(store: &TestStore) {
    let w = world(store).await;
    let a = w.signed_in(HOST_A, ADMIN_A).await;
    let b = w.signed_in(HOST_B, ADMIN_B).await;
    let created = a.post("/api/v1/companies", &json!({ "name": "Contoso" })).await;
    let etag = created.etag();
    let company = created.expect(201);
    let path = format!("/api/v1/companies/{}", company["id"].as_str().expect("an id"));

    let got = a.get(&path).await;
    assert_eq!(got.etag(), etag);
    a.call(Method::PUT, &path, Some(&json!({ "name": "Contoso Ltd" })), None)
        .await
        .expect_error(428, "precondition_required");
    a.put_if(&path, &json!({ "name": "Contoso Ltd" }), "not-an-etag")
        .await
        .expect_error(400, "invalid_if_match");
    let renamed = a.put_if(&path, &json!({ "name": "Contoso Ltd" }), &etag).await;
    let new_etag = renamed.etag();
    assert_ne!(new_etag, etag);
    assert_eq!(renamed.expect(200)["name"], "Contoso Ltd");
    // The first ETag is stale now: 412, and nothing changes.
    a.put_if(&path, &json!({ "name": "Lost update" }), &etag)
        .await
        .expect_error(412, "stale_version");
    assert_eq!(a.get(&path).await.expect(200)["name"], "Contoso Ltd");

    // Tenant B sees A's company exactly as an id that does not exist.
    let missing = b.get(&path).await;
    missing.expect_error(404, "not_found");
    let nil = b.get("/api/v1/companies/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(missing.body, nil.body);
    b.put_if(&path, &json!({ "name": "Hijacked" }), &new_etag)
        .await
        .expect_error(404, "not_found");
    let listed = b.get("/api/v1/companies").await.expect(200);
    assert_eq!(listed["items"], json!([]), "B lists only its own companies");
    assert_eq!(
        w.tenant_b,
        w.state
            .storage
            .tenant_for_host(HOST_B)
            .await
            .expect("storage")
            .expect("B's host")
    );
    b.get("/api/v1/companies/not-a-uuid")
        .await
        .expect_error(400, "invalid_path");
    b.get("/api/v1/companies?limit=abc")
        .await
        .expect_error(400, "invalid_query");
    b.get("/api/v1/companies?cursor=bogus")
        .await
        .expect_error(400, "invalid_cursor");
    assert_eq!(a.get(&path).await.expect(200)["name"], "Contoso Ltd");
    w.stop().await;
}

on_both_backends!(
    api_optimistic_concurrency_and_other_tenants_on_sqlite,
    api_optimistic_concurrency_and_other_tenants_on_postgres,
    optimistic_concurrency_and_other_tenants
);

/// A staff user changes their own password: every session ends and a new one is answered.
async fn changing_ones_own_password(store: &TestStore) {
    let w = world(store).await;
    let mut phone = w.signed_in(HOST_A, ADMIN_A).await;
    let laptop = w.signed_in(HOST_A, ADMIN_A).await;
    let change = |current: &str, new: &str| json!({ "current_password": current, "new_password": new });
    phone
        .call(
            Method::PUT,
            "/api/v1/auth/password",
            Some(&change("wrong password!", "a new long passphrase")),
            None,
        )
        .await
        .expect_error(401, "invalid_credentials");
    phone
        .call(
            Method::PUT,
            "/api/v1/auth/password",
            Some(&change(PASSWORD, "short")),
            None,
        )
        .await
        .expect_error(422, "invalid_value");
    let changed = phone
        .call(
            Method::PUT,
            "/api/v1/auth/password",
            Some(&change(PASSWORD, "a new long passphrase")),
            None,
        )
        .await
        .expect(200);
    // Both earlier sessions ended; the answered one works.
    phone
        .get("/api/v1/auth/session")
        .await
        .expect_error(401, "invalid_session");
    laptop
        .get("/api/v1/auth/session")
        .await
        .expect_error(401, "invalid_session");
    phone.token = changed["token"].as_str().map(str::to_owned);
    phone.get("/api/v1/auth/session").await.expect(200);
    let mut again = w.client(HOST_A);
    again.sign_in(ADMIN_A, "a new long passphrase").await;
    w.client(HOST_A)
        .post(
            "/api/v1/auth/sign-in",
            &json!({ "email": ADMIN_A, "password": PASSWORD }),
        )
        .await
        .expect_error(401, "invalid_credentials");
    w.stop().await;
}

on_both_backends!(
    api_changing_ones_own_password_on_sqlite,
    api_changing_ones_own_password_on_postgres,
    changing_ones_own_password
);
