//! Unique images made with `docker import` and pushed with `docker push`, removed from
//! the engine on `Drop`.

use std::sync::OnceLock;

use crate::command::{docker, run, run_with_input, try_run};
use crate::names::{OWNER_LABEL, unique_name};
use crate::{Credentials, DockerConfigDir, Registry};

/// The statically linked busybox copied into every image, so containers really run.
const BUSYBOX: &str = "/bin/busybox";

/// An image on the local engine, tagged `reference()`, and pushed unless it was built
/// with [`TestImage::build_local`].
///
/// Each image is one layer with `/busybox` and a file of unique content, so its ID
/// and manifest digest are unique, and its command is `/busybox sleep 3600`. `Drop`
/// removes every image this value built, tags included, with `docker rmi --force`.
/// Drop containers that use the images first, as Rust does for containers declared
/// after the image.
#[derive(Debug)]
pub struct TestImage {
    reference: String,
    digest: Option<String>,
    ids: Vec<String>,
    docker_config: Option<DockerConfigDir>,
}

impl TestImage {
    /// Builds an image, tags it `HOST/REPOSITORY:TAG` and pushes it to `registry` with
    /// the registry's [`Registry::push_credentials`].
    pub fn build(registry: &Registry, repository: &str, tag: &str) -> Self {
        Self::build_and_push(
            registry.host(),
            repository,
            tag,
            registry.push_credentials(),
        )
    }

    /// Builds an image, tags it `HOST/REPOSITORY:TAG` and pushes it to `host` (for
    /// example a [`crate::Proxy`]), logging in first when `credentials` are given.
    pub fn build_and_push(
        host: &str,
        repository: &str,
        tag: &str,
        credentials: Option<&Credentials>,
    ) -> Self {
        let docker_config = DockerConfigDir::new();
        if let Some(credentials) = credentials {
            docker_config.login(host, credentials);
        }

        let reference = format!("{host}/{repository}:{tag}");
        let mut image = Self {
            ids: vec![import(&reference)],
            reference,
            digest: None,
            docker_config: Some(docker_config),
        };
        image.digest = Some(image.push());
        image
    }

    /// Builds an image tagged `NAME-UNIQUE:latest` that is never pushed, so the engine
    /// records no repository digest for it.
    pub fn build_local(name: &str) -> Self {
        let reference = format!("{}:latest", unique_name(name));
        Self {
            ids: vec![import(&reference)],
            reference,
            digest: None,
            docker_config: None,
        }
    }

    /// Builds an image of new content under the same reference and pushes it, so the
    /// tag moves in the registry and on the engine. Returns the new manifest digest.
    ///
    /// The previous image stays on the engine, untagged but with its repository
    /// digest, as it does after a `docker pull` of a moved tag, until `Drop`.
    pub fn push_new_content(&mut self) -> &str {
        assert!(
            self.docker_config.is_some(),
            "{} was built with build_local and has no registry to push to",
            self.reference
        );
        self.ids.push(import(&self.reference));
        self.digest = Some(self.push());
        self.digest()
    }

    /// Returns `HOST/REPOSITORY:TAG`, or `NAME:latest` for a local image.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Returns the manifest digest (`sha256:…`) of the last push. Panics for an image
    /// built with [`TestImage::build_local`].
    pub fn digest(&self) -> &str {
        self.digest
            .as_deref()
            .unwrap_or_else(|| panic!("{} was never pushed and has no digest", self.reference))
    }

    /// Returns `HOST/REPOSITORY@DIGEST` for the last push.
    pub fn digest_reference(&self) -> String {
        let repository = self
            .reference
            .rsplit_once(':')
            .map_or(&*self.reference, |(name, _)| name);
        format!("{repository}@{}", self.digest())
    }

    /// Returns the image ID (`sha256:…`) of the image the reference now names.
    pub fn id(&self) -> &str {
        self.ids
            .last()
            .expect("a test image has at least one image")
    }

    /// Returns the IDs of every image built under this reference, oldest first.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    fn push(&self) -> String {
        let config = self
            .docker_config
            .as_ref()
            .expect("pushed images have a config dir");
        let output = run(docker()
            .arg("--config")
            .arg(config.path())
            .args(["push", &self.reference]));
        pushed_digest(&output).unwrap_or_else(|| {
            panic!(
                "no digest in the output of docker push {}:\n{output}",
                self.reference
            )
        })
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let mut command = docker();
        command.args(["rmi", "--force"]).args(&self.ids);
        if let Err(message) = try_run(&mut command)
            && !message.contains("No such image")
        {
            eprintln!(
                "imgstat-testkit: failed to remove images of {}: {message}",
                self.reference
            );
        }
    }
}

/// Imports a new unique image tagged `reference` and returns its ID.
fn import(reference: &str) -> String {
    let tar = image_tar(&unique_name("content"));
    let label = format!("LABEL {OWNER_LABEL}={}", std::process::id());
    let output = run_with_input(
        docker().args([
            "import",
            "--change",
            r#"CMD ["/busybox", "sleep", "3600"]"#,
            "--change",
            &label,
            "-",
            reference,
        ]),
        &tar,
    );
    output.trim().to_owned()
}

/// Returns a tar with `/busybox` and `/imgstat-testkit-id` containing `unique`.
fn image_tar(unique: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    append_file(&mut builder, "busybox", 0o755, busybox());
    append_file(&mut builder, "imgstat-testkit-id", 0o644, unique.as_bytes());
    builder
        .into_inner()
        .expect("writing a tar into memory cannot fail")
}

fn append_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, content: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    builder
        .append_data(&mut header, path, content)
        .expect("writing a tar into memory cannot fail");
}

fn busybox() -> &'static [u8] {
    static CONTENT: OnceLock<Vec<u8>> = OnceLock::new();
    CONTENT.get_or_init(|| {
        std::fs::read(BUSYBOX).unwrap_or_else(|error| {
            panic!("failed to read {BUSYBOX}: {error}; install busybox-static")
        })
    })
}

/// Finds the digest in `docker push` output, whose last line reads
/// `TAG: digest: sha256:… size: N`.
fn pushed_digest(output: &str) -> Option<String> {
    output.lines().rev().find_map(|line| {
        let (_, rest) = line.split_once("digest: ")?;
        let digest = rest.split_whitespace().next()?;
        digest.starts_with("sha256:").then(|| digest.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_digest_from_push_output() {
        let output = "The push refers to repository [127.0.0.1:5000/a]\n\
            5f70bf18a086: Pushed\n\
            1.0: digest: sha256:0123abcd size: 528\n";

        assert_eq!(pushed_digest(output).as_deref(), Some("sha256:0123abcd"));
    }

    #[test]
    fn pushed_digest_missing() {
        assert_eq!(pushed_digest("5f70bf18a086: Pushed\n"), None);
    }
}
