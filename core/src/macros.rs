//! The `string_enum!` macro: enums stored and sent as lower-case strings.

/// Gives an enum `as_str`, `ALL`, `Display` and `FromStr` over a fixed table of lower-case names,
/// the same names the databases' CHECK constraints list (for event kinds, the rows of the
/// `event_kind` table).
#[macro_export]
#[doc(hidden)]
macro_rules! string_enum {
    ($ty:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stored name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::error::ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($ty::$variant),)+
                    _ => Err($crate::error::ValueError::UnknownVariant {
                        kind: stringify!($ty),
                        value: s.chars().take(64).collect(),
                    }),
                }
            }
        }
    };
}
