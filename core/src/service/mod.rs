//! The thin service layer: load state through storage, authorise, run the pure command, commit
//! its outcome. Generic over nothing: it holds `Arc<dyn Storage>`.

use std::sync::Arc;

mod access;
mod admin;
mod client;
mod contacts;
mod dashboard;
mod housekeeping;
mod notify;
mod outbox;
mod reminders;

pub use access::{CodeChallenge, CodeVerdict, IssuedLink, OpenedSession};
pub use dashboard::PortalSummary;
pub use reminders::PassReport;

use crate::activity::ActivityEvent;
use crate::commands::portal::{StartOnboarding, TransitionRequest};
use crate::commands::{self, Ctx, allow};
use crate::company::{Company, Site};
use crate::crypto::{KeyPurpose, MasterKey, SealingKey};
use crate::error::CommandError;
use crate::id::{CompanyId, EventId, PortalId, RoleId, StaffUserId, TaskId, TemplateId, TenantId};
use crate::mail::{MessageSecret, OutboundMessage};
use crate::outcome::Outcome;
use crate::policy::{Action, Principal, Resource, StaffPrincipal};
use crate::portal::{Portal, PortalState};
use crate::progress::Progress;
use crate::storage::{ActivityFilter, Clock, Entropy, PageRequest, PortalFilter, Storage, StorageError};
use crate::task::Comment;
use crate::template::{Template, TemplateInput};
use crate::tenant::{PermissionSet, Tenant, TenantSettings};
use crate::value::{Description, Name};

/// A refusal or a failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The command refused (bad input, not allowed, stale, not found...).
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ServiceError {
    /// The command error inside, if it is one.
    #[must_use]
    pub const fn command(&self) -> Option<&CommandError> {
        match self {
            Self::Command(e) => Some(e),
            Self::Storage(_) => None,
        }
    }
}

/// Result of a service call.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl<F: Fn(&mut [u8]) + Send + Sync> Entropy for F {
    fn fill(&self, buf: &mut [u8]) {
        self(buf);
    }
}

fn not_found(entity: &'static str, id: uuid::Uuid) -> ServiceError {
    ServiceError::Command(CommandError::NotFound { entity, id })
}

/// Answers a refusal to read as "not found" when the resource is out of the principal's reach.
fn read_guard(
    principal: &Principal,
    action: Action,
    resource: &Resource,
    entity: &'static str,
    id: uuid::Uuid,
) -> ServiceResult<()> {
    match allow(principal, action, resource) {
        Err(CommandError::Access(
            crate::policy::AccessDenied::OtherTenant | crate::policy::AccessDenied::OutOfScope,
        )) => Err(not_found(entity, id)),
        other => Ok(other?),
    }
}

/// The onboarding engine over one store.
#[derive(Clone)]
pub struct Engine {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    outbox_key: Arc<SealingKey>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `storage`, reading time from `clock` and randomness from `entropy`, sealing
    /// the tokens and codes of queued messages under a key derived from `master_key`.
    #[must_use]
    pub fn new(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        master_key: &MasterKey,
    ) -> Self {
        Self {
            storage,
            clock,
            entropy,
            outbox_key: Arc::new(master_key.sealing_key(KeyPurpose::Outbox)),
        }
    }

    /// The store.
    #[must_use]
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// A fresh command context.
    #[must_use]
    pub fn ctx(&self) -> Ctx {
        let mut seed = [0u8; 16];
        self.entropy.fill(&mut seed);
        Ctx::new(self.clock.now(), seed)
    }

    /// Seals every clear secret of the outcome's messages under the outbox key, bound to the
    /// tenant and message ids, with a fresh nonce each (MAIL-3). Every commit path calls it, so a
    /// token or code never reaches storage in clear.
    fn seal(&self, mut outcome: Outcome) -> Outcome {
        for m in &mut outcome.messages {
            if let Some(MessageSecret::Clear { text }) = &m.secret {
                let mut nonce = [0u8; 24];
                self.entropy.fill(&mut nonce);
                let aad = OutboundMessage::secret_aad(m.tenant_id, m.id);
                let sealed = self.outbox_key.seal(nonce, &aad, text.expose().as_bytes());
                m.secret = Some(MessageSecret::Sealed { sealed });
            }
        }
        outcome
    }

