//! Single-layer images for several platforms and the index that lists them, written
//! in the directory form of skopeo's `dir:` transport, which `skopeo copy --all`
//! pushes unchanged.

use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::image::image_tar;
use crate::names::{OWNER_LABEL, unique_name};

/// Media types of one manifest format: the index, the image manifest, the image
/// config and a gzip layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexFormat {
    /// OCI image index and OCI manifests, as `buildah manifest push --all` makes.
    Oci,
    /// Docker manifest list and Docker v2 schema 2 manifests.
    Docker,
}

struct MediaTypes {
    index: &'static str,
    manifest: &'static str,
    config: &'static str,
    layer: &'static str,
}

impl IndexFormat {
    fn media_types(self) -> MediaTypes {
        match self {
            IndexFormat::Oci => MediaTypes {
                index: "application/vnd.oci.image.index.v1+json",
                manifest: "application/vnd.oci.image.manifest.v1+json",
                config: "application/vnd.oci.image.config.v1+json",
                layer: "application/vnd.oci.image.layer.v1.tar+gzip",
            },
            IndexFormat::Docker => MediaTypes {
                index: "application/vnd.docker.distribution.manifest.list.v2+json",
                manifest: "application/vnd.docker.distribution.manifest.v2+json",
                config: "application/vnd.docker.container.image.v1+json",
                layer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
            },
        }
    }

    /// Returns the media type of the index (or manifest list) in this format.
    pub fn index_media_type(self) -> &'static str {
        self.media_types().index
    }

    /// Returns the media type of a platform's image manifest in this format.
    pub fn manifest_media_type(self) -> &'static str {
        self.media_types().manifest
    }
}

/// A content-addressed blob.
pub(crate) struct Blob {
    pub(crate) digest: String,
    pub(crate) bytes: Vec<u8>,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Self {
        Self {
            digest: sha256_digest(&bytes),
            bytes,
        }
    }
}

/// One platform's image: a unique layer, its config and its manifest. An attestation
/// has the platform `unknown/unknown` and names the image manifest it describes.
pub(crate) struct PlatformImage {
    /// `OS/ARCHITECTURE` or `OS/ARCHITECTURE/VARIANT`, such as `linux/arm64/v8`.
    pub(crate) platform: String,
    pub(crate) manifest: Blob,
    blobs: Vec<Blob>,
    /// For an attestation, the digest of the image manifest it describes.
    pub(crate) attests: Option<String>,
}

/// Shows the platform and the manifest digest, not the blobs.
impl std::fmt::Debug for PlatformImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.platform, self.manifest.digest)
    }
}

impl PlatformImage {
    /// Builds an image of unique content labelled with `platform`. Every platform gets
    /// the host's busybox, so only an image for the host's platform really runs.
    pub(crate) fn build(platform: &str, format: IndexFormat) -> Self {
        let types = format.media_types();
        let (os, architecture, variant) = split_platform(platform);
        let tar = image_tar(&unique_name("content"));
        let diff_id = sha256_digest(&tar);
        let layer = Blob::new(gzip(&tar));

        let mut config = json!({
            "architecture": architecture,
            "os": os,
            "config": {
                "Cmd": ["/busybox", "sleep", "3600"],
                "Labels": { OWNER_LABEL: std::process::id().to_string() },
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        });
        if let Some(variant) = variant {
            config["variant"] = json!(variant);
        }
        let config = Blob::new(to_bytes(&config));

        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": types.manifest,
            "config": descriptor(types.config, &config),
            "layers": [descriptor(types.layer, &layer)],
        });
        Self {
            platform: platform.to_owned(),
            manifest: Blob::new(to_bytes(&manifest)),
            blobs: vec![layer, config],
            attests: None,
        }
    }

    /// Builds an attestation manifest for `image` as BuildKit writes them: an OCI
    /// manifest whose one layer is an in-toto statement of unique content about the
    /// image, listed in the index with platform `unknown/unknown`.
    pub(crate) fn attestation(image: &PlatformImage) -> Self {
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{ "name": image.platform, "digest": { "sha256":
                image.manifest.digest.trim_start_matches("sha256:") } }],
            "predicate": { "buildType": unique_name("build") },
        });
        let layer = Blob::new(to_bytes(&statement));
        let config = json!({
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [layer.digest] },
        });
        let config = Blob::new(to_bytes(&config));

        let mut layer_descriptor = descriptor("application/vnd.in-toto+json", &layer);
        layer_descriptor["annotations"] =
            json!({ "in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2" });
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": [layer_descriptor],
        });
        Self {
            platform: "unknown/unknown".to_owned(),
            manifest: Blob::new(to_bytes(&manifest)),
            blobs: vec![layer, config],
            attests: Some(image.manifest.digest.clone()),
        }
    }
}

