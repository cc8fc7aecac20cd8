//! BYD-4, TSK-5, TSK-7 and TSK-8 over HTTP: a contact reads its portal without the MSP's
//! internals, works only on client-owned tasks of its active portal (checklist, comments and
//! questions, completing acknowledgement tasks), and reaches nothing else.

use portal_tests::harness::TestStore;
use serde_json::{Value, json};

use super::access::{contact_client, open, transition};
use super::{ADMIN_A, Api, HOST_A, World, world};
use crate::on_both_backends;

/// A portal with an acknowledgement task (with a checklist) and a signature task for the client,
/// and an MSP task; activated. Its id, the overview, and a contact session of Pat.
async fn setup(w: &World, admin: &Api, name: &str) -> (String, Value, Api) {
    let template = admin
        .post(
            "/api/v1/templates",
            &json!({ "name": format!("{name} template"), "phases": [ { "name": "Start", "tasks": [
                { "key": "ack", "title": "Read the handbook", "owner": "client", "evidence": "acknowledgement",
                  "checklist": ["Security policy", "Support hours"] },
                { "key": "sign", "title": "Sign the agreement", "owner": "client", "evidence": "signature" },
                { "key": "msp", "title": "Set up monitoring", "owner": "msp", "evidence": "none",
                  "checklist": ["Agents"] } ] } ] }),
        )
        .await
        .expect(201);
    let company = admin
        .post("/api/v1/companies", &json!({ "name": format!("{name} Co") }))
        .await
        .expect(201);
    let created = admin
        .post(
            &format!("/api/v1/companies/{}/portals", company["id"].as_str().expect("id")),
            &json!({ "template_id": template["id"], "name": name, "contacts": [
                { "name": "Pat Primary", "email": "pat@contoso.test", "role": "primary_contact", "primary": true },
                { "name": "Ian IT", "email": "ian@contoso.test", "role": "it" } ] }),
        )
        .await
        .expect(201);
    let portal = created["portal"]["id"].as_str().expect("a portal").to_owned();
    transition(admin, &portal, "active").await;
    let pat = created["contacts"][0]["id"].as_str().expect("a contact");
    let link = admin
        .post(&format!("/api/v1/portals/{portal}/contacts/{pat}/links"), &json!({}))
        .await
        .expect(201);
    let opened = open(w, HOST_A, &link["token"]).await.expect(200);
    let overview = admin.get(&format!("/api/v1/portals/{portal}")).await.expect(200);
    (portal, overview, contact_client(w, HOST_A, &opened))
}

fn task<'a>(view: &'a Value, title: &str) -> &'a Value {
    view["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["title"] == title)
        .unwrap_or_else(|| panic!("{title} in {view}"))
}

fn etag(v: &Value) -> String {
    format!("\"{}\"", v["version"])
}

