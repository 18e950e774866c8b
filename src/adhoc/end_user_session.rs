//! end-user-session, answered exactly as the seed document promises: one `Notes` line
//! `Operation successful for user {bare}/{resource}` per session the command really ended.
//!
//! Neither server says which resources it ended (Prosody's note is the same whether the user
//! was online or not; ejabberd's answer is empty), so the gateway asks `user-stats` for the
//! online resources first and then ends the sessions. Both servers take the command with a
//! form carrying both `accountjids` (XEP-0133, Prosody) and `accountjid` (ejabberd's single
//! field), one account per command. The gateway's own streams are never ended (the one the
//! command runs on, this process's others, and under a replica key every replica's, known by
//! their mark: `upstream::session::own`): for an account that may hold one, it ends the other
//! resources one by one. That holds whichever way the JIDs come: a request with fields (with
//! or without `?keep=1`), or the submission of a kept session's form (`Stages` hands it here
//! and cancels the upstream session), so no client's JID reaches the server unplanned.
//!
//! A session the server is still closing stays listed for a few milliseconds after the
//! command's answer (until its client's TCP closes; Prosody waits up to 5 s for a silent one).
//! So that a second request right after the first does not claim to end it again, the
//! gateway remembers what it ended lately and, only when such a resource is listed again,
//! looks once more a few times over a short while: gone means it was the closing session; still
//! there means a new session under the same name, which is then ended and reported.
//!
//! Fan-out is bounded: at most `--max-jids` JIDs, grouped in linear time; the first account's
//! pair of commands goes out alone, so that a caller the server refuses (a non-admin) costs it
//! two IQs, not one per JID; the rest share the stream's in-flight bound.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::future::try_join_all;
use tokio::time::Instant;
use tokio_xmpp::parsers::jid::{BareJid, FullJid, Jid};

use super::address::parse_jid;
use super::registry::Handler;
use super::stream::{run_one, Answer, CommandStream, StreamFuture};
use super::xep0133::{end_session_iq, online_resources, user_stats_iq};
use super::{Answered, Call, CommandError, Outcome, END_USER_SESSION};
use crate::adhoc::form::{too_many_jids, FieldError};
use crate::rest::{CommandRequest, CommandResponse, ResponseField};
use crate::upstream::session::own::OwnStreams;

/// One command to send, and the resources it ends that were online.
struct Kick {
    /// The JID the client named (an account's other sessions become several kicks).
    requested: Jid,
    /// The JID the command names.
    jid: Jid,
    /// The resources this command ends that were online, in the server's order.
    ended: Vec<String>,
}

/// How long a listing that still shows a resource ended lately is re-read before it is taken
/// for a new session.
const SETTLE_FOR: Duration = Duration::from_millis(500);
const SETTLE_STEP: Duration = Duration::from_millis(5);

mod recent;
pub use recent::RecentKicks;
#[cfg(test)]
use recent::REMEMBER_ENDED;

/// end-user-session's handler: with fields (kept or not), the seed's semantics; a form
/// request takes the generic path (and may be kept), and the kept session's submission comes
/// back here (`takes_submission`), so no JID a client submits reaches the server unplanned.
#[derive(Default)]
pub struct EndUserSession {
    recent: RecentKicks,
}

impl Handler for EndUserSession {
    fn takes(&self, _: &Call<'_>, req: &CommandRequest) -> bool {
        // `?keep=1` too: the command has one stage, so a request with its fields completes
        // whichever path it takes, and only this one spares the gateways' streams.
        !req.fields.is_empty()
    }

    fn takes_submission(&self) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        call: &'a Call<'_>,
        req: &'a CommandRequest,
    ) -> StreamFuture<'a, Result<Answered, CommandError>> {
        Box::pin(run(call, req, &self.recent))
    }

    fn sweep(&self) {
        self.recent.sweep();
    }
}

