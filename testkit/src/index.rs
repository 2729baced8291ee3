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

    /// Builds and pushes an index to `host` (for example a [`crate::Proxy`]).
    pub fn push_to(
        host: &str,
        repository: &str,
        tag: &str,
        platforms: &[&str],
        format: IndexFormat,
        credentials: Option<Credentials>,
    ) -> Self {
        assert!(
            !platforms.is_empty(),
            "an index needs at least one platform"
        );
        let docker_config = DockerConfigDir::new();
        if let Some(credentials) = &credentials {
            docker_config.login(host, credentials);
        }
        let images = platforms
            .iter()
            .map(|platform| PlatformImage::build(platform, format))
            .collect();
        let mut index = Self {
            host: host.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            format,
            credentials,
            images,
            digest: String::new(),
            pulled_ids: Vec::new(),
            docker_config,
        };
        index.copy_to_registry();
        index
    }

    /// Rebuilds the images of `platforms` with new content, keeps the other platforms'
    /// manifests as they are, and pushes the new index under the same tag. Returns the
    /// new index digest.
    pub fn push_new_content(&mut self, platforms: &[&str]) -> &str {
        let reference = self.reference();
        for platform in platforms {
            let image = self
                .images
                .iter_mut()
                .find(|image| image.platform == *platform)
                .unwrap_or_else(|| panic!("{reference} has no platform {platform}"));
            *image = PlatformImage::build(platform, self.format);
        }
        self.copy_to_registry();
        &self.digest
    }

    /// Runs `docker pull` of the tag, so the engine picks its own platform and records
    /// the index digest. Returns the image ID. The image is removed on `Drop`.
    pub fn pull(&mut self) -> String {
        run(docker()
            .arg("--config")
            .arg(self.docker_config.path())
            .args(["pull", "--quiet", &self.reference()]));
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
        let index = build_index(&self.images, self.format);
        let content_dir = temp_dir("index");
        write_dir(content_dir.path(), &index, &self.images);

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
