//! MAIL-1 to MAIL-4, CON-2, CON-3, ONB-4 and ONB-5 end to end over HTTP, on both backends:
//! activating a portal queues one invitation per contact in the same commit; the outbox worker
//! delivers them to a real SMTP server on loopback; the link in the mail opens the portal;
//! resend and regenerate mail new links; revoke, regenerate and archive shut the door on the
//! next request; the outbox API shows the delivery states; and no token lies in clear in any
//! table of the database, the outbox included, before or after delivery.

use std::sync::Arc;

use mail_parser::MimeHeaders as _;
use portal_core::auth::SecretToken;
use portal_core::mail::Mailbox;
use portal_core::value::Email;
use portal_mail::{OutboxWorker, Renderer, TransportOptions, WorkerSettings, transport_from_url};
use portal_server::app::OsEntropy;
use portal_tests::conformance::raw_token_bytes;
use portal_tests::harness::{TestStore, test_master_key};
use serde_json::{Value, json};
use sqlx::{Connection as _, Row as _};

use super::access::{contact_client, issue, new_portal, open, transition};
use super::{ADMIN_A, HOST_A, HOST_B, World, world};
use crate::on_both_backends;
use crate::smtp::{Received, SmtpSink};

/// An outbox worker of the test server's store, delivering to `sink`, signing unsubscribe links
/// with the server's key as the server's own worker does.
pub(super) fn worker(w: &World, sink: &SmtpSink) -> OutboxWorker {
    let transport = transport_from_url(&sink.url(), &TransportOptions::default()).expect("an SMTP URL");
    let renderer = Renderer::new(
        &w.state.settings.public_url,
        Mailbox {
            name: None,
            email: Email::parse("portal@acme.test").expect("an address"),
        },
    )
    .expect("a renderer")
    .with_unsubscribe_key(Arc::new(test_master_key()));
    OutboxWorker::new(
        w.state.storage.clone(),
        transport,
        renderer,
        &test_master_key(),
        w.state.clock.clone(),
        Arc::new(OsEntropy),
        WorkerSettings::default(),
    )
}

/// Runs the worker once and returns what the SMTP server received, by recipient.
pub(super) async fn deliver(worker: &OutboxWorker, sink: &SmtpSink, expected: usize) -> Vec<Received> {
    let stats = worker.run_once().await.expect("the worker runs");
    assert_eq!((stats.claimed, stats.sent), (expected, expected), "{stats:?}");
    let mut mails = sink.take();
    mails.sort_by(|a, b| a.to.cmp(&b.to));
    assert_eq!(mails.len(), expected);
    mails
}

/// The token of the link in a mail: in the text part and the HTML part alike.
pub(super) fn token_in(mail: &Received, public_url: &str) -> String {
    let parsed = mail.parsed();
    let text = parsed.body_text(0).expect("a text part").into_owned();
    let html = parsed.body_html(0).expect("an HTML part").into_owned();
    let prefix = format!("{public_url}/access/");
    let at = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("a link in the text part: {text}"));
    let token: String = text[at + prefix.len()..].chars().take(43).collect();
    assert!(SecretToken::parse(&token).is_ok(), "a token in the link: {token}");
    assert!(
        html.contains(&format!("{prefix}{token}")),
        "the same link in the HTML part"
    );
    token
}

fn outbox(items: &Value) -> Vec<(String, String, String)> {
    items["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| {
            (
                m["recipient"].as_str().expect("a recipient").to_owned(),
                m["kind"].as_str().expect("a kind").to_owned(),
                m["status"].as_str().expect("a status").to_owned(),
            )
        })
        .collect()
}