/// Runs end-user-session for the JIDs in `accountjids` (or `accountjid`).
async fn run(
    call: &Call<'_>,
    req: &CommandRequest,
    recent: &RecentKicks,
) -> Result<Answered, CommandError> {
    let (session, target, own) = (call.stream.as_ref(), call.target, call.own);
    let jids = requested_jids(req, call.max_jids)?;
    // The accounts in the order they were first named, each with its JIDs.
    let mut accounts: Vec<BareJid> = Vec::new();
    let mut of_account: HashMap<BareJid, Vec<&Jid>> = HashMap::new();
    for j in &jids {
        of_account
            .entry(j.to_bare())
            .or_insert_with(|| {
                accounts.push(j.to_bare());
                Vec::new()
            })
            .push(j);
    }
    let Some((first, others)) = accounts.split_first() else {
        return Err(missing_jids());
    };
    let jids_of = |a: &BareJid| of_account.get(a).cloned().unwrap_or_default();
    // The first account alone: its answer tells whether the server lets the caller do this at
    // all, and a refusal stops the fan-out here.
    let mut ended = vec![
        end_account(
            session,
            own,
            &target.to,
            first,
            jids_of(first),
            recent,
            true,
        )
        .await?,
    ];
    ended.extend(
        try_join_all(
            others
                .iter()
                .map(|a| end_account(session, own, &target.to, a, jids_of(a), recent, false)),
        )
        .await?,
    );
    // Lines in the order of the JIDs given, then the server's order of resources.
    let mut by_request: HashMap<&Jid, Vec<&Kick>> = HashMap::new();
    for k in ended.iter().flatten() {
        by_request.entry(&k.requested).or_default().push(k);
    }
    // One line per session: `u@d` and `u@d/r` in one request end `r` once.
    let mut seen = HashSet::new();
    let mut ended_jids: Vec<FullJid> = Vec::new();
    for k in jids
        .iter()
        .flat_map(|j| by_request.get(j).into_iter().flatten())
    {
        let bare = k.jid.to_bare();
        // A resource the server listed that is no resourcepart cannot have been a session.
        for full in k
            .ended
            .iter()
            .filter_map(|r| bare.with_resource_str(r).ok())
        {
            if seen.insert(full.clone()) {
                ended_jids.push(full);
            }
        }
    }
    let lines: Vec<String> = ended_jids
        .iter()
        .map(|j| format!("Operation successful for user {j}"))
        .collect();
    let fields = if lines.is_empty() {
        Vec::new()
    } else {
        vec![ResponseField {
            var: "Notes".into(),
            type_: Some("text-multi".into()),
            values: lines,
            ..ResponseField::default()
        }]
    };
    let doc = CommandResponse {
        jid: target.written.clone(),
        node: END_USER_SESSION.into(),
        fields,
        ..CommandResponse::default()
    };
    Ok(Answered {
        doc,
        outcome: Outcome::Ended(ended_jids),
    })
}

/// Ends the requested sessions of one account and says which resources each ended.
///
/// Usually in one round trip: user-stats and the end-user-session commands go back to back
/// on the stream, and since the server handles a stream's stanzas in order, the listing is
/// what the commands then end. An account that may hold a stream of the gateway's (the one
/// the command runs on, another of this process's, or under a replica key any replica's),
/// whose streams must be spared, and an account with a session ended lately (which may still
/// be listed while it closes) take the careful path: list first, then end. For the `first`
/// account of a request only user-stats and one end-user-session go out before the server has
/// answered.
async fn end_account(
    session: &dyn CommandStream,
    own: &OwnStreams,
    to: &Jid,
    account: &BareJid,
    jids: Vec<&Jid>,
    recent: &RecentKicks,
    first: bool,
) -> Result<Vec<Kick>, CommandError> {
    let careful =
        *account == session.jid().to_bare() || own.may_hold(account) || recent.has_any(account);
    let kicks = if !careful {
        let (head, tail) = jids.split_at(if first { jids.len().min(1) } else { jids.len() });
        let mut batch = vec![user_stats_iq(to, account)];
        batch.extend(head.iter().map(|j| end_session_iq(to, j)));
        let mut replies = session.run(batch).await?.into_iter();
        let listing = replies
            .next()
            .ok_or_else(|| CommandError::Malformed("no user-stats answer".into()))?;
        let online = online_resources(listing?);
        check_all_ended(replies)?;
        if !tail.is_empty() {
            let batch = tail.iter().map(|j| end_session_iq(to, j)).collect();
            check_all_ended(session.run(batch).await?)?;
        }
        jids.iter()
            .flat_map(|j| plan(session, own, j, &online))
            .collect()
    } else {
        let online = settled_resources(session, to, account, recent).await?;
        let kicks: Vec<Kick> = jids
            .iter()
            .flat_map(|j| plan(session, own, j, &online))
            .collect();
        // One batch: the stream's in-flight bound paces it.
        let batch = kicks.iter().map(|k| end_session_iq(to, &k.jid)).collect();
        check_all_ended(session.run(batch).await?)?;
        kicks
    };
    for k in &kicks {
        recent.record(account, &k.ended);
    }
    Ok(kicks)
}

