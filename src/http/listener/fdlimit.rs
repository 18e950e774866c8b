//! The file-descriptor plan: the soft limit on open files raised to the hard one at start,
//! and the connection cap lowered to fit under it.

/// Descriptors kept free of HTTP connections besides the upstream streams: the listener, files,
/// the runtime's own.
pub const FD_RESERVE: usize = 64;

/// Raises the soft limit on open files to the hard limit, and returns how many API connections
/// fit under it: `wanted`, or the limit less `others` (the streams the pool may hold: warm
/// sessions and logins under way; the admin listener's connections) and [`FD_RESERVE`], with
/// a warning, when smaller.
pub fn fit_to_fd_limit(wanted: usize, others: usize) -> usize {
    let Some(soft) = raise_nofile() else {
        return wanted;
    };
    let reserve = FD_RESERVE + others;
    let room = (soft as usize).saturating_sub(reserve).max(1);
    if wanted > room {
        tracing::warn!(
            max_connections = wanted,
            clamped_to = room,
            nofile = soft,
            reserve,
            "--max-connections does not fit the open-files limit; raise LimitNOFILE / ulimit -n"
        );
        room
    } else {
        wanted
    }
}

/// The soft RLIMIT_NOFILE after raising it as far as allowed; `None` where unknown.
#[cfg(unix)]
fn raise_nofile() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "getrlimit(RLIMIT_NOFILE)");
        return None;
    }
    let before = lim.rlim_cur;
    // An unlimited hard limit cannot be the soft one (the kernel caps it at fs.nr_open).
    let target = if lim.rlim_max == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        lim.rlim_max
    };
    if target > lim.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = target;
        } else {
            tracing::warn!(error = %std::io::Error::last_os_error(), "setrlimit(RLIMIT_NOFILE)");
        }
    }
    tracing::info!(
        soft_before = before,
        soft = lim.rlim_cur,
        hard = lim.rlim_max,
        "open-files limit (RLIMIT_NOFILE)"
    );
    Some(lim.rlim_cur)
}

#[cfg(not(unix))]
fn raise_nofile() -> Option<u64> {
    None
}
