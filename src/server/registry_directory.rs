//! The stored registries in memory, with their passwords opened: the credential source and
//! the options source of the server's registry client. The API reloads it after every
//! change, and each registry host whose entries changed is reported to the listeners, so
//! that the client forgets that host's tokens and options without a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures::future::BoxFuture;

use super::credential_key::{CredentialKey, SealError};
use super::store::{Store, StoreError};
use crate::credentials::{
    Credential, CredentialError, CredentialSource, RegistryLocation, best_match,
};
use crate::reference::canonical_registry;
use crate::registry::{RegistryOptions, RegistryOptionsSource};

/// One stored registry as the registry client uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    id: i64,
    location: RegistryLocation,
    credential: Option<Credential>,
    insecure: bool,
    ca_cert: Option<String>,
}

/// Callback that receives the host (as in normalised references) of every registry whose
/// entries changed.
type Listener = Box<dyn Fn(&str) + Send + Sync>;

/// The stored registries, loaded by [`RegistryDirectory::reload`].
#[derive(Default)]
pub struct RegistryDirectory {
    entries: RwLock<Arc<Vec<Entry>>>,
    listeners: Mutex<Vec<Listener>>,
    /// Serialises reloads, so that a slower reload never replaces a newer one's entries.
    reload_lock: tokio::sync::Mutex<()>,
}

/// Failure to load the stored registries.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("failed to read the stored registries")]
    Store(#[from] StoreError),

    #[error("failed to open the password of registry {id}")]
    Open {
        id: i64,
        #[source]
        source: SealError,
    },
}

