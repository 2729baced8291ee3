//! Helpers shared by the integration tests: run `imgstat check` and read its JSON.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Command, Output};

use imgstat_testkit::DockerConfigDir;
use serde_json::Value;

/// Runs the `imgstat` binary with `args`, reading credentials from `config` only.
pub fn imgstat(config: &DockerConfigDir, args: &[&str]) -> Output {
    imgstat_with_env(config, &[], args)
}

/// Runs the `imgstat` binary with `args` and the environment variables `env`, reading
/// credentials from `config` only.
pub fn imgstat_with_env(config: &DockerConfigDir, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imgstat"))
        .args(args)
        .env("DOCKER_CONFIG", config.path())
        .env_remove("DOCKER_HOST")
        .env(
            "RUST_LOG",
            std::env::var("IMGSTAT_TEST_LOG").unwrap_or_default(),
        )
        .envs(env.iter().copied())
        .output()
        .expect("the imgstat binary runs")
}

/// Runs `imgstat check --json OPTIONS… NAMES…` and returns each report by container name.
pub fn check(config: &DockerConfigDir, options: &[&str], names: &[&str]) -> Reports {
    check_with_env(config, &[], options, names)
}

/// Runs `imgstat check --json OPTIONS… NAMES…` with the environment variables `env` and
/// returns each report by container name.
pub fn check_with_env(
    config: &DockerConfigDir,
    env: &[(&str, &str)],
    options: &[&str],
    names: &[&str],
) -> Reports {
    let mut args = vec!["check", "--json"];
    args.extend_from_slice(options);
    args.extend_from_slice(names);
    let output = imgstat_with_env(config, env, &args);
    // Shown by the test harness when the test fails.
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "imgstat check failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reports: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    Reports(
        reports
            .into_iter()
            .map(|r| (r["name"].as_str().unwrap().to_owned(), r))
            .collect(),
    )
}

/// The reports of one `imgstat check`, by container name.
#[derive(Debug)]
pub struct Reports(pub HashMap<String, Value>);

impl Reports {
    pub fn get(&self, name: &str) -> &Value {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("no report for {name} in {self:?}"))
    }

    pub fn status(&self, name: &str) -> &str {
        self.get(name)["status"].as_str().unwrap()
    }

    pub fn message(&self, name: &str) -> &str {
        self.get(name)["message"].as_str().unwrap()
    }

    pub fn remote_digest(&self, name: &str) -> Option<&str> {
        self.get(name)["remote_digest"].as_str()
    }

    pub fn local_digests(&self, name: &str) -> Vec<String> {
        self.get(name)["local_digests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect()
    }
}

/// Returns the `RepoDigests` of an image on an engine reached by `docker`, in the order
/// the engine lists them.
pub fn repo_digests(image: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            image,
        ])
        .output()
        .expect("failed to run docker image inspect");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("RepoDigests is a JSON array")
}

/// Runs `docker ARGS` and panics with its stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("failed to run docker");
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Returns the digest part of a `name@digest` entry.
pub fn digest_of(entry: &str) -> &str {
    entry.rsplit_once('@').map_or(entry, |(_, digest)| digest)
}
