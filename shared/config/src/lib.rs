//! Configuration, read once per cold start from environment variables, in small pieces: each
//! function (and each adapter) declares the pieces it needs (a struct of them implementing
//! [`FromEnv`]), so it requires only its own variables. Every variable is listed in the README.
//!
//! Nothing here calls `set_var`: the local tool and the tests configure a function through
//! [`Env::from_lookup`], by variable name, exactly as Lambda does through the process
//! environment. This crate depends on nothing of ours, so the adapters can use it without
//! pulling in the HTTP or database layers.

/// Why the configuration could not be read. Each variant names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl ConfigError {
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            reason: reason.into(),
        }
    }
}

/// Answers a variable's value by name.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Where variables are read from: the process environment, or a lookup function.
pub struct Env<'a> {
    lookup: Lookup<'a>,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl Env<'static> {
    /// The process environment.
    pub fn process() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

impl<'a> Env<'a> {
    /// Variables answered by `lookup` (the local tool and the tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
        }
    }

    /// A variable's value; an empty or blank value counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn require(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    /// A number in `range`, or `default` when unset.
    pub fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(text) = self.get(name) else {
            return Ok(default);
        };
        text.trim()
            .parse::<T>()
            .ok()
            .filter(|v| range.contains(v))
            .ok_or_else(|| {
                ConfigError::invalid(
                    name,
                    format!(
                        "expected a number between {} and {}",
                        range.start(),
                        range.end()
                    ),
                )
            })
    }

    /// A knob of the local stack and the tests only (a shorter window, a registry file): in
    /// Lambda it is not read at all, so a deployed function reads only what template.yaml sets.
    pub fn local_only(&self, name: &str) -> Option<String> {
        if self.in_lambda() {
            None
        } else {
            self.get(name)
        }
    }

    /// [`Env::number`] for a knob of the local stack and the tests: `default` in Lambda.
    pub fn local_number<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        if self.in_lambda() {
            Ok(default)
        } else {
            self.number(name, default, range)
        }
    }

    /// Whether we run inside AWS Lambda (the runtime sets `AWS_LAMBDA_FUNCTION_NAME`).
    pub fn in_lambda(&self) -> bool {
        self.get("AWS_LAMBDA_FUNCTION_NAME").is_some()
    }
}

/// A piece of configuration, or a function's whole configuration made of pieces.
pub trait FromEnv: Sized {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError>;

    /// Reads the process environment (a Lambda's `main`).
    fn from_process_env() -> Result<Self, ConfigError> {
        Self::from_env(&Env::process())
    }
}
