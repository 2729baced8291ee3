//! Pull and push rights of the users of a [`crate::TokenServer`], and the check that
//! cuts a requested scope down to those rights.

use std::collections::HashMap;
use std::time::Duration;

use crate::Credentials;

/// Repositories matched by name: exactly, or by a prefix of the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoPattern {
    Exact(String),
    Prefix(String),
}

impl RepoPattern {
    pub fn matches(&self, repository: &str) -> bool {
        match self {
            RepoPattern::Exact(name) => repository == name,
            RepoPattern::Prefix(prefix) => repository.starts_with(prefix.as_str()),
        }
    }
}

/// Parses `"team/web"` as an exact name, and `"team/*"` or `"*"` as a prefix (the part
/// before the trailing `*`).
impl From<&str> for RepoPattern {
    fn from(pattern: &str) -> Self {
        match pattern.strip_suffix('*') {
            Some(prefix) => RepoPattern::Prefix(prefix.to_owned()),
            None => RepoPattern::Exact(pattern.to_owned()),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct User {
    password: String,
    pull: Vec<RepoPattern>,
    push: Vec<RepoPattern>,
}

/// Users, their passwords and repository rights, and the repositories anyone may pull
/// without credentials. Tokens live 300 seconds unless [`TokenPolicy::expires_in`]
/// sets another lifetime.
#[derive(Clone, Debug)]
pub struct TokenPolicy {
    users: HashMap<String, User>,
    anonymous_pull: Vec<RepoPattern>,
    pub(crate) expires_in: Duration,
    /// How far the token server's clock is behind when it signs (`iat`, `nbf`, `exp`).
    pub(crate) clock_behind: Duration,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            users: HashMap::new(),
            anonymous_pull: Vec::new(),
            expires_in: Duration::from_secs(300),
            clock_behind: Duration::ZERO,
        }
    }
}

impl TokenPolicy {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a user with no repository rights, or changes a known user's password.
    pub fn user(mut self, credentials: &Credentials) -> Self {
        self.add_user(credentials);
        self
    }

    /// Lets a known user pull the matching repositories. Panics on an unknown user.
    pub fn pull(mut self, username: &str, pattern: impl Into<RepoPattern>) -> Self {
        self.grant_pull(username, pattern.into());
        self
    }

    /// Lets a known user push and pull the matching repositories, as `docker push`
    /// needs both actions. Panics on an unknown user.
    pub fn push(mut self, username: &str, pattern: impl Into<RepoPattern>) -> Self {
        self.grant_push(username, pattern.into());
        self
    }

    /// Lets a request without credentials pull the matching repositories.
    pub fn anonymous_pull(mut self, pattern: impl Into<RepoPattern>) -> Self {
        self.anonymous_pull.push(pattern.into());
        self
    }

    /// Sets the lifetime of issued tokens (`expires_in` in the response, `exp` in the JWT).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = lifetime;
        self
    }

    pub(crate) fn add_user(&mut self, credentials: &Credentials) {
        let user = self.users.entry(credentials.username.clone()).or_default();
        user.password = credentials.password.clone();
    }

    pub(crate) fn grant_pull(&mut self, username: &str, pattern: RepoPattern) {
        self.known_user(username).pull.push(pattern);
    }

    pub(crate) fn grant_push(&mut self, username: &str, pattern: RepoPattern) {
        let user = self.known_user(username);
        user.pull.push(pattern.clone());
        user.push.push(pattern);
    }

    fn known_user(&mut self, username: &str) -> &mut User {
        self.users
            .get_mut(username)
            .unwrap_or_else(|| panic!("unknown token server user {username:?}: add it first"))
    }

    /// Tells whether the user exists and the password is right.
    pub(crate) fn authenticate(&self, username: &str, password: &str) -> bool {
        self.users
            .get(username)
            .is_some_and(|user| user.password == password)
    }