    async fn commit(&self, tenant: TenantId, outcome: Outcome) -> ServiceResult<Outcome> {
        let outcome = self.seal(outcome);
        self.storage.commit_outcome(tenant, &outcome).await??;
        Ok(outcome)
    }

    /// Creates a tenant with its administrator role and, when given, its first staff user.
    pub async fn create_tenant(
        &self,
        name: Name,
        settings: TenantSettings,
        admin: Option<commands::admin::FirstAdmin>,
    ) -> ServiceResult<Tenant> {
        let mut ctx = self.ctx();
        let outcome = commands::admin::create_tenant(&mut ctx, name, settings, admin);
        let Some(crate::outcome::Write::InsertTenant(tenant)) = outcome.writes.first().cloned() else {
            unreachable!("create_tenant writes the tenant first")
        };
        self.commit(tenant.id, outcome).await?;
        Ok(tenant)
    }

    /// The principal of an active staff user, with the union of their roles' permissions;
    /// `None` when the user does not exist in this tenant.
    pub async fn staff_principal(&self, tenant: TenantId, user: StaffUserId) -> ServiceResult<Option<Principal>> {
        let Some(u) = self.storage.get_staff_user(tenant, user).await? else {
            return Ok(None);
        };
        let roles = self.storage.list_roles(tenant).await?;
        Ok(Some(Principal::Staff(StaffPrincipal {
            tenant_id: tenant,
            user_id: u.id,
            permissions: u.permissions(&roles),
            email: u.email,
        })))
    }

    /// Creates a role.
    pub async fn create_role(
        &self,
        principal: &Principal,
        name: Name,
        permissions: PermissionSet,
    ) -> ServiceResult<RoleId> {
        let roles = self.storage.list_roles(principal.tenant_id()).await?;
        let (id, outcome) = commands::admin::create_role(principal, &mut self.ctx(), &roles, name, permissions)?;
        self.commit(principal.tenant_id(), outcome).await?;
        Ok(id)
    }

    /// Creates a staff user.
    pub async fn create_staff_user(
        &self,
        principal: &Principal,
        email: crate::value::Email,
        display_name: Name,
        roles: &[RoleId],
    ) -> ServiceResult<StaffUserId> {
        let tenant_roles = self.storage.list_roles(principal.tenant_id()).await?;
        let (id, outcome) =
            commands::admin::create_staff_user(principal, &mut self.ctx(), &tenant_roles, email, display_name, roles)?;
        self.commit(principal.tenant_id(), outcome).await?;
        Ok(id)
    }

    /// Changes the tenant's name and settings, and its link settings when given.
    pub async fn update_tenant(
        &self,
        principal: &Principal,
        expected_version: i64,
        name: Name,
        settings: TenantSettings,
        link_settings: Option<crate::tenant::LinkSettings>,
        branding: Option<crate::tenant::Branding>,
    ) -> ServiceResult<()> {
        let changes = commands::admin::TenantChanges {
            name,
            settings,
            link_settings,
            branding,
            notification_settings: None,
        };
        self.change_tenant(principal, expected_version, changes).await
    }

    /// Changes the tenant's name and settings, and every group of settings given in `changes`.
    pub async fn change_tenant(
        &self,
        principal: &Principal,
        expected_version: i64,
        changes: commands::admin::TenantChanges,
    ) -> ServiceResult<()> {
        let tenant = self
            .storage
            .get_tenant(principal.tenant_id())
            .await?
            .ok_or_else(|| not_found("tenant", principal.tenant_id().as_uuid()))?;
        let outcome = commands::admin::update_tenant(principal, &mut self.ctx(), &tenant, expected_version, changes)?;
        self.commit(tenant.id, outcome).await?;
        Ok(())
    }

