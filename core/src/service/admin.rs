//! The engine's tenant, staff, company, site and template reads and edits.

use super::{Engine, ServiceResult, not_found, read_guard};
use crate::commands::admin::StaffUserUpdate;
use crate::commands::{self, allow};
use crate::company::{Company, Site};
use crate::id::{CompanyId, RoleId, SiteId, StaffUserId, TemplateId};
use crate::policy::{Action, Principal, Resource};
use crate::storage::PageRequest;
use crate::template::Template;
use crate::tenant::{PermissionSet, Role, StaffUser, Tenant};
use crate::value::{Description, Name};

fn tenant_resource(principal: &Principal) -> Resource {
    Resource::Tenant {
        tenant: principal.tenant_id(),
    }
}

impl Engine {
    /// The principal's tenant, with its settings.
    pub async fn get_tenant(&self, principal: &Principal) -> ServiceResult<Tenant> {
        allow(principal, Action::ReadTenant, &tenant_resource(principal))?;
        self.storage
            .get_tenant(principal.tenant_id())
            .await?
            .ok_or_else(|| not_found("tenant", principal.tenant_id().as_uuid()))
    }

    /// Changes the tenant's name and settings (compare-and-set on its version).
    pub async fn edit_tenant(
        &self,
        principal: &Principal,
        expected_version: i64,
        changes: crate::commands::admin::TenantChanges,
    ) -> ServiceResult<Tenant> {
        self.change_tenant(principal, expected_version, changes).await?;
        self.get_tenant(principal).await
    }

    /// The tenant's roles, by name.
    pub async fn list_roles(&self, principal: &Principal) -> ServiceResult<Vec<Role>> {
        allow(principal, Action::ReadStaff, &tenant_resource(principal))?;
        Ok(self.storage.list_roles(principal.tenant_id()).await?)
    }

    /// A role.
    pub async fn get_role(&self, principal: &Principal, id: RoleId) -> ServiceResult<Role> {
        read_guard(
            principal,
            Action::ReadStaff,
            &tenant_resource(principal),
            "role",
            id.as_uuid(),
        )?;
        self.storage
            .get_role(principal.tenant_id(), id)
            .await?
            .ok_or_else(|| not_found("role", id.as_uuid()))
    }

    /// Renames a role or changes its permissions.
    pub async fn update_role(
        &self,
        principal: &Principal,
        id: RoleId,
        expected_version: i64,
        name: Name,
        permissions: PermissionSet,
    ) -> ServiceResult<Role> {
        let current = self.get_role(principal, id).await?;
        let outcome = commands::admin::update_role(
            principal,
            &mut self.ctx(),
            &current,
            expected_version,
            name,
            permissions,
        )?;
        self.commit(principal.tenant_id(), outcome).await?;
        self.get_role(principal, id).await
    }

    /// Staff users ordered by id, keyset-paged.
    pub async fn list_staff_users(
        &self,
        principal: &Principal,
        page: PageRequest<StaffUserId>,
    ) -> ServiceResult<Vec<StaffUser>> {
        allow(principal, Action::ReadStaff, &tenant_resource(principal))?;
        Ok(self.storage.list_staff_users(principal.tenant_id(), page).await?)
    }

    /// A staff user.
    pub async fn get_staff_user(&self, principal: &Principal, id: StaffUserId) -> ServiceResult<StaffUser> {
        read_guard(
            principal,
            Action::ReadStaff,
            &tenant_resource(principal),
            "staff user",
            id.as_uuid(),
        )?;
        self.storage
            .get_staff_user(principal.tenant_id(), id)
            .await?
            .ok_or_else(|| not_found("staff user", id.as_uuid()))
    }

    /// Changes a staff user's name, roles or active flag.
    pub async fn update_staff_user(
        &self,
        principal: &Principal,
        id: StaffUserId,
        expected_version: i64,
        update: StaffUserUpdate,
    ) -> ServiceResult<StaffUser> {
        let current = self.get_staff_user(principal, id).await?;
        let roles = self.storage.list_roles(principal.tenant_id()).await?;
        let outcome =
            commands::admin::update_staff_user(principal, &mut self.ctx(), &roles, &current, expected_version, update)?;
        self.commit(principal.tenant_id(), outcome).await?;
        self.get_staff_user(principal, id).await
    }

