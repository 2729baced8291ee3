//! Multi-platform images: an index (or manifest list) pushed with `skopeo copy --all`,
//! optionally pulled onto the engine, and removed from it on `Drop`.

use std::process::Command;

use crate::command::{docker, run, try_run};
use crate::index_content::{IndexFormat, PlatformImage, build_index, write_dir};
use crate::names::temp_dir;
use crate::{Credentials, DockerConfigDir, Registry};

/// An index with one single-layer image per platform, pushed as `HOST/REPOSITORY:TAG`.
///
/// The bytes pushed are the bytes built, so [`TestIndex::digest`] and
/// [`TestIndex::platform_digest`] are the digests the registry serves. `Drop` removes
/// the images that [`TestIndex::pull`] put on the engine.
#[derive(Debug)]
pub struct TestIndex {
    host: String,
    repository: String,
    tag: String,
    format: IndexFormat,
    credentials: Option<Credentials>,
    images: Vec<PlatformImage>,
    /// Attestation manifests, one per image, listed before the images in the index.
    attestations: Vec<PlatformImage>,
    digest: String,
    pulled_ids: Vec<String>,
    docker_config: DockerConfigDir,
}

impl TestIndex {
    /// Builds one image per platform (`linux/amd64`, `linux/arm64/v8`, …) and pushes
    /// their index to `registry` with its [`Registry::push_credentials`].
    pub fn push(
        registry: &Registry,
        repository: &str,
        tag: &str,
        platforms: &[&str],
        format: IndexFormat,
    ) -> Self {
        let credentials = registry.push_credentials().cloned();
        Self::push_to(
            registry.host(),
            repository,
            tag,
            platforms,
            format,
            credentials,
        )
    }

    /// Builds and pushes an OCI index as BuildKit makes it with provenance on: each
    /// platform's image and an attestation manifest for each, with platform
    /// `unknown/unknown`. The attestations come first in the index, so a client that
    /// takes the first entry or treats `unknown` as a wildcard picks one of them.
    pub fn push_attested(
        registry: &Registry,
        repository: &str,
        tag: &str,
        platforms: &[&str],
    ) -> Self {
        let credentials = registry.push_credentials().cloned();
        Self::build(
            registry.host(),
            repository,
            tag,
            platforms,
            IndexFormat::Oci,
            credentials,
            true,
        )
    }

    /// Builds and pushes an index to `host` (for example a [`crate::Proxy`]).
    pub fn push_to(
        host: &str,
        repository: &str,
        tag: &str,
        platforms: &[&str],
        format: IndexFormat,
        credentials: Option<Credentials>,
    ) -> Self {
        Self::build(host, repository, tag, platforms, format, credentials, false)
    }

    fn build(
        host: &str,
        repository: &str,
        tag: &str,
        platforms: &[&str],
        format: IndexFormat,
        credentials: Option<Credentials>,
        attested: bool,
    ) -> Self {
        assert!(
            !platforms.is_empty(),
            "an index needs at least one platform"
        );
        let docker_config = DockerConfigDir::new();
        if let Some(credentials) = &credentials {
            docker_config.login(host, credentials);
        }
        let images: Vec<PlatformImage> = platforms
            .iter()
            .map(|platform| PlatformImage::build(platform, format))
            .collect();
        let attestations = if attested {
            images.iter().map(PlatformImage::attestation).collect()
        } else {
            Vec::new()
        };
        let mut index = Self {
            host: host.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            format,
            credentials,
            images,
            attestations,
            digest: String::new(),
            pulled_ids: Vec::new(),
            docker_config,
        };
        index.copy_to_registry();
        index
    }

    /// Rebuilds the images of `platforms` with new content, keeps the other platforms'
    /// manifests as they are, and pushes the new index under the same tag. Returns the
    /// new index digest. An attested index gets new attestations for the rebuilt images.
    pub fn push_new_content(&mut self, platforms: &[&str]) -> &str {
        let reference = self.reference();
        for platform in platforms {
            let position = self
                .images
                .iter()
                .position(|image| image.platform == *platform)
                .unwrap_or_else(|| panic!("{reference} has no platform {platform}"));
            let old_digest = self.images[position].manifest.digest.clone();
            let image = PlatformImage::build(platform, self.format);
            for attestation in &mut self.attestations {
                if attestation.attests.as_deref() == Some(old_digest.as_str()) {
                    *attestation = PlatformImage::attestation(&image);
                }
            }
            self.images[position] = image;
        }
        self.copy_to_registry();
        &self.digest
    }

