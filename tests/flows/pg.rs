//! A throwaway PostgreSQL server for the tests, from Debian's `postgresql`
//! package: `initdb` into a temporary directory (as the unprivileged
//! `postgres` user when the tests run as root), listening on a Unix socket in
//! that directory and on a random 127.0.0.1 port. A supervising shell holds
//! the server: when this test process ends, however it ends, the shell's stdin
//! closes and it stops the server and removes the directory.
//!
//! `PORTAL_MFA_TEST_DATABASE_URL` points the tests at an existing server
//! instead (a superuser's URL). Without either, a test prints that it skipped
//! and why; under `CI=true` it fails.

#![cfg(feature = "postgres")]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// A running server the tests may use.
pub struct PgServer {
    /// The superuser's connection string.
    url: String,
    /// Set for a server this process started (and can restart).
    own: Option<OwnServer>,
}

struct OwnServer {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    _supervisor: Mutex<Child>,
}

/// The server shared by this test process's tests, started at first use;
/// `None` (after saying why) when there is none to use.
pub fn shared() -> Option<&'static PgServer> {
    static SHARED: OnceLock<Option<PgServer>> = OnceLock::new();
    SHARED
        .get_or_init(|| match std::env::var("PORTAL_MFA_TEST_DATABASE_URL") {
            Ok(url) => Some(PgServer { url, own: None }),
            // Tests check results, not durability: no fsync.
            Err(_) => start(&["-c fsync=off"]).map_err(|why| skip(&why)).ok(),
        })
        .as_ref()
}

/// A server of the test's own (for restarts), with these extra `postgres`
/// settings; `None`, after saying why, when none can be started.
pub fn own(settings: &[&str]) -> Option<PgServer> {
    start(settings).map_err(|why| skip(&why)).ok()
}

/// Says the test skipped, or fails it under `CI=true`, where the server must be there.
pub fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PostgreSQL is required under CI=true: {why}");
    }
    eprintln!("skipped: no PostgreSQL server ({why}); install Debian's postgresql or set PORTAL_MFA_TEST_DATABASE_URL");
}

fn start(settings: &[&str]) -> Result<PgServer, String> {
    let (bin, dir, owner) = server_dir("pg")?;
    let data = dir.join("data");
    initdb(&bin, owner, &data)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let options = format!(
        "-k {} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=300 {}",
        dir.display(),
        settings.join(" ")
    );
    let pg_ctl = bin.join("pg_ctl");
    // The shell holds the server while this process lives (its stdin is our pipe).
    let script = format!(
        "'{ctl}' -D '{data}' -l '{dir}/log' -w -o \"{options}\" start >/dev/null 2>&1 && echo ready; \
         read _; '{ctl}' -D '{data}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{dir}'",
        ctl = pg_ctl.display(),
        data = data.display(),
        dir = dir.display(),
    );
    let mut supervisor = supervise(&script, owner, Stdio::piped())?;
    let mut line = String::new();
    BufReader::new(supervisor.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.trim() != "ready" {
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        return Err(format!("the server did not start: {log}"));
    }
    Ok(PgServer {
        url: format!("host={} port={port} user=postgres dbname=postgres", dir.display()),
        own: Some(OwnServer {
            dir,
            port,
            bin,
            owner,
            _supervisor: Mutex::new(supervisor),
        }),
    })
}

/// The unprivileged account (uid, gid) the servers run as, when the tests run as root.
type Owner = Option<(u32, u32)>;

/// The server programs, and a new temporary directory for a server's files
/// (owned by the unprivileged account the server runs as, when we are root).
fn server_dir(tag: &str) -> Result<(PathBuf, PathBuf, Owner), String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let bin = server_binaries().ok_or("initdb and pg_ctl not found under /usr/lib/postgresql")?;
    let dir = std::env::temp_dir().join(format!(
        "portal-mfa-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // initdb refuses to run as root: the server runs as the `postgres` user then.
    let owner = if std::fs::metadata("/proc/self").map_err(|e| e.to_string())?.uid() == 0 {
        let owner = account("postgres")
            .or_else(|| account("nobody"))
            .ok_or("no unprivileged account")?;
        std::os::unix::fs::chown(&dir, Some(owner.0), Some(owner.1)).map_err(|e| e.to_string())?;
        Some(owner)
    } else {
        None
    };
    Ok((bin, dir, owner))
}

/// A new database cluster in `data`: trusted local connections (replication
/// too), passwords over TCP.
fn initdb(bin: &Path, owner: Owner, data: &Path) -> Result<(), String> {
    let initdb = as_owner(Command::new(bin.join("initdb")), owner)
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        ])
        .args(["-E", "UTF8", "--locale=C", "--no-instructions"])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&initdb.stderr)));
    }
    Ok(())
}

