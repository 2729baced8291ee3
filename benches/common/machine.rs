//! Facts about the machine and the load on it, for the benchmark pages. The fleet and
//! server benchmarks both include this file.

use std::process::Command;

/// Returns the facts about the machine that the page lists, each from the command or file
/// named.
pub fn machine_facts() -> Vec<(String, String)> {
    let cpu = read_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |count| count.get());
    let memory = read_field("/proc/meminfo", "MemTotal")
        .and_then(|value| value.trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or_else(
            || "unknown".into(),
            |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |text| text.trim().to_owned());
    let engine = command_output(
        "docker",
        &[
            "version",
            "--format",
            "{{.Server.Version}} (API {{.Server.APIVersion}}, {{.Server.Os}}/{{.Server.Arch}})",
        ],
    );
    let driver = command_output("docker", &["info", "--format", "{{.Driver}}"]);
    let registry = command_output("docker-registry", &["--version"]);
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let commit = command_output(
        "git",
        &["-C", manifest_dir, "describe", "--always", "--dirty"],
    );
    vec![
        ("CPU".into(), cpu),
        ("cores (`nproc`)".into(), cores.to_string()),
        ("memory".into(), memory),
        ("kernel".into(), kernel),
        ("Docker engine (`docker version`)".into(), engine),
        ("storage driver".into(), driver),
        ("registry".into(), registry),
        ("imgstat commit".into(), commit),
    ]
}

/// Returns the 1-minute load average from `/proc/loadavg`: other work on the machine
/// takes CPU from the engine, the registry and imgstat.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Returns the value of the first `NAME: value` line of a `/proc` file.
fn read_field(path: &str, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim().to_owned())
    })
}

/// Returns the trimmed stdout of a command, or why it failed.
fn command_output(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        Ok(output) => format!("`{program}` failed with {}", output.status),
        Err(error) => format!("`{program}` failed to start: {error}"),
    }
}
