//! Validated values: each can only be built through `parse`, so an invalid one cannot exist.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ValueError;

/// Declares a trimmed, length-limited text newtype.
///
/// `pattern` is the JSON Schema form of the character rule of [`parse_text`] (no control
/// characters; line breaks and tabs allowed only when `max > 200`), for the `openapi` feature.
/// `min`, `max` and `pattern` are single literal tokens: utoipa's attribute parser does not look
/// inside the invisible groups an `expr` or `literal` fragment would make.
macro_rules! text {
    (
        $(#[$doc:meta])* $name:ident, field = $field:literal, min = $min:tt, max = $max:tt,
        pattern = $pattern:tt
    ) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[cfg_attr(
            feature = "openapi",
            derive(utoipa::ToSchema),
            schema(min_length = $min, max_length = $max, pattern = $pattern)
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Shortest length accepted, in characters.
            pub const MIN_CHARS: usize = $min;
            /// Longest length accepted, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Trims surrounding white space and checks the length and the characters.
            pub fn parse(raw: &str) -> Result<Self, ValueError> {
                parse_text(raw, $field, Self::MIN_CHARS, Self::MAX_CHARS).map(Self)
            }

            /// The text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn parse_text(raw: &str, field: &'static str, min: usize, max: usize) -> Result<String, ValueError> {
    let text = raw.trim();
    let len = text.chars().count();
    if len < min {
        return Err(if len == 0 {
            ValueError::Empty { field }
        } else {
            ValueError::TooShort {
                field,
                min,
                actual: len,
            }
        });
    }
    if len > max {
        return Err(ValueError::TooLong {
            field,
            max,
            actual: len,
        });
    }
    // Control characters other than line breaks and tabs have no place in names or notes, and
    // line breaks in a one-line value would allow header injection once it reaches an email.
    let multiline = max > 200;
    if text
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        return Err(ValueError::ControlCharacter { field });
    }
    Ok(text.to_owned())
}

text!(
    /// A name: of a tenant, role, company, site, template, portal, phase or person (1 to 120 chars,
    /// one line).
    Name, field = "name", min = 1, max = 120,
    pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
);
text!(
    /// A task or template task title (1 to 200 chars, one line).
    Title, field = "title", min = 1, max = 200,
    pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
);
text!(
    /// A longer description (0 to 10,000 chars, may span lines).
    Description, field = "description", min = 0, max = 10_000,
    pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
);
text!(
    /// A reason given for a manual block or for staff completing a client task (1 to 1,000 chars).
    Reason, field = "reason", min = 1, max = 1_000,
    pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
);
text!(
    /// A comment body (1 to 10,000 chars).
    CommentBody, field = "body", min = 1, max = 10_000,
    pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
);
text!(
    /// The text of a checklist item or survey question (1 to 500 chars).
    ItemText, field = "text", min = 1, max = 500,
    pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
);

/// An email address: trimmed, at most 254 characters, one `@` with a non-empty local part and a
/// domain of dot-separated labels. The domain is stored lower-case; the local part as given.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(min_length = 5, max_length = 254)
)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Longest address accepted (RFC 5321 path limit).
    pub const MAX_CHARS: usize = 254;

    /// Checks the shape of an address; it does not prove the mailbox exists.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let text = raw.trim();
        let invalid = |reason: &'static str| ValueError::InvalidEmail { reason };
        if text.is_empty() {
            return Err(ValueError::Empty { field: "email" });
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err(ValueError::TooLong {
                field: "email",
                max: Self::MAX_CHARS,
                actual: text.chars().count(),
            });
        }
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("contains white space or control characters"));
        }
        let Some((local, domain)) = text.rsplit_once('@') else {
            return Err(invalid("has no @"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(invalid("local part must be 1 to 64 characters"));
        }
        if local.contains(['<', '>', ',', ';', '"', '@', '(', ')', '[', ']', '\\']) {
            return Err(invalid("local part has characters not allowed"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty()
                    || l.len() > 63
                    || l.starts_with('-')
                    || l.ends_with('-')
                    || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
        {
            return Err(invalid("domain must be dot-separated labels such as example.com"));
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    /// The address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Days after activation at which a task falls due (0 to 3,650: ten years).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(minimum = 0, maximum = 3_650))]
#[serde(transparent)]
pub struct DayOffset(u16);

impl DayOffset {
    /// Largest offset accepted.
    pub const MAX: i64 = 3_650;

    /// Checks the offset is neither negative nor beyond [`Self::MAX`].
    pub fn parse(days: i64) -> Result<Self, ValueError> {
        if days < 0 {
            return Err(ValueError::NegativeOffset { days });
        }
        if days > Self::MAX {
            return Err(ValueError::OutOfRange {
                field: "due_offset_days",
                min: 0,
                max: Self::MAX,
                actual: days,
            });
        }
        Ok(Self(days as u16))
    }

    /// The number of days.
    #[must_use]
    pub const fn days(self) -> u16 {
        self.0
    }
}

impl<'de> Deserialize<'de> for DayOffset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(i64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A quantity of hours with two decimals (0.00 to 100,000.00), kept as hundredths so it compares
/// and sums exactly.
///
/// On the wire it is the number of hundredths, an integer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(minimum = 0, maximum = 10_000_000)
)]
#[serde(transparent)]
pub struct Hours(u32);

impl Hours {
    /// Largest number of hundredths accepted.
    pub const MAX_HUNDREDTHS: i64 = 10_000_000;

    /// From hundredths of an hour.
    pub fn from_hundredths(hundredths: i64) -> Result<Self, ValueError> {
        if !(0..=Self::MAX_HUNDREDTHS).contains(&hundredths) {
            return Err(ValueError::OutOfRange {
                field: "hours",
                min: 0,
                max: Self::MAX_HUNDREDTHS,
                actual: hundredths,
            });
        }
        Ok(Self(hundredths as u32))
    }

    /// From a decimal number of hours, rounded to the nearest hundredth.
    pub fn parse(hours: f64) -> Result<Self, ValueError> {
        if !hours.is_finite() {
            return Err(ValueError::NotANumber { field: "hours" });
        }
        let hundredths = (hours * 100.0).round();
        if hundredths < 0.0 || hundredths > Self::MAX_HUNDREDTHS as f64 {
            return Err(ValueError::OutOfRange {
                field: "hours",
                min: 0,
                max: Self::MAX_HUNDREDTHS,
                actual: hundredths as i64,
            });
        }
        Ok(Self(hundredths as u32))
    }

    /// Hundredths of an hour.
    #[must_use]
    pub const fn hundredths(self) -> u32 {
        self.0
    }

    /// As a decimal number of hours.
    #[must_use]
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

/// Priority of a task (ONB-1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Low.
    Low,
    /// Normal, the default.
    Normal,
    /// High.
    High,
    /// Critical.
    Critical,
}

crate::string_enum!(Priority {
    Low => "low",
    Normal => "normal",
    High => "high",
    Critical => "critical",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Acme  ").map(|n| n.to_string()), Ok("Acme".into()));
        assert_eq!(Name::parse("   "), Err(ValueError::Empty { field: "name" }));
        let long = "x".repeat(121);
        assert_eq!(
            Name::parse(&long),
            Err(ValueError::TooLong {
                field: "name",
                max: 120,
                actual: 121
            })
        );
        assert_eq!(Name::parse("a\nb"), Err(ValueError::ControlCharacter { field: "name" }));
        assert!(Description::parse("line one\nline two").is_ok());
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Jo.Smith@Example.COM ").map(|e| e.to_string()),
            Ok("Jo.Smith@example.com".into())
        );
        for bad in [
            "",
            "no-at",
            "@example.com",
            "a@b",
            "a@-b.com",
            "a b@c.com",
            "a@b..com",
            "x<y@e.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn offsets_and_hours() {
        assert_eq!(DayOffset::parse(-1), Err(ValueError::NegativeOffset { days: -1 }));
        assert!(DayOffset::parse(3_651).is_err());
        assert_eq!(DayOffset::parse(14).map(DayOffset::days), Ok(14));
        assert_eq!(Hours::parse(1.234).map(Hours::hundredths), Ok(123));
        assert!(Hours::parse(f64::NAN).is_err());
        assert!(Hours::parse(-0.5).is_err());
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<Name>("\"\"").is_err());
        assert!(serde_json::from_str::<DayOffset>("-3").is_err());
        assert!(serde_json::from_str::<Priority>("\"urgent\"").is_err());
    }
}
