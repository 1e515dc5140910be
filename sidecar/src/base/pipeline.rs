//! A writer whose bytes are written on a thread of its own.
//!
//! An artifact passes through compression, then encryption, hashing and the
//! file. On one thread each stage waits for the next: while the encoder's
//! output is sealed, hashed and written, nothing is compressed. A
//! [`StageWriter`] hands the bytes written into it, in chunks of
//! [`CHUNK`], over a bounded channel to a thread that writes them into the
//! next stage, so both sides run at once; buffers are recycled, so memory
//! stays at [`DEPTH`] + 2 chunks whatever the artifact's size.
//!
//! [`StageWriter::finish`] hands over the last bytes and returns what the
//! thread's `finish` made of its writer. Dropping a `StageWriter` unfinished
//! makes the thread drop its writer unfinished too (an artifact writer then
//! leaves a partial file for its staging folder's removal), and waits for
//! the thread: it never outlives its producer. An error of the thread
//! reaches the producer at its next write.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Bytes per message to the stage thread.
pub const CHUNK: usize = 1 << 20;

/// Chunks that may wait in the channel.
pub const DEPTH: usize = 4;

/// What the producer sends.
enum Message {
    Data(Vec<u8>),
    End,
}

/// The producing side; see the module documentation.
pub struct StageWriter<T> {
    tx: Option<SyncSender<Message>>,
    recycled: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    thread: Option<JoinHandle<io::Result<T>>>,
    name: String,
}

impl<T: Send + 'static> StageWriter<T> {
    /// Starts the thread `name` that writes every chunk into `inner` and,
    /// once [`StageWriter::finish`] is called, returns `finish(inner)`.
    pub fn spawn<W, F>(name: &str, mut inner: W, finish: F) -> io::Result<StageWriter<T>>
    where
        W: Write + Send + 'static,
        F: FnOnce(W) -> io::Result<T> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<Message>(DEPTH);
        let (recycle, recycled) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                for message in rx {
                    match message {
                        Message::Data(buf) => {
                            inner.write_all(&buf)?;
                            // The producer may be gone already: nothing to do.
                            let _ = recycle.send(buf);
                        }
                        Message::End => return finish(inner),
                    }
                }
                Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "the stream was abandoned before its end",
                ))
            })?;
        Ok(StageWriter {
            tx: Some(tx),
            recycled,
            buf: Vec::with_capacity(CHUNK),
            thread: Some(thread),
            name: name.to_owned(),
        })
    }

    /// The thread's outcome, once it ended (its channel is closed).
    fn join(&mut self) -> io::Result<T> {
        drop(self.tx.take());
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(io::Error::other(format!("{} thread panicked", self.name)))
            }),
            None => Err(io::Error::other(format!("{} already ended", self.name))),
        }
    }

    /// Sends `message`; when the thread is gone, returns its error.
    fn send(&mut self, message: Message) -> io::Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(message).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other(format!(
                "{} ended before its input did",
                self.name
            ))),
        }
    }

    /// Hands the filled buffer over and takes an empty one.
    fn send_buffer(&mut self) -> io::Result<()> {
        let fresh = self
            .recycled
            .try_recv()
            .map(|mut b| {
                b.clear();
                b
            })
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.buf, fresh);
        self.send(Message::Data(full))
    }

    /// Hands over what is left, and returns what the thread's `finish`
    /// returned (or the thread's first error).
    pub fn finish(mut self) -> io::Result<T> {
        if !self.buf.is_empty() {
            self.send_buffer()?;
        }
        self.send(Message::End)?;
        self.join()
    }
}

impl<T: Send + 'static> Write for StageWriter<T> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send_buffer()?;
        }
        Ok(n)
    }

    /// Hands over what is buffered; it is written soon after, not by the
    /// time this returns.
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.send_buffer()
        }
    }
}

impl<T> Drop for StageWriter<T> {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into shared memory, failing after `fail_after` bytes.
    struct Shared(Arc<Mutex<Vec<u8>>>, usize);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut v = self.0.lock().unwrap();
            if v.len() + buf.len() > self.1 {
                return Err(io::Error::other("disk full"));
            }
            v.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_byte_arrives_in_order_and_finish_returns_the_result() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut w = StageWriter::spawn("test-stage", Shared(out.clone(), usize::MAX), |s| {
            Ok(s.0.lock().unwrap().len())
        })
        .unwrap();
        let data: Vec<u8> = (0..(3 * CHUNK + 777)).map(|i| (i % 253) as u8).collect();
        for piece in data.chunks(100_003) {
            w.write_all(piece).unwrap();
        }
        assert_eq!(w.finish().unwrap(), data.len());
        assert!(*out.lock().unwrap() == data);
    }

    #[test]
    fn the_threads_error_reaches_the_producer() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut w = StageWriter::spawn("test-stage", Shared(out, CHUNK + 10), |_| Ok(())).unwrap();
        let data = vec![1u8; (DEPTH + 8) * CHUNK];
        let e = w.write_all(&data).unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
    }

    #[test]
    fn dropping_unfinished_does_not_finish_the_inner_writer() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let finished = Arc::new(Mutex::new(false));
        let flag = finished.clone();
        let mut w = StageWriter::spawn("test-stage", Shared(out, usize::MAX), move |_| {
            *flag.lock().unwrap() = true;
            Ok(())
        })
        .unwrap();
        w.write_all(&vec![2u8; 2 * CHUNK + 5]).unwrap();
        drop(w);
        assert!(!*finished.lock().unwrap());
    }
}
