//! Stopping cleanly: every task that starts processes (the emulator, the service, the tests)
//! keeps them in guards that stop them when dropped, and `main` drops the running task when the
//! user or a supervisor asks xtask to stop.

/// Resolves with the signal's name when xtask is asked to stop: SIGINT (Ctrl-C), SIGTERM (an
/// IDE's stop button, `timeout`, systemd, a CI runner) or SIGHUP (the terminal went away).
pub async fn stop_requested() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut hangup = signal(SignalKind::hangup()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = received(&mut term) => "SIGTERM",
            _ = received(&mut hangup) => "SIGHUP",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// The next delivery of a signal, or never if it could not be registered.
#[cfg(unix)]
async fn received(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Make a child process stop (SIGTERM) when xtask dies, even by SIGKILL or a crash, when no
/// guard can run: Linux's parent-death signal. A no-op elsewhere.
pub fn stop_with_parent(command: &mut std::process::Command) -> &mut std::process::Command {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2),
        // which is async-signal-safe; it allocates nothing and touches no lock.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command
}

/// `command` as the leader of a process group of its own that stops as a whole (SIGTERM) when
/// xtask stops it or dies, even by SIGKILL. The parent-death signal reaches one process only,
/// so a shell leads the group, takes it, and passes it to every process in the group: a build
/// tool's cargo and compilers, not only the tool. Linux only (see [`stop_with_parent`]).
#[cfg(unix)]
pub fn group_stopping_with_parent(command: &std::process::Command) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    const LEAD: &str = r#"trap 'trap - TERM; kill -TERM 0' TERM; "$@" & wait $!"#;
    let mut group = std::process::Command::new("sh");
    group.args(["-c", LEAD, "sh"]).arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => group.env(key, value),
            None => group.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        group.current_dir(dir);
    }
    group.process_group(0);
    stop_with_parent(&mut group);
    group
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::{Duration, Instant};

    /// Whether `pid` has stopped (gone, or a zombie nobody reaped yet).
    fn stopped(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        }
    }

    #[test]
    fn a_group_stops_as_a_whole_when_the_thread_that_started_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // A child of the led command, as cargo is of cargo-lambda: it never gets the signal itself.
        let mut inner = std::process::Command::new("sh");
        inner.args(["-c", r#"sleep 300 & echo $! > "$1"; wait"#, "sh"]).arg(&pid_file);
        let mut group = super::group_stopping_with_parent(&inner);
        let file = pid_file.clone();
        // The parent-death signal follows the thread that started the process: ending the thread
        // stands in for xtask dying.
        let starter = std::thread::spawn(move || {
            let leader = group.spawn().unwrap();
            let started = Instant::now();
            while std::fs::read_to_string(&file).map_or(true, |pid| pid.trim().is_empty()) {
                assert!(started.elapsed() < Duration::from_secs(10), "the led command never started");
                std::thread::sleep(Duration::from_millis(20));
            }
            leader
        });
        let mut leader = starter.join().unwrap();
        let sleeper = std::fs::read_to_string(&pid_file).unwrap().trim().to_owned();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !stopped(&sleeper) {
            assert!(
                Instant::now() < deadline,
                "the group's grandchild {sleeper} outlived its starter by 5 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The leading shell stopped too, by the signal it passed on.
        let status = leader.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGTERM), "{status}");
    }
}
