//! Removes what earlier test processes left behind when they were killed before
//! their `Drop` ran.

use crate::command::{docker, run, try_run};
use crate::names::{OWNER_LABEL, TEMP_PREFIX, process_is_alive};

/// Removes the kit's containers, images and temporary directories whose creating
/// process no longer runs, and returns how many it removed. Objects of running
/// processes, such as parallel tests, are left alone.
///
/// The owner is the pid in the [`OWNER_LABEL`] label or the directory name, so this
/// assumes that every process sharing the Docker engine shares this pid namespace.
pub fn sweep_leftovers() -> usize {
    sweep_containers() + sweep_images() + sweep_temp_dirs()
}

fn sweep_containers() -> usize {
    let format = format!("{{{{.ID}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}");
    let output = run(docker()
        .args(["ps", "--all", "--filter"])
        .arg(format!("label={OWNER_LABEL}"))
        .args(["--format", &format]));
    let dead = dead_owned(&output);
    remove(&["rm", "--force", "--volumes"], &dead)
}

fn sweep_images() -> usize {
    let filter = format!("label={OWNER_LABEL}");
    let ids = run(docker().args([
        "images",
        "--all",
        "--quiet",
        "--no-trunc",
        "--filter",
        &filter,
    ]));
    let format = format!("{{{{.Id}}}} {{{{index .Config.Labels \"{OWNER_LABEL}\"}}}}");

    // One image at a time, because parallel tests remove their images meanwhile and
    // one missing image fails a whole `docker image inspect`.
    let owners: String = ids
        .split_whitespace()
        .filter_map(|id| try_run(docker().args(["image", "inspect", "--format", &format, id])).ok())
        .collect();
    let dead = dead_owned(&owners);
    remove(&["rmi", "--force"], &dead)
}

/// Returns the ids of lines `ID PID` whose pid is not a running process.
fn dead_owned(output: &str) -> Vec<String> {
    let mut ids: Vec<String> = output
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, pid)| pid.trim().parse().is_ok_and(|pid| !process_is_alive(pid)))
        .map(|(id, _)| id.to_owned())
        .collect();
    ids.dedup();
    ids
}

/// Removes each object on its own, so one that vanished meanwhile does not stop the
/// others, and returns how many were removed.
fn remove(subcommand: &[&str], ids: &[String]) -> usize {
    let mut removed = 0;
    for id in ids {
        match try_run(docker().args(subcommand).arg(id)) {
            Ok(_) => removed += 1,
            Err(message) if message.contains("No such") => {}
            Err(message) => eprintln!("imgstat-testkit: failed to remove leftover {id}: {message}"),
        }
    }
    removed
}

fn sweep_temp_dirs() -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(temp_dir_owner) else {
            continue;
        };
        if !process_is_alive(owner) && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Returns the pid in a directory name `imgstat-testkit-PID-…`.
fn temp_dir_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?;
    rest.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dir_owner_parses_pid() {
        assert_eq!(
            temp_dir_owner("imgstat-testkit-1234-registry-abc"),
            Some(1234)
        );
        assert_eq!(temp_dir_owner("imgstat-testkit-x-registry"), None);
        assert_eq!(temp_dir_owner("other-1234"), None);
    }

    #[test]
    fn dead_owned_keeps_live_processes() {
        let live = std::process::id();
        let output = format!("aaa {live}\nbbb 4000000000\nccc\n");

        assert_eq!(dead_owned(&output), ["bbb"]);
    }
}
