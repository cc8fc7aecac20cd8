//! Tenants (an MSP's workspace), their settings, staff users and roles (AUTH-1).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::ValueError;
use crate::id::{RoleId, StaffUserId, TenantId};
use crate::value::{Email, Name};

/// An MSP's workspace. Every row of data belongs to exactly one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Display name.
    pub name: Name,
    /// Settings.
    pub settings: TenantSettings,
    /// Settings of client links (BYD-4).
    #[serde(default)]
    pub link_settings: LinkSettings,
    /// Branding of mail and pages (BRD-1, MAIL-2).
    #[serde(default)]
    pub branding: Branding,
    /// The reminder cadence and the digest hour (BYD-5).
    #[serde(default)]
    pub notification_settings: crate::notifications::NotificationSettings,
    /// Compare-and-set version of the tenant row (its settings are edited as one).
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// The tenant's own settings. Later work adds reminders and branding here; link expiry is in
/// [`LinkSettings`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantSettings {
    /// The time zone in which due dates and "today" are reckoned (TSK-2, ONB-4).
    pub time_zone: TimeZone,
    /// Whether new time entries are billable by default (PSA-5).
    pub billable_default: bool,
    /// Forwarded-link protection for contact links (CON-5), on by default.
    pub forwarded_link_protection: bool,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            time_zone: TimeZone(Tz::UTC),
            billable_default: true,
            forwarded_link_protection: true,
        }
    }
}

/// Default lifetime of an access link, in days.
pub const DEFAULT_LINK_EXPIRY_DAYS: u16 = 30;
/// Shortest lifetime a tenant may set for access links, in days.
pub const MIN_LINK_EXPIRY_DAYS: u16 = 1;
/// Longest lifetime a tenant may set for access links, in days.
pub const MAX_LINK_EXPIRY_DAYS: u16 = 365;

const fn default_link_expiry_days() -> u16 {
    DEFAULT_LINK_EXPIRY_DAYS
}

/// The tenant's settings of client links (BYD-4). Kept beside [`TenantSettings`] rather than in
/// it so that code building `TenantSettings` field by field keeps compiling; stored in the same
/// tenant row. Tenants stored before it existed read the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkSettings {
    /// How many days a contact's access link opens the portal after it is issued,
    /// [`MIN_LINK_EXPIRY_DAYS`] to [`MAX_LINK_EXPIRY_DAYS`]; [`DEFAULT_LINK_EXPIRY_DAYS`] when
    /// left out.
    #[serde(default = "default_link_expiry_days")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 365, default = 30))]
    pub access_link_expiry_days: u16,
}

impl Default for LinkSettings {
    fn default() -> Self {
        Self {
            access_link_expiry_days: DEFAULT_LINK_EXPIRY_DAYS,
        }
    }
}

impl LinkSettings {
    /// Refuses settings outside their ranges.
    ///
    /// # Errors
    ///
    /// When `access_link_expiry_days` is outside [`MIN_LINK_EXPIRY_DAYS`]..=[`MAX_LINK_EXPIRY_DAYS`].
    pub fn check(&self) -> Result<(), ValueError> {
        if (MIN_LINK_EXPIRY_DAYS..=MAX_LINK_EXPIRY_DAYS).contains(&self.access_link_expiry_days) {
            Ok(())
        } else {
            Err(ValueError::OutOfRange {
                field: "access_link_expiry_days",
                min: MIN_LINK_EXPIRY_DAYS.into(),
                max: MAX_LINK_EXPIRY_DAYS.into(),
                actual: self.access_link_expiry_days.into(),
            })
        }
    }

    /// How long an access link issued now stays valid, clamped to the allowed range.
    #[must_use]
    pub fn access_link_lifetime(&self) -> chrono::Duration {
        let days = self
            .access_link_expiry_days
            .clamp(MIN_LINK_EXPIRY_DAYS, MAX_LINK_EXPIRY_DAYS);
        chrono::Duration::days(i64::from(days))
    }
}

/// The primary colour of a tenant without one.
pub const DEFAULT_PRIMARY_COLOUR: &str = "#1f6feb";
/// Longest logo URL.
pub const MAX_LOGO_URL_CHARS: usize = 2048;

fn default_primary_colour() -> String {
    DEFAULT_PRIMARY_COLOUR.to_owned()
}

/// A tenant's branding (BRD-1, MAIL-2): the name, logo and colour of its mail and pages, and the
/// sender of its mail. Every field but the colour may be left out: mail then uses the tenant's
/// name and the deployment's default sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Branding {
    /// The product name clients see; the tenant's name when left out.
    #[serde(default)]
    pub app_name: Option<Name>,
    /// An `https://` (or `http://`) URL of the logo, SVG preferred.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 2048, example = "https://msp.example/logo.svg")
    )]
    pub logo_url: Option<String>,
    /// `#rrggbb`.
    #[serde(default = "default_primary_colour")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^#[0-9a-fA-F]{6}$", example = "#1f6feb", default = "#1f6feb")
    )]
    pub primary_colour: String,
    /// The sender's display name; the app name when left out.
    #[serde(default)]
    pub sender_name: Option<Name>,
    /// The sender's address; the deployment's default sender when left out.
    #[serde(default)]
    pub sender_email: Option<Email>,
    /// Where replies go, if not to the sender.
    #[serde(default)]
    pub reply_to: Option<Email>,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            app_name: None,
            logo_url: None,
            primary_colour: default_primary_colour(),
            sender_name: None,
            sender_email: None,
            reply_to: None,
        }
    }
}

