//! CON-2 to CON-5, ONB-4, ONB-5 and BYD-4 over HTTP: staff issue, resend, regenerate and revoke a
//! contact's access links; a contact opens a link and reads its portal with the contact session;
//! archiving kills everything and a restore does not bring it back; every bad link answers the
//! same 404; openings are limited per address; no raw token is stored.

use chrono::Duration;
use portal_core::access::AccessLink;
use portal_core::auth::{SecretToken, TokenHash};
use portal_core::id::{AccessLinkId, ContactId, PortalId};
use portal_core::outcome::{Outcome, Write};
use portal_core::storage::Clock;
use portal_tests::conformance::raw_token_bytes;
use portal_tests::harness::TestStore;
use serde_json::{Value, json};

use super::{ADMIN_A, ADMIN_B, Api, HOST_A, HOST_B, World, world};
use crate::on_both_backends;

pub(super) fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("an id in {v}")).to_owned()
}

/// A company, a one-task template and a portal with Pat (primary) and Ian; the portal's id and
/// the contacts' ids (Pat, Ian).
pub(super) async fn new_portal(api: &Api, name: &str, activate: bool) -> (String, String, String) {
    let template = api
        .post(
            "/api/v1/templates",
            &json!({ "name": "One step", "phases": [ { "name": "Only", "tasks": [
                { "key": "a", "title": "Kickoff", "owner": "client", "evidence": "none" } ] } ] }),
        )
        .await
        .expect(201);
    let company = api
        .post("/api/v1/companies", &json!({ "name": format!("{name} Co") }))
        .await
        .expect(201);
    let created = api
        .post(
            &format!("/api/v1/companies/{}/portals", id(&company)),
            &json!({ "template_id": id(&template), "name": name, "activate": activate, "contacts": [
                { "name": "Pat Primary", "email": "pat@contoso.test", "role": "primary_contact", "primary": true },
                { "name": "Ian IT", "email": "ian@contoso.test", "role": "it" } ] }),
        )
        .await
        .expect(201);
    (
        id(&created["portal"]),
        id(&created["contacts"][0]),
        id(&created["contacts"][1]),
    )
}

pub(super) fn links(portal: &str, contact: &str) -> String {
    format!("/api/v1/portals/{portal}/contacts/{contact}/links")
}

/// Issues a link (or regenerates, with `regenerate`) and returns the answer.
pub(super) async fn issue(admin: &Api, portal: &str, contact: &str, regenerate: bool) -> Value {
    let path = if regenerate {
        format!("{}/regenerate", links(portal, contact))
    } else {
        links(portal, contact)
    };
    admin.post(&path, &json!({})).await.expect(201)
}

/// Opens a link at `host`'s anonymous client: the reply.
pub(super) async fn open(w: &World, host: &str, token: &Value) -> super::Reply {
    w.client(host).post("/api/v1/access", &json!({ "token": token })).await
}

/// A client carrying the contact session `opened` answered.
pub(super) fn contact_client(w: &World, host: &str, opened: &Value) -> Api {
    Api {
        token: opened["session_token"].as_str().map(str::to_owned),
        ..w.client(host)
    }
}

pub(super) async fn transition(admin: &Api, portal: &str, to: &str) {
    let etag = admin.get(&format!("/api/v1/portals/{portal}")).await.etag();
    admin
        .post_if(
            &format!("/api/v1/portals/{portal}/transitions"),
            &json!({ "to": to, "confirm": true }),
            &etag,
        )
        .await
        .expect(200);
}

