//! `HTTP_AUTH[_FILE]`: the user and password that the HTTP port's status
//! page (`/`) and `/metrics` ask for (HTTP basic authentication). Pure: the
//! HTTP server hands it the request's `Authorization` header.

use base64::Engine as _;
use subtle::ConstantTimeEq as _;

use crate::env::{ConfigError, Sourced};

/// What `HTTP_AUTH` accepts, for error lines.
pub const ACCEPTED: &str = "one line user:password (a docker secret through HTTP_AUTH_FILE), \
     the user without a colon, neither part empty";

/// The one user that may read `/` and `/metrics`.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpAuth {
    user: String,
    password: String,
}

impl std::fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAuth")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl HttpAuth {
    /// Parses `user:password`; the error names the variable, never the value.
    pub fn parse(s: &Sourced) -> Result<HttpAuth, ConfigError> {
        let bad = |problem: &str| ConfigError::Invalid {
            var: s.var.clone(),
            value: "<hidden>".into(),
            problem: problem.into(),
            accepted: ACCEPTED.into(),
        };
        let line = s.value.trim_end_matches(['\r', '\n']);
        if line.contains(['\r', '\n']) {
            return Err(bad("more than one line"));
        }
        let (user, password) = line.split_once(':').ok_or_else(|| bad("no colon"))?;
        if user.trim().is_empty() {
            return Err(bad("the user is empty"));
        }
        if password.is_empty() {
            return Err(bad("the password is empty"));
        }
        Ok(HttpAuth {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// The user's name (for the log: never the password).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// True when `header`, a request's `Authorization` value, carries this
    /// user and password (`Basic base64(user:password)`). The comparison
    /// takes the same time wherever the first difference is.
    pub fn allows(&self, header: Option<&[u8]>) -> bool {
        let Some(header) = header else { return false };
        let Some(encoded) = header
            .strip_prefix(b"Basic ")
            .or_else(|| header.strip_prefix(b"basic "))
        else {
            return false;
        };
        let Ok(given) = base64::engine::general_purpose::STANDARD.decode(encoded.trim_ascii())
        else {
            return false;
        };
        let expected = format!("{}:{}", self.user, self.password);
        bool::from(given.as_slice().ct_eq(expected.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sourced(value: &str) -> Sourced {
        Sourced {
            var: "HTTP_AUTH_FILE".into(),
            value: value.into(),
        }
    }

    fn basic(s: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
        .into_bytes()
    }

    #[test]
    fn the_user_and_password_open_the_door_and_nothing_else_does() {
        let auth = HttpAuth::parse(&sourced("admin:s3cret:with:colons\n")).unwrap();
        assert_eq!(auth.user(), "admin");
        assert!(auth.allows(Some(&basic("admin:s3cret:with:colons"))));
        for wrong in [
            "admin:s3cret",
            "admin:s3cret:with:colonsX",
            "Admin:s3cret:with:colons",
            "",
        ] {
            assert!(!auth.allows(Some(&basic(wrong))), "{wrong:?}");
        }
        assert!(!auth.allows(None));
        assert!(!auth.allows(Some(b"Bearer abc")));
        assert!(!auth.allows(Some(b"Basic not-base64!")));
    }

    #[test]
    fn a_bad_value_is_one_line_without_the_secret() {
        for (value, problem) in [
            ("nocolon-secretword", "no colon"),
            (":secretword", "the user is empty"),
            ("admin:", "the password is empty"),
            ("admin:secretword\nsecond:line", "more than one line"),
        ] {
            let e = HttpAuth::parse(&sourced(value)).unwrap_err().to_string();
            assert!(e.starts_with("HTTP_AUTH_FILE=<hidden>: "), "{e}");
            assert!(e.contains(problem), "{e}");
            assert!(!e.contains("secretword"), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let auth = HttpAuth::parse(&sourced("admin:secretword")).unwrap();
        let shown = format!("{auth:?}");
        assert!(
            shown.contains("admin") && !shown.contains("secretword"),
            "{shown}"
        );
    }
}
