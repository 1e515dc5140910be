//! Encryption at rest with age (x25519 recipients).
//!
//! Artifacts are encrypted while they stream: the compressed bytes pass
//! through an age [`Sealer`] before they are hashed and written, so there is
//! never a plaintext copy on disk and memory stays at one 64 KiB age chunk.
//! The sidecar needs only the recipients' public keys; reading an encrypted
//! artifact back (`verify --identity`, `restore`) needs an identity file.
//!
//! To verify the content of what it just wrote without holding a long-lived
//! secret, every backup run adds one extra, ephemeral recipient whose secret
//! key lives only in the process memory for that run ([`Sealing`]); it is
//! never written anywhere nor recorded in the manifest.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::x25519;

/// File-name suffix of an encrypted artifact, without the dot.
pub const AGE_SUFFIX: &str = "age";

/// The manifest's record of how a backup is encrypted (public data only).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Encryption {
    /// Always `age`.
    pub scheme: String,
    /// The recipients' public keys (`age1...`).
    pub recipients: Vec<String>,
}

/// True when `path` names an age-encrypted artifact.
pub fn is_encrypted(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some(AGE_SUFFIX)
}

/// A validated list of age x25519 recipients (public keys).
#[derive(Clone)]
pub struct Recipients {
    keys: Vec<x25519::Recipient>,
}

impl fmt::Debug for Recipients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.public_keys()).finish()
    }
}

impl Recipients {
    /// Parses recipients separated by commas, spaces or new lines; `#`
    /// starts a comment (the format of an age recipients file). Returns the
    /// offending entry on error.
    pub fn parse(text: &str) -> Result<Recipients, String> {
        let mut keys = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            for item in line.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
                let key = x25519::Recipient::from_str(item).map_err(|_| item.to_owned())?;
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(String::new());
        }
        Ok(Recipients { keys })
    }

    /// The public keys, as written in the manifest.
    pub fn public_keys(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.to_string()).collect()
    }
}

/// Secret keys able to decrypt artifacts; `Debug` never prints them.
pub struct Identities {
    keys: Vec<x25519::Identity>,
    source: String,
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Identities({} keys from {})",
            self.keys.len(),
            self.source
        )
    }
}

impl Identities {
    /// Reads an age identity file (`AGE-SECRET-KEY-1...` lines, `#`
    /// comments), as written by `age-keygen`.
    pub fn load(path: &Path) -> anyhow::Result<Identities> {
        let file = std::fs::File::open(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the age identity file {}: {e} (give an age-keygen key file with --identity FILE or BACKUP_AGE_IDENTITY_FILE)",
                path.display()
            )
        })?;
        let mut keys = Vec::new();
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The line is never echoed: it may be a secret.
            let key = x25519::Identity::from_str(line).map_err(|_| {
                anyhow::anyhow!(
                    "{} line {}: not an age secret key (expected AGE-SECRET-KEY-1..., as written by age-keygen)",
                    path.display(),
                    i + 1
                )
            })?;
            keys.push(key);
        }
        anyhow::ensure!(
            !keys.is_empty(),
            "{} holds no age secret key (expected AGE-SECRET-KEY-1..., as written by age-keygen)",
            path.display()
        );
        Ok(Identities {
            keys,
            source: path.display().to_string(),
        })
    }

    fn generated() -> Identities {
        Identities {
            keys: vec![x25519::Identity::generate()],
            source: "this run's check key".into(),
        }
    }

    /// The public keys of these identities.
    pub fn public_keys(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect()
    }

    /// Opens an age stream for reading its plaintext. `what` names the
    /// artifact in errors.
    pub fn decrypt<'a, R: Read + 'a>(
        &self,
        what: &str,
        input: R,
    ) -> io::Result<Box<dyn Read + 'a>> {
        let decryptor = age::Decryptor::new_buffered(BufReader::new(input))
            .map_err(|e| header_error(what, e))?;
        let reader = decryptor
            .decrypt(self.keys.iter().map(|k| k as &dyn age::Identity))
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{what}: wrong identity: none of the keys in {} can decrypt it (the manifest lists the recipients it was encrypted to)",
                        self.source
                    ),
                ),
                other => header_error(what, other),
            })?;
        Ok(Box::new(TamperReader {
            inner: reader,
            what: what.to_owned(),
        }))
    }
}

fn header_error(what: &str, e: age::DecryptError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what}: not a readable age file ({e}); it was modified or truncated"),
    )
}

/// Names the artifact when age rejects a chunk (the ciphertext was changed).
struct TamperReader<R> {
    inner: R,
    what: String,
}

impl<R: Read> Read for TamperReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{}: decryption failed ({e}): the ciphertext was modified or truncated",
                    self.what
                ),
            )
        })
    }
}

/// `keygen`: writes a new identity to `path` (mode 0600, never
/// overwriting: temp file, fsync, rename without clobbering, fsync of the
/// folder) and returns its public key, the recipient to configure.
pub fn keygen(path: &Path) -> anyhow::Result<String> {
    use age::secrecy::ExposeSecret;
    use anyhow::Context;
    let id = x25519::Identity::generate();
    let public = id.to_public().to_string();
    let parent = crate::base::fs::parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(crate::base::temp::IDENTITY_PREFIX)
        .tempfile_in(&parent)
        .with_context(|| format!("create a file in {}", parent.display()))?;
    writeln!(
        tmp,
        "# created: {}\n# public key: {public}\n{}",
        chrono::Utc::now().to_rfc3339(),
        id.to_string().expose_secret()
    )?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| {
        anyhow::anyhow!("{}: {} (it is never overwritten)", path.display(), e.error)
    })?;
    crate::base::fs::sync_dir(&parent)?;
    Ok(public)
}

