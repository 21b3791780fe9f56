//! The edge's subcommands (`edge status`, `edge logs`, ...) and their arguments.

/// Management subcommands (they talk to a running edge's local API).
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run the edge (the default).
    Up {
        /// n2n-go's console-logging switch: accepted; logs always go to standard error.
        #[arg(long, short = 'l', hide = true)]
        stdout_log: bool,
    },
    /// Show the running edge's status.
    Status {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the running edge's peers as a table.
    Peers {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print stored log lines (needs log_store: true).
    Logs(LogsArgs),
    /// Forget the supernode identities seen before (all, or the one at ADDRESS), so the next
    /// contact trusts what it finds: after a supernode's identity really changed.
    TrustSupernode {
        /// The supernode address (host:port as configured, resolved).
        address: Option<std::net::SocketAddr>,
    },
    /// n2n-go's management commands: status, ping, peers, logs, help.
    #[command(hide = true)]
    Ctl {
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Which stored log lines `edge logs` prints.
#[derive(clap::Args, Debug, Clone)]
pub struct LogsArgs {
    /// At most the newest N lines (n2n-go: --count, --limit).
    #[arg(
        long,
        short = 'n',
        default_value_t = 100,
        visible_alias = "count",
        alias = "limit",
        short_alias = 'l'
    )]
    pub last: i64,
    /// Only lines from then on: a time ago (90s, 1h, 2d) or a time (2026-12-01T10:00:00Z).
    #[arg(long, short = 's')]
    pub since: Option<String>,
    /// Only lines up to then, in the same forms (n2n-go: --between -s A -e B).
    #[arg(long, short = 'e', alias = "end")]
    pub until: Option<String>,
    /// Minimum level: error, warn, info, debug, trace.
    #[arg(long, default_value = "trace")]
    pub level: String,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// n2n-go's pretty switch: text is the default here.
    #[arg(long, short = 'p', hide = true)]
    pub pretty: bool,
}

/// A time given as a span ago (`90s`, `1h`, `2d`) or as an RFC 3339 time, in Unix ms.
pub fn parse_when(spec: &str, now: std::time::SystemTime) -> Result<i64, String> {
    let at = match humantime::parse_duration(spec) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(std::time::UNIX_EPOCH),
        Err(_) => humantime::parse_rfc3339_weak(spec).map_err(|_| {
            format!(
                "{spec:?}: want a time ago like 90s, 1h, 2d or a time like 2026-12-01T10:00:00Z"
            )
        })?,
    };
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0))
}
