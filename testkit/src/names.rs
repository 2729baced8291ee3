//! Unique names for everything the kit creates, so parallel tests and test processes
//! sharing one Docker engine never collide.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use tempfile::TempDir;

/// Docker label set on every image and container the kit creates. Its value is the
/// creating process's pid, which is how [`crate::sweep_leftovers`] tells leftovers of
/// dead processes from objects of running ones.
pub(crate) const OWNER_LABEL: &str = "imgstat-testkit.pid";

/// Prefix of the kit's temporary directories, followed by the owner's pid and a dash.
pub(crate) const TEMP_PREFIX: &str = "imgstat-testkit-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Returns `PREFIX-PID-COUNTER-RANDOM`, unique across threads and processes.
///
/// The result is lowercase whenever `prefix` is, so it is valid as a Docker container
/// name, repository path component and tag.
pub fn unique_name(prefix: &str) -> String {
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = fastrand::u32(..);
    format!("{prefix}-{}-{count}-{random:08x}", std::process::id())
}

/// Creates a temporary directory named after `kind` and this process's pid.
pub(crate) fn temp_dir(kind: &str) -> TempDir {
    let prefix = format!("{TEMP_PREFIX}{}-{kind}-", std::process::id());
    tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir()
        .unwrap_or_else(|error| panic!("failed to create a temporary directory {prefix}*: {error}"))
}

/// Tells whether a process with this pid exists on this machine.
pub(crate) fn process_is_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}
