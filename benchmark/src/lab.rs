//! The namespace lab: a switch namespace with a bridge and four hosts on it, `sn`
//! (192.0.2.1), `a` (192.0.2.11), `b` (192.0.2.12) and `c` (192.0.2.13, the soak's churning
//! edges and junk source), veth offloads off so the native path is
//! the per-packet ceiling every overlay is held against (like ../shared/lab's
//! native-nooffload). Daemons started in it are stopped by PID and the namespaces deleted on
//! drop. Nothing in the lab has a route out of it.

use anyhow::{Context, bail};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A host of the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// The rendezvous host (supernode, lighthouse).
    Sn,
    /// The client side of every measurement.
    A,
    /// The server side.
    B,
    /// A third host (the soak's churn and junk).
    C,
}

/// Every host of the lab.
const HOSTS: [Host; 4] = [Host::Sn, Host::A, Host::B, Host::C];

impl Host {
    /// Its underlay address.
    pub fn ip(self) -> Ipv4Addr {
        match self {
            Host::Sn => Ipv4Addr::new(192, 0, 2, 1),
            Host::A => Ipv4Addr::new(192, 0, 2, 11),
            Host::B => Ipv4Addr::new(192, 0, 2, 12),
            Host::C => Ipv4Addr::new(192, 0, 2, 13),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Host::Sn => "sn",
            Host::A => "a",
            Host::B => "b",
            Host::C => "c",
        }
    }
}

/// A running lab.
pub struct Lab {
    prefix: String,
    dir: PathBuf,
    children: Vec<Child>,
    files: Vec<PathBuf>,
    keep: bool,
}

impl Lab {
    /// Keeps the lab's directory (logs) when it goes down, for a post-mortem.
    pub fn keep_files(&mut self) {
        self.keep = true;
    }

    /// Creates the namespaces; `prefix` keeps concurrent labs apart.
    pub fn up(prefix: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("{prefix}run-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let lab = Self {
            prefix: prefix.to_string(),
            dir,
            children: Vec::new(),
            files: Vec::new(),
            keep: false,
        };
        lab.build()
            .context("build the namespace lab (needs root)")?;
        Ok(lab)
    }

    fn build(&self) -> anyhow::Result<()> {
        let sw = self.sw();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (i, h) in HOSTS.into_iter().enumerate() {
            let ns = self.ns(h);
            let port = format!("p{i}");
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "link", "add", &port, "netns", &sw, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", h.ip()),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        self.set_offloads(false)?;
        // Some daemons (vpncloud) insist on a default route; it points at the lab's sn host,
        // which does not forward, so nothing leaves the lab.
        for h in [Host::A, Host::B, Host::C] {
            ip(&[
                "-n",
                &self.ns(h),
                "route",
                "add",
                "default",
                "via",
                &Host::Sn.ip().to_string(),
            ])?;
        }
        Ok(())
    }

    /// Turns TSO, GSO and GRO on or off on every veth of the lab (off: native is the
    /// per-packet ceiling; on: what the kernel does with a NIC that offloads).
    pub fn set_offloads(&self, on: bool) -> anyhow::Result<()> {
        let sw = self.sw();
        let state = if on { "on" } else { "off" };
        for (i, h) in HOSTS.into_iter().enumerate() {
            let (ns, port) = (self.ns(h), format!("p{i}"));
            for (n, dev) in [(&sw, port.as_str()), (&ns, "eth0")] {
                let st = Command::new("ip")
                    .args([
                        "netns", "exec", n, "ethtool", "-K", dev, "tso", state, "gso", state,
                        "gro", state,
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .context("run ethtool (scripts/setup.sh installs it)")?;
                if !st.success() {
                    bail!("ethtool could not turn offloads {state} on {dev} in {n}");
                }
            }
        }
        Ok(())
    }

    fn sw(&self) -> String {
        format!("{}sw", self.prefix)
    }

    /// The namespace name of `h`.
    pub fn ns(&self, h: Host) -> String {
        format!("{}{}", self.prefix, h.tag())
    }

    /// A scratch directory removed with the lab.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs a command in `h` to completion.
    pub fn exec(&self, h: Host, args: &[&str]) -> anyhow::Result<Output> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(h)])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {}", args.join(" ")))?;
        Ok(out)
    }