/// Every table of the store's database as text, one line per row (SQLite: each column
/// `quote()`d, so blobs show as `X'HEX'`; PostgreSQL: the row's text form, bytea as `\x` hex).
async fn dump(store: &TestStore) -> String {
    let url = store.database_url.as_deref().expect("a database");
    let mut out = String::new();
    if store.backend == "sqlite" {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
        let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut c)
            .await
            .expect("tables");
        for t in tables {
            let cols: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA table_info(\"{t}\")")))
                .fetch_all(&mut c)
                .await
                .expect("columns")
                .iter()
                .map(|r| r.get::<String, _>("name"))
                .collect();
            let expr = cols
                .iter()
                .map(|c| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {expr} FROM \"{t}\"")))
                .fetch_all(&mut c)
                .await
                .expect("rows");
            for r in rows {
                out.push_str(&format!("{t}: {r}\n"));
            }
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&mut c)
        .await
        .expect("tables");
        for t in tables {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT x::text FROM \"{t}\" x")))
                .fetch_all(&mut c)
                .await
                .expect("rows");
            for r in rows {
                out.push_str(&format!("{t}: {r}\n"));
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// No token appears in any table: neither as text nor as its raw bytes (hex, either case). The
/// SHA-256 of the first token must appear, which shows the scan reads the bytes it should.
async fn assert_no_token_at_rest(store: &TestStore, tokens: &[String], stored_hash_of: &str) {
    let all = dump(store).await;
    let lower = all.to_lowercase();
    assert!(all.contains("outbox_message"), "the outbox is scanned");
    let hash = SecretToken::parse(stored_hash_of).expect("a token").hash();
    assert!(lower.contains(&hex(&hash.0)), "the scan sees a stored hash");
    for t in tokens {
        let token = SecretToken::parse(t).expect("a token");
        assert!(!all.contains(t.as_str()), "token {t} in clear in the database");
        assert!(
            !lower.contains(&hex(&raw_token_bytes(&token))),
            "raw bytes of token {t} in the database"
        );
    }
}

#[allow(clippy::too_many_lines)]
async fn invitations_are_mailed_and_their_links_open_the_portal(store: &TestStore) {
    let w = world(store).await;
    let sink = SmtpSink::start();
    let worker = worker(&w, &sink);
    let public_url = w.state.settings.public_url.clone();
    let admin = w.signed_in(HOST_A, ADMIN_A).await;

    // A draft queues nothing; activation queues one invitation per contact.
    let (portal, pat, ian) = new_portal(&admin, "Contoso onboarding", false).await;
    assert_eq!(worker.run_once().await.expect("runs").claimed, 0);
    transition(&admin, &portal, "active").await;
    let queued = admin.get("/api/v1/outbox?status=queued").await.expect(200);
    let mut q = outbox(&queued);
    q.sort();
    assert_eq!(
        q,
        vec![
            (
                "ian@contoso.test".to_owned(),
                "contact_invitation".to_owned(),
                "queued".to_owned()
            ),
            (
                "pat@contoso.test".to_owned(),
                "contact_invitation".to_owned(),
                "queued".to_owned()
            ),
        ]
    );
    assert!(queued["items"][0].get("payload").is_none() && queued["items"][0].get("secret").is_none());

    // Delivered over SMTP, as parseable MIME with the link in both parts.
    let mails = deliver(&worker, &sink, 2).await;
    assert_eq!(mails[0].to, vec!["ian@contoso.test".to_owned()]);
    assert_eq!(mails[1].to, vec!["pat@contoso.test".to_owned()]);
    let pat_mail = mails[1].parsed();
    assert!(
        pat_mail.subject().expect("a subject").contains("Contoso onboarding"),
        "{:?}",
        pat_mail.subject()
    );
    let message_id = pat_mail.message_id().expect("a Message-ID").to_owned();
    assert!(message_id.ends_with("@localhost"), "{message_id}");
    let ian_token = token_in(&mails[0], &public_url);
    let pat_first = token_in(&mails[1], &public_url);
    let sent = admin.get("/api/v1/outbox?status=sent").await.expect(200);
    assert_eq!(outbox(&sent).len(), 2);
    assert!(outbox(&admin.get("/api/v1/outbox?status=queued").await.expect(200)).is_empty());

    // The link from the mail opens the portal.
    let opened = open(&w, HOST_A, &json!(pat_first)).await.expect(200);
    let pat_session = contact_client(&w, HOST_A, &opened);
    pat_session.get("/api/v1/contact/portal").await.expect(200);
    let ian_opened = open(&w, HOST_A, &json!(ian_token)).await.expect(200);
    let ian_session = contact_client(&w, HOST_A, &ian_opened);
    ian_session.get("/api/v1/contact/portal").await.expect(200);

    // Resend: the answer's token is the mailed one; the earlier link still works.
    let resent = issue(&admin, &portal, &pat, false).await;
    let mails = deliver(&worker, &sink, 1).await;
    let pat_second = token_in(&mails[0], &public_url);
    assert_eq!(resent["token"], pat_second.as_str());
    assert_ne!(
        mails[0].parsed().message_id(),
        Some(message_id.as_str()),
        "a new message, a new Message-ID"
    );
    open(&w, HOST_A, &json!(pat_first)).await.expect(200);

    // Regenerate: a new link by mail; every earlier link and session of Pat dies.
    issue(&admin, &portal, &pat, true).await;
    let mails = deliver(&worker, &sink, 1).await;
    let pat_third = token_in(&mails[0], &public_url);
    for old in [&pat_first, &pat_second] {
        open(&w, HOST_A, &json!(old)).await.expect_error(404, "link_not_found");
    }
    pat_session
        .get("/api/v1/contact/portal")
        .await
        .expect_error(401, "invalid_session");
    let opened = open(&w, HOST_A, &json!(pat_third)).await.expect(200);
    let pat_session = contact_client(&w, HOST_A, &opened);
    pat_session.get("/api/v1/contact/portal").await.expect(200);

    // Revoke Ian: his session and link stop at once.
    admin
        .post(&format!("/api/v1/portals/{portal}/contacts/{ian}/revoke"), &json!({}))
        .await
        .expect(204);
    ian_session
        .get("/api/v1/contact/portal")
        .await
        .expect_error(401, "invalid_session");
    open(&w, HOST_A, &json!(ian_token))
        .await
        .expect_error(404, "link_not_found");

    // Before the archive: no token in clear anywhere.
    let mut tokens = vec![
        pat_first.clone(),
        pat_second.clone(),
        pat_third.clone(),
        ian_token.clone(),
    ];
    for s in [&opened, &ian_opened] {
        tokens.push(s["session_token"].as_str().expect("a session token").to_owned());
    }
    assert_no_token_at_rest(store, &tokens, &pat_first).await;

    // Archive: Pat's session and link stop on the next request; nothing is mailed.
    transition(&admin, &portal, "archived").await;
    pat_session
        .get("/api/v1/contact/portal")
        .await
        .expect_error(401, "invalid_session");
    open(&w, HOST_A, &json!(pat_third))
        .await
        .expect_error(404, "link_not_found");
    assert_eq!(worker.run_once().await.expect("runs").claimed, 0);

    // Restore and re-activate: every contact gets a fresh link by mail, which works.
    transition(&admin, &portal, "draft").await;
    transition(&admin, &portal, "active").await;
    let mails = deliver(&worker, &sink, 2).await;
    for m in &mails {
        let t = token_in(m, &public_url);
        assert!(!tokens.contains(&t));
        open(&w, HOST_A, &json!(t)).await.expect(200);
        tokens.push(t);
    }
    let kinds: Vec<String> = outbox(&admin.get("/api/v1/outbox?limit=200").await.expect(200))
        .into_iter()
        .map(|(_, k, _)| k)
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "contact_invitation").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "access_link").count(), 4);
    assert_no_token_at_rest(store, &tokens, &pat_first).await;
    w.stop().await;
}

