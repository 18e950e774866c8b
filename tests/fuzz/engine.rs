//! A small mutation fuzzer that runs on stable Rust under `cargo test`: seeds from real inputs,
//! havoc-style mutations driven by a seeded PRNG, every input run under `catch_unwind`.
//!
//! Coverage feedback needs nightly's sanitizer instrumentation, so the corpus grows on a cheaper
//! signal instead: each target returns a signature of what it made of the input (which decoder
//! error, which shape of success), and an input that yields a signature not seen before is kept
//! as a parent for later mutations.

use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What a target made of one input.
pub enum Outcome {
    /// The code under test accepted the input (and every assertion held); the signature says
    /// what it made of it.
    Accepted(u64),
    /// The code under test refused the input with an error; the signature says which.
    Refused(u64),
    /// The input could not be handed to the code under test (a `HeaderValue` refused it):
    /// counted, never a failure.
    Skipped,
}

/// One fuzz target: a name (used for seeds and crash files), its seeds, tokens worth inserting,
/// the longest input it is given, and the function under test.
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    pub tokens: &'static [&'static [u8]],
    pub max_len: usize,
    pub run: fn(&[u8]) -> Outcome,
}

/// The figures of one run.
#[derive(Debug)]
pub struct Report {
    pub inputs: u64,
    /// Inputs the code under test accepted: the ones its invariants were checked on.
    pub accepted: u64,
    pub skipped: u64,
    pub panics: u64,
    pub corpus: usize,
    pub elapsed: Duration,
    /// The input that took longest (wall clock, so a busy machine inflates it): saved to
    /// `target/fuzz-slowest/<target>` to be timed alone with `XRG_FUZZ_REPLAY`.
    pub slowest: Duration,
    pub slowest_len: usize,
    /// Where the panicking inputs were written, with their panic messages.
    pub crashes: Vec<(PathBuf, String)>,
}

/// Tokens that tend to break decoders of text formats, for every target.
pub const COMMON_TOKENS: &[&[u8]] = &[
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xef\xbb\xbf",
    b"\xe2\x80\xae",
    b"\r\n",
    b"%",
    b"%00",
    b"%zz",
    b"%C3%28",
    b"%ED%A0%80",
    b"+",
    b"&",
    b"=",
    b";",
    b",",
    b":",
    b"@",
    b"/",
    b"\\",
    b"\"",
    b"'",
    b"0",
    b"-1",
    b"1e999999",
    b"18446744073709551616",
    b"340282366920938463463374607431768211457",
    b"NaN",
    b"inf",
];

/// The longest run of one token the `repeat` mutation writes: deep enough to pass every depth
/// limit in the decoders, short enough to stay well inside `max_len`.
const MAX_REPEAT: usize = 200;
/// How many inputs the corpus may grow to, seeds included.
const MAX_CORPUS: usize = 4096;
/// How many crash files one run writes at most.
const MAX_CRASH_FILES: usize = 20;

thread_local! {
    /// Set while this thread runs fuzz inputs: the panic hook then records instead of printing.
    static CAPTURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once per process, a panic hook that stays quiet on fuzzing threads (a million
/// inputs may panic) and keeps the default behaviour everywhere else.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let captured = CAPTURE.with(|c| {
                let mut c = c.borrow_mut();
                match c.as_mut() {
                    Some(slot) => {
                        *slot = format!("{info}");
                        true
                    }
                    None => false,
                }
            });
            if !captured {
                default(info);
            }
        }));
    });
}

/// FNV-1a: a stable hash for crash file names and the per-target seed.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The PRNG seed: `XRG_FUZZ_SEED` (decimal or 0x-hex) or a fixed default.
pub fn base_seed() -> u64 {
    let raw = std::env::var("XRG_FUZZ_SEED").unwrap_or_default();
    let raw = raw.trim();
    let parsed = match raw.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => raw.parse().ok(),
    };
    parsed.unwrap_or(0x5eed_f022)
}