/// A shell running `script` as the server's owner, its stdin our pipe: it
/// reads EOF, and so cleans up, when this process ends however it ends.
fn supervise(script: &str, owner: Owner, stdout: Stdio) -> Result<Child, String> {
    as_owner(Command::new("sh"), owner)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("sh: {e}"))
}

/// The newest PostgreSQL's server programs.
fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The uid and gid of a local account, from /etc/passwd.
fn account(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))?
    })
}

fn as_owner(mut command: Command, owner: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    // pg_ctl's `-w` waits this long for a start, stop or promotion (60 s of its own otherwise).
    command
        .current_dir("/tmp")
        .env("PGCTLTIMEOUT", super::PATIENCE.as_secs().to_string());
    command
}

impl PgServer {
    /// The superuser's connection string.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection string for `user` with `password` over TCP (password
    /// authentication), to `database`; `None` on a server this process did not start.
    pub fn tcp_url(&self, user: &str, password: &str, database: &str) -> Option<String> {
        let own = self.own.as_ref()?;
        Some(format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{database}",
            own.port
        ))
    }

    /// A connection string for `user` over the Unix socket (trusted); `None` on
    /// a server this process did not start.
    pub fn socket_url(&self, user: &str) -> Option<String> {
        let own = self.own.as_ref()?;
        Some(format!(
            "host={} port={} user={user} dbname=postgres",
            own.dir.display(),
            own.port
        ))
    }

    /// A superuser connection for the test's own SQL.
    pub fn admin(&self) -> Client {
        Client::connect(&self.url)
    }

    /// Runs `pg_ctl` with `args` on a server this process started; false if it failed or is not ours.
    pub fn pg_ctl(&self, args: &[&str]) -> bool {
        let Some(own) = &self.own else {
            return false;
        };
        as_owner(Command::new(own.bin.join("pg_ctl")), own.owner)
            .arg("-D")
            .arg(own.dir.join("data"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Whether this process started the server (and so may restart it).
    pub fn is_own(&self) -> bool {
        self.own.is_some()
    }

    /// The directory of a server this process started.
    pub fn dir(&self) -> Option<&Path> {
        self.own.as_ref().map(|o| o.dir.as_path())
    }
}

/// A blocking client for a test's own SQL: `tokio-postgres` on a runtime of
/// its own, driven on the calling thread (what the `postgres` crate is).
pub struct Client {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Client {
    /// Connects to `url` without TLS, or panics.
    pub fn connect(url: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            client
        });
        Self { runtime, client }
    }

    pub fn query(
        &mut self,
        sql: &(impl tokio_postgres::ToStatement + ?Sized),
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        self.runtime.block_on(self.client.query(sql, params))
    }

    pub fn query_one(
        &mut self,
        sql: &(impl tokio_postgres::ToStatement + ?Sized),
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<tokio_postgres::Row, tokio_postgres::Error> {
        self.runtime.block_on(self.client.query_one(sql, params))
    }

    pub fn batch_execute(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.runtime.block_on(self.client.batch_execute(sql))
    }

    pub fn prepare(&mut self, sql: &str) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        self.runtime.block_on(self.client.prepare(sql))
    }

    pub fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        self.runtime.block_on(self.client.execute(sql, params))
    }

    /// Begins a transaction, rolled back unless committed.
    pub fn transaction(&mut self) -> Result<Transaction<'_>, tokio_postgres::Error> {
        self.batch_execute("BEGIN")?;
        Ok(Transaction {
            client: self,
            open: true,
        })
    }
}

/// A transaction of a [`Client`].
pub struct Transaction<'c> {
    client: &'c mut Client,
    open: bool,
}