/// Sealed tokens wait in the outbox before delivery: nothing in clear even then.
async fn queued_mail_holds_no_token_in_clear(store: &TestStore) {
    let w = world(store).await;
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let (portal, pat, _) = new_portal(&admin, "Fabrikam onboarding", true).await;
    let issued = issue(&admin, &portal, &pat, false).await;
    let token = issued["token"].as_str().expect("a token").to_owned();
    assert_eq!(
        outbox(&admin.get("/api/v1/outbox?status=queued").await.expect(200)).len(),
        3,
        "two invitations and one resend, all queued"
    );
    assert_no_token_at_rest(store, std::slice::from_ref(&token), &token).await;
    w.stop().await;
}

/// The six-digit code in a verification mail (text and HTML alike).
fn code_in(mail: &Received) -> String {
    let parsed = mail.parsed();
    let text = parsed.body_text(0).expect("a text part").into_owned();
    let html = parsed.body_html(0).expect("an HTML part").into_owned();
    let chars: Vec<char> = text.chars().collect();
    let window = chars
        .windows(8)
        .find(|w| !w[0].is_ascii_digit() && !w[7].is_ascii_digit() && w[1..7].iter().all(char::is_ascii_digit))
        .unwrap_or_else(|| panic!("a six-digit code in: {text}"));
    let code: String = window[1..7].iter().collect();
    assert!(html.contains(&code), "the same code in the HTML part");
    code
}

