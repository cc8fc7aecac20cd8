//! CON-1 over HTTP: a portal's contacts listed, added, edited and removed; the primary flag moved
//! in one request whichever contact is older; unique emails; `If-Match`; the rules of an active
//! portal; and another tenant's contacts out of reach.

use portal_tests::harness::TestStore;
use reqwest::Method;
use serde_json::{Value, json};

use super::{ADMIN_A, ADMIN_B, Api, HOST_A, HOST_B, world};
use crate::on_both_backends;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("an id in {v}")).to_owned()
}

/// A company, a one-task template and a portal of them, with the given contacts; the portal's id.
async fn new_portal(api: &Api, name: &str, contacts: Value) -> String {
    let template = api
        .post(
            "/api/v1/templates",
            &json!({ "name": "One step", "phases": [ { "name": "Only", "tasks": [
                { "key": "a", "title": "Kickoff", "owner": "msp", "evidence": "none" } ] } ] }),
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
            &json!({ "template_id": id(&template), "name": name, "contacts": contacts }),
        )
        .await
        .expect(201);
    created["portal"]["id"].as_str().expect("a portal id").to_owned()
}

/// The portal's contacts, oldest first.
async fn contacts(api: &Api, portal: &str) -> Vec<Value> {
    api.get(&format!("/api/v1/portals/{portal}/contacts"))
        .await
        .expect(200)
        .as_array()
        .expect("a list")
        .clone()
}

fn by_email<'a>(list: &'a [Value], email: &str) -> &'a Value {
    list.iter()
        .find(|c| c["email"] == email)
        .unwrap_or_else(|| panic!("{email} in {list:?}"))
}

