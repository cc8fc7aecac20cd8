//! A whole onboarding over HTTP, as the README walks it with `curl`: a template, a company, a
//! draft portal edited, activated, every task done in dependency order, completed; with the
//! banner (DASH-1), "my tasks" (DASH-2) and the activity log on the way.

use portal_tests::harness::TestStore;
use reqwest::Method;
use serde_json::{Value, json};

use super::{ADMIN_A, Api, HOST_A, world};
use crate::on_both_backends;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("an id in {v}")).to_owned()
}

async fn overview(api: &Api, portal: &str) -> (Value, String) {
    let r = api.get(&format!("/api/v1/portals/{portal}")).await;
    let etag = r.etag();
    (r.expect(200), etag)
}

async fn draft_to_completed(store: &TestStore) {
    let w = world(store).await;
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let me = admin.get("/api/v1/auth/session").await.expect(200);
    let my_id = me["user"]["id"].as_str().expect("my id").to_owned();

    let template = admin
        .post(
            "/api/v1/templates",
            &json!({ "name": "Quick start", "phases": [
                { "name": "Paperwork", "tasks": [
                    { "key": "msa", "title": "Sign the MSA", "owner": "client", "evidence": "signature", "due_offset": 3 },
                    { "key": "kickoff", "title": "Kickoff", "owner": "msp", "evidence": "meeting", "depends_on": ["msa"],
                      "checklist": ["Agenda", "Minutes"] } ] },
                { "name": "Set-up", "tasks": [
                    { "key": "rmm", "title": "Deploy RMM", "owner": "msp", "evidence": "none", "depends_on": ["kickoff"] } ] } ] }),
        )
        .await
        .expect(201);
    let company = admin
        .post("/api/v1/companies", &json!({ "name": "Contoso Dental" }))
        .await
        .expect(201);
    let created = admin
        .post(
            &format!("/api/v1/companies/{}/portals", id(&company)),
            &json!({ "template_id": id(&template), "name": "Contoso onboarding", "contacts": [
                { "name": "Pat Primary", "email": "pat@contoso.test", "role": "primary_contact", "primary": true } ] }),
        )
        .await
        .expect(201);
    let portal = created["portal"]["id"].as_str().expect("a portal id").to_owned();
    assert_eq!(created["portal"]["status"], "draft");
    assert_eq!(created["progress"]["percent"], 0);
    assert_eq!(created["psa_project"], Value::Null, "ONB-8: no PSA project linked yet");
    assert_eq!(created["tasks"].as_array().map(Vec::len), Some(3));

    // Draft editing: one more task in the second phase.
    let phase2 = created["phases"][1]["phase"]["id"]
        .as_str()
        .expect("phase 2")
        .to_owned();
    let added = admin
        .post(
            &format!("/api/v1/portals/{portal}/phases/{phase2}/tasks"),
            &json!({ "title": "Enforce MFA", "owner": "msp", "evidence": "none" }),
        )
        .await
        .expect(201);
    assert_eq!(added["title"], "Enforce MFA");

    // Activation needs the portal's ETag: none is 428, a stale one 412.
    let (_, etag) = overview(&admin, &portal).await;
    let transitions = format!("/api/v1/portals/{portal}/transitions");
    admin
        .call(Method::POST, &transitions, Some(&json!({ "to": "active" })), None)
        .await
        .expect_error(428, "precondition_required");
    admin
        .post_if(&transitions, &json!({ "to": "active" }), "\"999\"")
        .await
        .expect_error(412, "stale_version");
    admin
        .post_if(&transitions, &json!({ "to": "completed" }), &etag)
        .await
        .expect_error(409, "illegal_transition");
    let active = admin
        .post_if(&transitions, &json!({ "to": "active" }), &etag)
        .await
        .expect(200);
    assert_eq!(active["portal"]["status"], "active");
    assert!(
        active["tasks"][0]["due_date"].is_string(),
        "due dates set at activation: {active}"
    );
    assert_eq!(
        active["tasks"][0]["due_state"], "due_soon",
        "due in 3 days (TSK-2): {active}"
    );
    assert_eq!(
        active["tasks"][1]["due_state"],
        Value::Null,
        "no due date, no due state"
    );

    // The banner lists it (DASH-1).
    let banner = admin.get("/api/v1/portals?status=active").await.expect(200);
    let items = banner["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{banner}");
    assert_eq!(items[0]["company_name"], "Contoso Dental");
    assert_eq!(items[0]["percent"], 0);

    // Assign the MSP's tasks to me: they show in "my tasks" in phase then task order (DASH-2).
    let (state, _) = overview(&admin, &portal).await;
    for task in state["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["owner"] == "msp")
    {
        let path = format!("/api/v1/portals/{portal}/tasks/{}", id(task));
        let etag = admin.get(&path).await.etag();
        admin
            .put_if(&format!("{path}/assignee"), &json!({ "assignee": my_id }), &etag)
            .await
            .expect(200);
    }
    let mine = admin.get("/api/v1/me/tasks?limit=2").await.expect(200);
    let first_page: Vec<&str> = mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["task"]["title"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(first_page, ["Kickoff", "Deploy RMM"]);
    let cursor = mine["next_cursor"].as_str().expect("a next page");
    let rest = admin
        .get(&format!("/api/v1/me/tasks?limit=2&cursor={cursor}"))
        .await
        .expect(200);
    assert_eq!(rest["items"][0]["task"]["title"], "Enforce MFA");
    assert_eq!(rest["next_cursor"], Value::Null);

    // Work the tasks in dependency order. A blocked task cannot be completed; a client task
    // completed by staff needs a reason.
    let task_path = |title: &str, s: &Value| {
        let t = s["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["title"] == title)
            .expect("the task")
            .clone();
        format!("/api/v1/portals/{portal}/tasks/{}", id(&t))
    };
    let (state, _) = overview(&admin, &portal).await;
    let kickoff = task_path("Kickoff", &state);
    let etag = admin.get(&kickoff).await.etag();
    admin
        .post_if(&format!("{kickoff}/complete"), &json!({}), &etag)
        .await
        .expect_error(409, "task_blocked");
    let msa = task_path("Sign the MSA", &state);
    let etag = admin.get(&msa).await.etag();
    admin
        .post_if(&format!("{msa}/complete"), &json!({}), &etag)
        .await
        .expect_error(422, "reason_required");
    admin
        .post_if(
            &format!("{msa}/complete"),
            &json!({ "reason": "Signed on paper, scanned" }),
            &etag,
        )
        .await
        .expect(200);
    let comment = admin
        .post(
            &format!("{kickoff}/comments"),
            &json!({ "body": "Which day suits you?", "is_question": true }),
        )
        .await
        .expect(201);
    assert_eq!(comment["is_question"], true);
    let k = admin.get(&kickoff).await;
    let etag = k.etag();
    let k = k.expect(200);
    assert_eq!(k["status"], "pending", "unblocked once the MSA is signed");
    let item = id(&k["checklist"][0]);
    let ticked = admin
        .put_if(&format!("{kickoff}/checklist/{item}"), &json!({ "done": true }), &etag)
        .await;
    let etag = ticked.etag();
    assert_eq!(ticked.expect(200)["checklist"][0]["done"], true);
    admin
        .post_if(&format!("{kickoff}/complete"), &json!({}), &etag)
        .await
        .expect(200);
    for title in ["Deploy RMM", "Enforce MFA"] {
        let path = task_path(title, &state);
        let etag = admin.get(&path).await.etag();
        let started = admin.post_if(&format!("{path}/start"), &json!({}), &etag).await;
        let etag = started.etag();
        assert_eq!(started.expect(200)["status"], "in_progress");
        admin
            .post_if(&format!("{path}/complete"), &json!({}), &etag)
            .await
            .expect(200);
    }
    let (done, etag) = overview(&admin, &portal).await;
    assert_eq!(done["progress"]["percent"], 100, "{done}");
    let completed = admin
        .post_if(&transitions, &json!({ "to": "completed" }), &etag)
        .await
        .expect(200);
    assert_eq!(completed["portal"]["status"], "completed");
    assert_eq!(admin.get("/api/v1/me/tasks").await.expect(200)["items"], json!([]));

    // The activity log, filtered by type, newest first.
    let log = admin
        .get(&format!("/api/v1/portals/{portal}/activity?kind=task_completed"))
        .await
        .expect(200);
    let completions = log["items"].as_array().expect("items");
    assert_eq!(completions.len(), 4, "{log}");
    assert!(completions.iter().all(|e| e["kind"] == "task_completed"));
    admin
        .get(&format!("/api/v1/portals/{portal}/activity?kind=no_such_kind"))
        .await
        .expect_error(400, "invalid_query");

    // Delete needs the exact name.
    let (_, etag) = overview(&admin, &portal).await;
    let del = format!("/api/v1/portals/{portal}");
    admin
        .call(Method::DELETE, &format!("{del}?confirm=wrong"), None, Some(&etag))
        .await
        .expect_error(422, "confirmation_required");
    let r = admin
        .call(
            Method::DELETE,
            &format!("{del}?confirm=Contoso%20onboarding"),
            None,
            Some(&etag),
        )
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.body);
    admin.get(&del).await.expect_error(404, "not_found");
    w.stop().await;
}

on_both_backends!(
    api_draft_to_completed_on_sqlite,
    api_draft_to_completed_on_postgres,
    draft_to_completed
);