/// A browser: an anonymous client of tenant A that keeps the cookies it is given.
fn browser(w: &World) -> super::Api {
    w.client(HOST_A)
}

fn keep_cookies(api: &mut super::Api, reply: &super::Reply) {
    let mut jar: Vec<String> = api
        .cookie
        .iter()
        .flat_map(|c| c.split("; ").map(str::to_owned))
        .collect();
    for v in reply.headers.get_all("set-cookie") {
        let pair = v.to_str().expect("ASCII").split(';').next().expect("a pair").to_owned();
        let name = pair.split('=').next().expect("a name").to_owned();
        jar.retain(|c| !c.starts_with(&format!("{name}=")));
        jar.push(pair);
    }
    api.cookie = Some(jar.join("; "));
}

/// CON-5 over HTTP: with forwarded-link protection on, a browser without the contact's
/// verified-browser cookie gets a code by mail first; known and unknown links answer alike; a
/// right code opens once and remembers the browser; wrong, used, expired and exhausted codes
/// answer as documented; a revoked link stays shut for a verified browser.
#[allow(clippy::too_many_lines)]
async fn forwarded_links_need_a_mailed_code(store: &TestStore) {
    let w = world(store).await;
    super::set_link_protection(&w.state, w.tenant_a, true).await;
    let sink = SmtpSink::start();
    let worker = worker(&w, &sink);
    let public_url = w.state.settings.public_url.clone();
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let (portal, pat, _) = new_portal(&admin, "Contoso onboarding", true).await;
    let mails = deliver(&worker, &sink, 2).await;
    let pat_token = token_in(&mails[1], &public_url);

    // A new browser: 202 and a code by mail; an unknown link: the same answer, no mail.
    let mut pats_browser = browser(&w);
    let first = pats_browser
        .post("/api/v1/access", &json!({ "token": pat_token }))
        .await
        .expect(202);
    let unknown = SecretToken::from_bytes([0x5a; 32]).encode();
    let fake = browser(&w)
        .post("/api/v1/access", &json!({ "token": unknown }))
        .await
        .expect(202);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&first), keys(&fake));
    let mails = deliver(&worker, &sink, 1).await;
    assert_eq!(mails[0].to, vec!["pat@contoso.test".to_owned()]);
    let code = code_in(&mails[0]);
    let verify = |challenge: &Value, code: &str| json!({ "challenge": challenge, "code": code });

    // Wrong codes, unknown and malformed challenges: 400 invalid_code alike.
    let wrong = if code == "000000" { "000001" } else { "000000" };
    pats_browser
        .post("/api/v1/access/verify", &verify(&first["challenge"], wrong))
        .await
        .expect_error(400, "invalid_code");
    pats_browser
        .post("/api/v1/access/verify", &verify(&fake["challenge"], &code))
        .await
        .expect_error(400, "invalid_code");
    pats_browser
        .post("/api/v1/access/verify", &verify(&json!("not-a-challenge"), &code))
        .await
        .expect_error(400, "invalid_code");

    // The right code: a session and the verified-browser cookie.
    let reply = pats_browser
        .post("/api/v1/access/verify", &verify(&first["challenge"], &code))
        .await;
    let cookies: Vec<String> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII").to_owned())
        .collect();
    let vb = cookies
        .iter()
        .find(|c| c.starts_with("portal_vb_"))
        .unwrap_or_else(|| panic!("a verified-browser cookie in {cookies:?}"));
    assert!(
        vb.contains("HttpOnly") && vb.contains("SameSite=Lax") && vb.contains("Max-Age=7776000"),
        "{vb}"
    );
    keep_cookies(&mut pats_browser, &reply);
    let session = reply.expect(200);
    contact_client(&w, HOST_A, &session)
        .get("/api/v1/contact/portal")
        .await
        .expect(200);
    // A code opens once.
    browser(&w)
        .post("/api/v1/access/verify", &verify(&first["challenge"], &code))
        .await
        .expect_error(400, "invalid_code");

    // The verified browser opens the link directly; another browser still needs a code.
    pats_browser
        .post("/api/v1/access", &json!({ "token": pat_token }))
        .await
        .expect(200);
    let second = browser(&w)
        .post("/api/v1/access", &json!({ "token": pat_token }))
        .await
        .expect(202);
    let code2 = code_in(&deliver(&worker, &sink, 1).await[0]);
    let fake = browser(&w)
        .post("/api/v1/access", &json!({ "token": unknown }))
        .await
        .expect(202);

    // Five tries, then the challenge is spent, even for the right code; a made-up challenge
    // is spent after five tries too.
    let wrong = if code2 == "111111" { "111112" } else { "111111" };
    for _ in 0..5 {
        browser(&w)
            .post("/api/v1/access/verify", &verify(&second["challenge"], wrong))
            .await
            .expect_error(400, "invalid_code");
        browser(&w)
            .post("/api/v1/access/verify", &verify(&fake["challenge"], wrong))
            .await
            .expect_error(400, "invalid_code");
    }
    browser(&w)
        .post("/api/v1/access/verify", &verify(&second["challenge"], &code2))
        .await
        .expect_error(429, "code_attempts_exhausted");
    browser(&w)
        .post("/api/v1/access/verify", &verify(&fake["challenge"], &code2))
        .await
        .expect_error(429, "code_attempts_exhausted");

    // A code expires after 30 minutes.
    let third = browser(&w)
        .post("/api/v1/access", &json!({ "token": pat_token }))
        .await
        .expect(202);
    let code3 = code_in(&deliver(&worker, &sink, 1).await[0]);
    w.clock.advance(chrono::Duration::minutes(31));
    browser(&w)
        .post("/api/v1/access/verify", &verify(&third["challenge"], &code3))
        .await
        .expect_error(400, "invalid_code");

    // Revoked: the verified browser is not let in, and no code is sent.
    admin
        .post(&format!("/api/v1/portals/{portal}/contacts/{pat}/revoke"), &json!({}))
        .await
        .expect(204);
    pats_browser
        .post("/api/v1/access", &json!({ "token": pat_token }))
        .await
        .expect_error(404, "link_not_found");
    browser(&w)
        .post("/api/v1/access", &json!({ "token": pat_token }))
        .await
        .expect(202);
    assert_eq!(
        worker.run_once().await.expect("runs").claimed,
        0,
        "no code for a revoked link"
    );

    // No code and no challenge in clear at rest.
    let tokens: Vec<String> = [&first, &second, &third]
        .iter()
        .map(|v| v["challenge"].as_str().expect("a challenge").to_owned())
        .chain([pat_token.clone()])
        .collect();
    assert_no_token_at_rest(store, &tokens, &pat_token).await;
    let all = dump(store).await;
    for c in [&code, &code2, &code3] {
        assert!(
            !all.contains(&format!("\"{c}\"")) && !all.contains(&format!("'{c}'")),
            "code {c} in clear"
        );
    }
    w.stop().await;
}

