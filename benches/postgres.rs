//! Sign-ins on PostgreSQL, against a throwaway server this benchmark starts
//! (Debian's `postgresql`, as the tests do) with the server's durable
//! defaults: `fsync=on`, `synchronous_commit=on`. Prints that it skipped when
//! there is no server.
//!
//! Group `postgres_sign_in` (one client, a fresh code each iteration, every
//! sign-in a committed write with its audit event):
//! - `driver_blocking`: `Portal::verify_sign_in(..).run()` on `PostgresStore`;
//! - `minimal_tx`: the floor: a hand-written read and compare-and-swap write of
//!   the same row and one event, on the same tables, with the same two round trips;
//! - `driver_async`: `.await` on `AsyncPostgresStore`;
//! - `driver_async_row_lock`: the same, with `apply` locking the row instead
//!   (`BEGIN` + `SELECT … FOR UPDATE`, then the write + `COMMIT`, each pair
//!   pipelined): the alternative to the version column, measured beside it;
//! - `*_sync_commit_off`: the blocking driver and the floor again with
//!   `synchronous_commit=off`.
//!
//! Group `postgres_contended`: 8 clients signing in as one user at once (one
//! wins each step), version column vs row lock.
//!
//! Group `postgres_throughput`: sign-ins per second with 1, 8 and 32 clients
//! (threads on the blocking store), each its own user.
//!
//! Group `postgres_standby`: the same sign-in, and 8 clients' throughput, on a
//! primary with a synchronous standby, against the primary alone (see
//! [`standby`]).

#[path = "../tests/flows/pg.rs"]
#[allow(dead_code, unreachable_pub)]
#[macro_use]
mod pg;
#[path = "../tests/flows/patience.rs"]
#[allow(dead_code, unreachable_pub)]
mod patience;

use patience::{PATIENCE, wait_for, wait_until};

use std::future::IntoFuture;
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, Throughput};
use portal_mfa::store::{
    Applied, AsyncMfaStore, AsyncStore, BlockingStore, ChangeFn, Commit, EventPosition, RecordSummary, RecordWrite,
    StoreFuture, Stored, StoredEvent, UserListing, Version,
};
use portal_mfa::{
    EnrolmentOptions, Keyring, LockoutRule, ManualClock, Portal, PortalId, PortalPolicy, StartedEnrolment,
    StorageError, UserId,
    audit::EventQuery,
    otp::Totp,
    store::{AsyncPostgresStore, PostgresOptions, PostgresStore},
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const T0: u64 = 1_763_800_000;

type BenchPortal<S> = Portal<S, ManualClock, StdRng>;

/// The runtime the async stores run on (`pg.rs` finds it here).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn bench_portal<S>(store: S, clock: &ManualClock) -> BenchPortal<S> {
    Portal::new(PortalId::new("bench"), "Bench Portal", store)
        .expect("portal")
        .with_keyring(Keyring::new("bench", &[9; 32]).expect("keyring"))
        .with_clock(clock.clone())
        .with_rng(StdRng::seed_from_u64(7))
        .with_max_attempts(1_000)
}

/// The app the user set up from `started`, and the code it shows now.
fn first_code(started: &StartedEnrolment, clock: &ManualClock) -> (Totp, String) {
    let totp = Totp::new(started.uri.secret(), *started.uri.params());
    let code = totp
        .generate(portal_mfa::Clock::now(clock))
        .unwrap()
        .expose()
        .to_string();
    (totp, code)
}

fn enrol<S: BlockingStore>(portal: &BenchPortal<S>, user: &UserId, clock: &ManualClock) -> Totp {
    let session = portal
        .begin_sign_in(user)
        .run()
        .expect("password step")
        .session()
        .expect("a stamp");
    let started = portal
        .start_enrolment(user, &session, "user@example.com", "phone", EnrolmentOptions::default())
        .run()
        .expect("start");
    let (totp, code) = first_code(&started, clock);
    portal.confirm_enrolment(user, &session, &code).run().expect("confirm");
    totp
}

