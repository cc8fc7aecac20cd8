//! AUTH-5 over HTTP: every route of the OpenAPI document, walked as a staff user of another
//! tenant, as a staff user of the same tenant without any permission, and with no session. Each
//! must be refused (404 or 403; 401 without a session) and tenant A's data must be exactly as it
//! was. A route missing from [`ROUTES`] fails the test, so a new route cannot skip the walk.

use std::collections::BTreeMap;

use portal_core::id::TenantId;
use portal_core::storage::{ActivityFilter, PageRequest, PortalFilter, Storage};
use portal_tests::harness::TestStore;
use reqwest::Method;
use serde_json::{Value, json};

use super::{ADMIN_A, ADMIN_B, Api, HOST_A, HOST_B, PASSWORD, world};
use crate::on_both_backends;

/// Routes anyone may call without a session, by design: health, readiness and sign-in. (The
/// OpenAPI document itself is served outside the document.) Later: token links, unsubscribe,
/// webhooks.
const PUBLIC: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("post", "/api/v1/auth/sign-in"),
    // Opening a contact's access link: the token in the body is the credential (CON-4). Every
    // bad link answers 404 `link_not_found` and openings are limited per address; covered by
    // tests/tests/it/api/access.rs.
    ("post", "/api/v1/access"),
    // The one-time code of forwarded-link protection (CON-5): the challenge and code in the body
    // are the credential; covered by tests/tests/it/api/mail.rs.
    ("post", "/api/v1/access/verify"),
    // One-click unsubscribe (BYD-5, RFC 8058): the signed token in the path is the credential;
    // it only ever turns notifications off, and a token of tenant A at tenant B's host is 404;
    // covered by tests/tests/it/api/notifications.rs.
    ("post", "/api/v1/unsubscribe/{token}"),
    // Staff password reset by mail: the request answers 202 alike for every address, the
    // confirmation's token is the credential; covered by tests/tests/it/api/mail.rs.
    ("post", "/api/v1/auth/password-reset"),
    ("post", "/api/v1/auth/password-reset/confirm"),
];

/// Routes of a contact session (CON-4, BYD-4): every staff token is refused there (401), as is a
/// contact session of tenant A presented at tenant B's host. They are walked with those, and
/// their GETs read with tenant A's contact session.
const CONTACT: &[(&str, &str)] = &[
    ("get", "/api/v1/contact/portal"),
    ("get", "/api/v1/contact/access"),
    ("post", "/api/v1/contact/sign-out"),
    ("post", "/api/v1/contact/sign-out-everywhere"),
    ("get", "/api/v1/contact/tasks/{task_id}/comments"),
    ("post", "/api/v1/contact/tasks/{task_id}/comments"),
    ("put", "/api/v1/contact/tasks/{task_id}/checklist/{item_id}"),
    ("post", "/api/v1/contact/tasks/{task_id}/complete"),
    ("get", "/api/v1/contact/notifications"),
    ("put", "/api/v1/contact/notifications"),
];

/// Routes any signed-in staff user may call whatever their permissions: their own session and
/// the tenant's name, settings and hosts (AUTH-1: reading the tenant needs no permission).
const SELF_SERVICE: &[(&str, &str)] = &[
    ("get", "/api/v1/auth/session"),
    ("post", "/api/v1/auth/sign-out"),
    ("put", "/api/v1/auth/password"),
    ("get", "/api/v1/tenant"),
    ("get", "/api/v1/tenant/hosts"),
];

