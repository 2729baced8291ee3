//! Starts long-running child processes (the registry) so that they die with the test
//! process, even when it is killed and no `Drop` runs.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread;

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Spawns `command` with `PR_SET_PDEATHSIG` set to `SIGKILL`.
///
/// The kernel sends that signal when the thread that forked the child exits, not the
/// process. The fork therefore happens on one thread that lives as long as the test
/// process, so a child started from a short-lived test thread outlives that thread.
pub(crate) fn spawn_tied_to_process(command: Command) -> io::Result<Child> {
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("the process spawner thread has stopped"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the process spawner thread has stopped"))?
}

fn spawner() -> &'static Mutex<Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("imgstat-testkit-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(spawn_with_death_signal(&mut command));
                }
            })
            .expect("failed to start the process spawner thread");
        Mutex::new(tx)
    })
}

fn spawn_with_death_signal(command: &mut Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and calls only the
    // async-signal-safe functions prctl and getppid, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    command.spawn()
}