/// Returns the index (or manifest list) over `images`, in their order. Attestations
/// get BuildKit's annotations that name the kind and the image they describe.
pub(crate) fn build_index<'a>(
    images: impl IntoIterator<Item = &'a PlatformImage>,
    format: IndexFormat,
) -> Blob {
    let types = format.media_types();
    let manifests: Vec<Value> = images
        .into_iter()
        .map(|image| {
            let (os, architecture, variant) = split_platform(&image.platform);
            let media_type = match image.attests {
                Some(_) => "application/vnd.oci.image.manifest.v1+json",
                None => types.manifest,
            };
            let mut entry = descriptor(media_type, &image.manifest);
            entry["platform"] = json!({ "os": os, "architecture": architecture });
            if let Some(variant) = variant {
                entry["platform"]["variant"] = json!(variant);
            }
            if let Some(subject) = &image.attests {
                entry["annotations"] = json!({
                    "vnd.docker.reference.digest": subject,
                    "vnd.docker.reference.type": "attestation-manifest",
                });
            }
            entry
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": types.index,
        "manifests": manifests,
    });
    Blob::new(to_bytes(&index))
}

/// Writes `index` and the images it lists to `dir` in the `dir:` transport form
/// (version 1.1): the index as `manifest.json`, each platform manifest as
/// `HEX.manifest.json` and every other blob as `HEX`.
///
/// skopeo 1.9 reads from an OCI image layout only tags whose descriptor has an OCI
/// media type, so a Docker manifest list cannot be pushed from one.
pub(crate) fn write_dir<'a>(
    dir: &Path,
    index: &Blob,
    images: impl IntoIterator<Item = &'a PlatformImage>,
) {
    write_file(&dir.join("version"), b"Directory Transport Version: 1.1\n");
    write_file(&dir.join("manifest.json"), &index.bytes);
    for image in images {
        let hex = image.manifest.digest.trim_start_matches("sha256:");
        write_file(
            &dir.join(format!("{hex}.manifest.json")),
            &image.manifest.bytes,
        );
        for blob in &image.blobs {
            write_file(
                &dir.join(blob.digest.trim_start_matches("sha256:")),
                &blob.bytes,
            );
        }
    }
}

/// Splits `os/architecture[/variant]`. Panics on any other form.
fn split_platform(platform: &str) -> (&str, &str, Option<&str>) {
    let parts: Vec<&str> = platform.split('/').collect();
    match parts[..] {
        [os, architecture] => (os, architecture, None),
        [os, architecture, variant] => (os, architecture, Some(variant)),
        _ => panic!("invalid platform {platform:?}: expected OS/ARCH or OS/ARCH/VARIANT"),
    }
}

fn descriptor(media_type: &str, blob: &Blob) -> Value {
    json!({ "mediaType": media_type, "digest": blob.digest, "size": blob.bytes.len() })
}

fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON values serialize")
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes)
        .unwrap_or_else(|error| panic!("failed to write {}: {error}", path.display()));
}

/// Wraps `bytes` in gzip without compressing them. The layer media types name gzip,
/// and compressing busybox took about 0.2 s per image in a debug build.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::none());
    encoder
        .write_all(bytes)
        .expect("compressing into memory cannot fail");
    encoder
        .finish()
        .expect("compressing into memory cannot fail")
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!("sha256:{}", data_encoding::HEXLOWER.encode(&hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_splits_variant() {
        assert_eq!(split_platform("linux/amd64"), ("linux", "amd64", None));
        assert_eq!(
            split_platform("linux/arm64/v8"),
            ("linux", "arm64", Some("v8"))
        );
    }

    #[test]
    #[should_panic(expected = "invalid platform")]
    fn platform_without_architecture_panics() {
        split_platform("linux");
    }

    #[test]
    fn index_lists_platforms_in_order() {
        let images = [
            PlatformImage::build("linux/amd64", IndexFormat::Oci),
            PlatformImage::build("linux/arm64/v8", IndexFormat::Oci),
        ];

        let index = build_index(&images, IndexFormat::Oci);

        let parsed: Value = serde_json::from_slice(&index.bytes).expect("index is JSON");
        assert_eq!(
            parsed["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(
            parsed["manifests"][0]["digest"],
            images[0].manifest.digest.as_str()
        );
        assert_eq!(parsed["manifests"][0]["platform"]["architecture"], "amd64");
        assert_eq!(parsed["manifests"][1]["platform"]["variant"], "v8");
        assert_eq!(index.digest, sha256_digest(&index.bytes));
    }
}