/// The next step's code: every iteration signs in with a fresh one. Where the
/// app shows the previous step's digits again, a person waits for the next
/// code (the portal would refuse the repeat as already used).
fn next_code(clock: &ManualClock, totp: &Totp) -> String {
    let code_at = |t: u64| totp.generate(t).unwrap().expose().to_string();
    clock.advance(30);
    while code_at(portal_mfa::Clock::now(clock)) == code_at(portal_mfa::Clock::now(clock) - 30) {
        clock.advance(30);
    }
    code_at(portal_mfa::Clock::now(clock))
}

fn main() {
    let Some(server) = pg::own(&[]) else {
        println!("postgres benchmark skipped: no PostgreSQL server could be started");
        return;
    };
    let mut admin = server.admin();
    let mut setting = |name: &str| -> String { admin.query_one(&format!("SHOW {name}"), &[]).unwrap().get(0) };
    println!(
        "server: {}; synchronous_commit={}, fsync={}, wal_sync_method={}",
        setting("server_version"),
        setting("synchronous_commit"),
        setting("fsync"),
        setting("wal_sync_method")
    );
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    single_client(&mut c, &server);
    contended(&mut c, &server);
    throughput(&mut c, &server);
    standby(&mut c);
    c.final_summary();
}

/// A schema of its own, its blocking store, and a URL with extra server options.
fn blocking_store(server: &pg::PgServer, schema: &str, settings: &str) -> (PostgresStore, String) {
    let url = format!("{} options='{settings}'", server.url());
    let store = PostgresStore::connect(&url, PostgresOptions::new().schema(schema)).expect("store");
    (store, url)
}

fn single_client(c: &mut Criterion, server: &pg::PgServer) {
    let mut g = c.benchmark_group("postgres_sign_in");
    for (suffix, settings) in [
        ("", "-c synchronous_commit=on"),
        ("_sync_commit_off", "-c synchronous_commit=off"),
    ] {
        let schema = pg::unique_name("bench");
        let (store, url) = blocking_store(server, &schema, settings);
        let clock = ManualClock::at(T0);
        let portal = bench_portal(store, &clock);
        let user = UserId::customer("alice");
        let totp = enrol(&portal, &user, &clock);
        g.bench_function(format!("driver_blocking{suffix}"), |b| {
            b.iter_batched(
                || next_code(&clock, &totp),
                |code| portal.verify_sign_in(&user, &code).run().expect("sign-in"),
                BatchSize::PerIteration,
            )
        });
        // The floor: the same two round trips, written by hand, on another user's row.
        let other = UserId::customer("bob");
        enrol(&portal, &other, &clock);
        let mut client = pg::Client::connect(&url);
        let read = client
            .prepare(&format!(
                "SELECT version, record FROM \"{schema}\".portal_mfa_records
                 WHERE portal = $1 AND user_kind = $2 AND user_id = $3"
            ))
            .unwrap();
        let write = client
            .prepare(&format!(
                "WITH w AS (
                    UPDATE \"{schema}\".portal_mfa_records SET version = $4 + 1, record = $5, last_verified_at = $6
                    WHERE portal = $1 AND user_kind = $2 AND user_id = $3 AND version = $4 RETURNING 1
                 ), e AS (
                    INSERT INTO \"{schema}\".portal_mfa_events (portal, user_kind, user_id, at, kind, event)
                    SELECT $1, $2, $3, $6, 'verified', $5 FROM w RETURNING 1
                 ) SELECT count(*) FROM w"
            ))
            .unwrap();
        let mut at = T0 as i64;
        g.bench_function(format!("minimal_tx{suffix}"), |b| {
            b.iter(|| {
                let row = client.query_one(&read, &[&"bench", &"customer", &"bob"]).unwrap();
                let (version, record): (i64, Vec<u8>) = (row.get(0), row.get(1));
                at += 30;
                let written: i64 = client
                    .query_one(&write, &[&"bench", &"customer", &"bob", &version, &record, &at])
                    .unwrap()
                    .get(0);
                assert_eq!(written, 1);
            })
        });
        if suffix.is_empty() {
            for (name, store) in [
                ("driver_async", async_store(server, &pg::unique_name("bench"), false)),
                (
                    "driver_async_row_lock",
                    async_store(server, &pg::unique_name("bench"), true),
                ),
            ] {
                let clock = ManualClock::at(T0);
                let portal = bench_portal(store, &clock);
                let user = UserId::customer("carol");
                let totp = enrol_async(&portal, &user, &clock);
                g.bench_function(name, |b| {
                    b.iter_batched(
                        || next_code(&clock, &totp),
                        |code| {
                            runtime()
                                .block_on(portal.verify_sign_in(&user, &code).into_future())
                                .expect("sign-in")
                        },
                        BatchSize::PerIteration,
                    )
                });
            }
        }
    }
    g.finish();
}

