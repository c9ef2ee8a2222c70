//! Forced interleavings of two calls at a backend's suspension points.
//!
//! A backend's methods are futures: a database backend returns `Pending`
//! at each round trip, a backend with an async lock returns `Pending`
//! while another call holds it. Two calls meet inside the backend only if
//! the second one runs while the first is suspended. [`run`] forces that:
//! it polls the first call's future by hand a chosen number of times
//! ([`Schedule::first_polls`]), then starts the second and drives both to
//! completion in a chosen order ([`Then`]). [`explore`] runs every such
//! schedule, from "the second call first" up to "the second call after the
//! first finished", each on fresh records, so a check-then-act race is
//! found whichever suspension point it hides behind.
//!
//! A poll is counted only when the future was woken since its last poll,
//! so a count is a number of suspension points, not of spurious polls; the
//! driver waits for real wake-ups (I/O, a lock released by the other call)
//! on the Tokio runtime it runs on, so a backend that holds a lock across
//! an `.await` makes the other call wait, never deadlocks the driver. A
//! pair that does not finish within [`STUCK_AFTER`] is reported as
//! [`Stuck`]: a deadlock or a lost wake-up inside the backend.
//!
//! ```
//! use tower_token_auth_conformance::schedule::{self, Schedule, Then};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let schedule = Schedule { first_polls: 1, then: Then::Alternate };
//! let ran = schedule::run(
//!     schedule,
//!     async {
//!         tokio::task::yield_now().await;
//!         "first"
//!     },
//!     async { "second" },
//! )
//! .await
//! .expect("both finish");
//! // The second call ran while the first was suspended at its yield.
//! assert_eq!((ran.first, ran.second), ("first", "second"));
//! assert!(!ran.first_finished_alone);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;

use crate::Violation;

/// How long a pair of calls may take before it counts as stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(10);

/// The most polls of the first call [`explore`] tries before it starts the
/// second: a call that suspends more often than this is still explored at
/// its first `MAX_SOLO_POLLS` suspension points.
pub const MAX_SOLO_POLLS: usize = 48;

/// Consecutive polls of one call that [`Then::SecondFirst`] and
/// [`Then::FirstFirst`] allow while the other call is ready to run, so
/// that a call that spins (yields in a loop, waiting for the other) cannot
/// starve it.
const MAX_STREAK: usize = 64;

/// Polls per turn of the driver before it lets the runtime run (timers,
/// I/O): a pair of spinning calls cannot hold the thread.
const POLLS_PER_TURN: usize = 64;

/// The order in which [`run`] drives the two calls once both are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Then {
    /// One poll of each in turn (the second first), skipping a call that
    /// is waiting for a wake-up.
    Alternate,
    /// The second call whenever it can run; the first only while the
    /// second waits: the second runs as far as it can inside the first.
    SecondFirst,
    /// The first call whenever it can run; the second only while the
    /// first waits.
    FirstFirst,
}

impl Then {
    /// Every order, in the order [`explore`] tries them.
    pub const ALL: [Then; 3] = [Then::Alternate, Then::SecondFirst, Then::FirstFirst];
}

impl fmt::Display for Then {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Alternate => "then alternating polls",
            Self::SecondFirst => "then the second call whenever it can run",
            Self::FirstFirst => "then the first call whenever it can run",
        })
    }
}

/// One forced interleaving of two calls: the second starts after
/// `first_polls` polls of the first, then both run in the order `then`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Schedule {
    /// How many times the first call is polled (each time after a wake-up)
    /// before the second is started. 0 starts the second call first.
    pub first_polls: usize,
    /// The order of the polls once both are started.
    pub then: Then,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.first_polls == 1 { "" } else { "s" };
        write!(
            f,
            "second call started after {} poll{s} of the first, {}",
            self.first_polls, self.then
        )
    }
}

/// What [`run`] saw: both answers and how the calls interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran<A, B> {
    /// The first call's answer.
    pub first: A,
    /// The second call's answer.
    pub second: B,
    /// Whether the first call finished before the second was started (the
    /// schedule asked for at least as many polls as it needs alone): the
    /// calls ran one after the other.
    pub first_finished_alone: bool,
    /// How many times the first call was polled in all.
    pub first_polls: usize,
    /// How many times the second call was polled in all.
    pub second_polls: usize,
}

/// A pair of calls that did not finish within [`STUCK_AFTER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stuck {
    /// Whether the first call had finished.
    pub first_finished: bool,
    /// Whether the second call had been started.
    pub second_started: bool,
    /// Whether the second call had finished.
    pub second_finished: bool,
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = |finished| if finished { "finished" } else { "pending" };
        let second = if self.second_started {
            state(self.second_finished)
        } else {
            "not started"
        };
        write!(
            f,
            "after {} s the first call was {} and the second {}",
            STUCK_AFTER.as_secs(),
            state(self.first_finished),
            second
        )
    }
}

/// Records that a call was woken, and wakes the driver's task.
#[derive(Debug)]
struct Flag {
    woken: AtomicBool,
    driver: Arc<AtomicWaker>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.driver.wake();
    }
}

