//! Reading the files an operator names (the access file, the HTTPS certificate and key) so
//! that whatever the path holds, the runtime never waits on it.
//!
//! Two halves:
//! - [`regular`] opens the path with `O_NONBLOCK` (opening a FIFO or a device for reading then
//!   returns at once instead of waiting for a writer), checks with `fstat` on the descriptor
//!   just opened that it is a regular file (so what is read is what was checked), and reads at
//!   most [`MAX_LEN`] bytes. A FIFO read with `O_NONBLOCK` would answer "empty file", which an
//!   access file must never mean, so anything but a regular file is refused.
//! - [`off_runtime`] runs such a read (and whatever is computed from the bytes: a hash, the
//!   rules, the key) on a thread of its own. A regular file can still block (a hung NFS or FUSE
//!   mount); the thread is detached, so nothing awaits it at shutdown: the process exits with
//!   it stuck. Its caller awaits one read at a time, so at most one thread per watcher is ever
//!   stuck. `spawn_blocking` is not used because the runtime's drop waits for every blocking
//!   task, which would make SIGTERM wait on a stuck read.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

/// The largest file read: far beyond any access file or certificate chain, and a bound on what
/// a path pointing somewhere unexpected can make the gateway hold.
pub const MAX_LEN: u64 = 16 << 20;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A FIFO, socket, device or directory.
    #[error("not a regular file")]
    NotRegular,
    #[error("larger than {MAX_LEN} bytes")]
    TooLarge,
    /// No thread could be started for the read (the process's thread limit).
    #[error("no thread to read it on: {0}")]
    NoThread(std::io::Error),
}

/// A regular file's content and its modification time (from the same `fstat`).
#[derive(Debug)]
pub struct Contents {
    pub bytes: Vec<u8>,
    pub modified: Option<SystemTime>,
}

/// Reads `path` if it is a regular file of at most [`MAX_LEN`] bytes. Blocking: call it at
/// startup or inside [`off_runtime`].
pub fn regular(path: &Path) -> Result<Contents, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > MAX_LEN {
        return Err(ReadError::TooLarge);
    }
    let bytes = read_bounded(file, meta.len())?;
    Ok(Contents {
        bytes,
        modified: meta.modified().ok(),
    })
}

/// The file's bytes, at most [`MAX_LEN`] even if it grows while read.
fn read_bounded(file: File, len_hint: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::with_capacity(usize::try_from(len_hint).unwrap_or(0));
    file.take(MAX_LEN + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_LEN {
        return Err(ReadError::TooLarge);
    }
    Ok(bytes)
}

/// Runs `read` on a detached thread of its own and awaits its result, never blocking the
/// runtime. Dropping the future (a task aborted at shutdown) leaves the thread to finish or to
/// die with the process; nothing ever joins it.
pub async fn off_runtime<T, F>(read: F) -> Result<T, ReadError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("xrg-file-read".into())
        .spawn(move || {
            // The receiver is gone when the awaiting task was aborted: nothing to tell.
            let _ = tx.send(read());
        })
        .map_err(ReadError::NoThread)?;
    rx.await.map_err(|_| {
        // The thread ended without sending: `read` panicked.
        ReadError::Io(std::io::Error::other("the read panicked"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("xrg-file-read-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_regular_file_is_read_with_its_mtime() {
        let d = dir("regular");
        let p = d.join("f");
        std::fs::write(&p, "abc").unwrap();
        let c = regular(&p).unwrap();
        assert_eq!(c.bytes, b"abc");
        assert!(c.modified.is_some());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_fifo_a_directory_and_a_device_are_refused_without_blocking() {
        let d = dir("fifo");
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK this open would wait for a writer forever.
        assert!(matches!(regular(&fifo), Err(ReadError::NotRegular)));
        assert!(matches!(regular(&d), Err(ReadError::NotRegular)));
        assert!(matches!(
            regular(Path::new("/dev/zero")),
            Err(ReadError::NotRegular)
        ));
        assert!(matches!(
            regular(&d.join("missing")),
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_beyond_the_bound_is_refused() {
        let d = dir("large");
        let p = d.join("big");
        let f = File::create(&p).unwrap();
        f.set_len(MAX_LEN + 1).unwrap();
        assert!(matches!(regular(&p), Err(ReadError::TooLarge)));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stuck_read_does_not_stall_the_runtime_and_can_be_abandoned() {
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let read = tokio::spawn(off_runtime(move || stuck.recv().is_ok()));
        // The runtime's only thread is free while the read waits.
        let other = tokio::spawn(async { 7 }).await.unwrap();
        assert_eq!(other, 7);
        read.abort();
        assert!(read.await.unwrap_err().is_cancelled());
        // The thread is left to end on its own.
        let _ = release.send(());
        assert!(off_runtime(|| 1 + 1).await.unwrap() == 2);
    }
}