/// Inputs per target: `XRG_FUZZ_ITERATIONS`, or `default`.
pub fn iterations(default: u64) -> u64 {
    std::env::var("XRG_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Where crash inputs go: `target/fuzz-crashes`.
pub fn crash_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("fuzz-crashes")
}

/// Runs `target` on every seed, then on `iterations - seeds` mutated inputs.
pub fn fuzz(target: &Target, iterations: u64) -> Report {
    install_hook();
    let mut rng = SmallRng::seed_from_u64(base_seed() ^ fnv(target.name.as_bytes()));
    let mut corpus: Vec<Vec<u8>> = target.seeds.clone();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut seen = HashSet::new();
    let mut crashed = HashSet::new();
    let mut report = Report {
        inputs: 0,
        accepted: 0,
        skipped: 0,
        panics: 0,
        corpus: 0,
        elapsed: Duration::ZERO,
        slowest: Duration::ZERO,
        slowest_len: 0,
        crashes: Vec::new(),
    };
    let mut slowest_input = Vec::new();
    let started = Instant::now();
    CAPTURE.with(|c| *c.borrow_mut() = Some(String::new()));
    for i in 0..iterations {
        let input = match target.seeds.get(i as usize) {
            Some(seed) => seed.clone(),
            None => mutate(&mut rng, &corpus, target),
        };
        let t = Instant::now();
        let result = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        let took = t.elapsed();
        if took > report.slowest {
            report.slowest = took;
            report.slowest_len = input.len();
            slowest_input.clone_from(&input);
        }
        report.inputs += 1;
        match result {
            Ok(Outcome::Skipped) => report.skipped += 1,
            Ok(Outcome::Accepted(signature) | Outcome::Refused(signature)) => {
                let accepted = matches!(result, Ok(Outcome::Accepted(_)));
                report.accepted += u64::from(accepted);
                // Now and then an accepted input of a known shape too: valid inputs are rare
                // after a mutation, and the best parents.
                let keep = seen.insert(signature) || (accepted && rng.random_ratio(1, 256));
                if keep && corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                }
            }
            Err(_) => {
                report.panics += 1;
                let message = CAPTURE.with(|c| c.borrow().clone().unwrap_or_default());
                let hash = fnv(&input);
                if crashed.insert(hash) && report.crashes.len() < MAX_CRASH_FILES {
                    let path = crash_dir().join(format!("{}-{hash:016x}", target.name));
                    let _ = std::fs::create_dir_all(crash_dir());
                    if let Err(e) = std::fs::write(&path, &input) {
                        eprintln!("cannot write {}: {e}", path.display());
                    }
                    report.crashes.push((path, message));
                }
            }
        }
    }
    CAPTURE.with(|c| *c.borrow_mut() = None);
    report.elapsed = started.elapsed();
    let slowest_dir = crash_dir().with_file_name("fuzz-slowest");
    let _ = std::fs::create_dir_all(&slowest_dir);
    let _ = std::fs::write(slowest_dir.join(target.name), &slowest_input);
    report.corpus = corpus.len();
    report
}

/// One line of figures for `scripts/fuzz` and the test log.
pub fn summary(name: &str, r: &Report) -> String {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    format!(
        "fuzz {name:<18} {:>8} inputs ({} accepted, {} skipped), {} panics, {:>7.0} inputs/s, \
         {:.1} s, corpus {}, slowest {} us ({} bytes)",
        r.inputs,
        r.accepted,
        r.skipped,
        r.panics,
        r.inputs as f64 / secs,
        secs,
        r.corpus,
        r.slowest.as_micros(),
        r.slowest_len,
    )
}