    /// Creates a company.
    pub async fn create_company(&self, principal: &Principal, name: Name) -> ServiceResult<Company> {
        let (company, outcome) = commands::admin::create_company(principal, &mut self.ctx(), name)?;
        self.commit(principal.tenant_id(), outcome).await?;
        Ok(company)
    }

    /// A company the principal may read.
    pub async fn get_company(&self, principal: &Principal, id: CompanyId) -> ServiceResult<Company> {
        let c = self
            .storage
            .get_company(principal.tenant_id(), id)
            .await?
            .ok_or_else(|| not_found("company", id.as_uuid()))?;
        read_guard(
            principal,
            Action::ReadCompany,
            &Resource::Company {
                tenant: c.tenant_id,
                company: c.id,
            },
            "company",
            id.as_uuid(),
        )?;
        Ok(c)
    }

    /// Adds a site to a company.
    pub async fn create_site(
        &self,
        principal: &Principal,
        company: CompanyId,
        name: Name,
        address: Description,
    ) -> ServiceResult<Site> {
        let c = self.get_company(principal, company).await?;
        let (site, outcome) = commands::admin::create_site(principal, &mut self.ctx(), &c, name, address)?;
        self.commit(principal.tenant_id(), outcome).await?;
        Ok(site)
    }

    /// Creates a template.
    pub async fn create_template(&self, principal: &Principal, input: &TemplateInput) -> ServiceResult<TemplateId> {
        let (id, outcome) = commands::template::create_template(principal, &mut self.ctx(), input)?;
        self.commit(principal.tenant_id(), outcome).await?;
        Ok(id)
    }

    /// A template the principal may read.
    pub async fn get_template(&self, principal: &Principal, id: TemplateId) -> ServiceResult<Template> {
        let t = self
            .storage
            .get_template(principal.tenant_id(), id)
            .await?
            .ok_or_else(|| not_found("template", id.as_uuid()))?;
        read_guard(
            principal,
            Action::ReadTemplate,
            &Resource::Tenant { tenant: t.tenant_id },
            "template",
            id.as_uuid(),
        )?;
        Ok(t)
    }

    /// Replaces a template document (compare-and-set on its version).
    pub async fn replace_template(
        &self,
        principal: &Principal,
        id: TemplateId,
        expected_version: i64,
        input: &TemplateInput,
    ) -> ServiceResult<()> {
        let current = self.get_template(principal, id).await?;
        let outcome =
            commands::template::replace_template(principal, &mut self.ctx(), &current, expected_version, input)?;
        self.commit(principal.tenant_id(), outcome).await?;
        Ok(())
    }

    /// Deletes a template.
    pub async fn delete_template(
        &self,
        principal: &Principal,
        id: TemplateId,
        expected_version: i64,
    ) -> ServiceResult<()> {
        let current = self.get_template(principal, id).await?;
        let outcome = commands::template::delete_template(principal, &mut self.ctx(), &current, expected_version)?;
        self.commit(principal.tenant_id(), outcome).await?;
        Ok(())
    }

    /// Starts onboarding a company from a template (ONB-2), in one atomic write.
    pub async fn start_onboarding(
        &self,
        principal: &Principal,
        company: CompanyId,
        template: TemplateId,
        request: &StartOnboarding,
    ) -> ServiceResult<PortalId> {
        let tenant_id = principal.tenant_id();
        let tenant = self
            .storage
            .get_tenant(tenant_id)
            .await?
            .ok_or_else(|| not_found("tenant", tenant_id.as_uuid()))?;
        let company = self.get_company(principal, company).await?;
        let template = self
            .storage
            .get_template(tenant_id, template)
            .await?
            .ok_or_else(|| not_found("template", template.as_uuid()))?;
        let (id, outcome) = commands::portal::start_onboarding(
            principal,
            &mut self.ctx(),
            &tenant,
            &company,
            &template,
            request,
            &self.secret_token(),
        )?;
        self.commit(tenant_id, outcome).await?;
        Ok(id)
    }

