//! Containers on the local Docker engine, removed on `Drop`.

use crate::command::{docker, run, try_run};
use crate::names::{OWNER_LABEL, unique_name};

/// A container without network (`--network none`), removed with `docker rm -f` on
/// `Drop`, also when the test panics.
#[derive(Debug)]
pub struct TestContainer {
    id: String,
    name: String,
}

impl TestContainer {
    /// Starts a container from `image` (a reference or an image ID) with the image's
    /// command. The name is `name` with a unique suffix.
    pub fn run(image: &str, name: &str) -> Self {
        Self::start_with(&["run", "--detach"], image, name)
    }

    /// Creates a container from `image` without starting it.
    pub fn create(image: &str, name: &str) -> Self {
        Self::start_with(&["create"], image, name)
    }

    fn start_with(subcommand: &[&str], image: &str, name: &str) -> Self {
        let name = unique_name(name);
        let label = format!("{OWNER_LABEL}={}", std::process::id());
        let output = run(docker()
            .args(subcommand)
            .args(["--network", "none", "--name", &name, "--label", &label])
            .arg(image));
        let id = output
            .lines()
            .last()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| panic!("docker printed no container id for {name}"))
            .to_owned();
        Self { id, name }
    }

    /// Returns the full container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops the container at once (`SIGKILL`) and leaves it in the `exited` state.
    pub fn stop(&self) {
        run(docker().args(["stop", "--time", "0", &self.id]));
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let removal = try_run(docker().args(["rm", "--force", "--volumes", &self.id]));
        if let Err(message) = removal
            && !message.contains("No such container")
        {
            eprintln!(
                "imgstat-testkit: failed to remove container {}: {message}",
                self.name
            );
        }
    }
}
