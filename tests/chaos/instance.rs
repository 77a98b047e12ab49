//! One `kairos serve` process of a scenario: a free port for it, waiting until it is ready,
//! and stopping it gently or hard.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One `kairos serve` process.
pub struct Instance {
    pub port: u16,
    child: Child,
}

impl Instance {
    /// Takes ownership of a started process listening on `port`.
    pub fn new(port: u16, child: Child) -> Self {
        Self { port, child }
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "instance on port {} did not exit within {limit:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process's id, which its instance name in the store carries (`kairos-<pid>-…`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL: no shutdown of any kind.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("a Linux pid"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM delivered");
        self.wait_for_exit(limit)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// A loopback port no process listens on now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// Waits (bounded) until the instance on `port` answers `/readyz` with 200.
pub async fn wait_ready(http: &reqwest::Client, port: u16, logs: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await;
        if ready.is_ok_and(|response| response.status() == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "instance on port {port} not ready within 60 s; see {}",
            logs.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