impl Transaction<'_> {
    pub fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        self.client.execute(sql, params)
    }

    pub fn batch_execute(&mut self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.client.batch_execute(sql)
    }

    pub fn commit(mut self) -> Result<(), tokio_postgres::Error> {
        self.open = false;
        self.client.batch_execute("COMMIT")
    }

    pub fn rollback(mut self) -> Result<(), tokio_postgres::Error> {
        self.open = false;
        self.client.batch_execute("ROLLBACK")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

/// A name (for a schema, role or database) no other test uses.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("t_{tag}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// `AsyncMfaStore` methods that hand the call to `self.$inner`, named one by
/// one as `forward_store!` names the blocking ones: the wrappers (the pair in
/// `flows`, the bench's row-lock store) forward what they do not change.
#[allow(unused_macros)]
macro_rules! forward_async_store {
    ($inner:ident; $($method:ident),* $(,)?) => { $( forward_async_store!(@ $inner $method); )* };
    (@ $inner:ident load) => {
        fn load<'a>(&'a self, p: &'a PortalId, u: &'a UserId) -> StoreFuture<'a, Option<Stored>> { self.$inner.load(p, u) }
    };
    (@ $inner:ident commit) => {
        fn commit<'a>(&'a self, p: &'a PortalId, u: &'a UserId, v: Option<Version>, w: &'a RecordWrite) -> StoreFuture<'a, Commit> { self.$inner.commit(p, u, v, w) }
    };
    (@ $inner:ident load_policy) => {
        fn load_policy<'a>(&'a self, p: &'a PortalId) -> StoreFuture<'a, Option<Stored>> { self.$inner.load_policy(p) }
    };
    (@ $inner:ident commit_policy) => {
        fn commit_policy<'a>(&'a self, p: &'a PortalId, v: Option<Version>, b: &'a [u8], e: &'a [StoredEvent]) -> StoreFuture<'a, Commit> { self.$inner.commit_policy(p, v, b, e) }
    };
    (@ $inner:ident events) => {
        fn events<'a>(&'a self, q: &'a EventQuery) -> StoreFuture<'a, Vec<(EventPosition, Vec<u8>)>> { self.$inner.events(q) }
    };
    (@ $inner:ident prune_events) => {
        fn prune_events<'a>(&'a self, p: &'a PortalId, before: u64, max: usize) -> StoreFuture<'a, usize> { self.$inner.prune_events(p, before, max) }
    };
    (@ $inner:ident count_events) => {
        fn count_events<'a>(&'a self, p: &'a PortalId, from: u64, until: u64) -> StoreFuture<'a, Vec<(String, u64)>> { self.$inner.count_events(p, from, until) }
    };
    (@ $inner:ident users) => {
        fn users<'a>(&'a self, listing: &'a UserListing) -> StoreFuture<'a, Vec<(UserId, RecordSummary)>> { self.$inner.users(listing) }
    };
    (@ $inner:ident records) => {
        fn records<'a>(&'a self, p: &'a PortalId, a: Option<&'a UserId>, l: usize) -> StoreFuture<'a, Vec<(UserId, Stored)>> { self.$inner.records(p, a, l) }
    };
    (@ $inner:ident apply) => {
        fn apply<'a>(&'a self, p: &'a PortalId, u: &'a UserId, c: &'a mut ChangeFn<'_>) -> StoreFuture<'a, Applied> { self.$inner.apply(p, u, c) }
    };
}

/// Whether the shared server is there (says why not, or fails under `CI=true`).
pub fn available() -> bool {
    shared().is_some()
}

// ---------------------------------------------------------------------------
// A primary and a streaming standby, for failover

/// How the primary waits for its standby before it answers a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    /// `synchronous_commit = on` with the standby in `synchronous_standby_names`:
    /// a commit is answered once the standby has flushed it.
    Sync,
    /// `synchronous_commit = remote_apply`: once the standby has applied it.
    SyncApply,
    /// No synchronous standby: a commit is answered once the primary has it.
    Async,
}

/// How the primary dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    /// `pg_ctl stop -m immediate`: every server process quits at once, nothing flushed or sent.
    Immediate,
    /// SIGKILL of the postmaster alone: its backends and WAL senders find it gone and exit.
    Postmaster,
    /// SIGKILL of every server process at once: a machine that stopped.
    Everything,
}

/// A primary and a streaming standby started by this process, both on
/// loopback, listening on two fixed ports; after a failover the next standby
/// takes the dead primary's port, so one multi-host URL finds the primary
/// through every round. Both servers stop and the directory goes when this
/// process ends, however it ends (a supervising shell, as for [`start`]).
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    ports: [u16; 2],
    /// The data directory serving each port, if a server was started there.
    data: [Option<PathBuf>; 2],
    /// Which port is the primary's.
    primary: usize,
    nodes: u32,
    pub replication: Replication,
    _supervisor: Mutex<Child>,
}

