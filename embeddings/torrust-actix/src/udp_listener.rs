//! The UDP tracker listener (BEP 15): our receive loop around
//! torrust-actix's `UdpServer::handle_packet`.
//!
//! Upstream's receive loop lives inside its `UdpServer::start`, with no
//! place to ask the gate, so the embedding owns the loop: `udp_threads`
//! tasks receive on one socket (buffer sizes and address reuse as
//! configured). For each datagram:
//! - an announce (action 1) asks the gate first; in a `reject` window it is
//!   answered with an error packet (action 3) whose message is the
//!   coordinator's ("... maintenance ...; retry in N s"), and nothing else
//!   happens;
//! - everything else, and every admitted announce (holding the gate's pass
//!   while it is handled), goes to `handle_packet`, and its answer is sent
//!   back. Connect stays open during every window.

use std::net::SocketAddr;
use std::sync::Arc;

use maintenance_coordinator::{AnnounceGate, Refusal};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use torrust_actix::config::structs::udp_trackers_config::UdpTrackersConfig;
use torrust_actix::tracker::structs::torrent_tracker::TorrentTracker;
use torrust_actix::udp::enums::response::Response;
use torrust_actix::udp::structs::error_response::ErrorResponse;
use torrust_actix::udp::structs::transaction_id::TransactionId;
use torrust_actix::udp::structs::udp_server::UdpServer;

/// BEP 15 action of an announce.
const ACTION_ANNOUNCE: [u8; 4] = [0, 0, 0, 1];

/// Largest datagram read (BEP 15 requests are far smaller).
const MAX_DATAGRAM: usize = 2048;

/// A bound, running UDP tracker listener.
pub struct UdpListener {
    /// The address it is bound to (the real port when the config said 0).
    pub addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl UdpListener {
    /// Stops the receive loops.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The announce's transaction id, when `payload` is an announce.
pub fn announce_transaction(payload: &[u8]) -> Option<TransactionId> {
    (payload.len() >= 16 && payload[8..12] == ACTION_ANNOUNCE).then(|| {
        TransactionId(i32::from_be_bytes([
            payload[12],
            payload[13],
            payload[14],
            payload[15],
        ]))
    })
}

/// The error packet (action 3) refusing an announce.
pub fn refusal_packet(transaction_id: TransactionId, refusal: &Refusal) -> Vec<u8> {
    Response::from(ErrorResponse {
        transaction_id,
        message: refusal.message().into(),
    })
    .write_to_vec()
    .unwrap_or_default()
}

fn bind(config: &UdpTrackersConfig) -> std::io::Result<std::net::UdpSocket> {
    let addr: SocketAddr = config.bind_address.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "udp_server bind_address {:?} is not IP:PORT ({e})",
                config.bind_address
            ),
        )
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(config.reuse_address)?;
    if config.receive_buffer_size > 0 {
        socket.set_recv_buffer_size(config.receive_buffer_size)?;
    }
    if config.send_buffer_size > 0 {
        socket.set_send_buffer_size(config.send_buffer_size)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into()).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on udp_server bind_address {addr}: {e}; pick a free address"),
        )
    })?;
    Ok(socket.into())
}

/// Binds `config.bind_address` and starts the receive loops.
pub fn start(
    tracker: Arc<TorrentTracker>,
    config: &UdpTrackersConfig,
    gate: AnnounceGate,
) -> std::io::Result<UdpListener> {
    let socket = Arc::new(UdpSocket::from_std(bind(config)?)?);
    let addr = socket.local_addr()?;
    let tasks = (0..config.udp_threads.max(1))
        .map(|_| {
            tokio::spawn(receive_loop(
                socket.clone(),
                tracker.clone(),
                gate.clone(),
                config.use_payload_ip,
            ))
        })
        .collect();
    Ok(UdpListener { addr, tasks })
}

async fn receive_loop(
    socket: Arc<UdpSocket>,
    tracker: Arc<TorrentTracker>,
    gate: AnnounceGate,
    use_payload_ip: bool,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                log::debug!("[UDP] receive error: {e}");
                continue;
            }
        };
        let payload = &buf[..len];
        let _pass = match announce_transaction(payload).map(|tid| (tid, gate.admit_announce())) {
            Some((tid, Err(refusal))) => {
                let _ = socket.send_to(&refusal_packet(tid, &refusal), from).await;
                continue;
            }
            Some((_, Ok(pass))) => Some(pass),
            None => None,
        };
        let response =
            UdpServer::handle_packet(from, payload, tracker.clone(), use_payload_ip).await;
        match response.write_to_vec() {
            Ok(bytes) => {
                let _ = socket.send_to(&bytes, from).await;
            }
            Err(e) => log::debug!("[UDP] cannot encode the answer to {from}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_announces_are_recognised() {
        let mut announce = vec![0u8; 98];
        announce[8..12].copy_from_slice(&1u32.to_be_bytes());
        announce[12..16].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        assert_eq!(
            announce_transaction(&announce),
            Some(TransactionId(0x0102_0304))
        );
        let mut connect = vec![0u8; 16];
        connect[8..12].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(announce_transaction(&connect), None);
        assert_eq!(announce_transaction(&announce[..12]), None);
    }

    #[test]
    fn the_refusal_is_an_error_packet_naming_maintenance_and_the_delay() {
        let r = Refusal {
            retry_after: Duration::from_secs(75),
        };
        let p = refusal_packet(TransactionId(7), &r);
        assert_eq!(&p[0..4], &3u32.to_be_bytes(), "action 3 (error)");
        assert_eq!(
            &p[4..8],
            &7u32.to_be_bytes(),
            "the announce's transaction id"
        );
        let text = String::from_utf8(p[8..].to_vec()).unwrap();
        assert!(
            text.contains("maintenance") && text.contains("retry in 75 s"),
            "{text}"
        );
    }
}
