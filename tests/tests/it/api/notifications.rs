//! BYD-5 end to end over HTTP, on both backends: a contact's notification preferences, staff
//! summaries and automatic reminders that follow them, the daily digest, and the one-click
//! unsubscribe (RFC 8058) of the `List-Unsubscribe` header of a real delivered message; bad
//! and foreign unsubscribe links; two reminder passes at once sending each reminder once.

use chrono::Duration;
use portal_core::notifications::{Delivery, Topic};
use serde_json::{Value, json};

use super::access::{contact_client, open, transition};
use super::mail::{deliver, token_in, worker};
use super::{ADMIN_A, HOST_A, HOST_B, World, world};
use crate::on_both_backends;
use crate::smtp::{Received, SmtpSink};
use portal_tests::harness::TestStore;

/// The one-click URL of a delivered message's `List-Unsubscribe` header, checked against the
/// `List-Unsubscribe-Post` header and the footer link of both parts.
fn one_click(mail: &Received) -> String {
    let parsed = mail.parsed();
    let header = |name: &str| {
        parsed
            .header_raw(name)
            .map_or_else(|| panic!("a {name} header"), |v| v.trim().to_owned())
    };
    assert_eq!(header("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
    let list = header("List-Unsubscribe");
    let url = list
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix('>'))
        .unwrap_or_else(|| panic!("one URL in angle brackets: {list}"))
        .to_owned();
    let token = url.rsplit('/').next().expect("a token").to_owned();
    let page = format!("/unsubscribe/{token}");
    assert!(parsed.body_text(0).expect("text").contains(&page));
    assert!(parsed.body_html(0).expect("html").contains(&page));
    url
}

/// The path of a URL of the test server (`http://host:port/path` -> `/path`).
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned())
}