/// A primary with a streaming standby replicating as `replication`, or
/// `None` after saying why not (failing under `CI=true`).
pub fn cluster(replication: Replication) -> Option<Cluster> {
    Cluster::start(replication, false).map_err(|why| skip(&why)).ok()
}

/// [`cluster`] with the server's durable default, `fsync = on`, on both
/// servers (for the benchmarks).
pub fn durable_cluster(replication: Replication) -> Option<Cluster> {
    Cluster::start(replication, true).map_err(|why| skip(&why)).ok()
}

impl Cluster {
    fn start(replication: Replication, fsync: bool) -> Result<Self, String> {
        let (bin, dir, owner) = server_dir("cluster")?;
        if !bin.join("pg_basebackup").exists() {
            return Err("pg_basebackup not found beside initdb".into());
        }
        let mut ports = [0; 2];
        for port in &mut ports {
            *port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
        }
        // Stops whatever still runs in the directory, then removes it, once this process's pipe closes.
        let script = format!(
            "read _; for d in '{dir}'/node-*; do '{ctl}' -D \"$d\" -m immediate -w stop >/dev/null 2>&1; done; rm -rf '{dir}'",
            ctl = bin.join("pg_ctl").display(),
            dir = dir.display(),
        );
        let supervisor = supervise(&script, owner, Stdio::null())?;
        let mut cluster = Self {
            dir,
            bin,
            owner,
            ports,
            data: [None, None],
            primary: 0,
            nodes: 0,
            replication,
            _supervisor: Mutex::new(supervisor),
        };
        let data = cluster.next_node();
        initdb(&cluster.bin, owner, &data)?;
        let (standby_names, commit) = match replication {
            Replication::Sync => ("*", "on"),
            Replication::SyncApply => ("*", "remote_apply"),
            Replication::Async => ("", "on"),
        };
        // The tests' kills are process deaths, not power cuts: what a process
        // wrote the kernel keeps, so fsync adds nothing to what they show.
        let fsync = if fsync { "on" } else { "off" };
        cluster.configure(
            &data,
            &format!(
                "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{dir}'\nmax_connections = 100\n\
                 fsync = {fsync}\nsynchronous_standby_names = '{standby_names}'\nsynchronous_commit = {commit}\n\
                 wal_sender_timeout = 5s\nwal_receiver_status_interval = 1s\n",
                dir = cluster.dir.display()
            ),
        )?;
        cluster.start_node(0, data)?;
        cluster.add_standby()?;
        Ok(cluster)
    }

    /// The multi-host URL an app gives the stores: both ports, read-write
    /// sessions only, so a new connection finds whichever is the primary.
    pub fn url(&self) -> String {
        format!(
            "host={d},{d} port={},{} user=postgres dbname=postgres target_session_attrs=read-write",
            self.ports[0],
            self.ports[1],
            d = self.dir.display()
        )
    }

    /// The primary alone, for the test's own SQL.
    pub fn primary_url(&self) -> String {
        self.node_url(self.primary)
    }

    /// The standby alone.
    pub fn standby_url(&self) -> String {
        self.node_url(1 - self.primary)
    }