/// A new input: one corpus entry with one to four stacked mutations, one half of the time, so
/// that many inputs stay close enough to a valid one to get past the first check.
fn mutate(rng: &mut SmallRng, corpus: &[Vec<u8>], target: &Target) -> Vec<u8> {
    let mut data = corpus[rng.random_range(0..corpus.len())].clone();
    let stacked = 1 + rng.random::<u8>().trailing_ones().min(3);
    for _ in 0..stacked {
        mutate_once(rng, &mut data, corpus, target);
        data.truncate(target.max_len);
    }
    data
}

fn mutate_once(rng: &mut SmallRng, data: &mut Vec<u8>, corpus: &[Vec<u8>], target: &Target) {
    let token = |rng: &mut SmallRng| -> &'static [u8] {
        let n = target.tokens.len() + COMMON_TOKENS.len();
        let i = rng.random_range(0..n);
        target
            .tokens
            .get(i)
            .copied()
            .unwrap_or_else(|| COMMON_TOKENS[i - target.tokens.len()])
    };
    let len = data.len();
    let pos = |rng: &mut SmallRng| rng.random_range(0..=len);
    match rng.random_range(0..11) {
        // Flip one bit.
        0 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] ^= 1 << rng.random_range(0..8);
        }
        // Overwrite one byte, half the time with a byte that delimits something.
        1 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] = if rng.random() {
                rng.random()
            } else {
                b"<>&\"'%{}[]:,;=/ \n\t\0\x7f\x80\xff"[rng.random_range(0..22)]
            };
        }
        // Insert a few random bytes.
        2 => {
            let at = pos(rng);
            let n = rng.random_range(1..=8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            data.splice(at..at, bytes);
        }
        // Delete a range.
        3 if len > 0 => {
            let a = rng.random_range(0..len);
            let b = rng.random_range(a..=len.min(a + 64));
            data.drain(a..b);
        }
        // Duplicate a range somewhere else (repeated elements, keys, parameters).
        4 if len > 0 => {
            let a = rng.random_range(0..len);
            let b = rng.random_range(a..=len.min(a + 128));
            let chunk = data[a..b].to_vec();
            let at = pos(rng);
            data.splice(at..at, chunk);
        }
        // Insert a token.
        5 | 6 => {
            let at = pos(rng);
            data.splice(at..at, token(rng).iter().copied());
        }
        // Replace a range with a token.
        7 if len > 0 => {
            let a = rng.random_range(0..len);
            let b = rng.random_range(a..=len.min(a + 16));
            data.splice(a..b, token(rng).iter().copied());
        }
        // Splice: this input's head with another's tail.
        8 => {
            let other = &corpus[rng.random_range(0..corpus.len())];
            let cut = pos(rng);
            let from = rng.random_range(0..=other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        // Repeat a token many times (deep nesting, long runs).
        9 => {
            let t = token(rng);
            let n = rng.random_range(2..=MAX_REPEAT);
            let at = pos(rng);
            data.splice(at..at, t.iter().copied().cycle().take(t.len() * n));
        }
        // Truncate.
        _ => {
            let at = pos(rng);
            data.truncate(at);
        }
    }
}

/// Replays one saved input without `catch_unwind`, so a panic shows its backtrace:
/// `XRG_FUZZ_REPLAY=target/fuzz-crashes/<target>-<hash>` (or `target/fuzz-slowest/<target>`).
/// Does nothing when the file is another target's.
pub fn replay(target: &Target) {
    let Ok(path) = std::env::var("XRG_FUZZ_REPLAY") else {
        return;
    };
    let path = PathBuf::from(path);
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let hashed = file
        .strip_prefix(target.name)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    if file != target.name && !hashed {
        return;
    }
    let input = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (target.run)(&input);
    // It did not panic: time it alone, which a busy fuzzing run cannot.
    let started = Instant::now();
    for _ in 0..100 {
        (target.run)(&input);
    }
    println!(
        "replayed {} ({} bytes): {} us per run",
        path.display(),
        input.len(),
        started.elapsed().as_micros() / 100
    );
}