/// Every route of the document with a request that would succeed for tenant A's administrator
/// (path parameters are filled from tenant A's fixture by name).
fn routes() -> BTreeMap<(&'static str, &'static str), Option<Value>> {
    let template = json!({ "name": "T", "phases": [ { "name": "P", "tasks": [
        { "key": "a", "title": "A", "owner": "msp", "evidence": "none" } ] } ] });
    let task_input = json!({ "title": "Extra task", "owner": "msp", "evidence": "none" });
    let entries: Vec<(&str, &str, Option<Value>)> = vec![
        // auth
        ("get", "/api/v1/auth/session", None),
        ("post", "/api/v1/auth/sign-out", None),
        // A wrong current password: another tenant's administrator must not end their own session.
        (
            "put",
            "/api/v1/auth/password",
            Some(json!({ "current_password": "not the password",
            "new_password": "hijacked password!" })),
        ),
        // tenant and staff
        ("get", "/api/v1/tenant", None),
        (
            "put",
            "/api/v1/tenant",
            Some(json!({ "name": "Hijacked", "settings": {
            "time_zone": "UTC", "billable_default": false, "forwarded_link_protection": false } })),
        ),
        ("get", "/api/v1/tenant/hosts", None),
        ("post", "/api/v1/tenant/hosts", Some(json!({ "host": "hijack.test" }))),
        ("get", "/api/v1/roles", None),
        (
            "post",
            "/api/v1/roles",
            Some(json!({ "name": "Hijack", "permissions": ["manage_users"] })),
        ),
        ("get", "/api/v1/roles/{role_id}", None),
        (
            "put",
            "/api/v1/roles/{role_id}",
            Some(json!({ "name": "Hijack", "permissions": ["manage_users"] })),
        ),
        ("get", "/api/v1/users", None),
        (
            "post",
            "/api/v1/users",
            Some(json!({ "email": "mole@acme.test", "display_name": "Mole", "roles": [] })),
        ),
        ("get", "/api/v1/users/{user_id}", None),
        (
            "put",
            "/api/v1/users/{user_id}",
            Some(json!({ "display_name": "Hijacked", "roles": [], "active": false })),
        ),
        (
            "put",
            "/api/v1/users/{user_id}/password",
            Some(json!({ "password": "hijacked password!" })),
        ),
        // companies and sites
        ("get", "/api/v1/companies", None),
        ("post", "/api/v1/companies", Some(json!({ "name": "Mole Inc" }))),
        ("get", "/api/v1/companies/{company_id}", None),
        (
            "put",
            "/api/v1/companies/{company_id}",
            Some(json!({ "name": "Hijacked" })),
        ),
        ("get", "/api/v1/companies/{company_id}/sites", None),
        (
            "post",
            "/api/v1/companies/{company_id}/sites",
            Some(json!({ "name": "Mole site" })),
        ),
        ("get", "/api/v1/sites/{site_id}", None),
        (
            "put",
            "/api/v1/sites/{site_id}",
            Some(json!({ "name": "Hijacked", "address": "" })),
        ),
        ("delete", "/api/v1/sites/{site_id}", None),
        // templates
        ("get", "/api/v1/templates", None),
        ("post", "/api/v1/templates", Some(template.clone())),
        ("get", "/api/v1/templates/{template_id}", None),
        ("put", "/api/v1/templates/{template_id}", Some(template)),
        (
            "patch",
            "/api/v1/templates/{template_id}",
            Some(json!({ "name": "Hijacked" })),
        ),
        ("delete", "/api/v1/templates/{template_id}", None),
        (
            "post",
            "/api/v1/templates/{template_id}/phases",
            Some(json!({ "name": "Mole phase" })),
        ),
        (
            "put",
            "/api/v1/templates/{template_id}/phases/{phase_id}",
            Some(json!({ "name": "Hijacked" })),
        ),
        ("delete", "/api/v1/templates/{template_id}/phases/{phase_id}", None),
        (
            "post",
            "/api/v1/templates/{template_id}/phases/{phase_id}/tasks",
            Some(json!({ "task":
            { "key": "mole", "title": "Mole", "owner": "msp", "evidence": "none" } })),
        ),
        (
            "put",
            "/api/v1/templates/{template_id}/tasks/{key}",
            Some(json!({
            "key": "a", "title": "Hijacked", "owner": "msp", "evidence": "none" })),
        ),
        ("delete", "/api/v1/templates/{template_id}/tasks/{key}", None),
        // portals
        (
            "post",
            "/api/v1/companies/{company_id}/portals",
            Some(json!({ "template_id": "{template_id}",
            "name": "Mole portal", "contacts": [] })),
        ),
        ("get", "/api/v1/portals", None),
        ("get", "/api/v1/portals/{portal_id}", None),
        (
            "patch",
            "/api/v1/portals/{portal_id}",
            Some(json!({ "name": "Hijacked" })),
        ),
        ("delete", "/api/v1/portals/{portal_id}", None),
        (
            "post",
            "/api/v1/portals/{portal_id}/transitions",
            Some(json!({ "to": "archived", "confirm": true })),
        ),
        (
            "post",
            "/api/v1/portals/{portal_id}/phases",
            Some(json!({ "name": "Mole phase" })),
        ),
        (
            "put",
            "/api/v1/portals/{portal_id}/phases/{phase_id}",
            Some(json!({ "name": "Hijacked" })),
        ),
        ("delete", "/api/v1/portals/{portal_id}/phases/{phase_id}", None),
        (
            "put",
            "/api/v1/portals/{portal_id}/phase-order",
            Some(json!({ "order": ["{phase_id}"] })),
        ),
        (
            "post",
            "/api/v1/portals/{portal_id}/phases/{phase_id}/tasks",
            Some(task_input),
        ),
        ("delete", "/api/v1/portals/{portal_id}/tasks/{task_id}", None),
        (
            "post",
            "/api/v1/portals/{portal_id}/tasks/{task_id}/move",
            Some(json!({ "phase_id": "{phase_id}", "position": 0 })),
        ),
        // contacts (the fixture's `contact_id` is not the primary, so it may be removed)
        ("get", "/api/v1/portals/{portal_id}/contacts", None),
        (
            "post",
            "/api/v1/portals/{portal_id}/contacts",
            Some(json!({ "name": "Mole", "email": "mole@contoso.test", "role": "it", "primary": true })),
        ),
        (
            "put",
            "/api/v1/portals/{portal_id}/contacts/{contact_id}",
            Some(json!({ "name": "Hijacked", "primary": true })),
        ),
        ("delete", "/api/v1/portals/{portal_id}/contacts/{contact_id}", None),
        // access links (staff) and contact sessions (see CONTACT)
        ("get", "/api/v1/portals/{portal_id}/contacts/{contact_id}/links", None),
        ("post", "/api/v1/portals/{portal_id}/contacts/{contact_id}/links", None),
        (
            "post",
            "/api/v1/portals/{portal_id}/contacts/{contact_id}/links/regenerate",
            None,
        ),
        ("post", "/api/v1/portals/{portal_id}/contacts/{contact_id}/revoke", None),
        ("get", "/api/v1/contact/portal", None),
        ("get", "/api/v1/contact/access", None),
        ("post", "/api/v1/contact/sign-out", None),
        ("post", "/api/v1/contact/sign-out-everywhere", None),
        ("get", "/api/v1/contact/tasks/{task_id}/comments", None),
        (
            "post",
            "/api/v1/contact/tasks/{task_id}/comments",
            Some(json!({ "body": "Hijacked" })),
        ),
        (
            "put",
            "/api/v1/contact/tasks/{task_id}/checklist/{item_id}",
            Some(json!({ "done": true })),
        ),
        ("post", "/api/v1/contact/tasks/{task_id}/complete", None),
        ("get", "/api/v1/contact/notifications", None),
        (
            "put",
            "/api/v1/contact/notifications",
            Some(json!({ "summaries": "off", "reminders": "off" })),
        ),
        // tasks
        ("get", "/api/v1/portals/{portal_id}/tasks/{task_id}", None),
        (
            "patch",
            "/api/v1/portals/{portal_id}/tasks/{task_id}",
            Some(json!({ "title": "Hijacked" })),
        ),
        (
            "post",
            "/api/v1/portals/{portal_id}/tasks/{task_id}/start",
            Some(json!({})),
        ),
        (
            "post",
            "/api/v1/portals/{portal_id}/tasks/{task_id}/complete",
            Some(json!({ "reason": "Hijacked" })),
        ),
        (
            "post",
            "/api/v1/portals/{portal_id}/tasks/{task_id}/reopen",
            Some(json!({})),
        ),
        (
            "post",
            "/api/v1/portals/{portal_id}/tasks/{task_id}/block",
            Some(json!({ "reason": "Hijacked" })),
        ),
        (
            "post",
            "/api/v1/portals/{portal_id}/tasks/{task_id}/unblock",
            Some(json!({})),
        ),
        (
            "put",
            "/api/v1/portals/{portal_id}/tasks/{task_id}/assignee",
            Some(json!({ "assignee": null })),
        ),
        (
            "post",
            "/api/v1/portals/{portal_id}/tasks/bulk-reassign",
            Some(json!({ "tasks": ["{task_id}"], "assignee": null })),
        ),
        (
            "put",
            "/api/v1/portals/{portal_id}/tasks/{task_id}/checklist/{item_id}",
            Some(json!({ "done": true })),
        ),
        ("get", "/api/v1/portals/{portal_id}/tasks/{task_id}/comments", None),
        (
            "post",
            "/api/v1/portals/{portal_id}/tasks/{task_id}/comments",
            Some(json!({ "body": "Hijacked" })),
        ),
        ("get", "/api/v1/me/tasks", None),
        // activity
        ("get", "/api/v1/portals/{portal_id}/activity", None),
        ("get", "/api/v1/activity", None),
        // staff-sent mail
        (
            "post",
            "/api/v1/portals/{portal_id}/notifications/task-summary",
            Some(json!({})),
        ),
        (
            "post",
            "/api/v1/portals/{portal_id}/tasks/{task_id}/reminders",
            Some(json!({})),
        ),
        (
            "post",
            "/api/v1/portals/{portal_id}/tasks/{task_id}/meeting",
            Some(json!({ "meeting": { "starts_at": "2026-03-10T14:00:00Z", "duration_minutes": 30 } })),
        ),
        // outbox
        ("get", "/api/v1/outbox", None),
        ("post", "/api/v1/outbox/{message_id}/retry", None),
    ];
    entries.into_iter().map(|(m, p, b)| ((m, p), b)).collect()
}

