//! The races of the storage trait, forced inside the backend.
//!
//! Each behaviour calls two backend methods on the same records and runs
//! them under every [`Schedule`] of [`schedule::explore`]: the second call
//! started at each suspension point of the first, then driven in each
//! order, each schedule on fresh records. After every schedule it checks
//! the guarantee the methods document, and names the schedule when one
//! breaks it. The exchange race also runs a bounded stress round: two
//! tasks released at once by a barrier, on the runtime's worker threads.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tower_token_auth::error::StoreError;
use tower_token_auth::scope::ScopeSet;
use tower_token_auth::store::{Exchange, ExchangeOutcome, SharedRecord, TokenBackend};
use tower_token_auth::token::TokenRecord;

use crate::harness::Grant;
use crate::picks;
use crate::schedule::{self, Schedule, Stuck};
use crate::violation::{ensure, ensure_eq, method as m, Answer};
use crate::{Harness, Violation};

/// How many stress rounds the exchange race runs after its schedules.
pub const STRESS_ROUNDS: usize = 20;

/// The violation of a pair of calls that never finished.
fn stuck(methods: &'static str, stuck: Stuck) -> Violation {
    Violation::new(
        methods,
        "two concurrent calls both finish (no deadlock, no lost wake-up)",
        stuck.to_string(),
    )
}

/// A schedule of a pair of calls, named by which call came first.
struct Labelled<'a> {
    first: &'a str,
    second: &'a str,
    schedule: Schedule,
}

impl fmt::Display for Labelled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "first call {}, second call {}; {}",
            self.first, self.second, self.schedule
        )
    }
}

// ---- exchange against exchange ----

const ONE_WINNER: &str = "of two concurrent exchanges of one refresh token exactly one must be \
                          Exchanged and the other AlreadySpent";

/// Two [`exchange`](TokenBackend::exchange)s of one refresh token meet
/// inside the backend: exactly one is `Exchanged` and the other
/// `AlreadySpent`; the refresh token ends spent at the winner's time, the
/// winner's pair is stored as given and the loser stored nothing.
///
/// Forced under every schedule, then [`STRESS_ROUNDS`] rounds of two tasks
/// released at once.
pub async fn exchanges_of_one_refresh_token_have_one_winner<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let backend = h.backend();
    let h = &h;
    let mut n = 0;
    schedule::explore(|schedule| {
        n += 1;
        let owner = format!("kit-exchange-race-{n}");
        async move {
            let grant = h.grant(&owner, B::Scopes::DEFAULT).await?;
            let at = h.now();
            let x = [grant.exchange(at)?, grant.exchange(at)?];
            let ran = schedule::run(schedule, backend.exchange(&x[0]), backend.exchange(&x[1]))
                .await
                .map_err(|s| stuck(m::EXCHANGE, s).during(schedule))?;
            one_winner(h, &grant.refresh, &x, [ran.first, ran.second])
                .await
                .map_err(|v| v.during(schedule))?;
            Ok(ran.first_finished_alone)
        }
    })
    .await?;

    // A second net: two tasks at once, on the runtime's threads.
    let shared = h.tokens.backend().shared();
    for round in 1..=STRESS_ROUNDS {
        let during = format!(
            "stress round {round} of {STRESS_ROUNDS}: two tasks released at once by a barrier"
        );
        let grant = h
            .grant(&format!("kit-exchange-stress-{round}"), B::Scopes::DEFAULT)
            .await?;
        let at = h.now();
        let x = [grant.exchange(at)?, grant.exchange(at)?];
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks = x.clone().map(|x| {
            let (backend, barrier) = (Arc::clone(&shared), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                backend.exchange(&x).await
            })
        });
        let mut outcomes = Vec::with_capacity(2);
        for task in tasks {
            outcomes.push(task.await.map_err(|e| {
                Violation::new(m::EXCHANGE, "answers (never panics)", e.to_string()).during(&during)
            })?);
        }
        let [a, b]: [_; 2] = outcomes
            .try_into()
            .map_err(|_| Violation::new(m::EXCHANGE, "answers", "a lost answer"))?;
        one_winner(h, &grant.refresh, &x, [a, b])
            .await
            .map_err(|v| v.during(&during))?;
    }
    Ok(())
}

