//! Merges the file, `INFLUX2TD_*` environment variables and flags into one TOML table, checking
//! every key against [`crate::keys`] on the way in.

use std::collections::HashMap;
use std::path::Path;

use toml::{Table, Value};

use crate::keys::{self, Kind};
use crate::{ConfigError, Problem};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(String),
    Env(String),
    Flag,
    Default,
}

impl Origin {
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::File(path) => format!(" (in {path})"),
            Self::Env(name) => format!(" (from {name})"),
            Self::Flag => " (from the command line)".to_owned(),
            Self::Default => String::new(),
        }
    }
}

/// The merged configuration, before validation.
#[derive(Debug, Default)]
pub struct Layers {
    values: HashMap<&'static str, Value>,
    origins: HashMap<&'static str, Origin>,
    problems: Vec<Problem>,
}

impl Layers {
    /// Reads and checks a TOML file.
    pub fn file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        self.toml_text(&text, &shown)
    }

    /// Checks and merges TOML text (`source` names it in messages).
    pub fn toml_text(&mut self, text: &str, source: &str) -> Result<(), ConfigError> {
        let table: Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: source.to_owned(),
            detail: e.to_string(),
        })?;
        self.table(&table, "", &Origin::File(source.to_owned()));
        Ok(())
    }

    fn table(&mut self, table: &Table, parent: &str, origin: &Origin) {
        for (name, value) in table {
            let path = if parent.is_empty() {
                name.clone()
            } else {
                format!("{parent}.{name}")
            };
            if let Value::Table(inner) = value
                && keys::TABLES.contains(&path.as_str())
            {
                self.table(inner, &path, origin);
                continue;
            }
            let Some(key) = keys::find(&path) else {
                self.unknown(&path, origin);
                continue;
            };
            if kind_matches(key.kind, value) {
                self.set(key.path, value.clone(), origin.clone());
            } else {
                self.problems.push(Problem {
                    key: key.path.to_owned(),
                    value: Some(shown_value(key, value)),
                    origin: origin.clone(),
                    message: format!("expected {}", key.kind.describe()),
                });
            }
        }
    }

    /// Applies `INFLUX2TD_*` variables; other variables are ignored, unknown `INFLUX2TD_*` ones
    /// are errors (a typo would otherwise be silently ignored).
    pub fn env(&mut self, variables: impl IntoIterator<Item = (String, String)>) {
        let mut variables: Vec<_> = variables
            .into_iter()
            .filter(|(name, _)| name.starts_with(keys::ENV_PREFIX))
            .filter(|(name, _)| !keys::NON_KEY_ENV_VARS.contains(&name.as_str()))
            .collect();
        variables.sort();
        for (name, text) in variables {
            let origin = Origin::Env(name.clone());
            match keys::find_env(&name) {
                Some(key) => self.set_text(key, &text, origin),
                None => self.problems.push(Problem {
                    key: name.clone(),
                    value: None,
                    origin: Origin::Default,
                    message: "unknown environment variable: no config key maps to it".to_owned(),
                }),
            }
        }
    }

    /// Applies `key=value` overrides from the command line.
    pub fn flags<'a>(&mut self, overrides: impl IntoIterator<Item = &'a str>) {
        for assignment in overrides {
            let Some((path, text)) = assignment.split_once('=') else {
                self.problems.push(Problem {
                    key: assignment.to_owned(),
                    value: None,
                    origin: Origin::Flag,
                    message: "expected KEY=VALUE".to_owned(),
                });
                continue;
            };
            let path = path.trim();
            match keys::find(path) {
                Some(key) => self.set_text(key, text, Origin::Flag),
                None => self.unknown(path, &Origin::Flag),
            }
        }
    }

    fn set_text(&mut self, key: &'static keys::Key, text: &str, origin: Origin) {
        let text = text.trim();
        if text.is_empty() {
            // An empty variable unsets the key, as in most container setups.
            self.values.remove(key.path);
            self.origins.remove(key.path);
            return;
        }
        let value = match key.kind {
            Kind::String => Some(Value::String(text.to_owned())),
            Kind::Integer => text.parse().ok().map(Value::Integer),
            Kind::Bool => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(Value::Boolean(true)),
                "false" | "0" | "no" | "off" => Some(Value::Boolean(false)),
                _ => None,
            },
            Kind::StringList => Some(Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::String(item.to_owned()))
                    .collect(),
            )),
        };
        match value {
            Some(value) => self.set(key.path, value, origin),
            None => self.problems.push(Problem {
                key: key.path.to_owned(),
                value: Some(if key.secret {
                    crate::secret::REDACTED.to_owned()
                } else {
                    text.to_owned()
                }),
                origin,
                message: format!("expected {}", key.kind.describe()),
            }),
        }
    }

    fn set(&mut self, path: &'static str, value: Value, origin: Origin) {
        self.values.insert(path, value);
        self.origins.insert(path, origin);
    }

    fn unknown(&mut self, path: &str, origin: &Origin) {
        let hint = keys::closest(path)
            .map(|candidate| format!("; did you mean {candidate}?"))
            .unwrap_or_default();
        self.problems.push(Problem {
            key: path.to_owned(),
            value: None,
            origin: origin.clone(),
            message: format!("unknown key{hint}"),
        });
    }

    pub(crate) fn take_problems(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.problems)
    }

    pub(crate) fn value(&self, path: &str) -> Option<&Value> {
        self.values.get(path)
    }

    pub(crate) fn origin(&self, path: &str) -> Origin {
        self.origins.get(path).cloned().unwrap_or(Origin::Default)
    }
}

fn kind_matches(kind: Kind, value: &Value) -> bool {
    match (kind, value) {
        (Kind::String, Value::String(_))
        | (Kind::Integer, Value::Integer(_))
        | (Kind::Bool, Value::Boolean(_)) => true,
        (Kind::StringList, Value::Array(items)) => items.iter().all(Value::is_str),
        _ => false,
    }
}

pub(crate) fn shown_value(key: &keys::Key, value: &Value) -> String {
    if key.secret {
        return crate::secret::REDACTED.to_owned();
    }
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