/// Tenant A's fixture: one of everything, by path parameter name.
struct Fixture {
    ids: BTreeMap<&'static str, String>,
    template_phase: String,
}

impl Fixture {
    fn fill(&self, text: &str, path: &str) -> String {
        let mut out = text.to_owned();
        let template_route = path.starts_with("/api/v1/templates/");
        for (name, value) in &self.ids {
            let value = if *name == "phase_id" && template_route {
                &self.template_phase
            } else {
                value
            };
            out = out.replace(&format!("{{{name}}}"), value);
        }
        out
    }

    fn fill_body(&self, body: &Value, path: &str) -> Value {
        serde_json::from_str(&self.fill(&body.to_string(), path)).expect("a filled body")
    }
}

async fn fixture(admin: &Api) -> Fixture {
    let mut ids = BTreeMap::new();
    let id = |v: &Value| v["id"].as_str().expect("an id").to_owned();
    let company = admin
        .post("/api/v1/companies", &json!({ "name": "Contoso" }))
        .await
        .expect(201);
    let site = admin
        .post(
            &format!("/api/v1/companies/{}/sites", id(&company)),
            &json!({ "name": "HQ", "address": "1 Main St" }),
        )
        .await
        .expect(201);
    let template = admin
        .post(
            "/api/v1/templates",
            &json!({ "name": "Standard", "phases": [
                { "name": "Start", "tasks": [
                    { "key": "a", "title": "Kickoff", "owner": "msp", "evidence": "meeting",
                      "checklist": ["Agenda"] },
                    { "key": "b", "title": "Sign", "owner": "client", "evidence": "signature", "depends_on": ["a"] } ] },
                { "name": "Finish", "tasks": [
                    { "key": "c", "title": "Go live", "owner": "msp", "evidence": "none", "depends_on": ["b"] } ] } ] }),
        )
        .await
        .expect(201);
    let portal = admin
        .post(
            &format!("/api/v1/companies/{}/portals", id(&company)),
            &json!({ "template_id": id(&template), "name": "Contoso onboarding", "activate": true, "contacts": [
                { "name": "Pat Primary", "email": "pat@contoso.test", "role": "primary_contact", "primary": true },
                { "name": "Ian IT", "email": "ian@contoso.test", "role": "it" } ] }),
        )
        .await
        .expect(201);
    let portal_id = portal["portal"]["id"].as_str().expect("the portal's id").to_owned();
    let task = &portal["tasks"][0];
    let task_id = id(task);
    admin
        .post(
            &format!("/api/v1/portals/{portal_id}/tasks/{task_id}/comments"),
            &json!({ "body": "First!" }),
        )
        .await
        .expect(201);
    let nobody_role = admin
        .post("/api/v1/roles", &json!({ "name": "Nobody", "permissions": [] }))
        .await
        .expect(201);
    let nobody = admin
        .post(
            "/api/v1/users",
            &json!({ "email": "nobody@acme.test", "display_name": "No Body", "roles": [id(&nobody_role)], "password": PASSWORD }),
        )
        .await
        .expect(201);
    ids.insert("company_id", id(&company));
    ids.insert("site_id", id(&site));
    ids.insert("template_id", id(&template));
    ids.insert("key", "a".to_owned());
    ids.insert("portal_id", portal_id);
    ids.insert(
        "phase_id",
        portal["phases"][0]["phase"]["id"].as_str().expect("a phase").to_owned(),
    );
    ids.insert("task_id", task_id);
    ids.insert(
        "contact_id",
        portal["contacts"][1]["id"]
            .as_str()
            .expect("a second contact")
            .to_owned(),
    );
    ids.insert(
        "item_id",
        task["checklist"][0]["id"].as_str().expect("an item").to_owned(),
    );
    ids.insert("role_id", id(&nobody_role));
    ids.insert("user_id", id(&nobody));
    // The portal started active, so its contacts' invitations are in the outbox.
    let outbox = admin.get("/api/v1/outbox").await.expect(200);
    ids.insert("message_id", id(&outbox["items"][0]));
    Fixture {
        ids,
        template_phase: template["phases"][0]["id"]
            .as_str()
            .expect("a template phase")
            .to_owned(),
    }
}

