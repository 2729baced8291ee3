//! The status rules: facts about a container's image and the registry's responses in, a
//! status and its reason out. Pure functions, no I/O.

use std::collections::HashMap;
use std::fmt;

use oci_client::manifest::{ImageIndexEntry, OciImageIndex};
use serde::{Deserialize, Serialize};

use crate::reference::{ImageRef, looks_like_image_id};

/// The status of one container's image, or of a group of containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The registry has another image for the container's tag.
    Outdated,
    /// The container runs the image the registry has for its tag.
    Updated,
    /// The container cannot be checked (not found, pinned by digest, never pushed).
    Skipped,
    /// The check is still running in the background.
    Processing,
    /// A Swarm service whose tasks are not running yet.
    Preparing,
    /// The engine or the registry failed.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Outdated => "outdated",
            Status::Updated => "updated",
            Status::Skipped => "skipped",
            Status::Processing => "processing",
            Status::Preparing => "preparing",
            Status::Error => "error",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status and the reason for it, for people to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    pub reason: String,
}

impl Verdict {
    pub fn new(status: Status, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }
}

/// Combines the statuses of a group (a service's tasks, an environment): all `skipped` is
/// `skipped`, all `preparing` is `preparing`, else the first of `outdated`, `processing`,
/// `error` present wins, else `updated`. An empty group is `skipped`.
pub fn aggregate(statuses: impl IntoIterator<Item = Status>) -> Status {
    let statuses: Vec<Status> = statuses.into_iter().collect();
    let all = |wanted: Status| statuses.iter().all(|&s| s == wanted);
    let any = |wanted: Status| statuses.contains(&wanted);

    if all(Status::Skipped) {
        Status::Skipped
    } else if all(Status::Preparing) {
        Status::Preparing
    } else if any(Status::Outdated) {
        Status::Outdated
    } else if any(Status::Processing) {
        Status::Processing
    } else if any(Status::Error) {
        Status::Error
    } else {
        Status::Updated
    }
}

/// The platform an image was built for, as the engine's image inspect reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Normalises names as containerd does: `aarch64` is `arm64`, `x86_64` is `amd64`, and
    /// the default variant of each architecture (`v8` for arm64, `v7` for arm, `v1` for
    /// amd64) equals no variant.
    fn normalised(&self) -> (String, String, String) {
        let os = self.os.to_ascii_lowercase();
        let (architecture, implied_variant) = match self.architecture.to_ascii_lowercase().as_str()
        {
            "x86_64" | "x86-64" => ("amd64".to_owned(), None),
            "aarch64" => ("arm64".to_owned(), None),
            "armhf" => ("arm".to_owned(), Some("v7")),
            "armel" => ("arm".to_owned(), Some("v6")),
            "i386" | "i686" | "x86" => ("386".to_owned(), None),
            other => (other.to_owned(), None),
        };
        let variant = self
            .variant
            .as_deref()
            .filter(|v| !v.is_empty())
            .or(implied_variant)
            .unwrap_or_default()
            .to_ascii_lowercase();
        let variant = match (architecture.as_str(), variant.as_str()) {
            ("arm64", "v8") | ("amd64", "v1") => String::new(),
            ("arm", "") => "v7".to_owned(),
            (_, v) => v.to_owned(),
        };
        (os, architecture, variant)
    }

    /// Returns whether two platforms name the same os, architecture and variant.
    pub fn matches(&self, other: &Platform) -> bool {
        self.normalised() == other.normalised()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = self.variant.as_deref().filter(|v| !v.is_empty()) {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The engine's facts about a container's image.
#[derive(Clone, Debug, Default)]
pub struct ImageFacts {
    /// The image ID (config digest). Never compared with a manifest digest.
    pub id: String,
    pub repo_tags: Vec<String>,
    /// `name@digest` entries: the manifest digests the engine recorded on pull or push.
    pub repo_digests: Vec<String>,
    pub platform: Platform,
}

/// One reference to ask the registry about, with the local digests to compare against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// A reference with a tag (and maybe a pinned digest).
    pub reference: ImageRef,
    /// The manifest digests recorded for this reference's repository, and a pinned digest.
    pub local_digests: Vec<String>,
}

/// The next step for a container before the registry is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Ask the registry about these targets.
    Check(Vec<Target>),
    /// The status is known without the registry.
    Decided(Verdict),
}