    /// Runs a portal command under the portal's lock and commits its outcome (see
    /// [`crate::storage::PortalRepo::modify_portal`]).
    pub async fn portal_command<F>(&self, principal: &Principal, portal: PortalId, command: F) -> ServiceResult<Outcome>
    where
        F: Fn(&mut Ctx, &PortalState) -> Result<Outcome, CommandError> + Send + Sync,
    {
        let ctx = self.ctx();
        let decide = move |state: &PortalState| command(&mut ctx.clone(), state).map(|o| self.seal(o));
        match self
            .storage
            .modify_portal(principal.tenant_id(), portal, &decide)
            .await?
        {
            None
            | Some(Err(CommandError::Access(
                crate::policy::AccessDenied::OtherTenant | crate::policy::AccessDenied::OutOfScope,
            ))) => Err(not_found("portal", portal.as_uuid())),
            Some(result) => Ok(result?),
        }
    }

    /// Moves a portal through its lifecycle. An activation issues every contact a link and
    /// queues its invitation in the same transaction.
    pub async fn transition_portal(
        &self,
        principal: &Principal,
        portal: PortalId,
        request: TransitionRequest,
    ) -> ServiceResult<Outcome> {
        let tenant_id = principal.tenant_id();
        let tenant = self
            .storage
            .get_tenant(tenant_id)
            .await?
            .ok_or_else(|| not_found("tenant", tenant_id.as_uuid()))?;
        let company_name = self.company_name_of(principal, portal).await?;
        let seed = self.secret_token();
        self.portal_command(principal, portal, |ctx, state| {
            let env = commands::portal::TransitionEnv {
                settings: &tenant.settings,
                mail: commands::access::LinkMail {
                    settings: &tenant.link_settings,
                    company_name: &company_name,
                },
                link_seed: &seed,
            };
            commands::portal::transition_portal(principal, ctx, state, env, request)
        })
        .await
    }

    /// The name of the company of a portal, for the messages about it. A portal out of the
    /// principal's reach is "not found" here already.
    async fn company_name_of(&self, principal: &Principal, portal: PortalId) -> ServiceResult<Name> {
        let tenant = principal.tenant_id();
        let p = self
            .storage
            .get_portal(tenant, portal)
            .await?
            .ok_or_else(|| not_found("portal", portal.as_uuid()))?;
        let company = self
            .storage
            .get_company(tenant, p.company_id)
            .await?
            .ok_or_else(|| not_found("portal", portal.as_uuid()))?;
        Ok(company.name)
    }

    /// Deletes a portal; `confirmation` must be its exact name.
    pub async fn delete_portal(
        &self,
        principal: &Principal,
        portal: PortalId,
        confirmation: &str,
    ) -> ServiceResult<Outcome> {
        self.portal_command(principal, portal, |ctx, state| {
            commands::portal::delete_portal(principal, ctx, state, confirmation)
        })
        .await
    }

    /// Completes a task.
    pub async fn complete_task(
        &self,
        principal: &Principal,
        portal: PortalId,
        task: TaskId,
        expected_version: i64,
        reason: Option<crate::value::Reason>,
    ) -> ServiceResult<Outcome> {
        self.portal_command(principal, portal, |ctx, state| {
            commands::task::complete_task(principal, ctx, state, task, expected_version, reason.as_ref())
        })
        .await
    }

    /// Reassigns tasks, all or nothing. The assignee must be an active staff user of the tenant.
    pub async fn bulk_reassign(
        &self,
        principal: &Principal,
        portal: PortalId,
        tasks: &[TaskId],
        assignee: Option<StaffUserId>,
    ) -> ServiceResult<Outcome> {
        let user = match assignee {
            Some(id) => Some(
                self.storage
                    .get_staff_user(principal.tenant_id(), id)
                    .await?
                    .ok_or_else(|| not_found("staff user", id.as_uuid()))?,
            ),
            None => None,
        };
        self.portal_command(principal, portal, |ctx, state| {
            commands::task::bulk_reassign(principal, ctx, state, tasks, user.as_ref())
        })
        .await
    }