/// A POST as a mail client sends it (RFC 8058): form-encoded, no session.
async fn post_one_click(w: &World, host: &str, path: &str) -> (u16, Value) {
    let res = w
        .client(host)
        .http
        .post(format!("http://{host}:{}{path}", w.addr.port()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("sent");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn contact_prefs(w: &World, ann: &str) -> Value {
    let state = w
        .state
        .storage
        .list_portals(
            w.tenant_a,
            Default::default(),
            portal_core::storage::PageRequest::first(100),
        )
        .await
        .expect("portals");
    for p in state {
        let s = w
            .state
            .storage
            .load_portal(w.tenant_a, p.id)
            .await
            .expect("load")
            .expect("portal");
        if let Some(c) = s.contacts.iter().find(|c| c.email.as_str() == ann) {
            return serde_json::to_value(c.notifications).expect("json");
        }
    }
    panic!("no contact {ann}")
}

#[allow(clippy::too_many_lines)]
async fn preferences_reminders_digests_and_unsubscribe(store: &TestStore) {
    let w = world(store).await;
    let sink = SmtpSink::start();
    let worker = worker(&w, &sink);
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let template = admin
        .post(
            "/api/v1/templates",
            &json!({ "name": "Kick-off", "phases": [ { "name": "Start", "tasks": [
                { "key": "sign", "title": "Sign the agreement", "owner": "client", "evidence": "acknowledgement", "due_offset": 2 },
                { "key": "ours", "title": "Order the hardware", "owner": "msp", "evidence": "none", "due_offset": 1 },
                { "key": "wifi", "title": "Share the Wi-Fi details", "owner": "client", "evidence": "none", "due_offset": 9 } ] } ] }),
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
    let summary = format!("/api/v1/portals/{portal}/notifications/task-summary");
    transition(&admin, &portal, "active").await;
    let invitations = deliver(&worker, &sink, 2).await;
    let public_url = w.state.settings.public_url.clone();
    let ian_opened = open(&w, HOST_A, &json!(token_in(&invitations[0], &public_url)))
        .await
        .expect(200);
    let ian = contact_client(&w, HOST_A, &ian_opened);
    assert!(
        invitations
            .iter()
            .all(|m| m.parsed().header_raw("List-Unsubscribe").is_none()),
        "no unsubscribe from an invitation"
    );

    // The contact's own preferences: every topic immediate at first.
    let prefs = ian.get("/api/v1/contact/notifications").await.expect(200);
    for topic in Topic::ALL {
        assert_eq!(prefs[topic.as_str()], "immediate", "{prefs}");
    }
    let wanted = json!({ "summaries": "daily_digest", "due_soon": "off" });
    let now = ian
        .call(
            reqwest::Method::PUT,
            "/api/v1/contact/notifications",
            Some(&wanted),
            None,
        )
        .await
        .expect(200);
    assert_eq!(now["summaries"], "daily_digest");
    assert_eq!(now["due_soon"], "off");
    assert_eq!(now["overdue"], "immediate", "left out: immediate");
    for bad in [json!({ "sms": "off" }), json!({ "summaries": "weekly" }), json!("off")] {
        ian.call(reqwest::Method::PUT, "/api/v1/contact/notifications", Some(&bad), None)
            .await
            .expect_error(422, "invalid_body");
    }
    admin
        .get("/api/v1/contact/notifications")
        .await
        .expect_error(401, "invalid_session");
    w.client(HOST_A)
        .get("/api/v1/contact/notifications")
        .await
        .expect_error(401, "unauthenticated");
    assert_eq!(ian.get("/api/v1/contact/notifications").await.expect(200), now);

    // A staff summary: a message to Pat, an item of Ian's digest.
    let queued = admin.post(&summary, &json!({})).await.expect(202);
    assert_eq!(queued["messages"].as_array().map(Vec::len), Some(1), "{queued}");
    let pat_summary = deliver(&worker, &sink, 1).await.remove(0);
    assert_eq!(pat_summary.to, vec!["pat@contoso.test".to_owned()]);
    let pat_one_click = one_click(&pat_summary);

    // Automatic reminders: `sign` (due in 2 days) is due soon; the MSP's task is not the
    // client's to be reminded of; Ian switched due-soon reminders off.
    let pass = w.state.engine.run_reminders().await.expect("a pass");
    assert_eq!((pass.committed, pass.messages), (1, 1), "{pass:?}");
    let reminder = deliver(&worker, &sink, 1).await.remove(0);
    assert_eq!(reminder.to, vec!["pat@contoso.test".to_owned()]);
    assert_eq!(reminder.parsed().subject(), Some("Due soon: Sign the agreement"));
    one_click(&reminder);
    // Never twice: the next passes find nothing, also two at once.
    let (a, b) = tokio::join!(w.state.engine.run_reminders(), w.state.engine.run_reminders());
    assert_eq!(a.expect("a pass").messages + b.expect("a pass").messages, 0);
    // Two days later `sign` is overdue: a new reason, once, even with two passes at once.
    w.clock.advance(Duration::days(3));
    let admin = w.signed_in(HOST_A, ADMIN_A).await; // the staff session ran out meanwhile
    let (a, b) = tokio::join!(w.state.engine.run_reminders(), w.state.engine.run_reminders());
    let (a, b) = (a.expect("a pass"), b.expect("a pass"));
    assert_eq!(a.messages + b.messages, 2, "Pat and Ian, once each: {a:?} {b:?}");
    assert_eq!(a.committed + b.committed, 1);
    let overdue = deliver(&worker, &sink, 2).await;
    assert!(
        overdue
            .iter()
            .all(|m| m.parsed().subject() == Some("Overdue: Sign the agreement"))
    );

    // The digest: Ian's summary item went out at the first digest hour after it (08:00 London).
    let digests = w.state.engine.send_digests().await.expect("a pass");
    assert_eq!((digests.committed, digests.messages), (1, 1), "{digests:?}");
    assert_eq!(w.state.engine.send_digests().await.expect("a pass").messages, 0, "once");
    let digest = deliver(&worker, &sink, 1).await.remove(0);
    assert_eq!(digest.to, vec!["ian@contoso.test".to_owned()]);
    assert_eq!(
        digest.parsed().subject(),
        Some("Your daily update from Contoso onboarding: 1 item")
    );
    assert!(
        digest
            .parsed()
            .body_text(0)
            .expect("text")
            .contains("Sign the agreement")
    );
    let ian_all = one_click(&digest);

    // One-click unsubscribe from Pat's summary: summaries off, nothing else.
    let (status, body) = post_one_click(&w, HOST_A, &path_of(&pat_one_click)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["topic"], "summaries");
    assert_eq!(body["preferences"]["summaries"], "off");
    assert_eq!(body["preferences"]["overdue"], "immediate");
    assert_eq!(
        post_one_click(&w, HOST_A, &path_of(&pat_one_click)).await,
        (200, body),
        "again: the same"
    );
    let queued = admin.post(&summary, &json!({})).await.expect(202);
    assert_eq!(
        queued["messages"].as_array().map(Vec::len),
        Some(0),
        "Pat: off, Ian: digest"
    );
    let log = admin
        .get(&format!(
            "/api/v1/portals/{portal}/activity?kind=notification_preferences_changed"
        ))
        .await
        .expect(200);
    assert_eq!(
        log["items"].as_array().map(Vec::len),
        Some(2),
        "Ian's change and Pat's unsubscribe: {log}"
    );

    // Links that are not valid here: junk, a changed token, another tenant's host.
    let token = pat_one_click.rsplit('/').next().expect("a token").to_owned();
    let mut changed = token.clone().into_bytes();
    changed[10] = if changed[10] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).expect("ascii");
    for (host, t) in [
        (HOST_A, "junk".to_owned()),
        (HOST_A, changed),
        (HOST_B, token.clone()),
        (HOST_A, "A".repeat(5000)),
    ] {
        let (status, body) = post_one_click(&w, host, &format!("/api/v1/unsubscribe/{t}")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("link_not_found")),
            "{host} {body}"
        );
    }

    // The footer link's page asks first (a GET changes nothing), then unsubscribes from all.
    let ian_token = ian_all.rsplit('/').next().expect("a token").to_owned();
    let page = w
        .client(HOST_A)
        .http
        .get(format!("http://{HOST_A}:{}/unsubscribe/{ian_token}", w.addr.port()))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let html = page.text().await.expect("a page");
    assert!(
        html.contains("every notification") && html.contains("<form method=\"post\""),
        "{html}"
    );
    assert_eq!(
        contact_prefs(&w, "ian@contoso.test").await["overdue"],
        "immediate",
        "a GET changes nothing"
    );
    let done = w
        .client(HOST_A)
        .http
        .post(format!("http://{HOST_A}:{}/unsubscribe/{ian_token}", w.addr.port()))
        .send()
        .await
        .expect("sent");
    assert_eq!(done.status(), 200);
    assert!(done.text().await.expect("a page").contains("You are unsubscribed"));
    let ian_now = contact_prefs(&w, "ian@contoso.test").await;
    for topic in Topic::ALL {
        assert_eq!(ian_now[topic.as_str()], json!(Delivery::Off), "{ian_now}");
    }
    let bad_page = w
        .client(HOST_B)
        .http
        .get(format!("http://{HOST_B}:{}/unsubscribe/{ian_token}", w.addr.port()))
        .send()
        .await
        .expect("sent");
    assert_eq!(bad_page.status(), 404);

    // The tenant's cadence and digest hour: checked, kept when left out.
    let tenant = admin.get("/api/v1/tenant").await;
    let etag = tenant.etag();
    let mut t = tenant.expect(200);
    assert_eq!(t["notification_settings"]["digest_hour"], 8);
    let mut edit = json!({ "name": t["name"], "settings": t["settings"],
        "notification_settings": { "reminders": { "on_unlock": true, "days_before_due": 31, "when_overdue": true }, "digest_hour": 8 } });
    admin
        .put_if("/api/v1/tenant", &edit, &etag)
        .await
        .expect_error(422, "invalid_value");
    edit["notification_settings"]["reminders"]["days_before_due"] = json!(null);
    edit["notification_settings"]["digest_hour"] = json!(18);
    t = admin.put_if("/api/v1/tenant", &edit, &etag).await.expect(200);
    assert_eq!(t["notification_settings"]["digest_hour"], 18);
    assert_eq!(t["notification_settings"]["reminders"]["days_before_due"], Value::Null);
    w.stop().await;
}

on_both_backends!(
    api_notifications_preferences_reminders_digests_and_unsubscribe_on_sqlite,
    api_notifications_preferences_reminders_digests_and_unsubscribe_on_postgres,
    preferences_reminders_digests_and_unsubscribe
);