/// Decides what to check for a container created from `config_image` (`Config.Image`)
/// whose image is `image`.
pub fn plan(config_image: &str, image: &ImageFacts) -> Plan {
    let references = match references_to_check(config_image, image) {
        Ok(references) => references,
        Err(verdict) => return Plan::Decided(verdict),
    };

    let mut targets = Vec::new();
    let mut first_skip = None;
    for reference in references {
        match target_for(reference, image) {
            Ok(target) => targets.push(target),
            Err(verdict) => {
                first_skip.get_or_insert(verdict);
            }
        }
    }
    match first_skip {
        Some(verdict) if targets.is_empty() => Plan::Decided(verdict),
        _ => Plan::Check(targets),
    }
}

/// The references a container is checked by: its `Config.Image`, or the image's tags when
/// `Config.Image` is empty or an image ID.
fn references_to_check(config_image: &str, image: &ImageFacts) -> Result<Vec<ImageRef>, Verdict> {
    let by_id = config_image.is_empty()
        || (looks_like_image_id(config_image) && is_prefix_of_id(config_image, &image.id));
    if !by_id {
        return ImageRef::parse(config_image)
            .map(|r| vec![r])
            .map_err(|e| Verdict::new(Status::Error, e.to_string()));
    }

    let references: Vec<ImageRef> = image
        .repo_tags
        .iter()
        .filter_map(|tag| ImageRef::parse(tag).ok())
        .collect();
    if references.is_empty() {
        return Err(Verdict::new(
            Status::Skipped,
            "the container was created from an image ID and the image has no tag",
        ));
    }
    Ok(references)
}

fn is_prefix_of_id(text: &str, image_id: &str) -> bool {
    let text = text.strip_prefix("sha256:").unwrap_or(text);
    let id = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    id.starts_with(text)
}

fn target_for(reference: ImageRef, image: &ImageFacts) -> Result<Target, Verdict> {
    if reference.tag().is_none() {
        return Err(Verdict::new(
            Status::Skipped,
            format!("{reference} is pinned by digest and has no tag to follow"),
        ));
    }

    let mut local_digests = repository_digests(&reference, &image.repo_digests);
    if let Some(pinned) = reference.digest()
        && !local_digests.iter().any(|d| d == pinned)
    {
        local_digests.push(pinned.to_owned());
    }

    if local_digests.is_empty() {
        let reason = if image.repo_digests.is_empty() {
            "the image has no registry digest: it was built locally or never pushed".to_owned()
        } else {
            format!(
                "the image has no registry digest for {}: it was not pulled from or pushed to it",
                reference.name()
            )
        };
        return Err(Verdict::new(Status::Skipped, reason));
    }
    Ok(Target {
        reference,
        local_digests,
    })
}

/// Returns the digests of `repo_digests` entries that name the repository of `reference`.
pub fn repository_digests(reference: &ImageRef, repo_digests: &[String]) -> Vec<String> {
    let mut digests = Vec::new();
    for entry in repo_digests {
        let Ok(recorded) = ImageRef::parse(entry) else {
            continue;
        };
        let Some(digest) = recorded.digest() else {
            continue;
        };
        if recorded.same_repository(reference) && !digests.iter().any(|d| d == digest) {
            digests.push(digest.to_owned());
        }
    }
    digests
}

/// The registry's answer for a tag: its digest and, when the `HEAD` gave one, its media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteDigest {
    pub digest: String,
    pub media_type: Option<String>,
}

/// A manifest fetched by digest, reduced to what the rules need.
#[derive(Clone, Debug)]
pub enum Manifest {
    /// A multi-platform index (OCI index or Docker manifest list).
    Index(OciImageIndex),
    /// A single-platform manifest, or anything else that is not an index.
    Single,
}

/// Manifests fetched by digest. Content-addressed, so an entry never goes stale.
pub type Manifests = HashMap<String, Manifest>;

/// The result of comparing local digests with the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Comparison {
    Decided(Verdict),
    /// Fetch these manifests by digest, put them into the map and compare again.
    Fetch(Vec<String>),
}

/// Returns whether a media type names a multi-platform index.
pub fn is_index_media_type(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or("").trim();
    essence == oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE
        || essence == oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE
}