/// Encryption for one backup run: the configured recipients plus an
/// ephemeral check key that lets the run verify its own artifacts.
#[derive(Debug)]
pub struct Sealing {
    recipients: Recipients,
    check: Identities,
}

impl Sealing {
    /// Starts a run's encryption to `recipients`.
    pub fn new(recipients: Recipients) -> Sealing {
        Sealing {
            recipients,
            check: Identities::generated(),
        }
    }

    /// What the manifest records (the configured recipients only).
    pub fn manifest_record(&self) -> Encryption {
        Encryption {
            scheme: AGE_SUFFIX.into(),
            recipients: self.recipients.public_keys(),
        }
    }

    /// The run's check identity, for the verify phase.
    pub fn check_identities(&self) -> &Identities {
        &self.check
    }

    /// Starts an encrypted stream into `inner`.
    pub fn seal<W: Write>(&self, inner: W) -> io::Result<Sealer<W>> {
        let check = self.check.keys[0].to_public();
        let all: Vec<&dyn age::Recipient> = self
            .recipients
            .keys
            .iter()
            .map(|k| k as &dyn age::Recipient)
            .chain(std::iter::once(&check as &dyn age::Recipient))
            .collect();
        let encryptor = age::Encryptor::with_recipients(all.into_iter())
            .map_err(|e| io::Error::other(format!("age: {e}")))?;
        Ok(Sealer::Age(encryptor.wrap_output(inner)?))
    }
}

/// A writer that encrypts (or passes through); call [`Sealer::finish`].
pub enum Sealer<W: Write> {
    /// No encryption configured.
    Plain(W),
    /// An age stream.
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Sealer<W> {
    /// Writes the last chunk and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Sealer::Plain(w) => Ok(w),
            Sealer::Age(s) => s.finish(),
        }
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sealer::Plain(w) => w.write(buf),
            Sealer::Age(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealer::Plain(w) => w.flush(),
            Sealer::Age(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (String, String) {
        let id = x25519::Identity::generate();
        use age::secrecy::ExposeSecret;
        (
            id.to_string().expose_secret().to_owned(),
            id.to_public().to_string(),
        )
    }

    #[test]
    fn recipients_parse_and_reject() {
        let (_, a) = keypair();
        let (_, b) = keypair();
        let r = Recipients::parse(&format!("# ops\n{a}, {b}\n")).unwrap();
        assert_eq!(r.public_keys(), vec![a.clone(), b]);
        assert_eq!(Recipients::parse("age1nope").unwrap_err(), "age1nope");
        assert_eq!(Recipients::parse("# only a comment\n").unwrap_err(), "");
    }

    #[test]
    fn round_trip_wrong_key_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keypair();
        let id_file = dir.path().join("key.txt");
        std::fs::write(&id_file, format!("# created: now\n{secret}\n")).unwrap();
        let sealing = Sealing::new(Recipients::parse(&public).unwrap());
        let mut w = sealing.seal(Vec::new()).unwrap();
        let plain = b"tracker data ".repeat(20000);
        w.write_all(&plain).unwrap();
        let cipher = w.finish().unwrap();

        let ids = Identities::load(&id_file).unwrap();
        assert!(!format!("{ids:?}").contains("AGE-SECRET"));
        let mut out = Vec::new();
        ids.decrypt("a", &cipher[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain);
        // The run's check key decrypts too.
        let mut out2 = Vec::new();
        sealing
            .check_identities()
            .decrypt("a", &cipher[..])
            .unwrap()
            .read_to_end(&mut out2)
            .unwrap();
        assert_eq!(out2, plain);

        let (other, _) = keypair();
        std::fs::write(&id_file, other).unwrap();
        let wrong = Identities::load(&id_file).unwrap();
        let err = wrong.decrypt("a", &cipher[..]).err().unwrap().to_string();
        assert!(err.contains("wrong identity"), "{err}");

        let mut bad = cipher.clone();
        let n = bad.len();
        bad[n - 100] ^= 1;
        let mut sink = Vec::new();
        let err = ids
            .decrypt("a", &bad[..])
            .unwrap()
            .read_to_end(&mut sink)
            .unwrap_err()
            .to_string();
        assert!(err.contains("modified or truncated"), "{err}");
    }

    #[test]
    fn keygen_writes_a_private_usable_file_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("id.txt");
        let public = keygen(&f).unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Identities::load(&f).unwrap().public_keys(), vec![public]);
        assert!(
            keygen(&f).is_err(),
            "an existing key file is never overwritten"
        );
    }

    #[test]
    fn identity_file_errors_hide_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key.txt");
        std::fs::write(&f, "AGE-SECRET-KEY-1SECRETBUTBROKEN\n").unwrap();
        let err = format!("{:#}", Identities::load(&f).unwrap_err());
        assert!(
            err.contains("line 1") && !err.contains("SECRETBUTBROKEN"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            Identities::load(&dir.path().join("none")).unwrap_err()
        );
        assert!(err.contains("BACKUP_AGE_IDENTITY_FILE"), "{err}");
    }
}
