//! A test app for the SQLite copy in images without a shell or `sqlite3`
//! (tests/e2e_sqlite_worker.rs): it runs as the only program of a `FROM
//! scratch` image (tests/bench/noshell-image.sh) and keeps its state in the
//! SQLite file named by its argument, in WAL mode, as apps like Vaultwarden
//! do. At start it seeds 1,000 rows into `seed` (once), then inserts the next
//! id into `writes` every 50 ms (ids stay contiguous) until SIGTERM.

use std::time::Duration;

use rusqlite::Connection;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> rusqlite::Result<()> {
    let path = std::env::args()
        .nth(1)
        .expect("usage: sqlite_notes FILE.db");
    let c = Connection::open(&path)?;
    c.busy_timeout(Duration::from_secs(5))?;
    c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS seed (id INTEGER PRIMARY KEY, body TEXT);
         CREATE TABLE IF NOT EXISTS writes (id INTEGER PRIMARY KEY);
         INSERT INTO seed
           WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)
           SELECT x, 'body-' || x FROM c WHERE (SELECT count(*) FROM seed) = 0;",
    )?;
    let mut i: i64 = c.query_row("SELECT coalesce(max(id), 0) FROM writes", [], |r| r.get(0))?;
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    println!("writing to {path} from id {}", i + 1);
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if c.execute("INSERT INTO writes VALUES (?1)", [i + 1]).is_ok() {
                    i += 1;
                }
            }
        }
    }
}