#[allow(clippy::too_many_lines)]
async fn links_open_portals_and_die_when_revoked(store: &TestStore) {
    let w = world(store).await;
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let (portal, pat, ian) = new_portal(&admin, "Contoso onboarding", true).await;

    // Issue: the token and URL once, the link without them.
    let first = issue(&admin, &portal, &pat, false).await;
    let token = first["token"].as_str().expect("a token");
    assert_eq!(token.len(), 43);
    assert_eq!(first["url"], format!("http://localhost:8080/access/{token}"));
    assert_eq!(first["link"]["state"], "active");
    assert_eq!(first["link"]["contact_id"], pat.as_str());
    assert!(first["link"].get("token").is_none() && first["link"].get("token_hash").is_none());

    // Open: a contact session, as a bearer token and an HttpOnly, SameSite=Lax cookie.
    let reply = open(&w, HOST_A, &first["token"]).await;
    let cookie = reply
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie")
        .to_owned();
    assert!(
        cookie.starts_with("portal_contact_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "the test server's public URL is http");
    let s1 = reply.expect(200);
    assert_eq!(s1["portal_id"], portal.as_str());
    let pat_session = contact_client(&w, HOST_A, &s1);
    let overview = pat_session.get("/api/v1/contact/portal").await.expect(200);
    assert_eq!(overview["id"], portal.as_str());
    assert_eq!(overview["status"], "active");
    // The contact session is no staff session, and a staff session no contact session.
    pat_session
        .get(&format!("/api/v1/portals/{portal}"))
        .await
        .expect_error(401, "invalid_session");
    admin
        .get("/api/v1/contact/portal")
        .await
        .expect_error(401, "invalid_session");
    // The access is in the portal's activity, by the contact.
    let log = admin
        .get(&format!(
            "/api/v1/portals/{portal}/activity?kind=contact_accessed_portal"
        ))
        .await
        .expect(200);
    assert_eq!(log["items"].as_array().map(Vec::len), Some(1), "{log}");
    assert_eq!(log["items"][0]["actor"]["kind"], "contact");
    assert!(!log.to_string().contains(token));

    // Resend: a second link; the first still opens the portal.
    let second = issue(&admin, &portal, &pat, false).await;
    assert_ne!(second["token"], first["token"]);
    open(&w, HOST_A, &first["token"]).await.expect(200);
    let s2 = open(&w, HOST_A, &second["token"]).await.expect(200);
    let listed = admin.get(&links(&portal, &pat)).await.expect(200);
    // The invitation of the activation, the first link and the resend.
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    assert!(!listed.to_string().contains(token), "the list shows no token");
    let own = pat_session.get("/api/v1/contact/access").await.expect(200);
    assert_eq!(own["links"].as_array().map(Vec::len), Some(3));
    assert_eq!(own["sessions"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        own["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .filter(|s| s["current"] == true)
            .count(),
        1
    );

    // Regenerate: every earlier link and session dies; the new link works.
    let third = issue(&admin, &portal, &pat, true).await;
    pat_session
        .get("/api/v1/contact/portal")
        .await
        .expect_error(401, "invalid_session");
    contact_client(&w, HOST_A, &s2)
        .get("/api/v1/contact/portal")
        .await
        .expect_error(401, "invalid_session");
    for dead in [&first, &second] {
        open(&w, HOST_A, &dead["token"])
            .await
            .expect_error(404, "link_not_found");
    }
    let s3 = contact_client(&w, HOST_A, &open(&w, HOST_A, &third["token"]).await.expect(200));
    s3.get("/api/v1/contact/portal").await.expect(200);
    let states: Vec<Value> = admin
        .get(&links(&portal, &pat))
        .await
        .expect(200)
        .as_array()
        .expect("links")
        .iter()
        .map(|l| l["state"].clone())
        .collect();
    // The invitation, the first link and the resend are revoked; the regenerated one is active.
    assert_eq!(
        states,
        vec![json!("revoked"), json!("revoked"), json!("revoked"), json!("active")]
    );

    // Revoke: the open session is refused on its next request, the link opens nothing.
    admin
        .post(&format!("/api/v1/portals/{portal}/contacts/{pat}/revoke"), &json!({}))
        .await
        .expect(204);
    s3.get("/api/v1/contact/portal")
        .await
        .expect_error(401, "invalid_session");
    open(&w, HOST_A, &third["token"])
        .await
        .expect_error(404, "link_not_found");

    // Sign out ends this session; sign out everywhere ends the others; the link still opens.
    let ian_link = issue(&admin, &portal, &ian, false).await;
    let a = contact_client(&w, HOST_A, &open(&w, HOST_A, &ian_link["token"]).await.expect(200));
    let b = contact_client(&w, HOST_A, &open(&w, HOST_A, &ian_link["token"]).await.expect(200));
    a.post("/api/v1/contact/sign-out", &json!({})).await.expect(204);
    a.get("/api/v1/contact/access")
        .await
        .expect_error(401, "invalid_session");
    b.get("/api/v1/contact/access").await.expect(200);
    let c = contact_client(&w, HOST_A, &open(&w, HOST_A, &ian_link["token"]).await.expect(200));
    c.post("/api/v1/contact/sign-out-everywhere", &json!({}))
        .await
        .expect(204);
    b.get("/api/v1/contact/access")
        .await
        .expect_error(401, "invalid_session");
    c.get("/api/v1/contact/access")
        .await
        .expect_error(401, "invalid_session");

    // Archive kills every link and session of the portal; restore and re-activate: still dead.
    let d = contact_client(&w, HOST_A, &open(&w, HOST_A, &ian_link["token"]).await.expect(200));
    transition(&admin, &portal, "archived").await;
    d.get("/api/v1/contact/portal")
        .await
        .expect_error(401, "invalid_session");
    open(&w, HOST_A, &ian_link["token"])
        .await
        .expect_error(404, "link_not_found");
    admin
        .post(&links(&portal, &ian), &json!({}))
        .await
        .expect_error(409, "wrong_portal_status");
    transition(&admin, &portal, "draft").await;
    transition(&admin, &portal, "active").await;
    open(&w, HOST_A, &ian_link["token"])
        .await
        .expect_error(404, "link_not_found");
    let fresh = issue(&admin, &portal, &ian, false).await;
    let e = contact_client(&w, HOST_A, &open(&w, HOST_A, &fresh["token"]).await.expect(200));
    e.get("/api/v1/contact/portal").await.expect(200);

    // A session unused for 24 hours ends; a link expires after the tenant's 30 days.
    w.clock.advance(Duration::hours(24) + Duration::seconds(1));
    e.get("/api/v1/contact/portal")
        .await
        .expect_error(401, "invalid_session");
    w.clock.advance(Duration::days(30));
    open(&w, HOST_A, &fresh["token"])
        .await
        .expect_error(404, "link_not_found");
    w.stop().await;
}

on_both_backends!(
    api_links_open_portals_and_die_when_revoked_on_sqlite,
    api_links_open_portals_and_die_when_revoked_on_postgres,
    links_open_portals_and_die_when_revoked
);

async fn every_bad_link_gets_the_same_answer(store: &TestStore) {
    let w = world(store).await;
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let admin_b = w.signed_in(HOST_B, ADMIN_B).await;
    let (portal, pat, _) = new_portal(&admin, "Contoso onboarding", true).await;
    let (draft, draft_pat, _) = new_portal(&admin, "Draft onboarding", false).await;
    let (portal_b, pat_b, _) = new_portal(&admin_b, "Globex onboarding", true).await;

    // A draft portal gets no link through the API; a link row of one (written straight to the
    // store) opens nothing either (ONB-4).
    admin
        .post(&links(&draft, &draft_pat), &json!({}))
        .await
        .expect_error(409, "wrong_portal_status");
    let draft_token = SecretToken::from_bytes([42; 32]);
    let now = w.clock.now();
    let row = AccessLink {
        id: AccessLinkId::from_uuid(uuid::Uuid::new_v4()),
        tenant_id: w.tenant_a,
        portal_id: PortalId::from_uuid(draft.parse().expect("a uuid")),
        contact_id: ContactId::from_uuid(draft_pat.parse().expect("a uuid")),
        token_hash: draft_token.hash(),
        created_at: now,
        expires_at: now + Duration::days(30),
        revoked_at: None,
    };
    w.state
        .storage
        .commit_outcome(
            w.tenant_a,
            &Outcome {
                writes: vec![Write::InsertAccessLink(row)],
                ..Outcome::default()
            },
        )
        .await
        .expect("storage")
        .expect("committed");

    let good = issue(&admin, &portal, &pat, false).await;
    let b_link = issue(&admin_b, &portal_b, &pat_b, false).await;
    let unknown = SecretToken::from_bytes([7; 32]).encode();
    let mut answers = Vec::new();
    for (what, host, token) in [
        ("malformed", HOST_A, json!("not-a-token")),
        ("too long", HOST_A, json!("A".repeat(200))),
        ("unknown", HOST_A, json!(unknown)),
        ("a draft portal's", HOST_A, json!(draft_token.encode())),
        ("A's link at B's host", HOST_B, good["token"].clone()),
        ("B's link at A's host", HOST_A, b_link["token"].clone()),
    ] {
        let r = open(&w, host, &token).await;
        r.expect_error(404, "link_not_found");
        assert!(r.headers.get("set-cookie").is_none(), "{what}");
        answers.push(r.body);
    }
    assert!(
        answers.windows(2).all(|p| p[0] == p[1]),
        "one answer for all: {answers:?}"
    );
    open(&w, HOST_A, &json!(42)).await.expect_error(422, "invalid_body");

    // B's contact session is nothing at A's host, and A's nothing at B's.
    let b_session = open(&w, HOST_B, &b_link["token"]).await.expect(200);
    contact_client(&w, HOST_B, &b_session)
        .get("/api/v1/contact/portal")
        .await
        .expect(200);
    contact_client(&w, HOST_A, &b_session)
        .get("/api/v1/contact/portal")
        .await
        .expect_error(401, "invalid_session");
    let a_session = open(&w, HOST_A, &good["token"]).await.expect(200);
    contact_client(&w, HOST_B, &a_session)
        .get("/api/v1/contact/access")
        .await
        .expect_error(401, "invalid_session");

    // What is stored is the hash of each token, never the token itself.
    let storage = &w.state.storage;
    let pat_id = ContactId::from_uuid(pat.parse().expect("a uuid"));
    let stored = storage.list_access_links(w.tenant_a, pat_id).await.expect("storage");
    let good_token = SecretToken::parse(good["token"].as_str().expect("a token")).expect("a token");
    // The activation's invitation link and the one issued here.
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().any(|l| l.token_hash == good_token.hash()));
    assert!(
        stored
            .iter()
            .all(|l| l.token_hash.as_bytes().to_vec() != raw_token_bytes(&good_token))
    );
    let raw = TokenHash::from_slice(&raw_token_bytes(&good_token)).expect("32 bytes");
    assert!(
        storage
            .find_access_link(w.tenant_a, &raw)
            .await
            .expect("storage")
            .is_none()
    );
    let session_token = SecretToken::parse(a_session["session_token"].as_str().expect("a token")).expect("a token");
    let sessions = storage
        .list_contact_sessions(w.tenant_a, pat_id, w.clock.now())
        .await
        .expect("storage");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].token_hash, session_token.hash());
    assert_ne!(
        sessions[0].token_hash.as_bytes().to_vec(),
        raw_token_bytes(&session_token)
    );
    w.stop().await;
}

on_both_backends!(
    api_every_bad_link_gets_the_same_answer_on_sqlite,
    api_every_bad_link_gets_the_same_answer_on_postgres,
    every_bad_link_gets_the_same_answer
);

async fn a_flood_of_openings_from_one_address_is_refused(store: &TestStore) {
    let w = world(store).await;
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let (portal, pat, _) = new_portal(&admin, "Contoso onboarding", true).await;
    let good = issue(&admin, &portal, &pat, false).await;
    let guess = json!(SecretToken::from_bytes([9; 32]).encode());
    for _ in 0..portal_server::api::access::ACCESS_LIMIT_PER_ADDRESS {
        open(&w, HOST_A, &guess).await.expect_error(404, "link_not_found");
    }
    let r = open(&w, HOST_A, &good["token"]).await;
    r.expect_error(429, "too_many_attempts");
    assert!(r.headers.get("retry-after").is_some(), "{:?}", r.headers);
    w.stop().await;
}

on_both_backends!(
    api_a_flood_of_openings_from_one_address_is_refused_on_sqlite,
    api_a_flood_of_openings_from_one_address_is_refused_on_postgres,
    a_flood_of_openings_from_one_address_is_refused
);
