//! What a refused announce tells the client, in the words and on the wire
//! every embedder sends.
//!
//! Every tracker that embeds the coordinator has to answer a refused
//! announce the same way: a text that names the maintenance and the delay,
//! the delay in whole seconds (HTTP `interval` and `min interval`), in whole
//! minutes (BEP 31 `retry in`), and for HTTP the bencoded failure
//! dictionary. Written once here, so the reference tracker and the
//! torrust-actix embedding cannot drift apart.

use crate::gate::Refusal;

impl Refusal {
    /// The delay in whole seconds, rounded up, at least one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use maintenance_coordinator::Refusal;
    /// let r = Refusal { retry_after: Duration::from_millis(61_200) };
    /// assert_eq!((r.retry_secs(), r.retry_minutes()), (62, 2));
    /// ```
    pub fn retry_secs(&self) -> u32 {
        self.retry_after
            .as_secs_f64()
            .ceil()
            .clamp(1.0, u32::MAX as f64) as u32
    }

    /// The delay in whole minutes, rounded up, at least one (BEP 31
    /// `retry in`).
    pub fn retry_minutes(&self) -> u32 {
        self.retry_secs().div_ceil(60).max(1)
    }

    /// The text both protocols send (HTTP `failure reason`, the UDP error
    /// packet's message): it names the maintenance and when to come back.
    pub fn message(&self) -> String {
        format!(
            "tracker is down for scheduled maintenance (database backup); retry in {} s",
            self.retry_secs()
        )
    }

    /// The HTTP answer's body: a bencoded dictionary with `failure reason`
    /// ([`message`](Self::message)), `interval` and `min interval` (the
    /// delay in seconds) and `retry in` (minutes), keys in bencode order.
    ///
    /// ```
    /// use std::time::Duration;
    /// use maintenance_coordinator::Refusal;
    /// let body = Refusal { retry_after: Duration::from_secs(90) }.bencoded_failure();
    /// assert!(body.starts_with(b"d14:failure reason"));
    /// assert!(body.ends_with(b"8:intervali90e12:min intervali90e8:retry ini2ee"));
    /// ```
    pub fn bencoded_failure(&self) -> Vec<u8> {
        let message = self.message();
        let secs = self.retry_secs();
        format!(
            "d14:failure reason{}:{message}8:intervali{secs}e12:min intervali{secs}e8:retry ini{}ee",
            message.len(),
            self.retry_minutes()
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rounds_up_and_never_says_zero() {
        let r = |ms| Refusal {
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(r(0).retry_secs(), 1);
        assert_eq!(r(0).retry_minutes(), 1);
        assert_eq!(r(1).retry_secs(), 1);
        assert_eq!(r(120_000).retry_minutes(), 2);
        assert_eq!(r(120_001).retry_minutes(), 3);
    }

    #[test]
    fn the_failure_is_one_well_formed_dictionary() {
        let body = Refusal {
            retry_after: Duration::from_secs(300),
        }
        .bencoded_failure();
        let text = String::from_utf8(body).unwrap();
        let message = "tracker is down for scheduled maintenance (database backup); retry in 300 s";
        assert_eq!(
            text,
            format!(
                "d14:failure reason{}:{message}8:intervali300e12:min intervali300e8:retry ini5ee",
                message.len()
            )
        );
    }
}