    /// Returns the scope with only the actions `username` (or an anonymous request, for
    /// `None`) may perform, or `None` when no requested action is allowed.
    pub(crate) fn grant(&self, username: Option<&str>, scope: &Scope) -> Option<Scope> {
        if scope.resource_type != "repository" {
            return None;
        }
        let actions: Vec<String> = scope
            .actions
            .iter()
            .filter(|action| self.allows(username, &scope.name, action))
            .cloned()
            .collect();
        if actions.is_empty() {
            return None;
        }
        Some(Scope {
            actions,
            ..scope.clone()
        })
    }

    fn allows(&self, username: Option<&str>, repository: &str, action: &str) -> bool {
        let matches = |patterns: &[RepoPattern]| patterns.iter().any(|p| p.matches(repository));
        let Some(username) = username else {
            return action == "pull" && matches(&self.anonymous_pull);
        };
        let Some(user) = self.users.get(username) else {
            return false;
        };
        match action {
            "pull" => matches(&user.pull) || matches(&self.anonymous_pull),
            "push" => matches(&user.push),
            _ => false,
        }
    }
}

/// One parsed scope such as `repository:team/web:pull,push`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scope {
    pub(crate) resource_type: String,
    pub(crate) name: String,
    pub(crate) actions: Vec<String>,
}

impl Scope {
    /// Parses `TYPE:NAME:ACTIONS`. The name is everything between the first and the
    /// last colon, so a name with a colon (a registry host with a port) stays whole.
    pub(crate) fn parse(scope: &str) -> Option<Self> {
        let (resource_type, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        Some(Self {
            resource_type: resource_type.to_owned(),
            name: name.to_owned(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
        })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.resource_type,
            self.name,
            self.actions.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> TokenPolicy {
        TokenPolicy::new()
            .user(&Credentials::new("alice", "a"))
            .user(&Credentials::new("bob", "b"))
            .pull("alice", "team/*")
            .push("bob", "team/web")
            .anonymous_pull("public/app")
    }

    fn scope(text: &str) -> Scope {
        Scope::parse(text).expect("valid scope")
    }

    #[test]
    fn pattern_parses_exact_and_prefix() {
        assert_eq!(RepoPattern::from("a/b"), RepoPattern::Exact("a/b".into()));
        assert_eq!(RepoPattern::from("a/*"), RepoPattern::Prefix("a/".into()));
        assert_eq!(RepoPattern::from("*"), RepoPattern::Prefix(String::new()));
    }

    #[test]
    fn scope_parses_name_with_colon() {
        let parsed = scope("repository:host:5000/app:pull,push");

        assert_eq!(parsed.resource_type, "repository");
        assert_eq!(parsed.name, "host:5000/app");
        assert_eq!(parsed.actions, ["pull", "push"]);
    }

    #[test]
    fn scope_without_actions_is_rejected() {
        assert_eq!(Scope::parse("repository"), None);
    }

    #[test]
    fn grant_cuts_actions_to_rights() {
        let policy = policy();
        let cases = [
            (
                Some("alice"),
                "repository:team/web:pull,push",
                Some("repository:team/web:pull"),
            ),
            (Some("alice"), "repository:other/web:pull", None),
            (
                Some("bob"),
                "repository:team/web:pull,push",
                Some("repository:team/web:pull,push"),
            ),
            (Some("bob"), "repository:team/api:pull", None),
            (
                Some("bob"),
                "repository:public/app:pull",
                Some("repository:public/app:pull"),
            ),
            (
                None,
                "repository:public/app:pull,push",
                Some("repository:public/app:pull"),
            ),
            (None, "repository:team/web:pull", None),
            (Some("mallory"), "repository:team/web:pull", None),
            (Some("alice"), "registry:catalog:*", None),
        ];

        for (user, requested, expected) in cases {
            let granted = policy.grant(user, &scope(requested)).map(|s| s.to_string());
            assert_eq!(
                granted.as_deref(),
                expected,
                "{user:?} requesting {requested}"
            );
        }
    }

    #[test]
    fn authenticate_checks_password() {
        let policy = policy();

        assert!(policy.authenticate("alice", "a"));
        assert!(!policy.authenticate("alice", "b"));
        assert!(!policy.authenticate("nobody", "a"));
    }
}
