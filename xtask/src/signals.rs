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