fn primaries(list: &[Value]) -> Vec<String> {
    list.iter()
        .filter(|c| c["primary"] == true)
        .map(|c| c["email"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn etag_of(c: &Value) -> String {
    format!("\"{}\"", c["version"])
}

#[allow(clippy::too_many_lines)] // one story, told in order
async fn contacts_over_http(store: &TestStore) {
    let w = world(store).await;
    let admin = w.signed_in(HOST_A, ADMIN_A).await;
    let portal = new_portal(
        &admin,
        "Contoso onboarding",
        json!([
            { "name": "Pat Primary", "email": "pat@contoso.test", "role": "primary_contact", "primary": true },
            { "name": "Ian IT", "email": "ian@contoso.test", "role": "it" }
        ]),
    )
    .await;
    let list_path = format!("/api/v1/portals/{portal}/contacts");
    let path = |c: &Value| format!("{list_path}/{}", id(c));

    // Add: 201 with the contact and its ETag; it lists after the others.
    let added = admin
        .post(
            &list_path,
            &json!({ "name": "Olga Office", "email": "olga@contoso.test", "role": "office_manager" }),
        )
        .await;
    assert_eq!(added.etag(), "\"1\"");
    let olga = added.expect(201);
    assert_eq!(
        (olga["primary"].clone(), olga["role"].clone()),
        (json!(false), json!("office_manager"))
    );
    let list = contacts(&admin, &portal).await;
    let emails: Vec<&str> = list.iter().filter_map(|c| c["email"].as_str()).collect();
    assert_eq!(emails, ["pat@contoso.test", "ian@contoso.test", "olga@contoso.test"]);
    assert_eq!(primaries(&list), ["pat@contoso.test"]);

    // If-Match: none is 428, not an ETag is 400, a stale one 412; nothing changes.
    let ian = by_email(&list, "ian@contoso.test").clone();
    admin
        .call(Method::PUT, &path(&ian), Some(&json!({ "primary": true })), None)
        .await
        .expect_error(428, "precondition_required");
    admin
        .put_if(&path(&ian), &json!({ "primary": true }), "W/\"1\"")
        .await
        .expect_error(400, "invalid_if_match");
    admin
        .put_if(&path(&ian), &json!({ "primary": true }), "\"7\"")
        .await
        .expect_error(412, "stale_version");
    admin
        .call(Method::DELETE, &path(&ian), None, None)
        .await
        .expect_error(428, "precondition_required");
    admin
        .call(Method::DELETE, &path(&ian), None, Some("\"7\""))
        .await
        .expect_error(412, "stale_version");
    assert_eq!(contacts(&admin, &portal).await, list);

    // The primary flag moves to Ian (newer than Pat) and back to Pat (older than Ian), one request
    // each; the former primary's version moves on too.
    let moved = admin
        .put_if(&path(&ian), &json!({ "primary": true }), &etag_of(&ian))
        .await;
    assert_eq!(moved.etag(), "\"2\"");
    let ian = moved.expect(200);
    assert_eq!(ian["primary"], true);
    let list = contacts(&admin, &portal).await;
    assert_eq!(primaries(&list), ["ian@contoso.test"]);
    let pat = by_email(&list, "pat@contoso.test").clone();
    assert_eq!(pat["version"], 2, "Pat's row changed: {pat}");
    let pat = admin
        .put_if(&path(&pat), &json!({ "primary": true }), &etag_of(&pat))
        .await
        .expect(200);
    assert_eq!(
        (pat["primary"].clone(), pat["version"].clone()),
        (json!(true), json!(3))
    );
    let list = contacts(&admin, &portal).await;
    assert_eq!(primaries(&list), ["pat@contoso.test"]);

    // A contact added as primary takes the flag.
    let quinn = admin
        .post(
            &list_path,
            &json!({ "name": "Quinn", "email": "quinn@contoso.test", "role": "decision_maker", "primary": true }),
        )
        .await
        .expect(201);
    assert_eq!(primaries(&contacts(&admin, &portal).await), ["quinn@contoso.test"]);

    // Unique emails, whatever their case: 409 on add and on edit.
    admin
        .post(
            &list_path,
            &json!({ "name": "Pat again", "email": "PAT@contoso.test", "role": "it" }),
        )
        .await
        .expect_error(409, "duplicate_contact_email");
    admin
        .put_if(&path(&olga), &json!({ "email": "quinn@contoso.test" }), &etag_of(&olga))
        .await
        .expect_error(409, "duplicate_contact_email");
    // Bad bodies: an unknown role, a bad email.
    admin
        .post(
            &list_path,
            &json!({ "name": "X", "email": "x@contoso.test", "role": "boss" }),
        )
        .await
        .expect_error(422, "invalid_body");
    admin
        .put_if(&path(&olga), &json!({ "email": "not an email" }), &etag_of(&olga))
        .await
        .expect_error(422, "invalid_body");
    // An edit of name and role; a body that changes nothing answers the contact as it is.
    let olga = admin
        .put_if(
            &path(&olga),
            &json!({ "name": "Olga Officer", "role": "finance" }),
            &etag_of(&olga),
        )
        .await
        .expect(200);
    assert_eq!(
        (olga["name"].clone(), olga["role"].clone(), olga["version"].clone()),
        (json!("Olga Officer"), json!("finance"), json!(2))
    );
    let same = admin.put_if(&path(&olga), &json!({}), &etag_of(&olga)).await;
    assert_eq!(same.etag(), "\"2\"");
    assert_eq!(same.expect(200), olga);

    // Activate with Quinn as the primary. In an active portal the primary can be neither
    // un-flagged nor removed; a contact that is not primary can go.
    let overview = admin.get(&format!("/api/v1/portals/{portal}")).await;
    let etag = overview.etag();
    admin
        .post_if(
            &format!("/api/v1/portals/{portal}/transitions"),
            &json!({ "to": "active" }),
            &etag,
        )
        .await
        .expect(200);
    let quinn_now = by_email(&contacts(&admin, &portal).await, "quinn@contoso.test").clone();
    assert_eq!(quinn_now, quinn, "activation leaves the contacts as they are");
    admin
        .put_if(&path(&quinn), &json!({ "primary": false }), &etag_of(&quinn))
        .await
        .expect_error(409, "primary_contact");
    admin
        .call(Method::DELETE, &path(&quinn), None, Some(&etag_of(&quinn)))
        .await
        .expect_error(409, "primary_contact");
    let r = admin
        .call(Method::DELETE, &path(&olga), None, Some(&etag_of(&olga)))
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.body);
    admin
        .put_if(&path(&olga), &json!({ "name": "Gone" }), &etag_of(&olga))
        .await
        .expect_error(404, "not_found");
    // Handing the flag over lets the former primary go.
    let list = contacts(&admin, &portal).await;
    let ian = by_email(&list, "ian@contoso.test").clone();
    admin
        .put_if(&path(&ian), &json!({ "primary": true }), &etag_of(&ian))
        .await
        .expect(200);
    let quinn = by_email(&contacts(&admin, &portal).await, "quinn@contoso.test").clone();
    assert_eq!(quinn["primary"], false);
    let r = admin
        .call(Method::DELETE, &path(&quinn), None, Some(&etag_of(&quinn)))
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.body);
    let list = contacts(&admin, &portal).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(primaries(&list), ["ian@contoso.test"]);

    // Every change is in the portal's log.
    let log = admin
        .get(&format!("/api/v1/portals/{portal}/activity?kind=contact_removed"))
        .await
        .expect(200);
    assert_eq!(log["items"].as_array().map(Vec::len), Some(2), "{log}");
    let log = admin
        .get(&format!("/api/v1/portals/{portal}/activity?kind=contact_updated"))
        .await
        .expect(200);
    assert_eq!(log["items"].as_array().map(Vec::len), Some(4), "{log}");

    // Another tenant reaches none of it: A's portal and contacts are "not found" for B, also
    // through a portal of B's own; A's other portal does not reach this one's contacts either.
    let other = w.signed_in(HOST_B, ADMIN_B).await;
    let pat = by_email(&list, "pat@contoso.test").clone();
    other.get(&list_path).await.expect_error(404, "not_found");
    other
        .post(
            &list_path,
            &json!({ "name": "Mole", "email": "mole@globex.test", "role": "it" }),
        )
        .await
        .expect_error(404, "not_found");
    other
        .put_if(&path(&pat), &json!({ "name": "Hijacked" }), &etag_of(&pat))
        .await
        .expect_error(404, "not_found");
    other
        .call(Method::DELETE, &path(&pat), None, Some(&etag_of(&pat)))
        .await
        .expect_error(404, "not_found");
    let theirs = new_portal(&other, "Globex onboarding", json!([])).await;
    let through_theirs = format!("/api/v1/portals/{theirs}/contacts/{}", id(&pat));
    other
        .put_if(&through_theirs, &json!({ "name": "Hijacked" }), &etag_of(&pat))
        .await
        .expect_error(404, "not_found");
    other
        .call(Method::DELETE, &through_theirs, None, Some(&etag_of(&pat)))
        .await
        .expect_error(404, "not_found");
    let second = new_portal(&admin, "Second onboarding", json!([])).await;
    admin
        .put_if(
            &format!("/api/v1/portals/{second}/contacts/{}", id(&pat)),
            &json!({ "name": "Elsewhere" }),
            &etag_of(&pat),
        )
        .await
        .expect_error(404, "not_found");
    assert_eq!(contacts(&admin, &portal).await, list, "nothing changed");

    // An archived portal refuses contact changes.
    let etag = admin.get(&format!("/api/v1/portals/{portal}")).await.etag();
    admin
        .post_if(
            &format!("/api/v1/portals/{portal}/transitions"),
            &json!({ "to": "archived", "confirm": true }),
            &etag,
        )
        .await
        .expect(200);
    admin
        .post(
            &list_path,
            &json!({ "name": "Late", "email": "late@contoso.test", "role": "it" }),
        )
        .await
        .expect_error(409, "wrong_portal_status");
    admin
        .put_if(&path(&pat), &json!({ "name": "Late" }), &etag_of(&pat))
        .await
        .expect_error(409, "wrong_portal_status");
    admin
        .call(Method::DELETE, &path(&pat), None, Some(&etag_of(&pat)))
        .await
        .expect_error(409, "wrong_portal_status");
    assert_eq!(contacts(&admin, &portal).await, list, "the data is kept");
    w.stop().await;
}

on_both_backends!(
    api_contacts_over_http_on_sqlite,
    api_contacts_over_http_on_postgres,
    contacts_over_http
);
