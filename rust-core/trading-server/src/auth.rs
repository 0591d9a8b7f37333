//! Bearer tokens and roles (`docs/GRPC.md`, "Authentication"). The client token
//! (`server.auth_token`, or read from `server.auth_token_file`) opens the trading calls; the
//! operator token (`server.operator_token[_file]`) opens them too, and when it is set only it
//! opens the administrative calls (`UpdateConfig`, `Replica.*`): the client token gets
//! `PERMISSION_DENIED` there. Without an operator token every call falls under the client token
//! (single-role mode). Health calls need no token. Tokens are compared in constant time and are
//! never logged.

use chan_core::ChanError;
use tonic::metadata::MetadataMap;
use tonic::Status;
use trading_config::ServerConfig;

use crate::server::ServerError;
use crate::status;

/// Which credential a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Analyze, Stream, `GetSnapshot`, `GetInfo`, `GetConfig`.
    Trading,
    /// `UpdateConfig` and the `Replica` calls.
    Admin,
}

/// The tokens in force (`None`: not set).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    client: Option<String>,
    operator: Option<String>,
}

// Secrets stay out of debug output.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("client", &self.client.is_some())
            .field("operator", &self.operator.is_some())
            .finish()
    }
}

/// Reads a token file: its text with trailing whitespace stripped; an empty one is an error.
/// The error names the key and the path, never the contents.
fn read_token(key: &'static str, path: &str) -> Result<String, ServerError> {
    let fail = |message: String| {
        ServerError::Config(ChanError::Config {
            key: key.into(),
            message,
        })
    };
    let data = std::fs::read(path).map_err(|e| fail(format!("cannot read {path}: {e}")))?;
    let text = String::from_utf8(data).map_err(|_| fail(format!("{path} is not UTF-8 text")))?;
    let token = text.trim_end();
    if token.is_empty() {
        return Err(fail(format!("{path} is empty")));
    }
    Ok(token.to_owned())
}

impl Tokens {
    /// The tokens of the `server` section, the files read now (when the server starts).
    pub fn load(s: &ServerConfig) -> Result<Self, ServerError> {
        let pick = |value: &str, key: &'static str, file: &str| {
            if file.is_empty() {
                Ok((!value.is_empty()).then(|| value.to_owned()))
            } else {
                read_token(key, file).map(Some)
            }
        };
        Ok(Self {
            client: pick(&s.auth_token, "server.auth_token_file", &s.auth_token_file)?,
            operator: pick(
                &s.operator_token,
                "server.operator_token_file",
                &s.operator_token_file,
            )?,
        })
    }

    /// Whether any token is required.
    pub fn any(&self) -> bool {
        self.client.is_some() || self.operator.is_some()
    }

    /// Whether an operator token is set.
    pub fn has_operator(&self) -> bool {
        self.operator.is_some()
    }

    /// Checks `authorization: Bearer <token>` for a call of `role`.
    pub fn check(&self, metadata: &MetadataMap, role: Role) -> Result<(), Status> {
        let given = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_at_checked(7)?;
                scheme
                    .eq_ignore_ascii_case("bearer ")
                    .then_some(rest.as_bytes())
            });
        let is =
            |t: &Option<String>| matches!((given, t), (Some(g), Some(t)) if same(g, t.as_bytes()));
        let (client, operator) = (is(&self.client), is(&self.operator));
        let unauthenticated = || Err(Status::unauthenticated(status::UNAUTHENTICATED));
        match (role, &self.operator) {
            (Role::Admin, Some(_)) if operator => Ok(()),
            (Role::Admin, Some(_)) if client => {
                Err(Status::permission_denied(status::PERMISSION_DENIED))
            }
            (Role::Admin, Some(_)) => unauthenticated(),
            _ if self.client.is_none() || client || operator => Ok(()),
            _ => unauthenticated(),
        }
    }
}

/// Compares two tokens in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn md(token: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(t) = token {
            m.insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        m
    }

    fn code(t: &Tokens, token: Option<&str>, role: Role) -> Code {
        t.check(&md(token), role)
            .err()
            .map_or(Code::Ok, |s| s.code())
    }

    #[test]
    fn roles() {
        use Code::*;
        let t = Tokens {
            client: Some("c".into()),
            operator: Some("o".into()),
        };
        for (token, trading, admin) in [
            (Some("c"), Ok, PermissionDenied),
            (Some("o"), Ok, Ok),
            (Some("x"), Unauthenticated, Unauthenticated),
            (None, Unauthenticated, Unauthenticated),
        ] {
            assert_eq!(code(&t, token, Role::Trading), trading, "{token:?}");
            assert_eq!(code(&t, token, Role::Admin), admin, "{token:?}");
        }
        // Single-role mode: every call under the client token.
        let single = Tokens {
            client: Some("c".into()),
            operator: None,
        };
        assert_eq!(code(&single, Some("c"), Role::Admin), Ok);
        assert_eq!(code(&single, None, Role::Admin), Unauthenticated);
        // Only an operator token: trading calls are open, administrative ones need it.
        let op = Tokens {
            client: None,
            operator: Some("o".into()),
        };
        assert_eq!(code(&op, None, Role::Trading), Ok);
        assert_eq!(code(&op, None, Role::Admin), Unauthenticated);
        assert_eq!(code(&op, Some("o"), Role::Admin), Ok);
        assert_eq!(code(&Tokens::default(), None, Role::Admin), Ok);
        assert_eq!(format!("{t:?}"), "Tokens { client: true, operator: true }");
    }

    #[test]
    fn token_files_are_read_stripped_and_must_hold_a_token() {
        let dir = std::env::temp_dir().join(format!("trading-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("op");
        std::fs::write(&good, "s3cret \n").unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let mut s = ServerConfig {
            operator_token_file: good.to_str().unwrap().into(),
            auth_token: "c".into(),
            ..Default::default()
        };
        let t = Tokens::load(&s).unwrap();
        assert_eq!(t.operator.as_deref(), Some("s3cret"));
        assert_eq!(t.client.as_deref(), Some("c"));
        s.operator_token_file = empty.to_str().unwrap().into();
        let e = Tokens::load(&s).unwrap_err().to_string();
        assert!(
            e.contains("server.operator_token_file") && e.contains("empty"),
            "{e}"
        );
        s.operator_token_file = dir.join("missing").to_str().unwrap().into();
        let e = Tokens::load(&s).unwrap_err().to_string();
        assert!(
            e.contains("server.operator_token_file") && e.contains("missing"),
            "{e}"
        );
        assert!(!e.contains("s3cret"));
    }
}
