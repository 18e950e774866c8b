//! Nothing blocks the runtime (the gateway runs on one thread by default): the access file
//! rewritten 100 times a second costs no answer, and a FIFO in its place (whose blocking open
//! would wait for a writer forever) blocks neither `/healthz`, nor requests, nor SIGTERM.
//! The server makes no difference here: Prosody only.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::rest::{admin, post_json, user_stats, PATH};
use crate::common::{self, http, ServerKind, TestGateway};

/// A hang guard for one answer, not a measure.
const ANSWER: Duration = Duration::from_secs(10);

/// Two access files that differ (so every look compiles anew); both leave the admin alone.
const FILE_A: &str = "[[account]]\njid = \"nobody@domain.com\"\nallow = [\"*\"]\n";
const FILE_B: &str = "[[account]]\njid = \"nobody@domain.com\"\nallow = [\"user-stats\"]\n";

fn access_file(name: &str) -> std::path::PathBuf {
    let d = common::scratch_dir(&format!("runtime-{name}-{}", common::random_hex(4)));
    let path = d.join("access.toml");
    std::fs::write(&path, FILE_A).unwrap();
    path
}

/// How many times the log says `what`.
fn said(gw: &TestGateway, what: &str) -> usize {
    gw.log().matches(what).count()
}

/// Waits until the log says `what` `times` times; fails with the log after 10 s.
async fn until_said(gw: &TestGateway, what: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while said(gw, what) < times {
        assert!(
            Instant::now() < deadline,
            "{what:?} x{times}:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stats(gw: &TestGateway) -> u16 {
    let (body, auth) = (user_stats("user10@domain.com"), admin());
    let answer = tokio::time::timeout(ANSWER, post_json(gw.addr, PATH, &auth, &body));
    answer.await.expect("answered").status
}

async fn healthz(gw: &TestGateway) -> u16 {
    let answer = tokio::time::timeout(ANSWER, http(gw.addr, "GET", "/healthz", &[], b""));
    answer.await.expect("answered").status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_while_the_access_file_is_rewritten_100_times_a_second() {
    let s = common::started(ServerKind::Prosody).await;
    let path = access_file("churn");
    let gw = TestGateway::start(s, &["--access-file", path.to_str().unwrap()]);
    assert_eq!(stats(&gw).await, 200, "{}", gw.log());
    let stop = Arc::new(AtomicBool::new(false));
    let rewriter = {
        let (stop, path) = (stop.clone(), path.clone());
        // A load generator, in place (a look may meet a half-written file: it keeps the rules).
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let text = if n.is_multiple_of(2) { FILE_B } else { FILE_A };
                std::fs::write(&path, text).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    };
    // Requests one after another for three of the watcher's looks; a file never left alone
    // for a second is never taken in (the settle time), but each look reads and hashes it.
    let loaded = format!("access file {} loaded", path.display());
    let loaded = loaded.as_str();
    let before = said(&gw, loaded);
    let churn = Instant::now() + Duration::from_secs(3);
    let mut answered = 0;
    while Instant::now() < churn {
        assert_eq!(stats(&gw).await, 200, "{}", gw.log());
        answered += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let rewrites = rewriter.join().unwrap();
    assert!(
        answered > 0 && rewrites > 100,
        "{answered} answers, {rewrites} rewrites"
    );
    // Left alone, the last file written is taken in.
    until_said(&gw, loaded, before + 1).await;
    assert_eq!(stats(&gw).await, 200, "{}", gw.log());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_in_place_of_the_access_file_blocks_neither_healthz_nor_sigterm() {
    let s = common::started(ServerKind::Prosody).await;
    let path = access_file("fifo");
    let mut gw = TestGateway::start(s, &["--access-file", path.to_str().unwrap()]);
    assert_eq!(stats(&gw).await, 200, "{}", gw.log());
    // Renamed over the file, so no poll can meet a missing file in between.
    let fifo = path.with_extension("fifo");
    mkfifo(&fifo);
    std::fs::rename(&fifo, &path).unwrap();
    // The poll meets it (a blocking open would never return, and nothing more be logged).
    let refused = "not a regular file";
    until_said(&gw, refused, 1).await;
    assert_eq!(healthz(&gw).await, 200, "{}", gw.log());
    // A SIGHUP reports the fault again, and the rules in force stay.
    gw.hangup();
    until_said(&gw, refused, 2).await;
    assert_eq!(healthz(&gw).await, 200, "{}", gw.log());
    assert_eq!(stats(&gw).await, 200, "{}", gw.log());
    let status = gw.terminate(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}\n{}", gw.log());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