/// The calendar attached to a meeting mail, parsed: (METHOD, UID, SEQUENCE, DTSTART with its
/// TZID).
fn calendar_in(mail: &Received) -> (String, String, i64, String) {
    let parsed = mail.parsed();
    let ics = parsed
        .attachments()
        .find(|a| {
            a.content_type()
                .is_some_and(|c| c.ctype() == "text" && c.subtype() == Some("calendar"))
        })
        .map(|a| String::from_utf8(a.contents().to_vec()).expect("UTF-8"))
        .expect("a text/calendar attachment");
    let unfolded = icalendar::parser::unfold(&ics);
    let cal = icalendar::parser::read_calendar(&unfolded).expect("a valid iCalendar");
    let method = cal
        .properties
        .iter()
        .find(|p| p.name == "METHOD")
        .expect("METHOD")
        .val
        .to_string();
    let event = cal.components.iter().find(|c| c.name == "VEVENT").expect("a VEVENT");
    let prop = |name: &str| event.find_prop(name).unwrap_or_else(|| panic!("{name}"));
    let start = prop("DTSTART");
    let tzid = start
        .params
        .iter()
        .find(|p| p.key == "TZID")
        .and_then(|p| p.val.as_ref())
        .map(ToString::to_string)
        .unwrap_or_default();
    (
        method,
        prop("UID").val.to_string(),
        prop("SEQUENCE").val.to_string().parse().expect("a number"),
        format!("{tzid}:{}", start.val),
    )
}