/// The guarantee of two exchanges of `refresh`, checked after both ran.
async fn one_winner<B: TokenBackend>(
    h: &Harness<B>,
    refresh: &TokenRecord<B::Scopes>,
    x: &[Exchange<B::Scopes>; 2],
    outcomes: [Result<ExchangeOutcome, StoreError>; 2],
) -> Result<(), Violation> {
    use ExchangeOutcome::{AlreadySpent, Exchanged};
    let [a, b] = outcomes;
    let outcomes = [a.answer(m::EXCHANGE)?, b.answer(m::EXCHANGE)?];
    let winner = match outcomes {
        [Exchanged, AlreadySpent] => 0,
        [AlreadySpent, Exchanged] => 1,
        other => {
            return Err(Violation::new(
                m::EXCHANGE,
                ONE_WINNER,
                format!("{other:?}"),
            ))
        }
    };
    let (won, lost) = (&x[winner], &x[1 - winner]);
    let spent = h
        .record(&refresh.digest, "keeps the spent refresh token")
        .await?;
    ensure_eq!(
        (spent.spent_at, spent.revoked_at),
        (Some(won.at), None),
        m::EXCHANGE,
        "the winning exchange sets the refresh token's spent_at to Exchange::at, once, and \
         revokes nothing"
    );
    for (kind, record) in [("access", &won.access), ("refresh", &won.refresh)] {
        let stored = h.find(&record.digest).await?;
        ensure!(
            stored.as_deref() == Some(record),
            m::EXCHANGE,
            "an exchange that answers Exchanged stores its new pair as given",
            "the winner's new {kind} token stored as {stored:?}"
        );
    }
    for (kind, record) in [("access", &lost.access), ("refresh", &lost.refresh)] {
        let stored = h.find(&record.digest).await?;
        ensure!(
            stored.is_none(),
            m::EXCHANGE,
            "an exchange that answers AlreadySpent stores nothing",
            "the losing exchange's new {kind} token is stored"
        );
    }
    Ok(())
}

// ---- revoke_family against exchange ----

const SERIALISED_METHODS: &str = "TokenBackend::revoke_family with TokenBackend::exchange";
const SERIALISED: &str = "revoke_family and exchange of one family are serialised: the \
                          revocation runs before the exchange (which then answers NotLive and \
                          stores nothing) or after it (and revokes the pair the exchange stored)";

/// [`revoke_family`](TokenBackend::revoke_family) and
/// [`exchange`](TokenBackend::exchange) of one family meet inside the
/// backend, each call first in turn: either the revocation ran first (the
/// exchange answers `NotLive`, stores and spends nothing, and two records
/// are revoked) or the exchange did (it answers `Exchanged` and its pair
/// is among the four records revoked). Nothing of the family is live
/// afterwards.
pub async fn revoke_family_and_exchange_of_one_family_are_serialised<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let backend = h.backend();
    let h = &h;
    let mut n = 0;
    for exchange_first in [true, false] {
        schedule::explore(|schedule| {
            n += 1;
            let owner = format!("kit-revoke-family-race-{n}");
            async move {
                let grant = h.grant(&owner, B::Scopes::DEFAULT).await?;
                let at = h.now();
                let x = grant.exchange(at)?;
                let family = grant.family.id;
                let (label, outcome, revoked, alone) = if exchange_first {
                    let label = Labelled {
                        first: "exchange",
                        second: "revoke_family",
                        schedule,
                    };
                    let ran = schedule::run(
                        schedule,
                        backend.exchange(&x),
                        backend.revoke_family(family, at),
                    )
                    .await
                    .map_err(|s| stuck(SERIALISED_METHODS, s).during(&label))?;
                    (label, ran.first, ran.second, ran.first_finished_alone)
                } else {
                    let label = Labelled {
                        first: "revoke_family",
                        second: "exchange",
                        schedule,
                    };
                    let ran = schedule::run(
                        schedule,
                        backend.revoke_family(family, at),
                        backend.exchange(&x),
                    )
                    .await
                    .map_err(|s| stuck(SERIALISED_METHODS, s).during(&label))?;
                    (label, ran.second, ran.first, ran.first_finished_alone)
                };
                serialised(h, &grant, &x, outcome, revoked)
                    .await
                    .map_err(|v| v.during(&label))?;
                Ok(alone)
            }
        })
        .await?;
    }
    Ok(())
}

