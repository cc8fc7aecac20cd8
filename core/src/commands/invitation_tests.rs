//! Activation, re-activation, resend and regenerate queue the right messages, each carrying the
//! token of the link it issues, and nothing else (MAIL-1, MAIL-3, ONB-4, CON-3).

use chrono::{DateTime, Utc};

use super::Ctx;
use super::access::{LinkMail, issue_link, regenerate_link};
use super::portal::{StartOnboarding, TransitionEnv, TransitionRequest, start_onboarding, transition_portal};
use crate::access::AccessLink;
use crate::auth::{SecretToken, TokenHash};
use crate::company::Company;
use crate::id::{CompanyId, StaffUserId, TenantId};
use crate::lifecycle::PortalStatus;
use crate::mail::{MailKind, MessageSecret, OutboundMessage};
use crate::outcome::{Outcome, Write};
use crate::policy::{Principal, StaffPrincipal};
use crate::portal::{ContactInput, ContactRole, PortalState};
use crate::template::{TemplateInput, TemplatePhaseInput};
use crate::tenant::{PermissionSet, Tenant};
use crate::value::{Description, Email, Name};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_772_440_000, 0).unwrap_or_default()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn tenant() -> Tenant {
    Tenant {
        id: TenantId::from_uuid(uuid::Uuid::from_u128(1)),
        name: name("MSP"),
        settings: crate::tenant::TenantSettings::default(),
        link_settings: crate::tenant::LinkSettings {
            access_link_expiry_days: 7,
        },
        branding: crate::tenant::Branding::default(),
        notification_settings: crate::notifications::NotificationSettings::new(),
        version: 1,
        created_at: now(),
    }
}

fn admin() -> Principal {
    Principal::Staff(StaffPrincipal {
        tenant_id: tenant().id,
        user_id: StaffUserId::from_uuid(uuid::Uuid::from_u128(2)),
        email: Email::parse("a@msp.example.com").unwrap_or_else(|e| panic!("{e}")),
        permissions: PermissionSet::all(),
    })
}

fn company() -> Company {
    Company {
        id: CompanyId::from_uuid(uuid::Uuid::from_u128(3)),
        tenant_id: tenant().id,
        name: name("Northwind <Traders>"),
        version: 1,
        created_at: now(),
    }
}