/// MAIL-1 and TSK-6 over HTTP: staff send a task summary, a phase summary, a reminder and a
/// meeting invitation (then a move and a cancellation); each reaches the chosen contacts over
/// SMTP with what it should say; bad requests are refused with their codes.
#[allow(clippy::too_many_lines)]
async fn staff_send_summaries_reminders_and_meetings(store: &TestStore) {
    let w = world(store).await;
    let sink = SmtpSink::start();
    let worker = worker(&w, &sink);
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let template = admin
        .post(
            "/api/v1/templates",
            &json!({ "name": "Kick-off", "phases": [
                { "name": "Start", "tasks": [
                    { "key": "call", "title": "Kick-off call", "owner": "msp", "evidence": "meeting", "due_offset": 2 },
                    { "key": "sign", "title": "Sign the agreement", "owner": "client", "evidence": "acknowledgement", "due_offset": 5 } ] },
                { "name": "Network", "tasks": [
                    { "key": "wifi", "title": "Share the Wi-Fi details", "owner": "client", "evidence": "none" } ] } ] }),
        )
        .await
        .expect(201);
    let company = admin
        .post("/api/v1/companies", &json!({ "name": "Contoso" }))
        .await
        .expect(201);
    let created = admin
        .post(
            &format!("/api/v1/companies/{}/portals", company["id"].as_str().expect("id")),
            &json!({ "template_id": template["id"], "name": "Contoso onboarding", "contacts": [
                { "name": "Pat Primary", "email": "pat@contoso.test", "role": "primary_contact", "primary": true },
                { "name": "Ian IT", "email": "ian@contoso.test", "role": "it" } ] }),
        )
        .await
        .expect(201);
    let portal = created["portal"]["id"].as_str().expect("a portal").to_owned();
    let ian = created["contacts"][1]["id"].as_str().expect("a contact").to_owned();
    let call = created["tasks"][0]["id"].as_str().expect("a task").to_owned();
    let sign = created["tasks"][1]["id"].as_str().expect("a task").to_owned();
    let network = created["phases"][1]["phase"]["id"]
        .as_str()
        .expect("a phase")
        .to_owned();
    let summary = format!("/api/v1/portals/{portal}/notifications/task-summary");

    // A draft portal mails nothing.
    admin
        .post(&summary, &json!({}))
        .await
        .expect_error(409, "wrong_portal_status");
    transition(&admin, &portal, "active").await;
    deliver(&worker, &sink, 2).await; // the invitations

    // Task summary to everyone: every task with its status and due date.
    let queued = admin.post(&summary, &json!({})).await.expect(202);
    assert_eq!(queued["messages"].as_array().map(Vec::len), Some(2));
    let mails = deliver(&worker, &sink, 2).await;
    let text = mails[1].parsed().body_text(0).expect("text").into_owned();
    for title in ["Kick-off call", "Sign the agreement", "Share the Wi-Fi details"] {
        assert!(text.contains(title), "{title} in {text}");
    }
    assert!(
        text.contains("2026-03-07") || text.contains("7 Mar"),
        "a due date in {text}"
    );
    // Phase summary to Ian only: that phase's tasks only.
    admin
        .post(&summary, &json!({ "contacts": [ian], "phase_id": network }))
        .await
        .expect(202);
    let mails = deliver(&worker, &sink, 1).await;
    assert_eq!(mails[0].to, vec!["ian@contoso.test".to_owned()]);
    let text = mails[0].parsed().body_text(0).expect("text").into_owned();
    assert!(
        text.contains("Share the Wi-Fi details") && !text.contains("Kick-off call"),
        "{text}"
    );
    // A reminder about one task, three days later: it is due soon.
    w.clock.advance(chrono::Duration::days(3));
    let admin = w.signed_in(HOST_A, ADMIN_A).await; // staff sessions last 12 hours
    admin
        .post(
            &format!("/api/v1/portals/{portal}/tasks/{sign}/reminders"),
            &json!({ "contacts": [ian] }),
        )
        .await
        .expect(202);
    let mails = deliver(&worker, &sink, 1).await;
    let subject = mails[0].parsed().subject().expect("a subject").to_owned();
    assert!(subject.contains("Sign the agreement"), "{subject}");

    // A meeting: an ICS request; moved: same UID, larger SEQUENCE; cancelled: CANCEL.
    let meeting = format!("/api/v1/portals/{portal}/tasks/{call}/meeting");
    let at = |h: u32| format!("2026-03-10T{h:02}:00:00Z");
    admin
        .post(
            &meeting,
            &json!({ "meeting": { "starts_at": at(14), "duration_minutes": 60, "location": "https://meet.example/abc" } }),
        )
        .await
        .expect(202);
    let first = deliver(&worker, &sink, 2).await;
    let (method, uid, seq1, start) = calendar_in(&first[0]);
    assert_eq!(method, "REQUEST");
    assert_eq!(start, "Europe/London:20260310T140000");
    w.clock.advance(chrono::Duration::minutes(5));
    admin
        .post(
            &meeting,
            &json!({ "meeting": { "starts_at": at(15), "duration_minutes": 30 }, "contacts": [ian] }),
        )
        .await
        .expect(202);
    let moved = deliver(&worker, &sink, 1).await;
    let (method, uid2, seq2, start) = calendar_in(&moved[0]);
    assert_eq!((method.as_str(), uid2.as_str()), ("REQUEST", uid.as_str()));
    assert!(seq2 > seq1, "{seq2} > {seq1}");
    assert_eq!(start, "Europe/London:20260310T150000");
    w.clock.advance(chrono::Duration::minutes(5));
    admin
        .post(
            &meeting,
            &json!({ "meeting": { "starts_at": at(15), "duration_minutes": 30, "cancelled": true } }),
        )
        .await
        .expect(202);
    let cancelled = deliver(&worker, &sink, 2).await;
    let (method, uid3, seq3, _) = calendar_in(&cancelled[0]);
    assert_eq!((method.as_str(), uid3.as_str()), ("CANCEL", uid.as_str()));
    assert!(seq3 > seq2);

    // Bad requests.
    admin
        .post(
            &format!("/api/v1/portals/{portal}/tasks/{sign}/meeting"),
            &json!({ "meeting": { "starts_at": at(14), "duration_minutes": 60 } }),
        )
        .await
        .expect_error(409, "wrong_evidence_type");
    admin
        .post(
            &meeting,
            &json!({ "meeting": { "starts_at": at(14), "duration_minutes": 1 } }),
        )
        .await
        .expect_error(422, "invalid_value");
    admin
        .post(&summary, &json!({ "contacts": [] }))
        .await
        .expect_error(422, "empty_list");
    admin
        .post(&summary, &json!({ "contacts": [uuid::Uuid::new_v4()] }))
        .await
        .expect_error(404, "not_found");
    admin
        .post(&summary, &json!({ "phase_id": uuid::Uuid::new_v4() }))
        .await
        .expect_error(404, "not_found");
    assert_eq!(
        worker.run_once().await.expect("runs").claimed,
        0,
        "refusals queue nothing"
    );
    // Each send is in the activity log.
    let log = admin
        .get(&format!("/api/v1/portals/{portal}/activity?kind=notification_sent"))
        .await
        .expect(200);
    assert_eq!(log["items"].as_array().map(Vec::len), Some(6), "{log}");
    w.stop().await;
}

