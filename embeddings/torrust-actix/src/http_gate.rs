//! The announce gate in front of torrust-actix's HTTP routes: an actix
//! middleware around the routes `http_service_routes` returns.
//!
//! Every request whose path ends in `announce` (`/announce`,
//! `/{key}/announce`, `/{key}/{userkey}announce`) asks the gate first:
//! - idle, or a `defer-writes` window: it goes through to torrust-actix's
//!   handler, holding the gate's pass until the handler has answered, so a
//!   `reject` window that starts draining waits for it;
//! - a `reject` window: 200 OK with the coordinator's bencoded failure
//!   (`failure reason`, `interval`, `min interval`, BEP 31 `retry in`),
//!   as the reference tracker answers.
//!
//! Scrapes and everything else go through untouched.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use maintenance_coordinator::AnnounceGate;

/// True for torrust-actix's announce routes.
pub fn is_announce(path: &str) -> bool {
    path.ends_with("announce")
}

/// The middleware body; wrap it with `actix_web::middleware::from_fn`
/// in a closure that hands it the gate.
pub async fn gate_announces(
    gate: AnnounceGate,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if !is_announce(req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    match gate.admit_announce() {
        Ok(_pass) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => {
            let answer = HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body(refusal.bencoded_failure());
            Ok(req.into_response(answer).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_announce_route_is_gated_and_scrape_is_not() {
        assert!(is_announce("/announce"));
        assert!(is_announce("/0123abcd/announce"));
        assert!(is_announce("/0123abcd/4567efabannounce"));
        assert!(!is_announce("/scrape"));
        assert!(!is_announce("/0123abcd/scrape"));
    }
}