    /// Runs a command in `h` and fails with its stderr unless it succeeds.
    pub fn check(&self, h: Host, args: &[&str]) -> anyhow::Result<String> {
        let out = self.exec(h, args)?;
        if !out.status.success() {
            bail!(
                "`{}` in {}: {}",
                args.join(" "),
                self.ns(h),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts a daemon in `h` with its output in `<dir>/<log>`; returns its PID.
    pub fn spawn(&mut self, h: Host, args: &[&str], log: &str) -> anyhow::Result<u32> {
        let log = std::fs::File::create(self.dir.join(log))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(h)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", args.first().copied().unwrap_or_default()))?;
        // `ip netns exec` execs the command, so this is the daemon's own PID.
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Stops the daemon `pid` started by [`Lab::spawn`] with `signal` ("TERM", "KILL", "INT")
    /// and waits for it (at most 5 s, then SIGKILL); it is no longer the lab's.
    pub fn stop(&mut self, pid: u32, signal: &str) -> anyhow::Result<()> {
        let i = self
            .children
            .iter()
            .position(|c| c.id() == pid)
            .with_context(|| format!("pid {pid} is not a daemon of this lab"))?;
        let mut child = self.children.swap_remove(i);
        let _ = Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }

    /// Deletes `path` (a daemon's socket outside the lab directory) when the lab goes down.
    pub fn remove_on_drop(&mut self, path: PathBuf) {
        self.files.push(path);
    }

    /// Starts a short-lived helper in `h` (output discarded) that the caller waits for.
    pub fn child(&self, h: Host, args: &[&str]) -> anyhow::Result<Child> {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(h)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", args.join(" ")))
    }

    /// Fails if a daemon started here has exited, naming it and its log's tail.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for c in &mut self.children {
            if let Ok(Some(status)) = c.try_wait() {
                bail!("a daemon (pid {}) exited with {status}", c.id());
            }
        }
        Ok(())
    }

    /// The last lines of a log written by [`Lab::spawn`].
    pub fn log_tail(&self, log: &str) -> String {
        let s = std::fs::read_to_string(self.dir.join(log)).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines
            .get(lines.len().saturating_sub(5)..)
            .unwrap_or_default()
            .join("\n")
    }

    /// Waits until `from` gets ping answers from `to`.
    pub fn wait_ping(&self, from: Host, to: Ipv4Addr, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let to = to.to_string();
        while Instant::now() < deadline {
            let out = self.exec(from, &["ping", "-c", "1", "-W", "1", &to])?;
            if out.status.success() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "{to} did not answer pings from {} within {timeout:?}",
            self.ns(from)
        )
    }

    /// The MTU of `dev` in `h`.
    pub fn mtu(&self, h: Host, dev: &str) -> anyhow::Result<u32> {
        let s = self.check(h, &["ip", "-o", "link", "show", "dev", dev])?;
        s.split_whitespace()
            .skip_while(|w| *w != "mtu")
            .nth(1)
            .and_then(|m| m.parse().ok())
            .with_context(|| format!("no MTU in `{s}`"))
    }

    /// The first IPv4 address on `dev` in `h`, if any.
    pub fn ipv4(&self, h: Host, dev: &str) -> Option<Ipv4Addr> {
        let s = self
            .check(h, &["ip", "-4", "-o", "addr", "show", "dev", dev])
            .ok()?;
        s.split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            // SIGTERM first so daemons remove their devices and sockets.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for c in &mut self.children {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in HOSTS.map(|h| self.ns(h)).into_iter().chain([self.sw()]) {
            let _ = ip(&["netns", "del", &ns]);
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// CPU time (user + system) of `pid` in seconds, from /proc.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    n2n_kit::proc::cpu_seconds(n2n_kit::proc::Pid::Other(pid))
}

/// Peak resident memory (VmHWM) of `pid` in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    n2n_kit::proc::peak_rss_kib(n2n_kit::proc::Pid::Other(pid))
}

/// Resident memory (VmRSS) of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    n2n_kit::proc::rss_kib(n2n_kit::proc::Pid::Other(pid))
}