/// The async store, version column or row lock.
fn async_store(server: &pg::PgServer, schema: &str, row_lock: bool) -> Arc<dyn AsyncMfaStore> {
    let options = PostgresOptions::new().schema(schema);
    let store = runtime()
        .block_on(AsyncPostgresStore::connect(server.url(), options))
        .expect("store");
    if row_lock {
        Arc::new(RowLock {
            schema: schema.to_owned(),
            store,
        })
    } else {
        Arc::new(store)
    }
}

fn enrol_async<S: AsyncStore>(portal: &BenchPortal<S>, user: &UserId, clock: &ManualClock) -> Totp {
    let session = runtime()
        .block_on(portal.begin_sign_in(user).into_future())
        .expect("password step")
        .session()
        .expect("a stamp");
    let started = runtime()
        .block_on(
            portal
                .start_enrolment(user, &session, "user@example.com", "phone", EnrolmentOptions::default())
                .into_future(),
        )
        .expect("start");
    let (totp, code) = first_code(&started, clock);
    runtime()
        .block_on(portal.confirm_enrolment(user, &session, &code).into_future())
        .expect("confirm");
    totp
}

fn contended(c: &mut Criterion, server: &pg::PgServer) {
    const CLIENTS: usize = 8;
    let mut g = c.benchmark_group("postgres_contended");
    g.sample_size(10);
    for (name, row_lock) in [("version_column_8_clients", false), ("row_lock_8_clients", true)] {
        let store = async_store(server, &pg::unique_name("bench"), row_lock);
        let clock = ManualClock::at(T0);
        // Each step's losers are replays, which count as failures until the next success: lock late.
        let lenient = PortalPolicy::default().with_lockout(LockoutRule::new(100, 1, 1).unwrap());
        let portal = bench_portal(store, &clock).with_default_policy(lenient);
        let user = UserId::customer("dave");
        let totp = enrol_async(&portal, &user, &clock);
        // One step: 8 clients submit its code at once; one is accepted.
        g.bench_function(name, |b| {
            b.iter_batched(
                || next_code(&clock, &totp),
                |code| {
                    runtime().block_on(async {
                        let mut tasks = Vec::new();
                        for _ in 0..CLIENTS {
                            tasks.push(portal.verify_sign_in(&user, &code).into_future());
                        }
                        let mut accepted = 0;
                        for task in tasks {
                            accepted += usize::from(task.await.is_ok());
                        }
                        assert_eq!(accepted, 1);
                    })
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn throughput(c: &mut Criterion, server: &pg::PgServer) {
    let mut g = c.benchmark_group("postgres_throughput");
    g.sample_size(10);
    for clients in [1usize, 8, 32] {
        let (store, _) = blocking_store(server, &pg::unique_name("bench"), "-c synchronous_commit=on");
        at_once(&mut g, &format!("{clients}_clients"), store, clients);
    }
    g.finish();
}

/// Sign-ins per second with `clients` threads at once, each its own user, on `store`.
fn at_once(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, store: PostgresStore, clients: usize) {
    let store = Arc::new(store);
    let setup_clock = ManualClock::at(T0);
    let setup = bench_portal(store.clone(), &setup_clock);
    let users: Vec<(UserId, Totp)> = (0..clients)
        .map(|i| {
            let user = UserId::customer(format!("client-{i}"));
            let totp = enrol(&setup, &user, &setup_clock);
            (user, totp)
        })
        .collect();
    let clocks: Vec<ManualClock> = (0..clients).map(|_| ManualClock::at(T0 + 60)).collect();
    let portals: Vec<_> = clocks.iter().map(|clock| bench_portal(store.clone(), clock)).collect();
    g.throughput(Throughput::Elements(clients as u64));
    // One iteration: every client signs in once, all at once.
    g.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            let barrier = Barrier::new(clients);
            let elapsed = Mutex::new(Duration::ZERO);
            std::thread::scope(|s| {
                for i in 0..clients {
                    let (portal, clock, (user, totp)) = (&portals[i], &clocks[i], &users[i]);
                    let (barrier, elapsed) = (&barrier, &elapsed);
                    s.spawn(move || {
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..iterations {
                            // A code costs a microsecond; a sign-in, a commit.
                            let code = next_code(clock, totp);
                            portal.verify_sign_in(user, &code).run().expect("sign-in");
                        }
                        let took = start.elapsed();
                        let mut longest = elapsed.lock().unwrap();
                        *longest = (*longest).max(took);
                    });
                }
            });
            elapsed.into_inner().unwrap()
        })
    });
}

/// Group `postgres_standby`: a primary with a synchronous standby on the same
/// machine, both `fsync=on`. The same servers, tables and driver, each store
/// choosing its `synchronous_commit` for its own sessions: `local` (the
/// primary's flush alone, as with no standby), `on` (the standby's flush too),
/// `remote_apply` (the standby's replay too). One client's sign-in latency,
/// then 8 clients' throughput, `local` against `on`.
fn standby(c: &mut Criterion) {
    let Some(cluster) = pg::durable_cluster(pg::Replication::Sync) else {
        println!("postgres standby benchmark skipped: no primary and standby could be started");
        return;
    };
    let store = |commit: &str| {
        let url = format!("{} options='-c synchronous_commit={commit}'", cluster.url());
        PostgresStore::connect(&url, PostgresOptions::new().schema(pg::unique_name("standby"))).expect("store")
    };
    let mut g = c.benchmark_group("postgres_standby");
    for (name, commit) in [
        ("sign_in_primary_alone", "local"),
        ("sign_in_sync_standby", "on"),
        ("sign_in_remote_apply", "remote_apply"),
    ] {
        let clock = ManualClock::at(T0);
        let portal = bench_portal(store(commit), &clock);
        let user = UserId::customer("erin");
        let totp = enrol(&portal, &user, &clock);
        g.bench_function(name, |b| {
            b.iter_batched(
                || next_code(&clock, &totp),
                |code| portal.verify_sign_in(&user, &code).run().expect("sign-in"),
                BatchSize::PerIteration,
            )
        });
    }
    g.sample_size(10);
    for (name, commit) in [("8_clients_primary_alone", "local"), ("8_clients_sync_standby", "on")] {
        at_once(&mut g, name, store(commit), 8);
    }
    g.finish();
}

/// [`AsyncPostgresStore`] with `apply` holding a row lock for the whole
/// attempt instead of checking the version: the alternative measured beside it.
struct RowLock {
    schema: String,
    store: AsyncPostgresStore,
}

impl RowLock {
    async fn apply_locked(
        &self,
        portal: &PortalId,
        user: &UserId,
        change: &mut ChangeFn<'_>,
    ) -> Result<Applied, StorageError> {
        let other = |e: tokio_postgres::Error| StorageError::new(portal_mfa::StorageErrorKind::Other, e);
        let client = self
            .store
            .pool()
            .get()
            .await
            .map_err(|e| StorageError::new(portal_mfa::StorageErrorKind::Other, e))?;
        let s = &self.schema;
        let policy_sql = format!("SELECT version, policy FROM \"{s}\".portal_mfa_policies WHERE portal = $1");
        let record_sql = format!(
            "SELECT version, record FROM \"{s}\".portal_mfa_records
             WHERE portal = $1 AND user_kind = $2 AND user_id = $3 FOR UPDATE"
        );
        let (policy_st, record_st) =
            tokio::join!(client.prepare_cached(&policy_sql), client.prepare_cached(&record_sql));
        let (policy_st, record_st) = (policy_st.map_err(other)?, record_st.map_err(other)?);
        let key: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&portal.as_str(), &user.kind().as_str(), &user.id()];
        // BEGIN, the policy and the locked record, pipelined: one round trip.
        let (begun, policy, record) = tokio::join!(
            client.batch_execute("BEGIN"),
            client.query(&policy_st, &key[..1]),
            client.query(&record_st, &key)
        );
        begun.map_err(other)?;
        let stored = |rows: Vec<tokio_postgres::Row>| {
            rows.first().map(|r| Stored {
                version: r.get::<_, i64>(0) as u64,
                bytes: r.get(1),
            })
        };
        let (policy, record) = (stored(policy.map_err(other)?), stored(record.map_err(other)?));
        let Some(write) = change(record.as_ref(), policy.as_ref()) else {
            client.batch_execute("ROLLBACK").await.map_err(other)?;
            return Ok(Applied::Done);
        };
        let Some(current) = record else {
            // First writes are rare here: the version column's insert does it.
            client.batch_execute("ROLLBACK").await.map_err(other)?;
            return Ok(self.store.commit(portal, user, None, &write).await?.into());
        };
        let update = format!(
            "WITH w AS (
                UPDATE \"{s}\".portal_mfa_records SET version = version + 1, record = $4, locked_until = $5,
                    last_verified_at = $6, backup_codes_left = $7
                WHERE portal = $1 AND user_kind = $2 AND user_id = $3 RETURNING 1
             ), e AS (
                INSERT INTO \"{s}\".portal_mfa_events (portal, user_kind, user_id, at, kind, event)
                SELECT $1, $2, $3, v.at, v.kind, v.event FROM w, unnest($8::bigint[], $9::text[], $10::bytea[]) AS v (at, kind, event)
                RETURNING 1
             ) SELECT count(*) FROM w"
        );
        let update = client.prepare_cached(&update).await.map_err(other)?;
        let summary = write.summary;
        let (at, kind, bytes): (Vec<i64>, Vec<&str>, Vec<&[u8]>) = (
            write.events.iter().map(|e| e.at as i64).collect(),
            write.events.iter().map(|e| e.kind).collect(),
            write.events.iter().map(|e| e.bytes.as_slice()).collect(),
        );
        let locked = summary
            .locked
            .map(|lock| lock.until.map_or(i64::MAX, |t| t.min(i64::MAX as u64) as i64));
        let verified = summary.last_verified_at.map(|t| t as i64);
        let left = i16::from(summary.backup_codes_left);
        // The write and COMMIT, pipelined: one round trip.
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
            key[0],
            key[1],
            key[2],
            &write.bytes,
            &locked,
            &verified,
            &left,
            &at,
            &kind,
            &bytes,
        ];
        let (written, committed) = tokio::join!(client.query(&update, &params), client.batch_execute("COMMIT"));
        written.map_err(other)?;
        committed.map_err(other)?;
        let _ = current;
        Ok(Applied::Done)
    }
}

impl AsyncMfaStore for RowLock {
    forward_async_store!(store; load, commit, load_policy, commit_policy, events, prune_events, count_events, users, records);

    fn apply<'a>(&'a self, p: &'a PortalId, u: &'a UserId, c: &'a mut ChangeFn<'_>) -> StoreFuture<'a, Applied> {
        Box::pin(self.apply_locked(p, u, c))
    }
}