    /// Rebuilds every attestation with new content and pushes the new index under the
    /// same tag, leaving the images as they are, as a rebuild with BuildKit does when
    /// the images are reproducible but the provenance records a new build. Returns
    /// the new index digest. Panics for an index pushed without attestations.
    pub fn push_new_attestations(&mut self) -> &str {
        assert!(
            !self.attestations.is_empty(),
            "{} was pushed without attestations",
            self.reference()
        );
        self.attestations = self.images.iter().map(PlatformImage::attestation).collect();
        self.copy_to_registry();
        &self.digest
    }

    /// Runs `docker pull --platform PLATFORM` of the tag, so the engine takes that
    /// platform's image, whatever the host's, and records the index digest. Returns
    /// the image ID. The image is removed on `Drop`.
    pub fn pull_platform(&mut self, platform: &str) -> String {
        run(docker()
            .arg("--config")
            .arg(self.docker_config.path())
            .args(["pull", "--quiet", "--platform", platform, &self.reference()]));
        self.record_pulled()
    }

    /// Runs `docker pull` of the tag, so the engine picks its own platform and records
    /// the index digest. Returns the image ID. The image is removed on `Drop`.
    pub fn pull(&mut self) -> String {
        run(docker()
            .arg("--config")
            .arg(self.docker_config.path())
            .args(["pull", "--quiet", &self.reference()]));
        self.record_pulled()
    }

    fn record_pulled(&mut self) -> String {
        let id = run(docker().args(["image", "inspect", "--format", "{{.Id}}", &self.reference()]));
        let id = id.trim().to_owned();
        self.pulled_ids.push(id.clone());
        id
    }

    /// Returns `HOST/REPOSITORY:TAG`.
    pub fn reference(&self) -> String {
        format!("{}/{}:{}", self.host, self.repository, self.tag)
    }

    /// Returns the digest of the index (or manifest list) last pushed.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Returns the digest of the attestation manifest for one platform's image. Panics
    /// on an unknown platform or an index without attestations.
    pub fn attestation_digest(&self, platform: &str) -> &str {
        let image = self.platform_digest(platform);
        self.attestations
            .iter()
            .find(|attestation| attestation.attests.as_deref() == Some(image))
            .map(|attestation| attestation.manifest.digest.as_str())
            .unwrap_or_else(|| panic!("{} has no attestation for {platform}", self.reference()))
    }

    /// Returns the manifest digest of one platform's image. Panics on an unknown platform.
    pub fn platform_digest(&self, platform: &str) -> &str {
        self.images
            .iter()
            .find(|image| image.platform == platform)
            .map(|image| image.manifest.digest.as_str())
            .unwrap_or_else(|| panic!("{} has no platform {platform}", self.reference()))
    }

    pub fn format(&self) -> IndexFormat {
        self.format
    }

    fn copy_to_registry(&mut self) {
        let entries = || self.attestations.iter().chain(&self.images);
        let index = build_index(entries(), self.format);
        let content_dir = temp_dir("index");
        write_dir(content_dir.path(), &index, entries());

        let mut command = Command::new("skopeo");
        command
            .args([
                "copy",
                "--all",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ])
            .arg(format!("dir:{}", content_dir.path().display()))
            .arg(format!("docker://{}", self.reference()));
        if let Some(credentials) = &self.credentials {
            command
                .arg("--dest-creds")
                .arg(format!("{}:{}", credentials.username, credentials.password));
        }
        run(&mut command);
        self.digest = index.digest;
    }
}

impl Drop for TestIndex {
    fn drop(&mut self) {
        if self.pulled_ids.is_empty() {
            return;
        }
        let mut command = docker();
        command.args(["rmi", "--force"]).args(&self.pulled_ids);
        if let Err(message) = try_run(&mut command)
            && !message.contains("No such image")
        {
            eprintln!(
                "imgstat-testkit: failed to remove pulled images of {}: {message}",
                self.reference()
            );
        }
    }
}