    fn node_url(&self, slot: usize) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.display(),
            self.ports[slot]
        )
    }

    fn next_node(&mut self) -> PathBuf {
        self.nodes += 1;
        self.dir.join(format!("node-{}", self.nodes))
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let output = as_owner(Command::new(self.bin.join(program)), self.owner)
            .args(args)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("{program} failed: {}", String::from_utf8_lossy(&output.stderr)))
        }
    }

    /// Appends `settings` to the node's `postgresql.conf` (the last setting wins).
    fn configure(&self, data: &Path, settings: &str) -> Result<(), String> {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(|e| format!("postgresql.conf: {e}"))
    }

    fn start_node(&mut self, slot: usize, data: PathBuf) -> Result<(), String> {
        let log = self
            .dir
            .join(format!("{}.log", data.file_name().unwrap().to_string_lossy()));
        let port = format!("-p {}", self.ports[slot]);
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-w",
                "-o",
                &port,
                "start",
            ],
        )?;
        self.data[slot] = Some(data);
        Ok(())
    }

    /// A new standby, copied from the primary by `pg_basebackup -R`, on the
    /// other port; returns once the primary streams to it (as its synchronous
    /// standby, when commits wait for one).
    pub fn add_standby(&mut self) -> Result<(), String> {
        let data = self.next_node();
        let port = self.ports[self.primary].to_string();
        let dir = self.dir.display().to_string();
        self.run(
            "pg_basebackup",
            &[
                "-D",
                &data.display().to_string(),
                "-h",
                &dir,
                "-p",
                &port,
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
        )?;
        self.configure(&data, "cluster_name = 'standby'\n")?;
        self.start_node(1 - self.primary, data)?;
        let wanted = if self.replication == Replication::Async {
            "async"
        } else {
            "sync"
        };
        let mut primary = Client::connect(&self.primary_url());
        let streaming = "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = $1";
        super::wait_for(
            || match primary.query(streaming, &[&wanted]) {
                Ok(rows) if rows.is_empty() => None,
                Ok(_) => Some(Ok(())),
                Err(e) => Some(Err(e.to_string())),
            },
            "the standby streams",
        )
    }

    /// The postmaster's pid, from the first line of `postmaster.pid`.
    fn postmaster(&self, slot: usize) -> Option<u32> {
        let data = self.data[slot].as_ref()?;
        std::fs::read_to_string(data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the standby from receiving anything (SIGSTOP to the primary's WAL
    /// senders): commits go on or wait, as the replication setting says.
    pub fn pause_replication(&self) -> Vec<u32> {
        let mut primary = Client::connect(&self.primary_url());
        let pids: Vec<u32> = primary
            .query("SELECT pid FROM pg_stat_replication", &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, i32>(0) as u32)
            .collect();
        signal("STOP", &pids);
        pids
    }

    /// Kills the primary as `how` says; its data directory is never started again.
    pub fn kill_primary(&mut self, how: Kill) {
        let slot = self.primary;
        let postmaster = self.postmaster(slot).expect("the primary's postmaster.pid");
        let mut processes = children(postmaster);
        processes.push(postmaster);
        match how {
            Kill::Immediate => {
                let data = self.data[slot].as_ref().unwrap().display().to_string();
                self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
                    .unwrap();
            }
            Kill::Postmaster => signal("KILL", &[postmaster]),
            Kill::Everything => signal("KILL", &processes),
        }
        // Orphaned backends find their postmaster gone within moments (a
        // paused WAL sender once it runs again): wait until none is left.
        super::wait_until(
            || {
                let left: Vec<u32> = processes.iter().copied().filter(|&pid| alive(pid)).collect();
                if !left.is_empty() {
                    signal("CONT", &left);
                }
                left.is_empty()
            },
            "the old primary's processes exit",
        );
        // A killed postmaster nobody reaps stays a zombie, which the
        // next server on its port would take for a live owner of the socket's lock.
        let socket = self.dir.join(format!(".s.PGSQL.{}", self.ports[slot]));
        let _ = std::fs::remove_file(socket.with_extension(format!("{}.lock", self.ports[slot])));
        let _ = std::fs::remove_file(socket);
    }

    /// Promotes the standby (`pg_ctl promote -w`); it is the primary from now on.
    pub fn promote(&mut self) {
        let standby = 1 - self.primary;
        let data = self.data[standby].as_ref().unwrap().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-w", "promote"]).unwrap();
        if let Some(old) = self.data[self.primary].take() {
            let _ = std::fs::remove_dir_all(old);
        }
        self.primary = standby;
    }

    /// The server log of every node so far, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.nodes {
            let log = std::fs::read_to_string(self.dir.join(format!("node-{n}.log"))).unwrap_or_default();
            out.push_str(&format!(
                "--- node-{n}\n{}\n",
                log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
            ));
        }
        out
    }
}

/// Sends SIGsignal to each of `pids` (tests run as root, the servers as postgres).
fn signal(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(')')?.1.split_whitespace().next()? != "Z"))
        .unwrap_or(false)
}

/// The live children of `parent`, from /proc.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid …: comm may hold spaces, so read after its last ')'.
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
            let state = fields.next()?;
            let ppid: u32 = fields.next()?.parse().ok()?;
            (ppid == parent && state != "Z").then_some(pid)
        })
        .collect()
}