/// The token of the reset link in a mail, the same in both parts.
fn reset_token_in(mail: &Received, public_url: &str) -> String {
    let parsed = mail.parsed();
    let text = parsed.body_text(0).expect("a text part").into_owned();
    let prefix = format!("{public_url}/reset-password/");
    let at = text.find(&prefix).unwrap_or_else(|| panic!("a reset link in {text}"));
    let token: String = text[at + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    assert!(parsed.body_html(0).expect("html").contains(&format!("{prefix}{token}")));
    token
}

async fn staff_reset_their_password_by_mail(store: &TestStore) {
    let w = world(store).await;
    let sink = SmtpSink::start();
    let worker = worker(&w, &sink);
    let before = w.signed_in(HOST_A, ADMIN_A).await;
    let anonymous = w.client(HOST_A);
    let reset = "/api/v1/auth/password-reset";
    let confirm = "/api/v1/auth/password-reset/confirm";
    let new_password = "a brand new passphrase";

    // Known and unknown addresses get the same answer; only the known one gets mail.
    anonymous.post(reset, &json!({ "email": ADMIN_A })).await.expect(202);
    anonymous
        .post(reset, &json!({ "email": "nobody@acme.test" }))
        .await
        .expect(202);
    anonymous
        .post(reset, &json!({ "email": "not an address" }))
        .await
        .expect_error(422, "invalid_body");
    let mails = deliver(&worker, &sink, 1).await;
    assert_eq!(mails[0].to, vec![ADMIN_A.to_owned()]);
    let token = reset_token_in(&mails[0], &w.state.settings.public_url);

    // Bad links and passwords change nothing.
    for bad in ["junk", "", &format!("{token}x"), &token[..token.len() - 1]] {
        anonymous
            .post(confirm, &json!({ "token": bad, "new_password": new_password }))
            .await
            .expect_error(400, "reset_link_invalid");
    }
    anonymous
        .post(confirm, &json!({ "token": token, "new_password": "short" }))
        .await
        .expect_error(422, "invalid_value");
    w.client(HOST_B)
        .post(confirm, &json!({ "token": token, "new_password": new_password }))
        .await
        .expect_error(400, "reset_link_invalid");
    before.get("/api/v1/auth/session").await.expect(200);

    // The link sets the password once, ends every earlier session and starts one.
    let session = anonymous
        .post(confirm, &json!({ "token": token, "new_password": new_password }))
        .await
        .expect(200);
    assert!(session["token"].is_string());
    before
        .get("/api/v1/auth/session")
        .await
        .expect_error(401, "invalid_session");
    anonymous
        .post(
            confirm,
            &json!({ "token": token, "new_password": "yet another passphrase" }),
        )
        .await
        .expect_error(400, "reset_link_invalid");
    let mut again = w.client(HOST_A);
    again.sign_in(ADMIN_A, new_password).await;
    again.get("/api/v1/auth/session").await.expect(200);

    // A link works for an hour.
    anonymous.post(reset, &json!({ "email": ADMIN_A })).await.expect(202);
    let late = reset_token_in(&deliver(&worker, &sink, 1).await[0], &w.state.settings.public_url);
    w.clock.advance(chrono::Duration::minutes(61));
    anonymous
        .post(
            confirm,
            &json!({ "token": late, "new_password": "yet another passphrase" }),
        )
        .await
        .expect_error(400, "reset_link_invalid");

    // Three requests per account per window, then 429 (a mail each is someone's inbox).
    for _ in 0..3 {
        anonymous.post(reset, &json!({ "email": ADMIN_A })).await.expect(202);
    }
    anonymous
        .post(reset, &json!({ "email": ADMIN_A }))
        .await
        .expect_error(429, "too_many_attempts");
    deliver(&worker, &sink, 3).await;
    w.stop().await;
}

on_both_backends!(
    api_mail_staff_reset_their_password_by_mail_on_sqlite,
    api_mail_staff_reset_their_password_by_mail_on_postgres,
    staff_reset_their_password_by_mail
);

on_both_backends!(
    api_mail_staff_send_summaries_reminders_and_meetings_on_sqlite,
    api_mail_staff_send_summaries_reminders_and_meetings_on_postgres,
    staff_send_summaries_reminders_and_meetings
);

on_both_backends!(
    api_mail_forwarded_links_need_a_mailed_code_on_sqlite,
    api_mail_forwarded_links_need_a_mailed_code_on_postgres,
    forwarded_links_need_a_mailed_code
);

on_both_backends!(
    api_mail_invitations_are_mailed_and_their_links_open_the_portal_on_sqlite,
    api_mail_invitations_are_mailed_and_their_links_open_the_portal_on_postgres,
    invitations_are_mailed_and_their_links_open_the_portal
);

on_both_backends!(
    api_mail_queued_mail_holds_no_token_in_clear_on_sqlite,
    api_mail_queued_mail_holds_no_token_in_clear_on_postgres,
    queued_mail_holds_no_token_in_clear
);
