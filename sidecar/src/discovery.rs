//! The tracker instances behind a DNS name (`resolve = "each-address"`,
//! `MAINTENANCE_RESOLVE=each-address`).
//!
//! On Kubernetes the tracker replicas sit behind a headless Service whose
//! name resolves to one A/AAAA record per pod; pods come and go. With
//! `each-address`, every address a coordinator URL's host name resolves to
//! is one instance (the URL with the host replaced by that address), and
//! `fleet.rs` resolves the names again before each window (every
//! [`INTERVAL`] while no window is claimed, and after every backup), so a
//! replica added or rescheduled takes part in the next window and one
//! removed is no longer waited for. Resolution goes through the system's
//! resolver (`getaddrinfo`: `/etc/hosts`, then DNS), like every connection.
//! With `first` (the default) the URLs are used as they are.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;

use crate::config::{CoordinatorConfig, Resolve};

/// How often the names are resolved again while no window is claimed.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The instances' base URLs: `cfg.urls` as configured, or with
/// `each-address` one URL per address of each host name, sorted and
/// without duplicates (so two resolutions compare equal when the
/// instances did not change). Errors when a name does not resolve or
/// resolves to nothing.
pub async fn instances(cfg: &CoordinatorConfig) -> anyhow::Result<Vec<String>> {
    if cfg.resolve == Resolve::First {
        return Ok(cfg.urls.clone());
    }
    let mut out = BTreeSet::new();
    for url in &cfg.urls {
        out.extend(each_address(url).await?);
    }
    Ok(out.into_iter().collect())
}

/// One URL per address `url`'s host resolves to; a host that is already
/// an address is returned as it is.
async fn each_address(url: &str) -> anyhow::Result<Vec<String>> {
    let parsed = reqwest::Url::parse(url)
        .with_context(|| format!("coordinator URL {url:?} is not a URL (scheme://host:port)"))?;
    let host = parsed
        .host_str()
        .with_context(|| format!("coordinator URL {url:?} has no host"))?
        .to_owned();
    if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return Ok(vec![url.to_owned()]);
    }
    let port = parsed
        .port_or_known_default()
        .with_context(|| format!("coordinator URL {url:?} has no port"))?;
    let addrs: BTreeSet<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .with_context(|| format!("resolving {host} (coordinator URL {url})"))?
        .map(|a| a.ip())
        .collect();
    anyhow::ensure!(
        !addrs.is_empty(),
        "{host} (coordinator URL {url}) resolves to no address"
    );
    addrs
        .into_iter()
        .map(|ip| {
            let mut u = parsed.clone();
            u.set_ip_host(ip)
                .map_err(|()| anyhow::anyhow!("cannot put {ip} into {url}"))?;
            Ok(u.as_str().trim_end_matches('/').to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(urls: &[&str], resolve: Resolve) -> CoordinatorConfig {
        CoordinatorConfig {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            resolve,
            ..CoordinatorConfig::default()
        }
    }

    #[tokio::test]
    async fn first_keeps_the_urls_as_configured() {
        let c = cfg(&["http://localhost:7071", "http://t2:7071"], Resolve::First);
        assert_eq!(instances(&c).await.unwrap(), c.urls);
    }

    #[tokio::test]
    async fn each_address_keeps_addresses_and_resolves_names() {
        let c = cfg(
            &[
                "http://127.0.0.9:7071",
                "http://[::1]:7072/",
                "http://localhost:7073",
            ],
            Resolve::EachAddress,
        );
        let got = instances(&c).await.unwrap();
        assert!(got.contains(&"http://127.0.0.9:7071".to_owned()), "{got:?}");
        assert!(got.contains(&"http://[::1]:7072/".to_owned()), "{got:?}");
        // localhost resolves (from /etc/hosts) to at least 127.0.0.1.
        assert!(got.contains(&"http://127.0.0.1:7073".to_owned()), "{got:?}");
        assert!(got.iter().all(|u| !u.contains("localhost")), "{got:?}");
    }

    #[tokio::test]
    async fn an_unresolvable_name_is_an_error_naming_it() {
        let c = cfg(&["http://no-such-host.invalid:7071"], Resolve::EachAddress);
        let e = format!("{:#}", instances(&c).await.unwrap_err());
        assert!(e.contains("no-such-host.invalid"), "{e}");
    }
}