impl Branding {
    /// Refuses a colour that is not `#rrggbb` and a logo URL that is not a plain `http(s)` URL.
    ///
    /// # Errors
    ///
    /// The first field that is wrong.
    pub fn check(&self) -> Result<(), ValueError> {
        let c = self.primary_colour.as_bytes();
        if c.len() != 7 || c[0] != b'#' || !c[1..].iter().all(u8::is_ascii_hexdigit) {
            return Err(ValueError::InvalidCharacters {
                field: "primary_colour",
                allowed: "`#` and six hexadecimal digits",
            });
        }
        if let Some(url) = &self.logo_url {
            let n = url.chars().count();
            if n > MAX_LOGO_URL_CHARS {
                return Err(ValueError::TooLong {
                    field: "logo_url",
                    max: MAX_LOGO_URL_CHARS,
                    actual: n,
                });
            }
            let lower = url.to_ascii_lowercase();
            let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
            let chars_ok = url
                .chars()
                .all(|ch| ch.is_ascii_graphic() && !matches!(ch, '"' | '\'' | '<' | '>' | '`' | '\\'));
            if !scheme_ok || !chars_ok || url.len() <= "https://".len() {
                return Err(ValueError::InvalidCharacters {
                    field: "logo_url",
                    allowed: "an http:// or https:// URL without spaces, quotes or angle brackets",
                });
            }
        }
        Ok(())
    }

    /// The name clients see: the app name, else the tenant's name.
    #[must_use]
    pub fn display_name<'a>(&'a self, tenant_name: &'a Name) -> &'a str {
        self.app_name.as_ref().unwrap_or(tenant_name).as_str()
    }
}

/// An IANA time zone, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(value_type = String, example = "Europe/Amsterdam")
)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(pub Tz);

impl TimeZone {
    /// Parses an IANA name such as `Europe/Amsterdam`.
    pub fn parse(name: &str) -> Result<Self, ValueError> {
        name.parse::<Tz>()
            .map(TimeZone)
            .map_err(|_| ValueError::UnknownTimeZone {
                value: name.chars().take(64).collect(),
            })
    }

    /// The IANA name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The calendar date at `now` in this zone.
    #[must_use]
    pub fn today(&self, now: DateTime<Utc>) -> chrono::NaiveDate {
        now.with_timezone(&self.0).date_naive()
    }
}

impl TryFrom<String> for TimeZone {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TimeZone> for String {
    fn from(tz: TimeZone) -> Self {
        tz.name().to_owned()
    }
}

/// A staff permission (AUTH-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See portals, templates, companies and their activity.
    ReadOnboarding,
    /// Create and change portals, templates and companies.
    ManageOnboarding,
    /// Approve or reject documents.
    ReviewDocuments,
    /// Reveal submitted credentials.
    RevealCredentials,
    /// See projects.
    ReadProjects,
    /// Change projects.
    WriteProjects,
    /// Manage project settings and status mappings.
    ManageProjects,
    /// Change tenant settings.
    ManageSettings,
    /// Manage staff users and roles.
    ManageUsers,
}

crate::string_enum!(Permission {
    ReadOnboarding => "read_onboarding",
    ManageOnboarding => "manage_onboarding",
    ReviewDocuments => "review_documents",
    RevealCredentials => "reveal_credentials",
    ReadProjects => "read_projects",
    WriteProjects => "write_projects",
    ManageProjects => "manage_projects",
    ManageSettings => "manage_settings",
    ManageUsers => "manage_users",
});

impl Permission {
    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of permissions as a bit set: checking one is a single AND, with no allocation (PERF-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u16);

impl PermissionSet {
    /// No permission at all.
    pub const EMPTY: Self = Self(0);

    /// Every permission.
    #[must_use]
    pub fn all() -> Self {
        Permission::ALL.iter().copied().collect()
    }

    /// Whether `p` is in the set.
    #[must_use]
    pub const fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    /// The set with `p` added.
    #[must_use]
    pub const fn with(self, p: Permission) -> Self {
        Self(self.0 | p.bit())
    }

    /// The union of two sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The permissions in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.iter().copied().filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Permission>::deserialize(d)?.into_iter().collect())
    }
}

/// On the wire a [`PermissionSet`] is an array of [`Permission`] names: serialised without
/// duplicates in declaration order, deserialised from any array (duplicates collapse).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for PermissionSet {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::ToSchema as _;
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name(Permission::name()))
            .description(Some(
                "A set of staff permissions: each appears at most once, in declaration order \
                 (duplicates sent in a request collapse).",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for PermissionSet {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((
            Permission::name().into_owned(),
            <Permission as utoipa::PartialSchema>::schema(),
        ));
        <Permission as utoipa::ToSchema>::schemas(schemas);
    }
}

/// A named bundle of permissions (AUTH-1). Names are unique within a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Role {
    /// Id.
    pub id: RoleId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Unique name within the tenant.
    pub name: Name,
    /// The permissions it grants.
    pub permissions: PermissionSet,
    /// Compare-and-set version.
    pub version: i64,
}

/// An MSP employee. Emails are unique within a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaffUser {
    /// Id.
    pub id: StaffUserId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Sign-in and display email.
    pub email: Email,
    /// Display name.
    pub display_name: Name,
    /// Roles held, sorted by id; the effective permissions are their union.
    pub roles: Vec<RoleId>,
    /// A deactivated user keeps its history but can no longer act.
    pub active: bool,
    /// Compare-and-set version.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl StaffUser {
    /// The union of the permissions of the user's roles found in `roles`.
    #[must_use]
    pub fn permissions(&self, roles: &[Role]) -> PermissionSet {
        if !self.active {
            return PermissionSet::EMPTY;
        }
        roles
            .iter()
            .filter(|r| r.tenant_id == self.tenant_id && self.roles.contains(&r.id))
            .fold(PermissionSet::EMPTY, |acc, r| acc.union(r.permissions))
    }
}