    /// Assigns one task.
    pub async fn assign_task(
        &self,
        principal: &Principal,
        portal: PortalId,
        task: TaskId,
        expected_version: i64,
        assignee: Option<StaffUserId>,
    ) -> ServiceResult<Outcome> {
        let user = match assignee {
            Some(id) => Some(
                self.storage
                    .get_staff_user(principal.tenant_id(), id)
                    .await?
                    .ok_or_else(|| not_found("staff user", id.as_uuid()))?,
            ),
            None => None,
        };
        self.portal_command(principal, portal, |ctx, state| {
            commands::task::assign_task(principal, ctx, state, task, expected_version, user.as_ref())
        })
        .await
    }

    /// A portal the principal may read, whole.
    pub async fn load_portal(&self, principal: &Principal, id: PortalId) -> ServiceResult<PortalState> {
        let state = self
            .storage
            .load_portal(principal.tenant_id(), id)
            .await?
            .ok_or_else(|| not_found("portal", id.as_uuid()))?;
        read_guard(
            principal,
            Action::ReadPortal,
            &commands::portal::portal_resource(&state.portal),
            "portal",
            id.as_uuid(),
        )?;
        Ok(state)
    }

    /// The portal with its progress, phase statuses and due counts in the tenant's time zone
    /// (ONB-7).
    pub async fn portal_overview(&self, principal: &Principal, id: PortalId) -> ServiceResult<(PortalState, Progress)> {
        let tenant_id = principal.tenant_id();
        let tenant = self
            .storage
            .get_tenant(tenant_id)
            .await?
            .ok_or_else(|| not_found("tenant", tenant_id.as_uuid()))?;
        let state = self.load_portal(principal, id).await?;
        let today = tenant.settings.time_zone.today(self.clock.now());
        let progress = state.progress(today);
        Ok((state, progress))
    }

    /// Portals the principal may read, keyset-paged by id.
    pub async fn list_portals(
        &self,
        principal: &Principal,
        filter: PortalFilter,
        page: PageRequest<PortalId>,
    ) -> ServiceResult<Vec<Portal>> {
        // Staff need read_onboarding to list; other principals are filtered per portal below.
        if matches!(principal, Principal::Staff(_)) {
            allow(
                principal,
                Action::ReadPortal,
                &Resource::Tenant {
                    tenant: principal.tenant_id(),
                },
            )?;
        }
        let portals = self.storage.list_portals(principal.tenant_id(), filter, page).await?;
        Ok(portals
            .into_iter()
            .filter(|p| allow(principal, Action::ReadPortal, &commands::portal::portal_resource(p)).is_ok())
            .collect())
    }

    /// Comments of a task.
    pub async fn list_comments(
        &self,
        principal: &Principal,
        portal: PortalId,
        task: TaskId,
    ) -> ServiceResult<Vec<Comment>> {
        let state = self.load_portal(principal, portal).await?;
        let t = state.task(task).ok_or_else(|| not_found("task", task.as_uuid()))?;
        read_guard(
            principal,
            Action::ReadTask,
            &commands::task::task_resource(&state, t),
            "task",
            task.as_uuid(),
        )?;
        Ok(self.storage.list_comments_for_task(principal.tenant_id(), task).await?)
    }

    /// The activity log, newest first, keyset-paged.
    pub async fn list_activity(
        &self,
        principal: &Principal,
        filter: &ActivityFilter,
        page: PageRequest<EventId>,
    ) -> ServiceResult<Vec<ActivityEvent>> {
        match filter.portal {
            Some(portal) => {
                let p = self
                    .storage
                    .get_portal(principal.tenant_id(), portal)
                    .await?
                    .ok_or_else(|| not_found("portal", portal.as_uuid()))?;
                read_guard(
                    principal,
                    Action::ReadActivity,
                    &commands::portal::portal_resource(&p),
                    "portal",
                    portal.as_uuid(),
                )?;
            }
            None => allow(
                principal,
                Action::ReadActivity,
                &Resource::Tenant {
                    tenant: principal.tenant_id(),
                },
            )?,
        }
        Ok(self.storage.list_activity(principal.tenant_id(), filter, page).await?)
    }
}