/// The JIDs the client named, in order, without repeats; each must be an account JID, and
/// there may be at most `max_jids` of them.
fn requested_jids(req: &CommandRequest, max_jids: usize) -> Result<Vec<Jid>, CommandError> {
    let mut jids: Vec<Jid> = Vec::new();
    let mut seen = HashSet::new();
    for f in req
        .fields
        .iter()
        .filter(|f| f.var == "accountjids" || f.var == "accountjid")
    {
        let values = f.value.as_ref().map(|v| v.as_slice()).unwrap_or_default();
        let values = values.iter().map(|v| v.trim()).filter(|v| !v.is_empty());
        for v in values {
            if jids.len() == max_jids {
                return Err(too_many_jids(&f.var, max_jids).into());
            }
            let jid = parse_jid(v)
                .filter(|j| j.node().is_some())
                .ok_or_else(|| FieldError {
                    field: f.var.clone(),
                    text: format!("{v:?} is not an account JID"),
                })?;
            if seen.insert(jid.clone()) {
                jids.push(jid);
            }
        }
    }
    if jids.is_empty() {
        return Err(missing_jids());
    }
    // The JID-multi field's values, for the audit line.
    let named: Vec<String> = jids.iter().map(|j| j.to_string()).collect();
    crate::audit::note_subjects(named.iter().map(String::as_str));
    Ok(jids)
}

fn missing_jids() -> CommandError {
    FieldError {
        field: "accountjids".into(),
        text: "a value is required".into(),
    }
    .into()
}

/// The commands `jid` needs, and the lines each earns, given the account's online resources.
/// The gateway's own streams are spared (the one the command runs on, and every one `own`
/// knows): an account that may hold one has its other sessions ended one full JID at a time,
/// and a full JID of one of them ends nothing.
fn plan(session: &dyn CommandStream, own: &OwnStreams, jid: &Jid, online: &[String]) -> Vec<Kick> {
    let this = session.jid();
    let bare = jid.to_bare();
    let ours =
        |r: &str| (bare == this.to_bare() && r == this.resource().as_str()) || own.is_own(&bare, r);
    let one_by_one = bare == this.to_bare() || own.may_hold(&bare);
    let kick = |jid: Jid, ended: Vec<String>| Kick {
        requested: jid.clone(),
        jid,
        ended,
    };
    match jid.resource() {
        Some(r) if ours(r.as_str()) => vec![],
        Some(r) => vec![kick(
            jid.clone(),
            online
                .iter()
                .filter(|o| *o == r.as_str())
                .cloned()
                .collect(),
        )],
        None if one_by_one => online
            .iter()
            .filter(|r| !ours(r))
            .filter_map(|r| bare.with_resource_str(r).ok().map(|f| (r, f)))
            .map(|(r, full)| Kick {
                requested: jid.clone(),
                jid: Jid::from(full),
                ended: vec![r.clone()],
            })
            .collect(),
        None => vec![kick(jid.clone(), online.to_vec())],
    }
}

/// The account's online resources, re-read for a short while as long as it still lists a
/// session this gateway ended lately (see the module's documentation).
async fn settled_resources(
    session: &dyn CommandStream,
    to: &Jid,
    account: &BareJid,
    recent: &RecentKicks,
) -> Result<Vec<String>, CommandError> {
    let started = Instant::now();
    loop {
        let online = fetch_online(session, to, account).await?;
        let closing = online.iter().any(|r| recent.recently_ended(account, r));
        if !closing || started.elapsed() >= SETTLE_FOR {
            return Ok(online);
        }
        tokio::time::sleep(SETTLE_STEP).await;
    }
}

/// The account's online resources, from user-stats.
async fn fetch_online(
    session: &dyn CommandStream,
    to: &Jid,
    account: &BareJid,
) -> Result<Vec<String>, CommandError> {
    let (to, cmd) = user_stats_iq(to, account);
    Ok(online_resources(run_one(session, &to, cmd).await?))
}

/// End-user-session answers: an IQ error, or an error note, is a failure.
fn check_all_ended(answers: impl IntoIterator<Item = Answer>) -> Result<(), CommandError> {
    for reply in answers {
        if let Some(n) = reply?.notes.iter().find(|n| n.type_ == "error") {
            return Err(CommandError::Failed {
                text: n.text.clone(),
                says: super::outcome::said(&n.text),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "end_user_session_tests.rs"]
mod tests;
