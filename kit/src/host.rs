//! Which HTTP `Host` values name this machine's loopback: the edge's local API answers
//! requests from this machine only when they name it so, and a web page cannot read it
//! through DNS rebinding.

use std::net::{IpAddr, Ipv6Addr};

/// True when `host` (a `Host` header: name or address, optional port) names loopback:
/// `localhost`, `*.localhost`, 127.0.0.0/8 or `[::1]`. An empty header (HTTP/1.0) counts too:
/// browsers always send one.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    if host.is_empty() {
        return true;
    }
    if let Some(rest) = host.strip_prefix('[') {
        return rest
            .split_once(']')
            .and_then(|(ip, _)| ip.parse::<Ipv6Addr>().ok())
            .is_some_and(|ip| ip.is_loopback());
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Axum middleware: a request that comes from this machine (loopback) must name loopback in
/// its `Host`, or it gets 421: a web page that rebinds its own name to 127.0.0.1 is refused,
/// wherever the API listens. Requests from other machines pass (on a LAN address the names
/// are the user's). Serve with `into_make_service_with_connect_info::<SocketAddr>()`;
/// without it every request is checked.
pub async fn loopback_host_only(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::ConnectInfo;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let local = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .is_none_or(|ConnectInfo(peer)| peer.ip().to_canonical().is_loopback());
    let host = match req.headers().get(header::HOST) {
        None => "",
        Some(h) => h.to_str().unwrap_or("?"),
    };
    if !local || is_loopback_host(host) {
        return next.run(req).await;
    }
    (
        StatusCode::MISDIRECTED_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":"requests from this machine must be addressed to localhost (Host header)"}"#,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_names_pass_and_everything_else_is_refused() {
        for ok in [
            "localhost",
            "localhost:7778",
            "LOCALHOST.",
            "app.localhost:80",
            "127.0.0.1",
            "127.0.0.1:7778",
            "127.8.9.10:1",
            "[::1]:7778",
            "[::1]",
            "",
        ] {
            assert!(is_loopback_host(ok), "{ok:?} refused");
        }
        for bad in [
            "evil.example",
            "evil.example:7778",
            "localhost.evil.example",
            "192.168.1.10:7778",
            "10.0.0.1",
            "[2001:db8::1]:7778",
            "[::1",
            "127.0.0.1.nip.io",
            "0.0.0.0:7778",
        ] {
            assert!(!is_loopback_host(bad), "{bad:?} accepted");
        }
    }
}
