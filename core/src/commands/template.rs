//! Creating, replacing and deleting templates (ONB-1).

use serde_json::json;

use super::{Ctx, allow, check_version};
use crate::activity::EventKind;
use crate::error::CommandError;
use crate::id::TemplateId;
use crate::outcome::{Outcome, Write};
use crate::policy::{Action, Principal, Resource};
use crate::template::{Template, TemplateInput, build_phases};

/// Creates a template from a whole document, validated (limits, keys, dependencies, cycles).
pub fn create_template(
    principal: &Principal,
    ctx: &mut Ctx,
    input: &TemplateInput,
) -> Result<(TemplateId, Outcome), CommandError> {
    let tenant = principal.tenant_id();
    allow(principal, Action::ManageTemplate, &Resource::Tenant { tenant })?;
    let phases = build_phases(input, None, &mut ctx.ids)?;
    let template = Template {
        id: ctx.ids.next_id(),
        tenant_id: tenant,
        name: input.name.clone(),
        description: input.description.clone(),
        phases,
        version: 1,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    let ev = ctx.event(
        principal,
        tenant,
        (None, None),
        EventKind::TemplateCreated,
        format!("Template {} created", template.name),
        json!({ "template_id": template.id, "phases": template.phases.len(), "tasks": template.tasks().count() }),
    );
    Ok((
        template.id,
        Outcome {
            writes: vec![Write::InsertTemplate(template)],
            events: vec![ev],
            ..Outcome::default()
        },
    ))
}

/// Replaces a template with a new document. Task ids are kept by key and phase ids by position;
/// portals started from it keep their own copy (ONB-2).
pub fn replace_template(
    principal: &Principal,
    ctx: &mut Ctx,
    current: &Template,
    expected_version: i64,
    input: &TemplateInput,
) -> Result<Outcome, CommandError> {
    allow(
        principal,
        Action::ManageTemplate,
        &Resource::Tenant {
            tenant: current.tenant_id,
        },
    )?;
    check_version("template", current.id.as_uuid(), expected_version, current.version)?;
    let phases = build_phases(input, Some(current), &mut ctx.ids)?;
    let template = Template {
        name: input.name.clone(),
        description: input.description.clone(),
        phases,
        version: current.version + 1,
        updated_at: ctx.now,
        ..current.clone()
    };
    let ev = ctx.event(
        principal,
        template.tenant_id,
        (None, None),
        EventKind::TemplateUpdated,
        format!("Template {} updated", template.name),
        json!({ "template_id": template.id, "version": template.version, "phases": template.phases.len(), "tasks": template.tasks().count() }),
    );
    Ok(Outcome {
        writes: vec![Write::ReplaceTemplate {
            template,
            expected_version,
        }],
        events: vec![ev],
        ..Outcome::default()
    })
}

/// Deletes a template. Portals started from it are untouched.
pub fn delete_template(
    principal: &Principal,
    ctx: &mut Ctx,
    current: &Template,
    expected_version: i64,
) -> Result<Outcome, CommandError> {
    allow(
        principal,
        Action::ManageTemplate,
        &Resource::Tenant {
            tenant: current.tenant_id,
        },
    )?;
    check_version("template", current.id.as_uuid(), expected_version, current.version)?;
    let ev = ctx.event(
        principal,
        current.tenant_id,
        (None, None),
        EventKind::TemplateDeleted,
        format!("Template {} deleted", current.name),
        json!({ "template_id": current.id }),
    );
    Ok(Outcome {
        writes: vec![Write::DeleteTemplate {
            id: current.id,
            expected_version,
        }],
        events: vec![ev],
        ..Outcome::default()
    })
}