impl RegistryDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `listener` with the host of each registry whose stored entries change in a
    /// later reload.
    pub fn on_change(&self, listener: impl Fn(&str) + Send + Sync + 'static) {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(listener));
    }

    /// Reads every stored registry, opens the passwords with `key`, and replaces the entries
    /// in memory. Nothing changes when a password does not open.
    pub async fn reload(&self, store: &Store, key: &CredentialKey) -> Result<(), ReloadError> {
        let _reloading = self.reload_lock.lock().await;

        let mut entries = Vec::new();
        for record in store.registries().await? {
            let password = record
                .open_password(key)
                .map_err(|source| ReloadError::Open {
                    id: record.id,
                    source,
                })?;
            let credential = match (record.username, password) {
                (Some(username), Some(password)) => Some(Credential::Basic { username, password }),
                _ => None,
            };
            entries.push(Entry {
                id: record.id,
                location: record.location,
                credential,
                insecure: record.insecure,
                ca_cert: record.ca_cert,
            });
        }

        let previous = {
            let mut current = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *current, Arc::new(entries))
        };
        let changed = changed_hosts(&previous, &self.snapshot());
        if !changed.is_empty() {
            tracing::debug!(hosts = ?changed, "stored registries changed");
        }
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for host in &changed {
            for listener in listeners.iter() {
                listener(host);
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Arc<Vec<Entry>> {
        Arc::clone(&self.entries.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Returns the id of the entry whose credentials apply to `repository` on `registry`.
    pub fn matching_entry(&self, registry: &str, repository: &str) -> Option<i64> {
        let entries = self.snapshot();
        best_match(
            entries.iter().map(|entry| (&entry.location, entry.id)),
            registry,
            repository,
        )
    }
}

/// Returns the hosts whose entries differ between `before` and `after`.
fn changed_hosts(before: &[Entry], after: &[Entry]) -> BTreeSet<String> {
    let by_host = |entries: &[Entry]| {
        let mut map: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for entry in entries {
            map.entry(entry.location.host().to_owned())
                .or_default()
                .push(entry.clone());
        }
        map
    };
    let before = by_host(before);
    let after = by_host(after);
    before
        .keys()
        .chain(after.keys())
        .filter(|host| before.get(*host) != after.get(*host))
        .cloned()
        .collect()
}

impl CredentialSource for RegistryDirectory {
    /// Returns the credentials of the entry with the longest path prefix that covers
    /// `repository` on the host `registry`, or `None` so that the request goes anonymous.
    /// An entry for another host never applies.
    fn lookup<'a>(
        &'a self,
        registry: &'a str,
        repository: &'a str,
    ) -> BoxFuture<'a, Result<Option<Credential>, CredentialError>> {
        let entries = self.snapshot();
        let found = best_match(
            entries.iter().map(|entry| (&entry.location, entry)),
            registry,
            repository,
        );
        let credential = found.and_then(|entry| {
            tracing::debug!(
                registry,
                repository,
                registry_id = entry.id,
                "stored registry matches"
            );
            entry.credential.clone()
        });
        Box::pin(async move { Ok(credential) })
    }
}

impl RegistryOptionsSource for RegistryDirectory {
    /// Combines the options of every entry for the host, because TLS and the scheme apply
    /// to the whole host: any entry with `Insecure` makes the host insecure, and the CA
    /// certificates of all its entries are trusted.
    fn options(&self, registry: &str) -> RegistryOptions {
        let host = canonical_registry(&registry.to_ascii_lowercase()).to_owned();
        let entries = self.snapshot();
        let mut options = RegistryOptions::default();
        let mut ca_certs: Vec<&str> = Vec::new();
        for entry in entries.iter().filter(|entry| entry.location.host() == host) {
            options.insecure |= entry.insecure;
            if let Some(pem) = entry.ca_cert.as_deref() {
                ca_certs.push(pem.trim_end());
            }
        }
        if !ca_certs.is_empty() {
            options.ca_certs_pem = Some(ca_certs.join("\n") + "\n");
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;

    fn entry(id: i64, url: &str, username: Option<&str>) -> Entry {
        Entry {
            id,
            location: RegistryLocation::parse(url).unwrap().location,
            credential: username.map(|username| Credential::Basic {
                username: username.to_owned(),
                password: Secret::new(format!("{username}-password")),
            }),
            insecure: false,
            ca_cert: None,
        }
    }

    fn directory(entries: Vec<Entry>) -> RegistryDirectory {
        let directory = RegistryDirectory::new();
        *directory.entries.write().unwrap() = Arc::new(entries);
        directory
    }

    async fn username_for(
        directory: &RegistryDirectory,
        registry: &str,
        repository: &str,
    ) -> Option<String> {
        match directory.lookup(registry, repository).await.unwrap() {
            Some(Credential::Basic { username, .. }) => Some(username),
            Some(other) => panic!("unexpected credential {other:?}"),
            None => None,
        }
    }

    #[tokio::test]
    async fn lookup_takes_longest_prefix_of_host() {
        let directory = directory(vec![
            entry(1, "registry.example.com", Some("host")),
            entry(2, "registry.example.com/team", Some("team")),
            entry(3, "registry.example.com:5000/team/app", Some("port")),
        ]);

        let cases = [
            ("registry.example.com", "team/app", Some("team")),
            ("registry.example.com", "teams/app", Some("host")),
            ("registry.example.com:5000", "team/app", Some("port")),
            ("registry.example.com:5000", "team/api", None),
            ("other.example.com", "team/app", None),
        ];
        for (registry, repository, expected) in cases {
            assert_eq!(
                username_for(&directory, registry, repository)
                    .await
                    .as_deref(),
                expected,
                "{registry}/{repository}"
            );
        }
    }

    #[tokio::test]
    async fn entry_without_credentials_shadows_host_entry() {
        let directory = directory(vec![
            entry(1, "registry.example.com", Some("host")),
            entry(2, "registry.example.com/public", None),
        ]);

        assert_eq!(
            username_for(&directory, "registry.example.com", "public/app").await,
            None
        );
        assert_eq!(
            directory.matching_entry("registry.example.com", "public/app"),
            Some(2)
        );
    }

    #[test]
    fn options_combine_entries_of_host() {
        let mut insecure = entry(1, "registry.example.com/a", None);
        insecure.insecure = true;
        insecure.ca_cert =
            Some("-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n".into());
        let mut with_ca = entry(2, "registry.example.com/b", None);
        with_ca.ca_cert = Some("-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----".into());
        let other = entry(3, "other.example.com", None);
        let directory = directory(vec![insecure, with_ca, other]);

        let options = directory.options("registry.example.com");
        assert!(options.insecure);
        let pem = options.ca_certs_pem.unwrap();
        assert!(pem.contains("\nA\n"), "{pem}");
        assert!(pem.contains("\nB\n"), "{pem}");
        assert_eq!(
            directory.options("other.example.com"),
            RegistryOptions::default()
        );
        assert_eq!(
            directory.options("third.example.com"),
            RegistryOptions::default()
        );
    }

    #[test]
    fn changed_hosts_lists_only_differences() {
        let before = vec![
            entry(1, "a.example.com", Some("x")),
            entry(2, "b.example.com/team", Some("y")),
        ];
        let mut after = before.clone();
        after[1].credential = None;
        after.push(entry(3, "c.example.com", None));

        let changed = changed_hosts(&before, &after);

        assert_eq!(
            changed.into_iter().collect::<Vec<_>>(),
            ["b.example.com", "c.example.com"]
        );
    }
}