/// One of the two calls, polled by hand with a waker of its own.
struct Slot<F: Future> {
    future: Pin<Box<F>>,
    flag: Arc<Flag>,
    waker: Waker,
    output: Option<F::Output>,
    polls: usize,
}

impl<F: Future> Slot<F> {
    /// A call that is ready for its first poll.
    fn new(future: F, driver: &Arc<AtomicWaker>) -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            driver: Arc::clone(driver),
        });
        Self {
            future: Box::pin(future),
            waker: Waker::from(Arc::clone(&flag)),
            flag,
            output: None,
            polls: 0,
        }
    }

    fn finished(&self) -> bool {
        self.output.is_some()
    }

    /// Whether the call can make progress: not finished, and woken since
    /// its last poll.
    fn runnable(&self) -> bool {
        !self.finished() && self.flag.woken.load(Ordering::SeqCst)
    }

    fn poll(&mut self) {
        self.flag.woken.store(false, Ordering::SeqCst);
        self.polls += 1;
        let mut cx = Context::from_waker(&self.waker);
        if let Poll::Ready(output) = self.future.as_mut().poll(&mut cx) {
            self.output = Some(output);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    First,
    Second,
}

/// The state of one run of a [`Schedule`].
struct Driver<A: Future, B: Future> {
    schedule: Schedule,
    waker: Arc<AtomicWaker>,
    first: Slot<A>,
    second_future: Option<B>,
    second: Option<Slot<B>>,
    first_finished_alone: bool,
    last: Option<Which>,
    streak: usize,
}

impl<A: Future, B: Future> Driver<A, B> {
    fn step(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Register before looking at the flags: a wake-up from another
        // thread in between is not lost.
        self.waker.register(cx.waker());
        for _ in 0..POLLS_PER_TURN {
            let Some(second) = self.second.as_mut() else {
                // The first call alone, up to the schedule's count.
                if self.first.finished() || self.first.polls >= self.schedule.first_polls {
                    self.first_finished_alone = self.first.finished();
                    if let Some(future) = self.second_future.take() {
                        self.second = Some(Slot::new(future, &self.waker));
                    }
                    continue;
                }
                if !self.first.runnable() {
                    return Poll::Pending;
                }
                self.first.poll();
                continue;
            };
            if self.first.finished() && second.finished() {
                return Poll::Ready(());
            }
            let pick = Self::pick(
                self.schedule.then,
                self.last,
                self.streak,
                self.first.runnable(),
                second.runnable(),
            );
            match pick {
                Some(Which::First) => self.first.poll(),
                Some(Which::Second) => second.poll(),
                None => return Poll::Pending,
            }
            if self.last == pick {
                self.streak += 1;
            } else {
                self.streak = 1;
            }
            self.last = pick;
        }
        // A long turn: let the runtime run, and come back at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Which call to poll next, of those that can run.
    fn pick(
        then: Then,
        last: Option<Which>,
        streak: usize,
        first: bool,
        second: bool,
    ) -> Option<Which> {
        let (preferred, other) = match (then, last) {
            // The second call's first poll comes first, whatever the order.
            (_, None) => (Which::Second, Which::First),
            (Then::Alternate, Some(Which::First)) => (Which::Second, Which::First),
            (Then::Alternate, Some(Which::Second)) => (Which::First, Which::Second),
            (Then::SecondFirst, Some(last)) => {
                if last == Which::Second && streak >= MAX_STREAK {
                    (Which::First, Which::Second)
                } else {
                    (Which::Second, Which::First)
                }
            }
            (Then::FirstFirst, Some(last)) => {
                if last == Which::First && streak >= MAX_STREAK {
                    (Which::Second, Which::First)
                } else {
                    (Which::First, Which::Second)
                }
            }
        };
        let can = |which| match which {
            Which::First => first,
            Which::Second => second,
        };
        [preferred, other].into_iter().find(|which| can(*which))
    }
}

/// Runs `first` and `second` as `schedule` says, on the current Tokio
/// runtime (its timer bounds the run to [`STUCK_AFTER`]).
///
/// # Errors
///
/// [`Stuck`] when the pair did not finish in time.
///
/// # Panics
///
/// Outside a Tokio runtime with its timer enabled.
pub async fn run<A: Future, B: Future>(
    schedule: Schedule,
    first: A,
    second: B,
) -> Result<Ran<A::Output, B::Output>, Stuck> {
    let waker = Arc::new(AtomicWaker::new());
    let mut driver = Driver {
        schedule,
        first: Slot::new(first, &waker),
        waker,
        second_future: Some(second),
        second: None,
        first_finished_alone: false,
        last: None,
        streak: 0,
    };
    let finished =
        tokio::time::timeout(STUCK_AFTER, std::future::poll_fn(|cx| driver.step(cx))).await;
    let first_output = driver.first.output.take();
    let first_polls = driver.first.polls;
    let second = driver.second.as_mut().map(|s| (s.output.take(), s.polls));
    match (finished, first_output, second) {
        (Ok(()), Some(first), Some((Some(second), second_polls))) => Ok(Ran {
            first,
            second,
            first_finished_alone: driver.first_finished_alone,
            first_polls,
            second_polls,
        }),
        (_, first, second) => Err(Stuck {
            first_finished: first.is_some(),
            second_started: second.is_some(),
            second_finished: second.is_some_and(|(output, _)| output.is_some()),
        }),
    }
}

/// Runs `one` for every schedule: for each [`Then`], the second call
/// started after 0, 1, 2, … polls of the first, up to the first schedule in
/// which the first call finished alone (or [`MAX_SOLO_POLLS`]). `one` sets
/// up fresh records, runs the pair with [`run`] under the schedule it is
/// given, checks the guarantee, and answers whether the first call
/// finished alone ([`Ran::first_finished_alone`]).
///
/// Returns how many schedules ran.
///
/// # Errors
///
/// The first violation `one` reports.
pub async fn explore<F, Fut>(mut one: F) -> Result<usize, Violation>
where
    F: FnMut(Schedule) -> Fut,
    Fut: Future<Output = Result<bool, Violation>>,
{
    let mut ran = 0;
    for then in Then::ALL {
        for first_polls in 0..=MAX_SOLO_POLLS {
            ran += 1;
            if one(Schedule { first_polls, then }).await? {
                break;
            }
        }
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    /// Suspends once, asking at once to be polled again (Tokio's
    /// `yield_now` defers that wake-up to the end of the runtime's turn,
    /// which would make these traces depend on the runtime).
    async fn suspend() {
        let mut suspended = false;
        std::future::poll_fn(|cx| {
            if suspended {
                return Poll::Ready(());
            }
            suspended = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await;
    }

    /// A call that records each of its steps in `log`, suspending between
    /// them.
    async fn steps(log: &Mutex<Vec<String>>, name: &str, n: usize) -> usize {
        for i in 0..n {
            log.lock().unwrap().push(format!("{name}{i}"));
            suspend().await;
        }
        n
    }

    async fn trace(schedule: Schedule) -> (Vec<String>, bool) {
        let log = Mutex::new(Vec::new());
        let ran = run(schedule, steps(&log, "a", 3), steps(&log, "b", 2))
            .await
            .expect("both finish");
        assert_eq!((ran.first, ran.second), (3, 2));
        (log.into_inner().unwrap(), ran.first_finished_alone)
    }

    #[tokio::test]
    async fn the_second_call_starts_after_the_given_polls_of_the_first() {
        let (log, alone) = trace(Schedule {
            first_polls: 0,
            then: Then::Alternate,
        })
        .await;
        assert_eq!(log, ["b0", "a0", "b1", "a1", "a2"]);
        assert!(!alone);
        let (log, _) = trace(Schedule {
            first_polls: 2,
            then: Then::Alternate,
        })
        .await;
        assert_eq!(log, ["a0", "a1", "b0", "a2", "b1"]);
        let (log, _) = trace(Schedule {
            first_polls: 1,
            then: Then::SecondFirst,
        })
        .await;
        assert_eq!(log, ["a0", "b0", "b1", "a1", "a2"]);
        let (log, _) = trace(Schedule {
            first_polls: 1,
            then: Then::FirstFirst,
        })
        .await;
        assert_eq!(log, ["a0", "b0", "a1", "a2", "b1"]);
        let (log, alone) = trace(Schedule {
            first_polls: 4,
            then: Then::Alternate,
        })
        .await;
        assert_eq!(log, ["a0", "a1", "a2", "b0", "b1"]);
        assert!(alone, "a call of three suspensions finishes in four polls");
    }

    #[tokio::test]
    async fn a_lock_held_across_an_await_makes_the_other_call_wait() {
        let lock = tokio::sync::Mutex::new(Vec::new());
        let call = |name: &'static str| {
            let lock = &lock;
            async move {
                let mut held = lock.lock().await;
                held.push(name);
                tokio::task::yield_now().await;
                held.push(name);
            }
        };
        for then in Then::ALL {
            let ran = run(
                Schedule {
                    first_polls: 1,
                    then,
                },
                call("a"),
                call("b"),
            )
            .await
            .expect("no deadlock");
            assert!(!ran.first_finished_alone);
        }
        assert_eq!(lock.lock().await.len(), 12);
    }

    #[tokio::test]
    async fn a_call_that_is_never_woken_is_stuck() {
        tokio::time::pause();
        let stuck = run(
            Schedule {
                first_polls: 1,
                then: Then::Alternate,
            },
            std::future::pending::<()>(),
            async {},
        )
        .await
        .unwrap_err();
        assert_eq!(
            stuck.to_string(),
            "after 10 s the first call was pending and the second finished"
        );
    }

    #[tokio::test]
    async fn exploration_stops_at_the_first_sequential_schedule() {
        let mut seen = Vec::new();
        let ran = explore(|schedule| {
            seen.push(schedule);
            async move { Ok(schedule.first_polls >= 2) }
        })
        .await
        .unwrap();
        assert_eq!(ran, 9);
        assert_eq!(
            seen[3],
            Schedule {
                first_polls: 0,
                then: Then::SecondFirst
            }
        );
        assert_eq!(
            seen[1].to_string(),
            "second call started after 1 poll of the first, then alternating polls"
        );
    }
}