/// Everything of tenant `t` the store shows, as one JSON value.
async fn snapshot(storage: &dyn Storage, t: TenantId) -> Value {
    let all = PageRequest::first(500);
    let companies = storage.list_companies(t, all).await.expect("storage");
    let mut sites = Vec::new();
    for c in &companies {
        sites.push(storage.list_sites_for_company(t, c.id).await.expect("storage"));
    }
    let portals = storage
        .list_portals(t, PortalFilter::default(), PageRequest::first(500))
        .await
        .expect("storage");
    let mut states = Vec::new();
    let mut comments = Vec::new();
    for p in &portals {
        let s = storage
            .load_portal(t, p.id)
            .await
            .expect("storage")
            .expect("the portal");
        for task in &s.tasks {
            comments.push(storage.list_comments_for_task(t, task.id).await.expect("storage"));
        }
        states.push(s);
    }
    json!({
        "tenant": storage.get_tenant(t).await.expect("storage"),
        "hosts": storage.list_tenant_hosts(t).await.expect("storage"),
        "roles": storage.list_roles(t).await.expect("storage"),
        "staff": storage.list_staff_users(t, PageRequest::first(500)).await.expect("storage"),
        "companies": companies,
        "sites": sites,
        "templates": storage.list_templates(t, PageRequest::first(500)).await.expect("storage"),
        "portals": states,
        "comments": comments,
        "activity": storage.list_activity(t, &ActivityFilter::default(), PageRequest::first(500)).await.expect("storage"),
        "outbox": storage.list_messages(t, None, PageRequest::first(500)).await.expect("storage"),
    })
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn every_route_refuses_other_tenants_and_missing_permissions(store: &TestStore) {
    let w = world(store).await;
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let fx = fixture(&admin).await;
    let other_tenant = w.signed_in(HOST_B, ADMIN_B).await;
    let nobody = w.signed_in(HOST_A, "nobody@acme.test").await;
    let anonymous = w.client(HOST_A);
    let table = routes();
    // A contact session of tenant A (the fixture's contact), and the same token at B's host.
    let link = admin
        .post(
            &fx.fill("/api/v1/portals/{portal_id}/contacts/{contact_id}/links", ""),
            &json!({}),
        )
        .await
        .expect(201);
    let opened = anonymous
        .post("/api/v1/access", &json!({ "token": link["token"] }))
        .await
        .expect(200);
    let contact_a = Api {
        token: opened["session_token"].as_str().map(str::to_owned),
        ..w.client(HOST_A)
    };
    let contact_a_at_b = Api {
        token: contact_a.token.clone(),
        ..w.client(HOST_B)
    };

    let doc = admin.get("/api/openapi.json").await.expect(200);
    let mut walked = 0;
    let before = snapshot(w.state.storage.as_ref(), w.tenant_a).await;
    let a_ids: Vec<&String> = fx.ids.values().filter(|v| v.len() == 36).collect();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS.iter().copied().filter(|m| item.get(*m).is_some()) {
            if PUBLIC.contains(&(method, path.as_str())) {
                continue;
            }
            let Some((&(m, p), body)) = table.get_key_value(&(method, path.as_str())) else {
                panic!("{method} {path} is not in the walk's table: add it to tests/tests/it/api/walk.rs ROUTES");
            };
            let url = fx.fill(p, p);
            let body = body.as_ref().map(|b| fx.fill_body(b, p));
            let verb = Method::from_bytes(m.to_uppercase().as_bytes()).expect("a method");
            let has_ids = p.contains('{');

            if CONTACT.contains(&(m, p)) {
                // Staff tokens of either tenant, no session at all, and A's contact session at
                // B's host: none is a contact session here.
                for (who, client) in [
                    ("no session", &anonymous),
                    ("A's administrator", &admin),
                    ("A's user without permissions", &nobody),
                    ("B's administrator", &other_tenant),
                    ("A's contact at B's host", &contact_a_at_b),
                ] {
                    let r = client.call(verb.clone(), &url, body.as_ref(), None).await;
                    assert_eq!(r.status.as_u16(), 401, "{m} {p} as {who}: {}", r.body);
                }
                walked += 1;
                continue;
            }

            // No session: 401.
            let r = anonymous.call(verb.clone(), &url, body.as_ref(), Some("\"1\"")).await;
            assert_eq!(r.status.as_u16(), 401, "{m} {p} without a session: {}", r.body);

            // Another tenant's administrator: A's ids do not exist for them.
            if (m, p) != ("post", "/api/v1/auth/sign-out") {
                let r = other_tenant
                    .call(verb.clone(), &url, body.as_ref(), Some("\"1\""))
                    .await;
                if has_ids {
                    assert!(
                        r.status.as_u16() == 404 || r.status.as_u16() == 403,
                        "{m} {p} as another tenant: {} {}",
                        r.status,
                        r.body
                    );
                } else {
                    assert!(!r.status.is_server_error(), "{m} {p}: {}", r.body);
                    let text = r.body.to_string();
                    for id in &a_ids {
                        assert!(
                            !text.contains(id.as_str()),
                            "{m} {p} shows tenant A's {id} to tenant B: {text}"
                        );
                    }
                }
            }

            // A staff user of A without any permission.
            if !SELF_SERVICE.contains(&(m, p)) {
                let r = nobody.call(verb.clone(), &url, body.as_ref(), Some("\"1\"")).await;
                assert!(
                    r.status.as_u16() == 403 || r.status.as_u16() == 404,
                    "{m} {p} without permission: {} {}",
                    r.status,
                    r.body
                );
            }
            walked += 1;
        }
    }
    let after = snapshot(w.state.storage.as_ref(), w.tenant_a).await;
    assert_eq!(before, after, "tenant A changed during the walk");
    assert_eq!(walked, table.len(), "the table names routes the document does not have");

    // The fixture's ids are right: A's administrator reads every GET route.
    for (&(m, p), _) in table.iter().filter(|((m, _), _)| *m == "get") {
        let reader = if CONTACT.contains(&(m, p)) { &contact_a } else { &admin };
        let r = reader.get(&fx.fill(p, p)).await;
        assert_eq!(
            r.status.as_u16(),
            200,
            "{m} {p} as A's administrator or contact: {}",
            r.body
        );
    }
    // The no-permission user's password works: it is their permissions that refuse them.
    nobody.get("/api/v1/auth/session").await.expect(200);
    w.stop().await;
}

on_both_backends!(
    api_every_route_refuses_other_tenants_and_missing_permissions_on_sqlite,
    api_every_route_refuses_other_tenants_and_missing_permissions_on_postgres,
    every_route_refuses_other_tenants_and_missing_permissions
);
