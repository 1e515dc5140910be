//! BEP 15 (UDP tracker) request packets, for the tracker's UDP tests and
//! the UDP benchmark.

/// The connection id every `connect` request carries.
pub const PROTOCOL_ID: u64 = 0x41727101980;

/// The 16-byte header of a request: connection id, action, transaction id.
pub fn header(connection_id: u64, action: u32, tid: u32) -> Vec<u8> {
    let mut b = connection_id.to_be_bytes().to_vec();
    b.extend_from_slice(&action.to_be_bytes());
    b.extend_from_slice(&tid.to_be_bytes());
    b
}

/// What one announce says (BEP 15 field order).
#[derive(Debug, Clone, Copy)]
pub struct Announce<'a> {
    /// The torrent.
    pub info_hash: &'a [u8; 20],
    /// The peer.
    pub peer_id: &'a [u8; 20],
    /// `0` none, `1` completed, `2` started, `3` stopped.
    pub event: u32,
    /// Bytes left (`0`: a seeder).
    pub left: u64,
    /// The peer's key.
    pub key: u32,
    /// Peers wanted (`-1`: the tracker's default).
    pub num_want: i32,
    /// The peer's port.
    pub port: u16,
}

impl Announce<'_> {
    /// The 98-byte announce request.
    pub fn packet(&self, connection_id: u64, tid: u32) -> Vec<u8> {
        let mut b = header(connection_id, 1, tid);
        b.extend_from_slice(self.info_hash);
        b.extend_from_slice(self.peer_id);
        b.extend_from_slice(&0u64.to_be_bytes()); // downloaded
        b.extend_from_slice(&self.left.to_be_bytes());
        b.extend_from_slice(&0u64.to_be_bytes()); // uploaded
        b.extend_from_slice(&self.event.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes()); // ip: use the source
        b.extend_from_slice(&self.key.to_be_bytes());
        b.extend_from_slice(&self.num_want.to_be_bytes());
        b.extend_from_slice(&self.port.to_be_bytes());
        b
    }
}
