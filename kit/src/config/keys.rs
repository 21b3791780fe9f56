//! [`settings!`](crate::settings): one declaration per configuration key. From it come the
//! settings struct (file and environment), its defaults, the key list the environment is
//! filtered by, the command-line flags, and which keys only a restart changes.

/// Declares a daemon's settings, one entry per key:
///
/// ```text
/// n2n_kit::settings! {
///     /// The daemon's settings.
///     #[derive(Clone, Debug, PartialEq)]
///     pub struct Settings;
///     /// A flag per key (flattened into the daemon's `Flags`).
///     pub struct KeyFlags;
///     keys {
///         /// UDP port (0: any).          <- the key's doc, also the flag's help
///         restart local_port: u16 = 0, [long, alias = "port"] u16;
///         #[serde(with = "humantime_serde")]
///         live heartbeat: Duration = Duration::from_secs(10), [long] String;
///     }
///     file_only {
///         /// Not a flag and not in the environment.
///         communities: BTreeMap<String, Community> = BTreeMap::new(),
///     }
/// }
/// ```
///
/// `live` keys change with a reload, `restart` keys only at a restart. Each key is read from
/// the file under its name, from `N2N_<NAME>`, and from the flag (whose value type comes after
/// the clap attributes; it is turned into the key's type by serde, as the file's value is).
#[macro_export]
macro_rules! settings {
    (
        $(#[$smeta:meta])*
        pub struct $settings:ident;
        $(#[$fmeta:meta])*
        pub struct $flags:ident;
        keys {
            $(
                $(#[doc = $doc:literal])*
                $(#[serde($($serde:tt)*)])*
                $class:ident $key:ident : $ty:ty = $default:expr, [$($flag:tt)*] $fty:ty;
            )*
        }
        file_only {
            $(
                $(#[$emeta:meta])*
                $extra:ident : $ety:ty = $edefault:expr
            ),* $(,)?
        }
    ) => {
        $(#[$smeta])*
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $settings {
            $(
                $(#[doc = $doc])*
                $(#[serde($($serde)*)])*
                pub $key: $ty,
            )*
            $(
                $(#[$emeta])*
                pub $extra: $ety,
            )*
        }

        impl Default for $settings {
            fn default() -> Self {
                Self {
                    $($key: $default,)*
                    $($extra: $edefault,)*
                }
            }
        }

        impl $settings {
            /// The keys the environment may set, as `N2N_<KEY>`.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            /// The keys that take effect only at a restart.
            pub fn restart_only() -> Vec<&'static str> {
                let mut out = Vec::new();
                $($crate::__if_restart!($class { out.push(stringify!($key)); });)*
                out
            }

            /// The restart-only keys that differ from `running`.
            pub fn restart_only_changes(&self, running: &Self) -> Vec<&'static str> {
                let mut out = Vec::new();
                $($crate::__if_restart!($class {
                    if self.$key != running.$key {
                        out.push(stringify!($key));
                    }
                });)*
                out
            }

            /// These settings with the restart-only keys as `running` has them (what a
            /// reload applies).
            pub fn keeping_restart_only(mut self, running: &Self) -> Self {
                $($crate::__if_restart!($class {
                    self.$key = running.$key.clone();
                });)*
                self
            }
        }

        $(#[$fmeta])*
        #[derive(clap::Args, Debug, Default, serde::Serialize)]
        pub struct $flags {
            $(
                $(#[doc = $doc])*
                #[arg($($flag)*)]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $key: Option<$fty>,
            )*
        }
    };
}

/// `restart { tokens }` gives the tokens, `live { tokens }` nothing (used by `settings!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __if_restart {
    (restart { $($t:tt)* }) => { $($t)* };
    (live { $($t:tt)* }) => {};
}