fn start(activate: bool) -> (PortalState, Outcome) {
    let t = tenant();
    let mut ctx = Ctx::new(now(), [1; 16]);
    let (_, tpl_outcome) = super::template::create_template(
        &admin(),
        &mut ctx,
        &TemplateInput {
            name: name("T"),
            description: Description::empty(),
            phases: vec![TemplatePhaseInput {
                name: name("P"),
                description: Description::empty(),
                tasks: vec![],
            }],
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let Some(Write::InsertTemplate(tpl)) = tpl_outcome.writes.first() else {
        panic!("template insert")
    };
    let contact = |n: &str, email: &str, primary| ContactInput {
        name: name(n),
        email: Email::parse(email).unwrap_or_else(|e| panic!("{e}")),
        role: ContactRole::It,
        primary,
    };
    let req = StartOnboarding {
        name: name("Onboarding"),
        contacts: vec![
            contact("Ann", "ann@client.example", true),
            contact("Bo", "bo@client.example", false),
        ],
        activate,
    };
    let (_, o) = start_onboarding(
        &admin(),
        &mut ctx,
        &t,
        &company(),
        tpl,
        &req,
        &SecretToken::from_bytes([5; 32]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let Some(Write::InsertPortal(state)) = o.writes.first() else {
        panic!("portal insert first")
    };
    ((**state).clone(), o)
}

fn links(o: &Outcome) -> Vec<AccessLink> {
    o.writes
        .iter()
        .filter_map(|w| match w {
            Write::InsertAccessLink(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

/// Each message carries in clear exactly the token of the link issued to its contact, and its
/// payload names the portal and company but holds no token.
fn check_messages(o: &Outcome, kind: MailKind) {
    let links = links(o);
    assert_eq!(o.messages.len(), links.len());
    for m in &o.messages {
        assert_eq!(m.kind, kind);
        let link = links
            .iter()
            .find(|l| Some(l.contact_id) == m.contact_id)
            .unwrap_or_else(|| panic!("a link for the message's contact"));
        let Some(MessageSecret::Clear { text }) = &m.secret else {
            panic!("a clear secret before the engine seals it")
        };
        let token = SecretToken::parse(text.expose()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(token.hash(), link.token_hash);
        assert_eq!(m.payload["portal_name"], "Onboarding");
        assert_eq!(m.payload["company_name"], "Northwind <Traders>");
        assert!(!m.payload.to_string().contains(text.expose()));
        assert_eq!(link.expires_at - link.created_at, chrono::Duration::days(7));
        assert_eq!(m.portal_id, Some(link.portal_id));
    }
}

fn transition(state: &PortalState, to: PortalStatus, at: i64) -> Outcome {
    let t = tenant();
    let c = company();
    let seed = SecretToken::from_bytes([at as u8; 32]);
    let env = TransitionEnv::new(&t, &c.name, &seed);
    let req = TransitionRequest {
        to,
        expected_version: state.portal.version,
        confirm: true,
    };
    transition_portal(&admin(), &mut Ctx::new(now(), [at as u8; 16]), state, env, req).unwrap_or_else(|e| panic!("{e}"))
}

fn applied(state: &PortalState, o: &Outcome) -> PortalState {
    let mut next = state.clone();
    for w in &o.writes {
        if let Write::UpdatePortal { portal, .. } = w {
            next.portal = portal.clone();
        }
    }
    next
}

#[test]
fn a_draft_queues_nothing_and_activation_invites_every_contact() {
    let (draft, o) = start(false);
    assert!(o.messages.is_empty() && links(&o).is_empty());
    let o = transition(&draft, PortalStatus::Active, 2);
    check_messages(&o, MailKind::ContactInvitation);
    assert_eq!(o.messages.len(), 2);
    let distinct: std::collections::BTreeSet<TokenHash> = links(&o).iter().map(|l| l.token_hash).collect();
    assert_eq!(distinct.len(), 2, "each contact its own token");
}

#[test]
fn starting_active_invites_every_contact() {
    let (_, o) = start(true);
    check_messages(&o, MailKind::ContactInvitation);
    assert_eq!(o.messages.len(), 2);
}

#[test]
fn reactivation_after_a_restore_mails_fresh_links() {
    let (draft, _) = start(false);
    let active = applied(&draft, &transition(&draft, PortalStatus::Active, 2));
    let archived = applied(&active, &transition(&active, PortalStatus::Archived, 3));
    let restored = applied(&archived, &transition(&archived, PortalStatus::Draft, 4));
    let o = transition(&restored, PortalStatus::Active, 5);
    check_messages(&o, MailKind::AccessLink);
    let first: Vec<TokenHash> = links(&transition(&draft, PortalStatus::Active, 2))
        .iter()
        .map(|l| l.token_hash)
        .collect();
    assert!(links(&o).iter().all(|l| !first.contains(&l.token_hash)));
    // other moves queue nothing
    for o in [
        transition(&active, PortalStatus::Archived, 6),
        transition(&archived, PortalStatus::Draft, 7),
    ] {
        assert!(o.messages.is_empty());
    }
}

#[test]
fn resend_and_regenerate_mail_the_new_link() {
    let (draft, _) = start(false);
    let active = applied(&draft, &transition(&draft, PortalStatus::Active, 2));
    let t = tenant();
    let c = company();
    let mail = LinkMail {
        settings: &t.link_settings,
        company_name: &c.name,
    };
    let contact = active.contacts[0].id;
    for regenerate in [false, true] {
        let token = SecretToken::from_bytes([u8::from(regenerate) + 40; 32]);
        let mut ctx = Ctx::new(now(), [8; 16]);
        let (_, o) = if regenerate {
            regenerate_link(&admin(), &mut ctx, &active, mail, contact, &token)
        } else {
            issue_link(&admin(), &mut ctx, &active, mail, contact, &token)
        }
        .unwrap_or_else(|e| panic!("{e}"));
        check_messages(&o, MailKind::AccessLink);
        let m: &OutboundMessage = &o.messages[0];
        assert_eq!(m.recipient.as_str(), "ann@client.example");
        assert_eq!(m.recipient_name.as_deref(), Some("Ann"));
    }
    // a draft portal mails nothing: the command refuses
    let token = SecretToken::from_bytes([1; 32]);
    assert!(issue_link(&admin(), &mut Ctx::new(now(), [8; 16]), &draft, mail, contact, &token).is_err());
}