#[allow(clippy::too_many_lines)]
async fn contacts_see_their_portal_and_work_only_on_client_tasks(store: &TestStore) {
    let w = world(store).await;
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let (portal, overview, pat) = setup(&w, &admin, "Contoso onboarding").await;
    let staff_task = |title: &str| {
        overview["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["title"] == title)
            .expect("a task")["id"]
            .as_str()
            .expect("an id")
            .to_owned()
    };
    let (ack, sign, msp) = (
        staff_task("Read the handbook"),
        staff_task("Sign the agreement"),
        staff_task("Set up monitoring"),
    );

    // Staff internals: an assignee and a block reason on the MSP task.
    let me = admin.get("/api/v1/auth/session").await.expect(200);
    let me_id = me["user"]["id"].as_str().expect("my id").to_owned();
    let t = admin.get(&format!("/api/v1/portals/{portal}/tasks/{msp}")).await;
    let t = admin
        .put_if(
            &format!("/api/v1/portals/{portal}/tasks/{msp}/assignee"),
            &json!({ "assignee": me_id }),
            &t.etag(),
        )
        .await;
    admin
        .post_if(
            &format!("/api/v1/portals/{portal}/tasks/{msp}/block"),
            &json!({ "reason": "internal: waiting for the vendor's licence" }),
            &t.etag(),
        )
        .await
        .expect(200);

    // The contact's view: phases, tasks, progress; no internals.
    let view = pat.get("/api/v1/contact/portal").await.expect(200);
    assert_eq!(view["id"], portal.as_str());
    assert_eq!(view["tasks"].as_array().map(Vec::len), Some(3));
    let text = view.to_string();
    for hidden in [
        "assignee",
        "block_reason",
        "completed_by",
        "completion_reason",
        "contacts",
        "ian@contoso.test",
        "internal: waiting",
        me_id.as_str(),
        "admin@acme.test",
    ] {
        assert!(!text.contains(hidden), "{hidden} shown to the contact: {text}");
    }
    assert_eq!(task(&view, "Read the handbook")["actionable"], true);
    assert_eq!(task(&view, "Set up monitoring")["actionable"], false);
    assert_eq!(task(&view, "Set up monitoring")["status"], "blocked");

    // Checklist: on a client task with If-Match; not on an MSP task; not without If-Match.
    let ack_view = task(&view, "Read the handbook").clone();
    let item = ack_view["checklist"][0]["id"].as_str().expect("an item");
    let r = pat
        .put_if(
            &format!("/api/v1/contact/tasks/{ack}/checklist/{item}"),
            &json!({ "done": true }),
            &etag(&ack_view),
        )
        .await;
    let ticked = r.expect(200);
    assert_eq!(ticked["checklist"][0]["done"], true);
    assert!(ticked.get("assignee").is_none());
    pat.call(
        reqwest::Method::PUT,
        &format!("/api/v1/contact/tasks/{ack}/checklist/{item}"),
        Some(&json!({ "done": false })),
        None,
    )
    .await
    .expect_error(428, "precondition_required");
    pat.put_if(
        &format!("/api/v1/contact/tasks/{ack}/checklist/{item}"),
        &json!({ "done": false }),
        &etag(&ack_view),
    )
    .await
    .expect_error(412, "stale_version");
    let msp_view = task(&view, "Set up monitoring").clone();
    let msp_item = msp_view["checklist"][0]["id"].as_str().expect("an item");
    pat.put_if(
        &format!("/api/v1/contact/tasks/{msp}/checklist/{msp_item}"),
        &json!({ "done": true }),
        &etag(&msp_view),
    )
    .await
    .expect_error(403, "forbidden");

    // Completing: the acknowledgement task yes; the signature task only through its evidence;
    // the MSP task never.
    let sign_view = task(&view, "Sign the agreement").clone();
    pat.post_if(
        &format!("/api/v1/contact/tasks/{sign}/complete"),
        &json!({}),
        &etag(&sign_view),
    )
    .await
    .expect_error(409, "wrong_evidence_type");
    pat.post_if(
        &format!("/api/v1/contact/tasks/{msp}/complete"),
        &json!({}),
        &etag(&msp_view),
    )
    .await
    .expect_error(403, "forbidden");
    let done = pat
        .post_if(
            &format!("/api/v1/contact/tasks/{ack}/complete"),
            &json!({}),
            &etag(&ticked),
        )
        .await
        .expect(200);
    assert_eq!(
        (done["status"].as_str(), done["actionable"].as_bool()),
        (Some("completed"), Some(false))
    );
    let log = admin
        .get(&format!("/api/v1/portals/{portal}/activity?kind=task_completed"))
        .await
        .expect(200);
    assert_eq!(log["items"][0]["actor"]["kind"], "contact");

    // Comments and questions, on any task of the portal; staff see them.
    pat.post(
        &format!("/api/v1/contact/tasks/{msp}/comments"),
        &json!({ "body": "Do you need our firewall admin?", "is_question": true }),
    )
    .await
    .expect(201);
    let thread = pat
        .get(&format!("/api/v1/contact/tasks/{msp}/comments"))
        .await
        .expect(200);
    assert_eq!(thread["items"][0]["is_question"], true);
    let staff_thread = admin
        .get(&format!("/api/v1/portals/{portal}/tasks/{msp}/comments"))
        .await
        .expect(200);
    assert_eq!(staff_thread["items"][0]["author"]["kind"], "contact", "{staff_thread}");

    // Staff routes refuse the contact session, whatever it tries to change.
    for (method, path, body) in [
        (
            "PATCH",
            format!("/api/v1/portals/{portal}/tasks/{ack}"),
            json!({ "owner": "msp" }),
        ),
        (
            "PUT",
            format!("/api/v1/portals/{portal}/tasks/{msp}/assignee"),
            json!({ "assignee": null }),
        ),
        ("GET", format!("/api/v1/portals/{portal}"), Value::Null),
    ] {
        pat.call(
            reqwest::Method::from_bytes(method.as_bytes()).expect("a method"),
            &path,
            Some(&body),
            Some(&etag(&done)),
        )
        .await
        .expect_error(401, "invalid_session");
    }

    // Another portal's task is not found for the contact.
    let (_, other_overview, _) = setup(&w, &admin, "Fabrikam onboarding").await;
    let other_task = other_overview["tasks"][0]["id"].as_str().expect("a task");
    pat.get(&format!("/api/v1/contact/tasks/{other_task}/comments"))
        .await
        .expect_error(404, "not_found");
    pat.post(
        &format!("/api/v1/contact/tasks/{other_task}/comments"),
        &json!({ "body": "Hello?" }),
    )
    .await
    .expect_error(404, "not_found");

    // Archived: the contact is out.
    transition(&admin, &portal, "archived").await;
    pat.get("/api/v1/contact/portal")
        .await
        .expect_error(401, "invalid_session");
    w.stop().await;
}

on_both_backends!(
    api_contacts_see_their_portal_and_work_only_on_client_tasks_on_sqlite,
    api_contacts_see_their_portal_and_work_only_on_client_tasks_on_postgres,
    contacts_see_their_portal_and_work_only_on_client_tasks
);
