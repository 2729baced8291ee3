//! Unique images made with `docker import` and pushed with `docker push` (and, where a
//! test needs another manifest for them, with `skopeo`), removed from the engine on `Drop`.

use std::process::Command;
use std::sync::OnceLock;

use crate::command::{docker, run, run_with_input, try_run};
use crate::index_content::sha256_digest;
use crate::names::{OWNER_LABEL, temp_dir, unique_name};
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
    credentials: Option<Credentials>,
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
            credentials: credentials.cloned(),
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
            credentials: None,
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

    /// Pushes the manifest of the last push again to `repository:tag` on the same
    /// registry, re-serialised with indentation, and returns its digest. Config and
    /// layers are unchanged, so the tag gets a new manifest digest for the same image,
    /// as when another tool pushes it. The engine records that digest only after
    /// [`TestImage::pull`].
    pub fn push_reserialised(&self, repository: &str, tag: &str) -> String {
        let dir = temp_dir("manifest");
        let source = format!(
            "docker://{}/{}@{}",
            self.host(),
            self.repository(),
            self.digest()
        );
        self.skopeo_copy(&source, &format!("dir:{}", dir.path().display()), &[]);

        let manifest_path = dir.path().join("manifest.json");
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&manifest_path).expect("skopeo wrote manifest.json"),
        )
        .expect("the manifest is JSON");
        let bytes = serde_json::to_vec_pretty(&manifest).expect("JSON values serialize");
        std::fs::write(&manifest_path, &bytes).expect("failed to rewrite manifest.json");

        let destination = format!("docker://{}/{repository}:{tag}", self.host());
        let source = format!("dir:{}", dir.path().display());
        self.skopeo_copy(&source, &destination, &["--preserve-digests"]);
        sha256_digest(&bytes)
    }

    /// Points `repository:tag` on the image's registry at the manifest `digest` of
    /// `repository`, which the registry must already have.
    pub fn tag_in_registry(&self, repository: &str, digest: &str, tag: &str) {
        let source = format!("docker://{}/{repository}@{digest}", self.host());
        let destination = format!("docker://{}/{repository}:{tag}", self.host());
        self.skopeo_copy(&source, &destination, &["--preserve-digests"]);
    }

    /// Copies the manifest and layers of the last push to the same repository and tag
    /// on `host`, a registry without auth, keeping the digest, as a mirror or a CDN
    /// serves them.
    pub fn mirror_to(&self, host: &str) {
        let source = format!(
            "docker://{}/{}@{}",
            self.host(),
            self.repository(),
            self.digest()
        );
        let tag = self
            .reference
            .rsplit_once(':')
            .map_or("latest", |(_, tag)| tag);
        let destination = format!("docker://{host}/{}:{tag}", self.repository());
        self.skopeo_copy(&source, &destination, &["--preserve-digests"]);
    }

    /// Pushes the image again under its reference as an OCI manifest (`skopeo copy
    /// --format oci`) and pulls it, so the engine has an image pulled from an OCI
    /// manifest. skopeo rewrites the config, so the image ID changes too. Returns the
    /// new manifest digest.
    pub fn convert_to_oci(&mut self) -> &str {
        let reference = format!("docker://{}", self.reference);
        let digest_file = temp_dir("digest");
        let digest_path = digest_file.path().join("digest");
        let digest_arg = format!("--digestfile={}", digest_path.display());
        self.skopeo_copy(&reference, &reference, &["--format=oci", &digest_arg]);
        let digest = std::fs::read_to_string(&digest_path).expect("skopeo wrote the digest");
        self.digest = Some(digest.trim().to_owned());
        self.pull(&self.reference.clone());
        self.digest()
    }

    /// Runs `docker pull REFERENCE` with the image's registry credentials and keeps the
    /// pulled image ID for removal on `Drop`. Returns the ID.
    pub fn pull(&mut self, reference: &str) -> String {
        let config = self
            .docker_config
            .as_ref()
            .expect("pulled images have a config dir");
        run(docker()
            .arg("--config")
            .arg(config.path())
            .args(["pull", "--quiet", reference]));
        let id = run(docker().args(["image", "inspect", "--format", "{{.Id}}", reference]));
        let id = id.trim().to_owned();
        if !self.ids.contains(&id) {
            self.ids.push(id.clone());
        }
        id
    }

    /// Returns `HOST[:PORT]` of the reference.
    pub fn host(&self) -> &str {
        self.reference.split_once('/').map_or("", |(host, _)| host)
    }

    /// Returns the repository of the reference, without host and tag.
    pub fn repository(&self) -> &str {
        let without_host = self
            .reference
            .split_once('/')
            .map_or(&*self.reference, |(_, rest)| rest);
        without_host
            .rsplit_once(':')
            .map_or(without_host, |(repository, _)| repository)
    }

    fn skopeo_copy(&self, source: &str, destination: &str, options: &[&str]) {
        let mut command = Command::new("skopeo");
        command
            .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .args(options);
        if let Some(credentials) = &self.credentials {
            let pair = format!("{}:{}", credentials.username, credentials.password);
            if source.contains(self.host()) {
                command.arg("--src-creds").arg(&pair);
            }
            if destination.contains(self.host()) {
                command.arg("--dest-creds").arg(&pair);
            }
        }
        run(command.arg(source).arg(destination));
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
pub(crate) fn image_tar(unique: &str) -> Vec<u8> {
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