/// Compares a target's local digests with the registry's digest for its tag.
///
/// A direct match is `updated`. When the remote manifest is an index, the entry for the
/// image's own platform decides: it is `updated` when it equals a local digest, or the
/// entry of the same platform in a local index (only other platforms changed).
/// Manifests not yet in `manifests` are returned as [`Comparison::Fetch`].
pub fn compare(
    target: &Target,
    platform: &Platform,
    remote: &RemoteDigest,
    manifests: &Manifests,
) -> Comparison {
    let local = &target.local_digests;
    if local.contains(&remote.digest) {
        return Comparison::Decided(Verdict::new(
            Status::Updated,
            format!("{} matches the registry", short(&remote.digest)),
        ));
    }

    let maybe_index = remote.media_type.as_deref().is_none_or(is_index_media_type);
    if !maybe_index {
        return Comparison::Decided(outdated(target, &remote.digest));
    }
    let remote_index = match manifests.get(&remote.digest) {
        None => return Comparison::Fetch(vec![remote.digest.clone()]),
        Some(Manifest::Single) => return Comparison::Decided(outdated(target, &remote.digest)),
        Some(Manifest::Index(index)) => index,
    };

    let Some(remote_entry) = platform_entry(remote_index, platform) else {
        return Comparison::Decided(Verdict::new(
            Status::Error,
            format!(
                "the registry's index for {} has no manifest for platform {platform}",
                target.reference
            ),
        ));
    };
    if local.contains(&remote_entry.digest) {
        return Comparison::Decided(Verdict::new(
            Status::Updated,
            format!(
                "{} for {platform} matches the registry",
                short(&remote_entry.digest)
            ),
        ));
    }

    let missing: Vec<String> = local
        .iter()
        .filter(|d| !manifests.contains_key(*d))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Comparison::Fetch(missing);
    }
    let same_platform_entry = local.iter().any(|digest| match manifests.get(digest) {
        Some(Manifest::Index(index)) => {
            platform_entry(index, platform).is_some_and(|e| e.digest == remote_entry.digest)
        }
        _ => false,
    });
    if same_platform_entry {
        return Comparison::Decided(Verdict::new(
            Status::Updated,
            format!("only platforms other than {platform} changed in the registry"),
        ));
    }
    Comparison::Decided(outdated(target, &remote.digest))
}

fn outdated(target: &Target, remote_digest: &str) -> Verdict {
    let local: Vec<&str> = target.local_digests.iter().map(|d| short(d)).collect();
    Verdict::new(
        Status::Outdated,
        format!(
            "the registry has {} for {}, and the local image is {}",
            short(remote_digest),
            target.reference,
            local.join(", ")
        ),
    )
}

/// The entry of `index` for `platform`. Entries without a platform and attestation entries
/// (`unknown/unknown`, as BuildKit writes them) are never chosen.
pub fn platform_entry<'a>(
    index: &'a OciImageIndex,
    platform: &Platform,
) -> Option<&'a ImageIndexEntry> {
    index.manifests.iter().find(|entry| {
        let Some(entry_platform) = &entry.platform else {
            return false;
        };
        if is_attestation(entry) {
            return false;
        }
        let candidate = Platform {
            os: entry_platform.os.to_string(),
            architecture: entry_platform.architecture.to_string(),
            variant: entry_platform.variant.clone(),
        };
        candidate.matches(platform)
    })
}

fn is_attestation(entry: &ImageIndexEntry) -> bool {
    let unknown_platform = entry
        .platform
        .as_ref()
        .is_some_and(|p| p.os.to_string() == "unknown" || p.architecture.to_string() == "unknown");
    let attestation_annotation = entry.annotations.as_ref().is_some_and(|a| {
        a.get("vnd.docker.reference.type")
            .is_some_and(|t| t == "attestation-manifest")
    });
    unknown_platform || attestation_annotation
}

/// Returns the first 12 hex digits of a digest, as `docker images` shows IDs.
pub fn short(digest: &str) -> &str {
    let hex_start = digest.find(':').map_or(0, |i| i + 1);
    let end = (hex_start + 12).min(digest.len());
    &digest[..end]
}

#[cfg(test)]
mod tests;