/// The guarantee of an exchange and a family revocation, checked after
/// both ran.
async fn serialised<B: TokenBackend>(
    h: &Harness<B>,
    grant: &Grant<B::Scopes>,
    x: &Exchange<B::Scopes>,
    outcome: Result<ExchangeOutcome, StoreError>,
    revoked: Result<Vec<SharedRecord<B::Scopes>>, StoreError>,
) -> Result<(), Violation> {
    let outcome = outcome.answer(m::EXCHANGE)?;
    let revoked = revoked.answer(m::REVOKE_FAMILY)?;
    for record in &revoked {
        ensure!(
            record.family.map(|f| f.id) == Some(x.family) && record.revoked_at == Some(x.at),
            m::REVOKE_FAMILY,
            "returns the records it revoked, all of the family, as revoked at the given time",
            "{record:?}"
        );
    }
    for (kind, record) in [("access", &grant.access), ("refresh", &grant.refresh)] {
        ensure!(
            revoked.iter().any(|r| r.id == record.id),
            m::REVOKE_FAMILY,
            "revokes and returns every record of the family that is not revoked yet",
            "the family's first {kind} token is not among the {} records returned",
            revoked.len()
        );
    }
    match outcome {
        ExchangeOutcome::Exchanged => {
            for (kind, record) in [("access", &x.access), ("refresh", &x.refresh)] {
                match h.find(&record.digest).await? {
                    None => {
                        return Err(Violation::new(
                            m::EXCHANGE,
                            "an exchange that answers Exchanged stores its new pair",
                            format!("the new {kind} token is not stored"),
                        ))
                    }
                    Some(stored) if !stored.is_revoked() => {
                        return Err(Violation::new(
                            SERIALISED_METHODS,
                            SERIALISED,
                            format!(
                                "exchange answered Exchanged, revoke_family returned {} records, \
                                 and the new {kind} token the exchange stored is live",
                                revoked.len()
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
            ensure_eq!(
                revoked.len(),
                4,
                SERIALISED_METHODS,
                "a revocation that runs after an exchange revokes and returns the old pair and \
                 the new one"
            );
        }
        ExchangeOutcome::NotLive => {
            for (kind, record) in [("access", &x.access), ("refresh", &x.refresh)] {
                let stored = h.find(&record.digest).await?;
                ensure!(
                    stored.is_none(),
                    m::EXCHANGE,
                    "an exchange that answers NotLive stores nothing",
                    "its new {kind} token is stored"
                );
            }
            let presented = h
                .record(
                    &grant.refresh.digest,
                    "keeps every record of a revoked family",
                )
                .await?;
            ensure!(
                presented.spent_at.is_none(),
                m::EXCHANGE,
                "an exchange that answers NotLive spends nothing",
                "the refresh token was spent"
            );
            ensure_eq!(
                revoked.len(),
                2,
                SERIALISED_METHODS,
                "a revocation that runs before an exchange revokes and returns the family's pair"
            );
        }
        ExchangeOutcome::AlreadySpent => {
            return Err(Violation::new(
                m::EXCHANGE,
                "answers AlreadySpent only for a spent refresh token (this one was live until \
                 its family was revoked)",
                "AlreadySpent",
            ))
        }
    }
    let live: Vec<_> = h
        .backend()
        .list(&grant.owner)
        .await
        .answer(m::LIST)?
        .iter()
        .filter(|r| !r.is_revoked())
        .map(|r| r.id)
        .collect();
    ensure!(
        live.is_empty(),
        SERIALISED_METHODS,
        SERIALISED,
        "live records of the revoked family after exchange answered {outcome:?}: {live:?}"
    );
    Ok(())
}

// ---- update_scopes against revoke ----

const NEVER_REVIVES: &str = "the check and the write are one atomic step: a scope change racing \
                             a revocation never revives the token";

/// [`update_scopes`](TokenBackend::update_scopes) and
/// [`revoke`](TokenBackend::revoke) of one personal access token meet
/// inside the backend, each call first in turn: the token ends revoked at
/// the revocation's time, with the new scopes if and only if the update
/// answered `Some`; each call returns one whole version of the record.
pub async fn update_scopes_racing_a_revocation_never_revives_the_token<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let backend = h.backend();
    let h = &h;
    let (old, new) = (B::Scopes::DEFAULT, picks::other_than_default::<B::Scopes>());
    let mut n = 0;
    for update_first in [true, false] {
        schedule::explore(|schedule| {
            n += 1;
            let owner = format!("kit-update-scopes-race-{n}");
            async move {
                let pat = h.personal(&owner, old).await?;
                let at = h.now();
                let (label, updated, revoked, alone) = if update_first {
                    let label = Labelled {
                        first: "update_scopes",
                        second: "revoke",
                        schedule,
                    };
                    let ran = schedule::run(
                        schedule,
                        backend.update_scopes(pat.id, new, at),
                        backend.revoke(pat.id, at),
                    )
                    .await
                    .map_err(|s| {
                        stuck("TokenBackend::update_scopes with TokenBackend::revoke", s)
                            .during(&label)
                    })?;
                    (label, ran.first, ran.second, ran.first_finished_alone)
                } else {
                    let label = Labelled {
                        first: "revoke",
                        second: "update_scopes",
                        schedule,
                    };
                    let ran = schedule::run(
                        schedule,
                        backend.revoke(pat.id, at),
                        backend.update_scopes(pat.id, new, at),
                    )
                    .await
                    .map_err(|s| {
                        stuck("TokenBackend::update_scopes with TokenBackend::revoke", s)
                            .during(&label)
                    })?;
                    (label, ran.second, ran.first, ran.first_finished_alone)
                };
                never_revived(h, &pat, (old, new), at, updated, revoked)
                    .await
                    .map_err(|v| v.during(&label))?;
                Ok(alone)
            }
        })
        .await?;
    }
    Ok(())
}

type Answered<S> = Result<Option<SharedRecord<S>>, StoreError>;

/// The guarantee of a scope change and a revocation, checked after both
/// ran.
async fn never_revived<B: TokenBackend>(
    h: &Harness<B>,
    pat: &TokenRecord<B::Scopes>,
    (old, new): (B::Scopes, B::Scopes),
    at: SystemTime,
    updated: Answered<B::Scopes>,
    revoked: Answered<B::Scopes>,
) -> Result<(), Violation> {
    let updated = updated.answer(m::UPDATE_SCOPES)?;
    let revoked = revoked.answer(m::REVOKE)?.ok_or_else(|| {
        Violation::new(
            m::REVOKE,
            "revoking a live token returns it as revoked (a racing scope change does not make it \
             look revoked or gone)",
            "None",
        )
    })?;
    let update = if updated.is_some() { "Some" } else { "None" };
    let scopes = if updated.is_some() { new } else { old };
    let got = h
        .backend()
        .get(pat.id)
        .await
        .answer(m::GET)?
        .ok_or_else(|| Violation::new(m::GET, "returns a stored record by its id", "None"))?;
    let found = h.record(&pat.digest, "keeps every record").await?;
    for (read, record) in [("get", &got), ("find", &found)] {
        ensure!(
            record.revoked_at == Some(at),
            m::UPDATE_SCOPES,
            NEVER_REVIVES,
            "revoke returned the record revoked, update_scopes answered {update}, and {read} \
             then returns it with revoked_at {:?}",
            record.revoked_at
        );
        ensure_eq!(
            record.scopes,
            scopes,
            m::UPDATE_SCOPES,
            "writes the new scopes exactly when it answers Some (a lookup sees either the old \
             scopes or the new ones)"
        );
    }
    if let Some(updated) = &updated {
        ensure!(
            updated.scopes == new && updated.revoked_at.is_none(),
            m::UPDATE_SCOPES,
            "updates a record only while it is live, and returns it with the new scopes",
            "{updated:?}"
        );
    }
    ensure!(
        revoked.revoked_at == Some(at) && revoked.scopes == scopes,
        m::REVOKE,
        "returns one whole version of the record, as revoked (with the new scopes after a \
         scope change that answered Some, the old ones otherwise)",
        "{revoked:?} after update_scopes answered {update}"
    );
    Ok(())
}

// ---- revoke against revoke ----

/// Two [`revoke`](TokenBackend::revoke)s of one token meet inside the
/// backend: exactly one returns `Some`, and the record ends revoked at
/// that call's time.
pub async fn concurrent_revocations_of_one_token_have_one_winner<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let backend = h.backend();
    let h = &h;
    let mut n = 0;
    schedule::explore(|schedule| {
        n += 1;
        let owner = format!("kit-revoke-race-{n}");
        async move {
            let pat = h.personal(&owner, B::Scopes::DEFAULT).await?;
            let at = [h.now(), h.now() + Duration::from_secs(1)];
            let ran = schedule::run(
                schedule,
                backend.revoke(pat.id, at[0]),
                backend.revoke(pat.id, at[1]),
            )
            .await
            .map_err(|s| stuck(m::REVOKE, s).during(schedule))?;
            let check = async {
                let answers = [ran.first.answer(m::REVOKE)?, ran.second.answer(m::REVOKE)?];
                let winner = match &answers {
                    [Some(_), None] => 0,
                    [None, Some(_)] => 1,
                    [a, b] => {
                        return Err(Violation::new(
                            m::REVOKE,
                            "of concurrent revocations of one id exactly one returns Some",
                            format!(
                                "[{}, {}]",
                                if a.is_some() { "Some" } else { "None" },
                                if b.is_some() { "Some" } else { "None" }
                            ),
                        ))
                    }
                };
                let stored = h.record(&pat.digest, "keeps a revoked record").await?;
                ensure_eq!(
                    stored.revoked_at,
                    Some(at[winner]),
                    m::REVOKE,
                    "the record stays revoked at the time of the call that returned Some (the \
                     other writes nothing)"
                );
                Ok(())
            };
            check.await.map_err(|v: Violation| v.during(schedule))?;
            Ok(ran.first_finished_alone)
        }
    })
    .await?;
    Ok(())
}

// ---- record_use against revoke ----

/// [`record_use`](TokenBackend::record_use) and
/// [`revoke`](TokenBackend::revoke) of one token meet inside the backend,
/// each call first in turn: both writes survive. `record_use` writes only
/// `last_used_at` (never a whole record read earlier, which would undo the
/// revocation), and `revoke` writes only `revoked_at`.
pub async fn record_use_racing_a_revocation_keeps_both_writes<B: TokenBackend>(
    h: Harness<B>,
) -> Result<(), Violation> {
    let backend = h.backend();
    let h = &h;
    let mut n = 0;
    for use_first in [true, false] {
        schedule::explore(|schedule| {
            n += 1;
            let owner = format!("kit-record-use-race-{n}");
            async move {
                let pat = h.personal(&owner, B::Scopes::DEFAULT).await?;
                let at = h.now();
                let used = at + Duration::from_secs(1);
                let uses = [(pat.id, used)];
                let (label, recorded, revoked, alone) = if use_first {
                    let label = Labelled {
                        first: "record_use",
                        second: "revoke",
                        schedule,
                    };
                    let ran = schedule::run(
                        schedule,
                        backend.record_use(&uses),
                        backend.revoke(pat.id, at),
                    )
                    .await
                    .map_err(|s| {
                        stuck("TokenBackend::record_use with TokenBackend::revoke", s)
                            .during(&label)
                    })?;
                    (label, ran.first, ran.second, ran.first_finished_alone)
                } else {
                    let label = Labelled {
                        first: "revoke",
                        second: "record_use",
                        schedule,
                    };
                    let ran = schedule::run(
                        schedule,
                        backend.revoke(pat.id, at),
                        backend.record_use(&uses),
                    )
                    .await
                    .map_err(|s| {
                        stuck("TokenBackend::record_use with TokenBackend::revoke", s)
                            .during(&label)
                    })?;
                    (label, ran.second, ran.first, ran.first_finished_alone)
                };
                let check = async {
                    recorded.answer(m::RECORD_USE)?;
                    let revoked = revoked.answer(m::REVOKE)?;
                    ensure!(
                        revoked.is_some(),
                        m::REVOKE,
                        "revoking a live token returns it as revoked",
                        "None"
                    );
                    let stored = h.record(&pat.digest, "keeps every record").await?;
                    ensure_eq!(
                        stored.revoked_at,
                        Some(at),
                        m::RECORD_USE,
                        "writes only last_used_at, never a whole record read earlier (which \
                         would undo a revocation made in between)"
                    );
                    ensure_eq!(
                        stored.last_used_at,
                        Some(used),
                        m::REVOKE,
                        "marks the record revoked and changes nothing else (a use recorded in \
                         between stays)"
                    );
                    Ok(())
                };
                check.await.map_err(|v: Violation| v.during(&label))?;
                Ok(alone)
            }
        })
        .await?;
    }
    Ok(())
}