    /// Companies ordered by id, keyset-paged.
    pub async fn list_companies(
        &self,
        principal: &Principal,
        page: PageRequest<CompanyId>,
    ) -> ServiceResult<Vec<Company>> {
        allow(principal, Action::ReadCompany, &tenant_resource(principal))?;
        Ok(self.storage.list_companies(principal.tenant_id(), page).await?)
    }

    /// Renames a company.
    pub async fn update_company(
        &self,
        principal: &Principal,
        id: CompanyId,
        expected_version: i64,
        name: Name,
    ) -> ServiceResult<Company> {
        let current = self.get_company(principal, id).await?;
        let outcome = commands::admin::update_company(principal, &mut self.ctx(), &current, expected_version, name)?;
        self.commit(principal.tenant_id(), outcome).await?;
        self.get_company(principal, id).await
    }

    /// The sites of a company, by id.
    pub async fn list_sites(&self, principal: &Principal, company: CompanyId) -> ServiceResult<Vec<Site>> {
        let c = self.get_company(principal, company).await?;
        Ok(self.storage.list_sites_for_company(principal.tenant_id(), c.id).await?)
    }

    /// A site the principal may read.
    pub async fn get_site(&self, principal: &Principal, id: SiteId) -> ServiceResult<Site> {
        let site = self
            .storage
            .get_site(principal.tenant_id(), id)
            .await?
            .ok_or_else(|| not_found("site", id.as_uuid()))?;
        read_guard(
            principal,
            Action::ReadCompany,
            &Resource::Company {
                tenant: site.tenant_id,
                company: site.company_id,
            },
            "site",
            id.as_uuid(),
        )?;
        Ok(site)
    }

    /// Renames a site or changes its address.
    pub async fn update_site(
        &self,
        principal: &Principal,
        id: SiteId,
        expected_version: i64,
        name: Name,
        address: Description,
    ) -> ServiceResult<Site> {
        let current = self.get_site(principal, id).await?;
        let outcome =
            commands::admin::update_site(principal, &mut self.ctx(), &current, expected_version, name, address)?;
        self.commit(principal.tenant_id(), outcome).await?;
        self.get_site(principal, id).await
    }

    /// Deletes a site.
    pub async fn delete_site(&self, principal: &Principal, id: SiteId, expected_version: i64) -> ServiceResult<()> {
        let current = self.get_site(principal, id).await?;
        let outcome = commands::admin::delete_site(principal, &mut self.ctx(), &current, expected_version)?;
        self.commit(principal.tenant_id(), outcome).await?;
        Ok(())
    }

    /// Templates ordered by id, keyset-paged (whole documents).
    pub async fn list_templates(
        &self,
        principal: &Principal,
        page: PageRequest<TemplateId>,
    ) -> ServiceResult<Vec<Template>> {
        allow(principal, Action::ReadTemplate, &tenant_resource(principal))?;
        Ok(self.storage.list_templates(principal.tenant_id(), page).await?)
    }

    /// Queues a staff password reset mail to `user` with the link token `token` (sealed before
    /// it is stored, like every token in the outbox). The caller made the token
    /// ([`crate::auth::password_reset_token`]) and decided the user may have one.
    pub async fn queue_password_reset(
        &self,
        user: &StaffUser,
        token: String,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> ServiceResult<()> {
        let mut ctx = self.ctx();
        let message = crate::mail::OutboundMessage {
            id: ctx.ids.next_id(),
            tenant_id: user.tenant_id,
            portal_id: None,
            contact_id: None,
            kind: crate::mail::MailKind::PasswordReset,
            recipient: user.email.clone(),
            recipient_name: Some(user.display_name.as_str().to_owned()),
            payload: serde_json::json!({ "name": user.display_name, "expires_at": expires_at }),
            secret: Some(crate::mail::MessageSecret::Clear {
                text: crate::mail::SecretText::new(token),
            }),
            created_at: ctx.now,
        };
        let outcome = crate::outcome::Outcome {
            messages: vec![message],
            ..crate::outcome::Outcome::default()
        };
        self.commit(user.tenant_id, outcome).await?;
        Ok(())
    }
}
